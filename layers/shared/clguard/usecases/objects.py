"""Verify one training object (docs/architecture.md §8) and remediate what is safe to remediate.

A CloudTrail data event whose record shows the object compliant is decided from the record
alone (no HeadObject). Otherwise: HeadObject → classify → assess against the configuration →
(enforce) re-encrypt in place → for objects under a CMK, ensure every training principal can
use the key. The in-place copy raises a new ``Object Created`` (reason CopyObject) event; that
second pass finds the object compliant and does nothing. A loop guard makes sure a copy that
did not take effect is reported (FAILED) instead of copied again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from clguard.adapters import s3
from clguard.adapters.s3 import Head, HeadStatus
from clguard.boundary.config import EncryptionRequirement, Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.rules import policy
from clguard.rules.encryption import (
    Encryption,
    ObjectEncryption,
    UnknownEncryption,
    assess,
    classify,
    classify_observed,
)
from clguard.usecases.keyaccess import ensure_access
from clguard.usecases.keydecision import Context, KeyResult
from clguard.usecases.remediation import remediate, replay_intent


@dataclass(slots=True)
class ObjectResult:
    work: ObjectWork
    status: str  # ignored | gone | checked
    findings: list[Finding] = field(default_factory=list)
    key_results: list[KeyResult] = field(default_factory=list)
    # What was found, published or not (the audit tallies these): the encryption as found, the
    # condition found (a finding type; "" when compliant), and the KMS key it ends encrypted with.
    encryption: str = ""
    condition: str = ""
    final_key: str | None = None


type HeadFn = Callable[[ObjectWork], Head]


def _default_head(work: ObjectWork) -> Head:
    """The *current* object. An event's version id is compared with it, never inspected or copied
    itself: copying an old version onto the key would bring back a deleted object or roll back a
    newer upload (which has its own event)."""
    return s3.head(work.ref.at(None))


def verify_object(work: ObjectWork, ctx: Context, head_fn: HeadFn | None = None) -> ObjectResult:
    """One object, as named steps: not ours to check, or shown compliant by its own record
    (``_decided_without_head``); the current object (HeadObject), gone (``_gone``); an earlier
    attempt's unreported change (``remediation.replay_intent``); a newer version that has its own event
    (``_superseded``); then its encryption, remediated when that is safe (``_check``), and the
    key access of the key it ends under (``_ensure_key_access``)."""
    decided = _decided_without_head(work, ctx)
    if decided is not None:
        return decided
    h = (head_fn or _default_head)(work)
    if h.status is HeadStatus.GONE:
        return _gone(work, ctx)
    replay_intent(work, ctx, h)
    if _superseded(work, h):
        return ObjectResult(work, "superseded")
    result = ObjectResult(work, "checked")
    count("ObjectsChecked")
    final = _check(work, ctx, h, result)
    if final is not None:
        result.final_key = final.kms_key_arn
    if final is not None and final.kind.is_kms and final.kms_key_arn:
        _ensure_key_access(work, ctx, h.inspected, final.kms_key_arn, result)
    return result


def _decided_without_head(work: ObjectWork, ctx: Context) -> ObjectResult | None:
    """Outside TRAINING_BUCKETS (and not asked for anywhere): ignored. A CloudTrail data event
    that shows the object compliant: decided from the record. Else None (inspect the object)."""
    if work.ref.bucket not in ctx.settings.training_buckets and not work.anywhere:
        logger.info(
            "bucket is not a training bucket; ignored",
            extra={"bucket": work.ref.bucket, "key": work.ref.key},
        )
        count("EventsIgnored")
        return ObjectResult(work, "ignored")
    if work.observed is not None:
        return _compliant_by_record(work, ctx)  # None: inspect the current object, as for any event
    return None


def _superseded(work: ObjectWork, h: Head) -> bool:
    """A newer version replaced the object since the event: its own event covers it."""
    current = h.inspected.version_id
    if work.ref.version_id in (None, "null") or current is None or work.ref.version_id == current:
        return False
    logger.info(
        "a newer version replaced the object since the event; its own event covers it",
        extra={"bucket": work.ref.bucket, "key": h.ref.key, "event_version": work.ref.version_id, "current": current},
    )
    count("ObjectsSuperseded")
    return True


def _report(
    work: ObjectWork,
    ctx: Context,
    result: ObjectResult,
    *,
    finding_type: FindingType,
    outcome: Outcome,
    detail: str,
    key_arn: str | None,
    resource: S3ObjectRef,
) -> None:
    """The object's finding, published (once per condition) and noted on ``result``."""
    finding = Finding(
        finding_type=finding_type,
        outcome=outcome,
        resource=resource,
        detail=detail,
        source_event_id=work.source_event_id,
        account=ctx.settings.account_id,
        region=ctx.settings.region,
        kms_key_arn=key_arn,
        origin=work.origin,
    )
    count(f"Violation.{finding_type.value}", account=ctx.settings.account_id)
    result.condition = result.condition or finding_type.value
    if ctx.publisher.publish(finding):
        result.findings.append(finding)


def _check(work: ObjectWork, ctx: Context, h: Head, result: ObjectResult) -> ObjectEncryption | None:
    """The inspected object's encryption: unverifiable (reported), compliant (a Security Hub
    finding on it is closed), or not (remediated when safe, in its own unit of work, and
    reported). Returns the encryption the object ends with (None: unknown, or the object changed
    under us and its own event covers the new one)."""
    settings = ctx.settings
    resource = h.inspected
    encryption, unverifiable = _encryption_of(h)
    if encryption is None:
        _report(
            work,
            ctx,
            result,
            finding_type=FindingType.OBJECT_UNVERIFIABLE,
            outcome=Outcome.REPORTED,
            detail=unverifiable,
            key_arn=None,
            resource=resource,
        )
        return None
    assessment = assess(encryption, settings, aws_managed_key=_aws_managed(ctx, encryption))
    result.encryption = encryption.kind.value
    if assessment.compliant:
        logger.debug(
            "object compliant",
            extra={"bucket": work.ref.bucket, "key": h.ref.key, "encryption": encryption.describe()},
        )
        ctx.publisher.seen_gone(
            resource, "the object was found compliant", account=settings.account_id, region=settings.region
        )
        return encryption
    assert assessment.finding_type is not None
    in_training = work.ref.bucket in settings.training_buckets
    with ctx.change(resource.label()) as change:  # acknowledged once its finding is delivered
        outcome, detail, final = remediate(work, h, assessment, ctx, in_training, resource=resource, change=change)
        if outcome is not None:
            _report(
                work,
                ctx,
                result,
                finding_type=FindingType(assessment.finding_type),
                outcome=outcome,
                detail=detail,
                key_arn=encryption.kms_key_arn or (final.kms_key_arn if final else None),
                resource=resource,
            )
            if outcome is Outcome.REMEDIATED:
                count("Remediations", account=ctx.settings.account_id)
    return final


def _gone(work: ObjectWork, ctx: Context) -> ObjectResult:
    """The object was deleted since its event: nothing to verify, and an open Security Hub
    finding on it is closed (docs/architecture.md §5a)."""
    logger.info("object is gone; skipped", extra={"bucket": work.ref.bucket, "key": work.ref.key})
    count("ObjectsGone")
    ctx.publisher.seen_gone(
        S3ObjectRef(work.ref.bucket, work.ref.key),
        "the object was deleted",
        account=ctx.settings.account_id,
        region=ctx.settings.region,
    )
    return ObjectResult(work, "gone")


def _encryption_of(h: Head) -> tuple[ObjectEncryption | None, str]:
    """The inspected object's encryption, or None and why it could not be known."""
    if h.status is HeadStatus.DENIED:
        return None, f"object could not be inspected: {h.problem}"
    if h.status is HeadStatus.SSE_C:
        return ObjectEncryption(Encryption.SSE_C), ""
    assert h.response is not None
    try:
        return classify(h.response), ""
    except UnknownEncryption as unknown:
        return None, f"object could not be classified: {unknown}"


def record_decides(work: ObjectWork, settings: Settings) -> bool:
    """Whether the event's own record can show the object compliant without a HeadObject (so a
    batch prefetch need not inspect it). Without knowing whether its key is AWS managed: when
    that turns out to matter, ``verify_object`` falls back to HeadObject on its own."""
    if work.observed is None:
        return False
    encryption = classify_observed(work.observed)
    return encryption is not None and assess(encryption, settings).compliant


def _compliant_by_record(work: ObjectWork, ctx: Context) -> ObjectResult | None:
    """A CloudTrail data event names the version it wrote and the encryption S3 applied to it:
    when that is enough to show it compliant, no HeadObject is needed (the object as written
    is compliant; a later write has its own event). None: the record does not say enough, or
    says the object is not compliant; then HeadObject inspects the *current* object before
    anything is remediated, with the same superseded-version checks and loop guard as always."""
    assert work.observed is not None
    encryption = classify_observed(work.observed)
    if encryption is None:
        count("RecordsInspected")  # the record lacks fields: HeadObject decides
        return None
    assessment = assess(encryption, ctx.settings, aws_managed_key=_aws_managed(ctx, encryption))
    if not assessment.compliant:
        return None
    count("ObjectsChecked")
    count("ObjectsDecidedFromRecord")
    version = work.ref.version_id if work.ref.version_id not in (None, "null") else None
    resource = S3ObjectRef(work.ref.bucket, work.ref.key, version)
    logger.debug(
        "object compliant (from its CloudTrail record)",
        extra={"bucket": work.ref.bucket, "key": work.ref.key, "encryption": encryption.describe()},
    )
    ctx.publisher.seen_gone(
        resource, "the object was found compliant", account=ctx.settings.account_id, region=ctx.settings.region
    )
    result = ObjectResult(work, "checked")
    if encryption.kind.is_kms and encryption.kms_key_arn:
        _ensure_key_access(work, ctx, resource, encryption.kms_key_arn, result)
    return result


def _aws_managed(ctx: Context, encryption: ObjectEncryption) -> bool:
    """Whether the object's key is AWS managed; asked (once per key and batch) only when
    ENCRYPTION_REQUIREMENT is SSE_KMS, the one case where it decides compliance."""
    if ctx.settings.encryption_requirement is not EncryptionRequirement.SSE_KMS:
        return False
    if not encryption.kind.is_kms or not encryption.kms_key_arn:
        return False
    key = ctx.keys.lookup(encryption.kms_key_arn).key
    return key is not None and not key.customer_managed


def _ensure_key_access(
    work: ObjectWork, ctx: Context, resource: S3ObjectRef, key_arn: str, result: ObjectResult
) -> None:
    """For an object under a CMK: the key must be usable, and every training principal (and the
    principals a training request asked for) must hold kms:Decrypt and kms:GenerateDataKey."""
    principals = tuple(dict.fromkeys((*ctx.settings.training_principals, *work.principals)))
    key_ctx = Context(
        settings=ctx.settings,
        publisher=ctx.publisher,
        keys=ctx.keys,
        source_event_id=work.source_event_id,
        origin=work.origin or f"training object {resource.label()}",
        scope=ctx.scope,
        sleep=ctx.sleep,
        journal=ctx.journal,
        request=work.origin,
    )
    key_result = ensure_access(key_ctx, key_arn, dict.fromkeys(principals, (policy.TRAINING_DATA,)))
    result.key_results.append(key_result)
    for principal, why in key_result.refused.items():
        arn = key_result.key.arn if key_result.key else key_arn
        refusal = key_ctx.finding(
            FindingType.PRINCIPAL_NOT_ALLOWED,
            Outcome.REFUSED,
            arn,
            f"not adding {principal} to {arn} (needed for {key_ctx.origin}): {why}",
            principal,
        )
        if ctx.publisher.publish(refusal):
            result.findings.append(refusal)
    result.findings.extend(key_result.published)
