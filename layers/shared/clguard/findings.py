"""The finding (docs/architecture.md §5, a contract) and the three renderings SNS delivers.

``default`` is the finding document (JSON), ``email`` a short text, ``https`` the chat schema that
Amazon Q Developer in chat applications (formerly AWS Chatbot) renders in Slack.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

SCHEMA_VERSION: Final = "1"
SUBJECT_MAX: Final = 99  # SNS: "must be less than 100 characters long"
CHAT_DESCRIPTION_MAX: Final = 7_000


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
    TRAINING_FAILED = "TRAINING_FAILED"

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
    FindingType.TRAINING_FAILED: Severity.HIGH,
}


@dataclass(frozen=True, slots=True)
class S3ObjectResource:
    bucket: str
    key: str
    version_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "s3-object",
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
        }

    def label(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


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


type Resource = S3ObjectResource | KmsKeyResource | ProjectVersionResource


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One key-policy statement the remediator changed: the optional ``change`` of a finding.

    ``before`` is ``None`` when the statement was created. Consumers read what changed here
    instead of parsing ``detail``; renderers turn it into a sentence (:func:`change_sentence`).
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


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _aws_principals(statement: Mapping[str, Any] | None) -> list[str]:
    if not statement:
        return []
    block = statement.get("Principal")
    if isinstance(block, Mapping):
        return [str(p) for p in _as_list(block.get("AWS"))]
    return [str(p) for p in _as_list(block)]


def short_principal(arn: str) -> str:
    """``arn:aws:iam::123456789012:role/ml/Trainer`` -> ``role/ml/Trainer`` (what a reader scans)."""
    head, sep, name = arn.partition(":iam::")
    if not sep or not head.startswith("arn:"):
        return arn
    _account, sep, rest = name.partition(":")
    return rest if sep and rest else arn


def change_sentence(change: PolicyChange, code: Callable[[str], str] = str) -> str:
    """``added role/ml/Trainer to CustomLabelsGuardTrainingData: kms:Decrypt, kms:GenerateDataKey``.

    ``code`` wraps names for the medium (Slack shows them as code spans)."""
    old = set(_aws_principals(change.before))
    added = [p for p in _aws_principals(change.after) if p not in old]
    actions = ", ".join(str(a) for a in _as_list((change.after or {}).get("Action")))
    who = ", ".join(code(short_principal(p)) for p in added) or "no principal"
    created = " (new statement)" if change.before is None else ""
    condition = " (with its condition)" if (change.after or {}).get("Condition") else ""
    return f"added {who} to {code(change.sid)}{created}: {actions}{condition}"


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

    @property
    def severity(self) -> Severity:
        return self.finding_type.severity

    def document(self) -> dict[str, Any]:
        """The ``default`` message: the contract's fields, plus the optional ``change`` (one
        ``{"sid", "before", "after"}``, or a list when several statements changed)."""
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
            document["change"] = changes[0] if len(changes) == 1 else changes
        if self.origin:
            document["origin"] = self.origin
        return document

    def fingerprint(self) -> str:
        """Identity for de-duplication: the same event and condition give the same fingerprint,
        whenever it is observed (``observed_at`` and ``detail`` are left out)."""
        identity = [
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
        """Rebuild a finding from its ``default`` document (the findings outbox carries these)."""
        resource_doc = document["resource"]
        resource: Resource
        if resource_doc.get("type") == "kms-key":
            resource = KmsKeyResource(str(resource_doc["arn"]))
        elif resource_doc.get("type") == "rekognition-project-version":
            resource = ProjectVersionResource(str(resource_doc["arn"]))
        else:
            resource = S3ObjectResource(
                str(resource_doc["bucket"]),
                str(resource_doc["key"]),
                resource_doc.get("version_id"),
            )
        return cls(
            finding_type=FindingType(document["finding_type"]),
            outcome=Outcome(document["outcome"]),
            resource=resource,
            detail=str(document["detail"]),
            source_event_id=str(document["source_event_id"]),
            account=str(document["account"]),
            region=str(document["region"]),
            principal_arn=document.get("principal_arn"),
            kms_key_arn=document.get("kms_key_arn"),
            observed_at=str(document["observed_at"]),
            scope=scope,
            change=tuple(PolicyChange.from_json(c) for c in _as_list(document.get("change")) if isinstance(c, Mapping)),
            origin=str(document.get("origin") or ""),
        )


# --- renderings -------------------------------------------------------------------------------

_OUTCOME_TEXT: Final[Mapping[Outcome, str]] = {
    Outcome.REMEDIATED: "Fixed automatically.",
    Outcome.REPORTED: "Left as is (report only).",
    Outcome.REFUSED: "Not changed: a guardrail forbade the change.",
    Outcome.FAILED: "The remediator tried and failed.",
}

_NEXT_STEPS: Final[Mapping[tuple[FindingType, Outcome | None], tuple[str, ...]]] = {
    (FindingType.OBJECT_UNENCRYPTED, Outcome.REMEDIATED): (
        "Nothing to do for this object. Set default encryption on the bucket so new uploads are encrypted.",
    ),
    (FindingType.OBJECT_UNENCRYPTED, None): (
        "Re-encrypt the object (copy it onto itself with SSE-S3 or SSE-KMS) or set REENCRYPT_KMS_KEY and "
        "REMEDIATION_MODE=enforce so the remediator does it.",
    ),
    (FindingType.OBJECT_SSE_C, None): (
        "Re-upload the object with SSE-S3 or SSE-KMS: Rekognition cannot read SSE-C objects.",
    ),
    (FindingType.OBJECT_WRONG_ENCRYPTION, Outcome.REMEDIATED): ("Nothing to do for this object.",),
    (FindingType.OBJECT_WRONG_ENCRYPTION, None): (
        "Re-encrypt the object with an allowed key, or set REENCRYPT_KMS_KEY so the remediator does it.",
    ),
    (FindingType.OBJECT_UNVERIFIABLE, None): (
        "Check that the remediator's role may read the object (bucket policy, KMS key policy, IAM).",
    ),
    (FindingType.KEY_UNUSABLE, None): (
        "Enable the key or cancel its deletion, or re-encrypt the data with a usable customer managed key "
        "of this account.",
        "If the detail says the guard cannot read the key, let the guard's role call kms:DescribeKey, "
        "kms:GetKeyPolicy and kms:ListResourceTags on it (key policy or IAM).",
    ),
    (FindingType.KEY_ACCESS_MISSING, Outcome.REMEDIATED): (
        "Nothing to do: retry the training job if it failed before the grant.",
    ),
    (FindingType.KEY_ACCESS_MISSING, Outcome.REPORTED): (
        "Add the principal to the key policy with the listed actions, or set REMEDIATION_MODE=enforce.",
    ),
    (FindingType.KEY_ACCESS_MISSING, Outcome.REFUSED): (
        "A Deny statement of the key policy (named in the detail) cancels this access, and the remediator never "
        "edits a statement it does not own: change that statement so it exempts the principal for requests "
        "made through S3 and Rekognition, then retry the training job.",
    ),
    (FindingType.KEY_ACCESS_MISSING, Outcome.FAILED): (
        "Check the detail; the remediator retries on the next event. Add the statement by hand if it keeps failing.",
    ),
    (FindingType.KEY_NOT_MANAGED, None): (
        "Tag the key with the MANAGED_KEY_TAG opt-in to let the remediator edit its policy, or grant the "
        "principal by hand.",
    ),
    (FindingType.PRINCIPAL_NOT_ALLOWED, None): (
        "If this principal should train, add it to ALLOWED_PRINCIPAL_PATTERNS (same-account roles/users only); "
        "otherwise investigate who called.",
    ),
    (FindingType.KEY_POLICY_LIMIT, None): (
        "Shrink the key policy (e.g. grant a role that many principals assume) before more principals are added.",
    ),
    (FindingType.MANIFEST_INVALID, None): ("Fix the listed manifest lines; the valid lines were still checked.",),
    (FindingType.TRAINING_FAILED, Outcome.REMEDIATED): (
        "Retry the training: the guard has since given the principals the key access it lacked.",
    ),
    (FindingType.TRAINING_FAILED, None): (
        "Give the listed principals the listed key access (or tag the keys with MANAGED_KEY_TAG and set "
        "REMEDIATION_MODE=enforce), then retry the training.",
    ),
}
_DATASET_NEXT_STEPS: Final = (
    "If the dataset could not be read: let the guard read it (rekognition:ListDatasetEntries, dataset "
    "CREATE_COMPLETE), then retry the training so that its images are checked and their keys granted.",
    "If entries are invalid: fix them (UpdateDatasetEntries); the valid entries were still checked.",
)


def next_steps(finding: Finding) -> tuple[str, ...]:
    if finding.finding_type is FindingType.MANIFEST_INVALID and isinstance(finding.resource, ProjectVersionResource):
        return _DATASET_NEXT_STEPS
    return _NEXT_STEPS.get((finding.finding_type, finding.outcome), _NEXT_STEPS.get((finding.finding_type, None), ()))


_NOT_SUBJECT = re.compile(r"[^\x20-\x7e]")


def subject(finding: Finding) -> str:
    """``[SEVERITY] FINDING_TYPE <resource>``: printable ASCII, one line, under 100 characters."""
    head = f"[{finding.severity.value}] {finding.finding_type.value} "
    label = _NOT_SUBJECT.sub("?", finding.resource.label())
    room = SUBJECT_MAX - len(head)
    if len(label) > room:
        keep = room - 3
        label = label[: keep // 2] + "..." + label[len(label) - (keep - keep // 2) :]
    return head + label


def _where(finding: Finding) -> str:
    resource = finding.resource
    if isinstance(resource, S3ObjectResource):
        version = f" (version {resource.version_id})" if resource.version_id else ""
        return f"{resource.label()}{version}"
    if isinstance(resource, ProjectVersionResource):
        return f"Custom Labels {resource.arn}"
    return f"KMS key {resource.arn}"


def email_text(finding: Finding) -> str:
    lines = [
        f"Custom Labels Guard: {finding.finding_type.value} ({finding.severity.value}), {finding.outcome.value}",
        "",
        f"What happened: {finding.detail}",
        f"Where: {_where(finding)} in account {finding.account}, {finding.region}",
    ]
    if finding.kms_key_arn and not isinstance(finding.resource, KmsKeyResource):
        lines.append(f"KMS key: {finding.kms_key_arn}")
    if finding.principal_arn:
        lines.append(f"Principal: {finding.principal_arn}")
    lines.append(f"What was done: {_OUTCOME_TEXT[finding.outcome]}")
    lines.extend(f"What changed: {change_sentence(change)}" for change in finding.change)
    steps = next_steps(finding)
    if steps:
        lines.append("What to do next:")
        lines.extend(f"  - {step}" for step in steps)
    lines += ["", f"Event {finding.source_event_id}, observed {finding.observed_at}."]
    return "\n".join(lines)


def _md(value: str) -> str:
    """Text for Slack's markdown: no backticks (they would end a code span), and no ``*``/``_``/``~``
    (they would toggle bold, italics, strike); look-alike characters read the same."""
    return value.replace("`", "'").replace("*", "\u2217").replace("_", "\u02cd").replace("~", "\u223c")


def _literal(value: str) -> str:
    return "`" + value.replace("`", "'") + "`"


def chat_message(finding: Finding) -> dict[str, Any]:
    """Custom notification schema of Amazon Q Developer in chat applications (Slack)."""
    emoji = ":rotating_light:" if finding.severity is Severity.HIGH else ":warning:"
    done = {
        Outcome.REMEDIATED: ":white_check_mark: remediated",
        Outcome.REPORTED: ":memo: reported",
        Outcome.REFUSED: ":no_entry: refused",
        Outcome.FAILED: ":x: failed",
    }[finding.outcome]
    parts = [f"*{_md(finding.detail.strip())}*"]
    parts.extend(f"*Changed:* {change_sentence(change, _literal)}" for change in finding.change)
    parts.append(f"*Where:* {_literal(_where(finding))}")
    if finding.kms_key_arn and not isinstance(finding.resource, KmsKeyResource):
        parts.append(f"*Key:* {_literal(finding.kms_key_arn)}")
    if finding.principal_arn:
        parts.append(f"*Principal:* {_literal(finding.principal_arn)}")
    parts.append(f"*Account:* {finding.account} ({finding.region}) · *Event:* {_literal(finding.source_event_id)}")
    description = "\n".join(parts)
    if len(description) > CHAT_DESCRIPTION_MAX:
        description = description[: CHAT_DESCRIPTION_MAX - 20] + "\n… (truncated)"
    return {
        "version": "1.0",
        "source": "custom",
        "id": finding.fingerprint()[:32],
        "content": {
            "textType": "client-markdown",
            "title": f"{emoji} {finding.finding_type.value} ({finding.severity.value}): {done}",
            "description": description,
            "nextSteps": list(next_steps(finding)),
            "keywords": [finding.finding_type.value, finding.severity.value, finding.outcome.value],
        },
        "metadata": {
            "summary": f"{finding.finding_type.value} {finding.outcome.value}: {finding.resource.label()}"[:250],
            "eventType": finding.finding_type.value,
            "relatedResources": [r for r in (finding.resource.label(), finding.kms_key_arn) if r][:5],
        },
    }


def sns_message(finding: Finding) -> str:
    """The ``Message`` for ``MessageStructure="json"``."""
    return json.dumps(
        {
            "default": json.dumps(finding.document(), ensure_ascii=False),
            "email": email_text(finding),
            "https": json.dumps(chat_message(finding), ensure_ascii=False),
        },
        ensure_ascii=False,
    )


def message_attributes(finding: Finding) -> dict[str, dict[str, str]]:
    return {
        "finding_type": {"DataType": "String", "StringValue": finding.finding_type.value},
        "severity": {"DataType": "String", "StringValue": finding.severity.value},
        "outcome": {"DataType": "String", "StringValue": finding.outcome.value},
    }
