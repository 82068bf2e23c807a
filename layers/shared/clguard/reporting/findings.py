"""The finding (a contract, docs/architecture.md §5): its types, severities, outcomes and resources, the
``default`` document SNS delivers, its fingerprint, and the rebuild from a document.

How a finding reads for people (e-mail, chat, the SNS subject and message) is
:mod:`clguard.reporting.rendering`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from clguard.boundary.parsing import required_object, required_value
from clguard.boundary.s3ref import S3ObjectRef

SCHEMA_VERSION: Final = "1"


class Severity(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"


class Outcome(StrEnum):
    REMEDIATED = "REMEDIATED"  # the remediator fixed it
    REPORTED = "REPORTED"  # a violation left as is: report mode, or nothing safe to do
    REFUSED = "REFUSED"  # a change was wanted but a guardrail forbade it
    FAILED = "FAILED"  # the remediator tried and an error stopped it


class FindingType(StrEnum):
    OBJECT_UNENCRYPTED = "OBJECT_UNENCRYPTED"
    OBJECT_SSE_C = "OBJECT_SSE_C"
    OBJECT_WRONG_ENCRYPTION = "OBJECT_WRONG_ENCRYPTION"
    OBJECT_UNVERIFIABLE = "OBJECT_UNVERIFIABLE"
    KEY_UNUSABLE = "KEY_UNUSABLE"
    KEY_ACCESS_MISSING = "KEY_ACCESS_MISSING"
    KEY_NOT_MANAGED = "KEY_NOT_MANAGED"
    PRINCIPAL_NOT_ALLOWED = "PRINCIPAL_NOT_ALLOWED"
    KEY_POLICY_LIMIT = "KEY_POLICY_LIMIT"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    EXCEPTIONS_INVALID = "EXCEPTIONS_INVALID"
    TRAINING_FAILED = "TRAINING_FAILED"
    # A member account the guard serves but cannot act in (its role is missing, denied or keeps
    # being throttled): once per audit run, naming the account and what is missing.
    MEMBER_UNREACHABLE = "MEMBER_UNREACHABLE"

    @property
    def severity(self) -> Severity:
        return SEVERITY[self]


SEVERITY: Final[Mapping[FindingType, Severity]] = {
    FindingType.OBJECT_UNENCRYPTED: Severity.HIGH,
    FindingType.OBJECT_SSE_C: Severity.HIGH,
    FindingType.OBJECT_WRONG_ENCRYPTION: Severity.MEDIUM,
    FindingType.OBJECT_UNVERIFIABLE: Severity.MEDIUM,
    FindingType.KEY_UNUSABLE: Severity.HIGH,
    FindingType.KEY_ACCESS_MISSING: Severity.MEDIUM,
    FindingType.KEY_NOT_MANAGED: Severity.MEDIUM,
    FindingType.PRINCIPAL_NOT_ALLOWED: Severity.HIGH,
    FindingType.KEY_POLICY_LIMIT: Severity.HIGH,
    FindingType.MANIFEST_INVALID: Severity.MEDIUM,
    FindingType.EXCEPTIONS_INVALID: Severity.MEDIUM,
    FindingType.TRAINING_FAILED: Severity.HIGH,
    FindingType.MEMBER_UNREACHABLE: Severity.HIGH,
}


@dataclass(frozen=True, slots=True)
class KmsKeyResource:
    arn: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "kms-key", "arn": self.arn}

    def label(self) -> str:
        return self.arn


@dataclass(frozen=True, slots=True)
class ProjectVersionResource:
    """A Rekognition Custom Labels resource, the contract's ``rekognition-project-version``: the
    version a training creates or fails to (TRAINING_FAILED) or, where no version exists yet
    (CreateDataset), the dataset ARN."""

    arn: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "rekognition-project-version", "arn": self.arn}

    def label(self) -> str:
        return self.arn


@dataclass(frozen=True, slots=True)
class MemberRoleResource:
    """The role a member account provides for the guard (``iam-role``): the resource of a
    MEMBER_UNREACHABLE finding, whose ``account`` is the member's."""

    arn: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "iam-role", "arn": self.arn}

    def label(self) -> str:
        return self.arn


type Resource = S3ObjectRef | KmsKeyResource | ProjectVersionResource | MemberRoleResource | ExceptionsResource


@dataclass(frozen=True, slots=True)
class ExceptionsResource:
    """The accepted-exceptions document (docs/architecture.md §5b): ``ssm:<name>`` or ``s3://<bucket>/<key>``."""

    location: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "exceptions", "location": self.location}

    def label(self) -> str:
        return self.location


@dataclass(frozen=True, slots=True)
class Suppression:
    """The accepted exception that mutes a finding (the optional ``suppressed`` of the document)."""

    exception_id: str
    reason: str
    owner: str | None
    expires: str  # YYYY-MM-DD

    def to_json(self) -> dict[str, Any]:
        return {"exception_id": self.exception_id, "reason": self.reason, "owner": self.owner, "expires": self.expires}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Suppression:
        owner = value.get("owner")
        return cls(
            str(value.get("exception_id", "")),
            str(value.get("reason", "")),
            str(owner) if owner is not None else None,
            str(value.get("expires", "")),
        )


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One key-policy statement the remediator changed: the optional ``change`` of a finding.

    ``before`` is ``None`` when the statement was created. Consumers read what changed here
    instead of parsing ``detail``; renderers turn it into a sentence
    (:func:`clguard.reporting.rendering.change_sentence`).
    """

    sid: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"sid": self.sid, "before": self.before, "after": self.after}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PolicyChange:
        before, after = value.get("before"), value.get("after")
        return cls(
            str(value["sid"]),
            dict(before) if isinstance(before, Mapping) else None,
            dict(after) if isinstance(after, Mapping) else None,
        )


def _changes(document: Mapping[str, Any]) -> list[Any]:
    """Every statement a document says changed: ``changes`` when it has it, else its ``change`` (one
    object, or the list an earlier version wrote there)."""
    return _as_list(document["changes"] if "changes" in document else document.get("change"))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Finding:
    finding_type: FindingType
    outcome: Outcome
    resource: Resource
    detail: str
    source_event_id: str
    account: str
    region: str
    principal_arn: str | None = None
    kms_key_arn: str | None = None
    observed_at: str = field(default_factory=utc_now)
    # What makes two findings "the same" besides the condition: by default the source event
    # (a redelivered event yields no second finding). Key-level conditions seen by the
    # high-volume S3 path use a time window instead, so 10,000 uploads under one disabled key
    # raise one alert an hour, not 10,000. Not published.
    scope: str = ""
    # Optional (schema_version stays "1"): the key-policy statements a REMEDIATED grant changed.
    change: tuple[PolicyChange, ...] = ()
    # Optional: the request that asked for this check when it was not a single object event
    # (e.g. "CreateProjectVersion of arn:…/version/v1/…"); its findings share source_event_id.
    # The digest threads them together for people.
    origin: str = ""
    # Optional (the findings plane, docs/architecture.md §5): the owning team (OWNER_TAG_KEY tag of the
    # bucket or key), the accepted exception that mutes it, and the alias people know the key by
    # (``kms_key_alias``; the ARN stays in ``kms_key_arn``). None of them changes the fingerprint.
    owner: str | None = None
    suppressed: Suppression | None = None
    key_alias: str | None = None
    # Optional (MEMBER_UNREACHABLE REFUSED): the buckets the member's declaration claims that S3
    # says another account owns, sorted. Part of what the condition is about, so part of its
    # Security Hub identity (``asff.finding_id``); carried in the document so that the findings
    # outbox keeps it. Not in the fingerprint (such a finding is scoped by its audit run).
    claimed_buckets: tuple[str, ...] = ()

    @property
    def severity(self) -> Severity:
        return self.finding_type.severity

    def document(self) -> dict[str, Any]:
        """The ``default`` message: the contract's fields, plus the optional ``change`` (always one
        ``{"sid", "before", "after"}``, the contract's shape: the first statement changed) and
        ``changes`` (every statement changed, in order, as a list: a KmsKeyId grant changes two);
        ``claimed_buckets`` (a refused claim's buckets, a list of names) when there are any."""
        document: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "finding_type": self.finding_type.value,
            "severity": self.severity.value,
            "outcome": self.outcome.value,
            "account": self.account,
            "region": self.region,
            "resource": self.resource.to_json(),
            "principal_arn": self.principal_arn,
            "kms_key_arn": self.kms_key_arn,
            "detail": self.detail,
            "source_event_id": self.source_event_id,
            "observed_at": self.observed_at,
        }
        if self.change:
            changes = [c.to_json() for c in self.change]
            document["change"] = changes[0]
            document["changes"] = changes
        if self.origin:
            document["origin"] = self.origin
        if self.owner is not None:
            document["owner"] = self.owner
        if self.suppressed is not None:
            document["suppressed"] = self.suppressed.to_json()
        if self.key_alias:
            document["kms_key_alias"] = self.key_alias
        if self.claimed_buckets:
            document["claimed_buckets"] = list(self.claimed_buckets)
        return document

    def fingerprint(self) -> str:
        """Identity for de-duplication: the same event and condition give the same fingerprint,
        whenever it is observed (``observed_at`` and ``detail`` are left out). The account is
        part of the condition: in an organization, one key or event seen from two accounts is
        two conditions (a member's KEY_UNUSABLE on a central key never mutes the central one's)."""
        identity = [
            self.account,
            self.finding_type.value,
            self.outcome.value,
            self.resource.to_json(),
            self.principal_arn,
            self.kms_key_arn,
            self.scope or self.source_event_id,
        ]
        raw = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, scope: str = "") -> Finding:
        """Rebuild a finding from its ``default`` document (the findings outbox carries these).
        Raises InvalidEvent naming a missing field, ValueError for an unknown type or outcome."""
        where = "finding"
        resource_doc = required_object(document, "resource", where)
        resource: Resource
        if resource_doc.get("type") == "kms-key":
            resource = KmsKeyResource(str(required_value(resource_doc, "arn", f"{where}.resource")))
        elif resource_doc.get("type") == "exceptions":
            resource = ExceptionsResource(str(required_value(resource_doc, "location", f"{where}.resource")))
        elif resource_doc.get("type") == "rekognition-project-version":
            resource = ProjectVersionResource(str(required_value(resource_doc, "arn", f"{where}.resource")))
        elif resource_doc.get("type") == "iam-role":
            resource = MemberRoleResource(str(required_value(resource_doc, "arn", f"{where}.resource")))
        else:
            resource = S3ObjectRef(
                str(required_value(resource_doc, "bucket", f"{where}.resource")),
                str(required_value(resource_doc, "key", f"{where}.resource")),
                resource_doc.get("version_id"),
            )

        def text_of(name: str) -> str:
            return str(required_value(document, name, where))

        suppressed = document.get("suppressed")
        claimed = document.get("claimed_buckets")

        return cls(
            finding_type=FindingType(required_value(document, "finding_type", where)),
            outcome=Outcome(required_value(document, "outcome", where)),
            resource=resource,
            detail=text_of("detail"),
            source_event_id=text_of("source_event_id"),
            account=text_of("account"),
            region=text_of("region"),
            principal_arn=document.get("principal_arn"),
            kms_key_arn=document.get("kms_key_arn"),
            observed_at=text_of("observed_at"),
            scope=scope,
            change=tuple(PolicyChange.from_json(c) for c in _changes(document) if isinstance(c, Mapping)),
            origin=str(document.get("origin") or ""),
            owner=str(document["owner"]) if isinstance(document.get("owner"), str) else None,
            suppressed=Suppression.from_json(suppressed) if isinstance(suppressed, Mapping) else None,
            key_alias=str(document["kms_key_alias"]) if isinstance(document.get("kms_key_alias"), str) else None,
            claimed_buckets=tuple(str(b) for b in claimed) if isinstance(claimed, list) else (),
        )
