"""Classify an object's server-side encryption and decide what the configuration requires.

Pure: the inputs are a HeadObject response (or what a CloudTrail data event record says S3
applied) and the Settings; the output says whether the object is compliant, which finding it
raises if not, and the one safe remediation, if there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from clguard.boundary.config import EncryptionRequirement, Settings
from clguard.rules.arns import account_of, parse_key_arn


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


def _own_key(settings: Settings) -> str | None:
    """The re-encryption key for objects of the account acted on: only ever a key of that very
    account (design §11; ``Settings.for_account`` gives a member only the key it declared)."""
    key = settings.reencrypt_kms_key
    return key if key and account_of(key) == settings.account_id else None


def _target(settings: Settings) -> ObjectEncryption | None:
    key = _own_key(settings)
    if key:
        return ObjectEncryption(Encryption.SSE_KMS, key)
    if settings.encryption_requirement is EncryptionRequirement.SSE_S3_OR_KMS:
        return ObjectEncryption(Encryption.SSE_S3)
    return None


def _no_key(settings: Settings, what: str) -> str:
    """Why there is nothing safe to do without a re-encryption key, naming the fix."""
    if settings.is_member:
        return (
            f"{what}, and member account {settings.account_id} declares no re-encryption key of its own "
            "(a key is only used for objects of its own account): set ReencryptKmsKey in its member stack "
            "(member.yaml); nothing safe to do"
        )
    return f"{what} and REENCRYPT_KMS_KEY is not set: nothing safe to do"


_NO_KEY = "ENCRYPTION_REQUIREMENT is SSE_KMS"


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
    if kind is Encryption.NONE:
        return _assess_unencrypted(encryption, settings)
    if kind is Encryption.SSE_S3:
        return _assess_sse_s3(encryption, settings)
    return _assess_kms(encryption, settings, aws_managed_key=aws_managed_key)  # DSSE-KMS counts as KMS


def _assess_unencrypted(encryption: ObjectEncryption, settings: Settings) -> Assessment:
    """No encryption: copied to the target encryption, when there is a target this account may use."""
    problem = "object had no server-side encryption"
    target = _target(settings)
    if target is None:
        return Assessment(encryption, "OBJECT_UNENCRYPTED", problem, why_not=_no_key(settings, _NO_KEY))
    return Assessment(encryption, "OBJECT_UNENCRYPTED", problem, Remediation(Method.COPY, target))


def _assess_sse_s3(encryption: ObjectEncryption, settings: Settings) -> Assessment:
    """SSE-S3: fine unless SSE_KMS is required; then updated in place to this account's own key."""
    if settings.encryption_requirement is EncryptionRequirement.SSE_S3_OR_KMS:
        return Assessment(encryption)
    problem = "object uses SSE-S3 where ENCRYPTION_REQUIREMENT is SSE_KMS"
    own = _own_key(settings)
    if own is None:
        return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, why_not=_no_key(settings, _NO_KEY))
    kms = ObjectEncryption(Encryption.SSE_KMS, own)
    return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, Remediation(Method.UPDATE, kms))


def _assess_kms(encryption: ObjectEncryption, settings: Settings, *, aws_managed_key: bool) -> Assessment:
    """SSE-KMS / DSSE-KMS: fine with an allowed key (customer managed when SSE_KMS is required);
    otherwise re-keyed to this account's own key (SSE-KMS in place, DSSE by copy)."""
    key = encryption.kms_key_arn or ""
    not_customer = aws_managed_key and settings.encryption_requirement is EncryptionRequirement.SSE_KMS
    if settings.key_allowed(key) and not not_customer:
        return Assessment(encryption)
    if not_customer:
        problem = f"object is encrypted with the AWS managed key {key}, where ENCRYPTION_REQUIREMENT is SSE_KMS"
    else:
        problem = f"object is encrypted with KMS key {key or '(unknown)'}, which is not in ALLOWED_KMS_KEYS"
    own = _own_key(settings)
    if own is None:
        why_not = _no_key(settings, "the key is not allowed")
        if not settings.is_member:
            why_not = "REENCRYPT_KMS_KEY is not set: nothing safe to do"
        return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, why_not=why_not)
    kms = ObjectEncryption(Encryption.SSE_KMS, own)
    method = Method.UPDATE if encryption.kind is Encryption.SSE_KMS else Method.COPY
    return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, Remediation(method, kms))


# --- what a CloudTrail S3 data event record says about the version it wrote ------------------

# additionalEventData.SSEApplied (S3 User Guide, "Default encryption FAQ" / CloudTrail data
# events): Default_* when the bucket default applied, the others when the request named it.
SSE_APPLIED_S3: Final = frozenset({"Default_SSE_S3", "SSE_S3"})
SSE_APPLIED_KMS: Final = frozenset({"Default_SSE_KMS", "SSE_KMS"})
SSE_APPLIED_C: Final = "SSE_C"
_ALGORITHMS: Final = {"AES256": Encryption.SSE_S3, "aws:kms": Encryption.SSE_KMS, "aws:kms:dsse": Encryption.DSSE_KMS}


@dataclass(frozen=True, slots=True)
class ObservedEncryption:
    """The encryption facts of one PutObject / CopyObject / CompleteMultipartUpload record, as
    written: ``additionalEventData.SSEApplied`` and the ``responseElements`` headers S3 answered
    with (``x-amz-server-side-encryption``, ``...-aws-kms-key-id``,
    ``...-customer-algorithm``). Any field may be missing (older trails, multipart uploads,
    whose SSEApplied is on the CreateMultipartUpload record)."""

    sse_applied: str | None = None
    algorithm: str | None = None
    kms_key_id: str | None = None
    customer_algorithm: str | None = None


def classify_observed(observed: ObservedEncryption) -> ObjectEncryption | None:
    """The encryption of the version the record describes, or None when the record does not
    say enough (then the object is inspected with HeadObject, as for any other event).

    Only positive, consistent evidence decides: an unknown value, a KMS algorithm without a key
    ARN (a bare key id or an alias is not resolved here: HeadObject answers with the ARN), or
    fields that contradict each other all give None. A record never proves "no encryption":
    since January 2023 S3 encrypts every new object, and a record without any field may just be
    an older trail format, so the unencrypted case is always confirmed by HeadObject.
    """
    applied, algorithm = observed.sse_applied, observed.algorithm
    if applied is not None and applied not in SSE_APPLIED_S3 | SSE_APPLIED_KMS | {SSE_APPLIED_C}:
        return None
    if observed.customer_algorithm is not None or applied == SSE_APPLIED_C:
        return _observed_sse_c(observed)
    if algorithm is None:  # only SSEApplied: enough for SSE-S3, which has no key to name
        return _observed_from_applied(observed)
    kind = _ALGORITHMS.get(algorithm)
    if kind is None:
        return None
    if kind is Encryption.SSE_S3:
        return _observed_sse_s3(observed)
    return _observed_kms(observed, kind)


# One check per kind of evidence (each returns None when the fields contradict each other).


def _observed_sse_c(observed: ObservedEncryption) -> ObjectEncryption | None:
    """SSE-C: a customer algorithm (AES256 only) or SSEApplied says so, and nothing else does."""
    if observed.algorithm is not None or observed.kms_key_id is not None:
        return None
    if observed.sse_applied not in (None, SSE_APPLIED_C):
        return None
    if observed.customer_algorithm not in (None, "AES256"):
        return None
    return ObjectEncryption(Encryption.SSE_C)


def _observed_from_applied(observed: ObservedEncryption) -> ObjectEncryption | None:
    """No algorithm field: only SSE-S3 can be known from SSEApplied alone (a KMS kind needs its key)."""
    if observed.sse_applied in SSE_APPLIED_S3 and observed.kms_key_id is None:
        return ObjectEncryption(Encryption.SSE_S3)
    return None


def _observed_sse_s3(observed: ObservedEncryption) -> ObjectEncryption | None:
    """AES256: consistent only with an S3 SSEApplied value (or none) and no key."""
    if observed.sse_applied not in (None, *SSE_APPLIED_S3) or observed.kms_key_id is not None:
        return None
    return ObjectEncryption(Encryption.SSE_S3)


def _observed_kms(observed: ObservedEncryption, kind: Encryption) -> ObjectEncryption | None:
    """aws:kms / aws:kms:dsse: consistent with a KMS SSEApplied value (or none), and decided only
    with a key ARN (a bare key id or an alias is left to HeadObject)."""
    if observed.sse_applied not in (None, *SSE_APPLIED_KMS):
        return None
    key = observed.kms_key_id
    if key is None or parse_key_arn(key) is None:
        return None
    return ObjectEncryption(kind, key)
