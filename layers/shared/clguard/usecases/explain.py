"""``clguard explain <s3://bucket/key | key ARN>``: what the guard knows and would do about one
resource, with the key-policy statements that decide it. Read-only, and decided by the same
functions the guard acts with (``rules.encryption.assess``, ``keydecision.usable``/``decide``).

Finding ids are not explained: the guard keeps no store of findings (they are SNS messages and
the audit's report); explain the finding's resource instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clguard.adapters import s3
from clguard.adapters.s3 import HeadStatus
from clguard.boundary.config import Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import KeyUnreadable
from clguard.rules import policy
from clguard.rules.encryption import UnknownEncryption, assess, classify
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases.keydecision import decide, usable


def _deciding_statements(document: Mapping[str, Any], principal: str, key_arn: str) -> list[dict[str, Any]]:
    """The statements that name the principal (or everyone), and the Denies that can cancel its access."""
    denies = set(policy.blocking_denies(document, principal, (policy.TRAINING_DATA,), key_arn))
    out = []
    for index, statement in enumerate(policy.statements(document)):
        label = statement.get("Sid") or f"Statement[{index}]"
        target = statement.get("Principal")
        aws = policy.as_list(target.get("AWS")) if isinstance(target, Mapping) else [target]
        if label in denies or principal in aws or "*" in aws:
            out.append(dict(statement))
    return out


def explain_key(settings: Settings, reference: str, principals: Sequence[str]) -> dict[str, Any]:
    keys = KeyDirectory(fresh=True)
    wants = {p: (policy.TRAINING_DATA,) for p in principals}
    key, problem = usable(keys, settings, reference, must_edit=bool(wants))
    out: dict[str, Any] = {"resource": reference, "kind": "kms-key", "key_arn": key.arn if key else None}
    if problem is not None:
        out["verdict"] = f"unusable: {problem}"
        return out
    assert key is not None
    try:
        document = keys.policy(key.arn)
        tags = keys.tags(key.arn)
        decisions = decide(keys, settings, key, document, wants)
    except KeyUnreadable as unreadable:
        out["verdict"] = f"unknown: {unreadable}"
        return out
    tag_key, tag_value = settings.managed_key_tag
    out["opted_in"] = tags.get(tag_key) == tag_value
    out["mode"] = settings.remediation_mode.value
    out["principals"] = [
        {
            "principal": principal,
            "decision": decision.status.value,
            "missing_actions": list(policy.actions_of(decision.missing)),
            "reason": decision.reason,
            "statements": _deciding_statements(document, principal, key.arn),
        }
        for principal, decision in decisions.items()
    ]
    return out


def explain_object(settings: Settings, ref: S3ObjectRef) -> dict[str, Any]:
    out: dict[str, Any] = {"resource": ref.uri, "kind": "s3-object"}
    head = s3.head(ref)
    if head.status is not HeadStatus.FOUND or head.response is None:
        out["verdict"] = {
            HeadStatus.GONE: "the object does not exist",
            HeadStatus.SSE_C: "SSE-C: Rekognition cannot read it, and nobody can re-encrypt it without the key",
        }.get(head.status, f"cannot be inspected: {head.problem}")
        return out
    try:
        encryption = classify(head.response)
    except UnknownEncryption as unknown:
        out["verdict"] = f"unknown encryption: {unknown}"
        return out
    assessment = assess(encryption, settings)
    out["encryption"] = encryption.describe()
    out["in_training_buckets"] = ref.bucket in settings.training_buckets
    if assessment.compliant:
        out["verdict"] = "compliant"
    else:
        fix = assessment.remediation
        would = fix.describe() if fix is not None else f"nothing: {assessment.why_not}"
        mode = "would be" if settings.enforce and out["in_training_buckets"] else "would be (in enforce mode)"
        out["verdict"] = f"{assessment.finding_type}: {assessment.problem}; {mode} {would}"
    if encryption.kind.is_kms and encryption.kms_key_arn:
        out["key"] = explain_key(settings, encryption.kms_key_arn, settings.training_principals)
    return out
