"""Classify an object's server-side encryption and decide what the configuration requires.

Pure: the inputs are a HeadObject response and the Settings; the output says whether the object
is compliant, which finding it raises if not, and the one safe remediation, if there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clguard.config import EncryptionRequirement, Settings


class Encryption(StrEnum):
    NONE = "none"
    SSE_S3 = "SSE-S3"
    SSE_KMS = "SSE-KMS"
    DSSE_KMS = "DSSE-KMS"
    SSE_C = "SSE-C"

    @property
    def is_kms(self) -> bool:
        return self in (Encryption.SSE_KMS, Encryption.DSSE_KMS)


@dataclass(frozen=True, slots=True)
class ObjectEncryption:
    kind: Encryption
    kms_key_arn: str | None = None

    def describe(self) -> str:
        return f"{self.kind.value} with {self.kms_key_arn}" if self.kms_key_arn else self.kind.value


class UnknownEncryption(ValueError):
    """HeadObject reported a ServerSideEncryption value this version does not know."""


def classify(head: Mapping[str, Any]) -> ObjectEncryption:
    """From a HeadObject response. (SSE-C objects usually fail HeadObject with 400 instead; the
    S3 adapter maps that to SSE-C before we get here.)"""
    if head.get("SSECustomerAlgorithm"):
        return ObjectEncryption(Encryption.SSE_C)
    sse = head.get("ServerSideEncryption")
    key = head.get("SSEKMSKeyId") or None
    if sse is None:
        return ObjectEncryption(Encryption.NONE)
    if sse == "AES256":
        return ObjectEncryption(Encryption.SSE_S3)
    if sse == "aws:kms":
        return ObjectEncryption(Encryption.SSE_KMS, key)
    if sse == "aws:kms:dsse":
        return ObjectEncryption(Encryption.DSSE_KMS, key)
    raise UnknownEncryption(f"unknown ServerSideEncryption {sse!r}")


class Method(StrEnum):
    COPY = "CopyObject"  # rewrites the object: the only way from "none" or DSSE-KMS
    UPDATE = "UpdateObjectEncryption"  # SSE-S3/SSE-KMS -> SSE-KMS in place, no data copy, no event


@dataclass(frozen=True, slots=True)
class Remediation:
    method: Method
    target: ObjectEncryption

    def describe(self) -> str:
        how = "re-encrypted in place" if self.method is Method.COPY else "encryption updated in place"
        return f"{how} with {self.target.describe()} ({self.method.value})"


@dataclass(frozen=True, slots=True)
class Assessment:
    """``finding_type`` is None when the object is compliant."""

    encryption: ObjectEncryption
    finding_type: str | None = None
    problem: str = ""
    remediation: Remediation | None = None
    why_not: str = ""  # why there is no remediation, when there is none

    @property
    def compliant(self) -> bool:
        return self.finding_type is None


def _target(settings: Settings) -> ObjectEncryption | None:
    if settings.reencrypt_kms_key:
        return ObjectEncryption(Encryption.SSE_KMS, settings.reencrypt_kms_key)
    if settings.encryption_requirement is EncryptionRequirement.SSE_S3_OR_KMS:
        return ObjectEncryption(Encryption.SSE_S3)
    return None


_NO_KEY = "ENCRYPTION_REQUIREMENT is SSE_KMS and REENCRYPT_KMS_KEY is not set: nothing safe to do"


def assess(encryption: ObjectEncryption, settings: Settings, *, aws_managed_key: bool = False) -> Assessment:
    """``aws_managed_key``: the object's KMS key is AWS managed (e.g. aws/s3), which
    ``SSE_KMS`` (customer managed KMS only) does not accept."""
    kind = encryption.kind
    if kind is Encryption.SSE_C:
        return Assessment(
            encryption,
            "OBJECT_SSE_C",
            "object uses SSE-C (customer-provided key): Rekognition cannot read it",
            why_not="it cannot be re-encrypted without the customer's key",
        )
    target = _target(settings)
    if kind is Encryption.NONE:
        problem = "object had no server-side encryption"
        if target is None:
            return Assessment(encryption, "OBJECT_UNENCRYPTED", problem, why_not=_NO_KEY)
        return Assessment(encryption, "OBJECT_UNENCRYPTED", problem, Remediation(Method.COPY, target))
    if kind is Encryption.SSE_S3:
        if settings.encryption_requirement is EncryptionRequirement.SSE_S3_OR_KMS:
            return Assessment(encryption)
        problem = "object uses SSE-S3 where ENCRYPTION_REQUIREMENT is SSE_KMS"
        if settings.reencrypt_kms_key is None:
            return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, why_not=_NO_KEY)
        kms = ObjectEncryption(Encryption.SSE_KMS, settings.reencrypt_kms_key)
        return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, Remediation(Method.UPDATE, kms))
    # SSE-KMS or DSSE-KMS (DSSE counts as KMS encryption).
    key = encryption.kms_key_arn or ""
    not_customer = aws_managed_key and settings.encryption_requirement is EncryptionRequirement.SSE_KMS
    if settings.key_allowed(key) and not not_customer:
        return Assessment(encryption)
    if not_customer:
        problem = f"object is encrypted with the AWS managed key {key}, where ENCRYPTION_REQUIREMENT is SSE_KMS"
    else:
        problem = f"object is encrypted with KMS key {key or '(unknown)'}, which is not in ALLOWED_KMS_KEYS"
    if settings.reencrypt_kms_key is None:
        return Assessment(
            encryption,
            "OBJECT_WRONG_ENCRYPTION",
            problem,
            why_not="REENCRYPT_KMS_KEY is not set: nothing safe to do",
        )
    kms = ObjectEncryption(Encryption.SSE_KMS, settings.reencrypt_kms_key)
    method = Method.UPDATE if kind is Encryption.SSE_KMS else Method.COPY
    return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, Remediation(method, kms))
