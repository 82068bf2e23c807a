"""Verify one training object (docs/architecture.md §8) and remediate what is safe to remediate.

A CloudTrail data event whose record shows the object compliant is decided from the record
alone (no HeadObject). Otherwise: HeadObject → classify → assess against the configuration →
(enforce) re-encrypt in place → for objects under a CMK, ensure every training principal can
use the key. The in-place copy raises a new ``Object Created`` (reason CopyObject) event; that
second pass finds the object compliant and does nothing. A loop guard makes sure a copy that
did not take effect is reported (FAILED) instead of copied again.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from clguard.adapters import s3
from clguard.adapters.s3 import Head, HeadStatus
from clguard.boundary.config import EncryptionRequirement, Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork
from clguard.errors import (
    AwsError,
    CopyRolledBack,
    ObjectChanged,
    Refused,
    UnsupportedAcl,
    UpdateUnavailable,
)
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.reporting.unitofwork import Change
from clguard.rules import policy
from clguard.rules.encryption import (
    Assessment,
    Encryption,
    Method,
    ObjectEncryption,
    Remediation,
    UnknownEncryption,
    assess,
    classify,
    classify_observed,
)
from clguard.state import copymarks
from clguard.state.locks import Lease
from clguard.usecases.keyaccess import ensure_access
from clguard.usecases.keydecision import Context, KeyResult

# No invocation outlives Lambda's 900 s limit, so a live holder's lease never expires under it;
# a crashed holder blocks the object's remediation (not its check) for at most this long.
OBJECT_LEASE_SECONDS: Final = 900.0


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
    attempt's unreported change (``_replay_intent``); a newer version that has its own event
    (``_superseded``); then its encryption, remediated when that is safe (``_check``), and the
    key access of the key it ends under (``_ensure_key_access``)."""
    decided = _decided_without_head(work, ctx)
    if decided is not None:
        return decided
    h = (head_fn or _default_head)(work)
    if h.status is HeadStatus.GONE:
        return _gone(work, ctx)
    _replay_intent(work, ctx, h)
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
        outcome, detail, final = _remediate(work, h, assessment, ctx, in_training, resource=resource, change=change)
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


def _loop_detected(ctx: Context, h: Head) -> bool:
    """True when this exact object state (ETag + LastModified) is one our own copy produced:
    the copy did not take effect and copying again would loop. Only states our copies created
    count, so a copy that failed (and is retried) is never mistaken for a loop."""
    assert h.response is not None
    return copymarks.produced_by_us(ctx.settings.state_table, h.ref, h.etag, h.response.get("LastModified"))


def _copy(ctx: Context, h: Head, target: ObjectEncryption) -> s3.Rewritten:
    """Copy the object onto itself, then note the state the copy produced (for the loop guard)."""
    rewritten = s3.copy_in_place(h, target)
    _mark_produced(ctx, h.ref.at(None), rewritten)
    return rewritten


def _mark_produced(ctx: Context, ref: S3ObjectRef, rewritten: s3.Rewritten) -> None:
    """Best effort: a failure here must not fail the record (the copy is done; its finding must
    still be published), it only weakens the loop guard for this one object."""
    try:
        etag, modified = rewritten.etag, rewritten.last_modified
        if modified is None:  # CompleteMultipartUpload does not say; ask
            after = s3.head(ref)
            etag, modified = after.etag, after.response.get("LastModified") if after.response else None
        copymarks.mark(ctx.settings.state_table, ref, etag, modified)
    except AwsError as error:
        logger.warning("could not record the copy for the loop guard", extra={"key": ref.key, "error": str(error)})


def _remediated_detail(a: Assessment, fix: Remediation, h: Head) -> str:
    detail = f"{a.problem}; {fix.describe()}"
    if fix.method is Method.COPY and h.pinned:
        detail += f"; the previous version {h.version_id} keeps its old encryption"
    return detail


def _write_ahead(
    work: ObjectWork, ctx: Context, a: Assessment, fix: Remediation, h: Head, *, resource: S3ObjectRef, change: Change
) -> None:
    """Before the change: note the finding it will produce (clguard.state.intents), so that a retry
    reports it if we die right after the change took effect."""
    if ctx.journal is None:
        return
    assert a.finding_type is not None
    finding = Finding(
        finding_type=FindingType(a.finding_type),
        outcome=Outcome.REMEDIATED,
        resource=resource,
        detail=_remediated_detail(a, fix, h),
        source_event_id=work.source_event_id,
        account=ctx.settings.account_id,
        region=ctx.settings.region,
        kms_key_arn=a.encryption.kms_key_arn or fix.target.kms_key_arn,
    )
    change.intend([finding], target=_intent_target(fix, h))


def _inspected_stamp(h: Head) -> str:
    modified = h.response.get("LastModified") if h.response else None
    stamp = int(modified.timestamp()) if isinstance(modified, datetime) else modified
    return f"{h.etag}@{stamp}"


def _intent_target(fix: Remediation, h: Head) -> str:
    """What a retry needs to recognise the change as ours: its method, the encryption it sets,
    and the state of the object it was made on."""
    return f"{fix.method.value}|{fix.target.describe()}|{_inspected_stamp(h)}"


def _replay_intent(work: ObjectWork, ctx: Context, h: Head) -> None:
    """A retry: an earlier attempt of this event wrote ahead a change of this object. If the
    object now has the encryption that change makes, report it; else it did not happen (this
    attempt makes it and reports it)."""
    label = h.ref.label()
    with ctx.change(label) as change:  # acknowledged once the replayed findings are delivered
        intent = change.pending()
        if intent is None:
            return
        in_place = False
        method, _, rest = intent.target.partition("|")
        target, _, inspected = rest.partition("|")
        if h.status is HeadStatus.FOUND and h.response is not None:
            try:
                encrypted_as_intended = classify(h.response).describe() == target
            except UnknownEncryption:
                encrypted_as_intended = False
            # Only a change provably ours: the state our copy produced (its loop-guard marker), or,
            # for UpdateObjectEncryption (which keeps ETag and LastModified), the very object it was
            # made on. A re-upload that happens to be compliant is not reported as our remediation.
            # A copy in place keeps the bytes: for SSE-S3 and unencrypted objects the ETag (their MD5)
            # stays; otherwise only the loop-guard marker of the state our copy produced proves it.
            if encrypted_as_intended and method == Method.UPDATE.value:
                in_place = _inspected_stamp(h) == inspected
            elif encrypted_as_intended:
                same_bytes = inspected.startswith(f"{h.etag}@") and target == Encryption.SSE_S3.value
                in_place = same_bytes or _loop_detected(ctx, h)
        if in_place:
            for finding in intent.findings:
                count("IntentsReplayed")
                logger.info("reporting a change an earlier attempt made", extra={"resource": label})
                change.report(finding)


def _state(h: Head) -> tuple[object, ...]:
    """What changes with every write of a key (and the encryption UpdateObjectEncryption sets)."""
    r = h.response or {}
    return (h.status, r.get("ETag"), r.get("LastModified"), r.get("VersionId"))


def _with_precondition(fix: Remediation, h: Head) -> Remediation:
    """The remediation to send, so that a request can only ever change the inspected object.

    UpdateObjectEncryption has no conditional parameters (no If-Match, no If-Unmodified-Since;
    only VersionId): it is safe only where the inspected version pins it. In an unversioned
    bucket (no version id, or "null") the same target is reached by the conditional copy
    instead (``CopySourceIfMatch`` and ``If-Match`` on the inspected ETag, S3 API reference,
    CopyObject), which S3 refuses with 412 when an upload landed in between: that upload is
    never touched, and is checked on its own event (docs/architecture.md §8)."""
    if fix.method is Method.UPDATE and not h.pinned:
        return Remediation(Method.COPY, fix.target)
    return fix


def _remediate(
    work: ObjectWork,
    h: Head,
    a: Assessment,
    ctx: Context,
    in_training: bool,
    *,
    resource: S3ObjectRef,
    change: Change,
) -> tuple[Outcome | None, str, ObjectEncryption | None]:
    """Returns (outcome, detail, the encryption the object ends with). Outcome None: skip."""
    settings = ctx.settings
    if a.remediation is None:
        return Outcome.REPORTED, f"{a.problem}; {a.why_not}", a.encryption
    fix = _with_precondition(a.remediation, h)
    if not in_training:
        return (
            Outcome.REPORTED,
            f"{a.problem}; the bucket is not in TRAINING_BUCKETS, so the remediator leaves it as is",
            a.encryption,
        )
    if not settings.enforce:
        return (
            Outcome.REPORTED,
            f"{a.problem}; report mode: would be {fix.describe()}",
            a.encryption,
        )
    if h.status is not HeadStatus.FOUND:
        return Outcome.REPORTED, f"{a.problem}; nothing safe to do", a.encryption
    # One remediation of an object at a time (the same event delivered twice at once, the S3
    # rule and the CloudTrail rule, a fan-out check): a lease per object in the state table, as
    # key-policy edits have one per key. Then re-inspect: whoever held it before may have fixed it.
    with Lease(settings.state_table, f"object#{h.ref.uri}", lease_seconds=OBJECT_LEASE_SECONDS):
        fresh = s3.head(h.ref.at(None))
        if _inspected(fresh) != _inspected(h):
            logger.info(
                "object changed since it was inspected (or was just remediated by another delivery); skipped",
                extra={"bucket": h.ref.bucket, "key": h.ref.key},
            )
            count("ObjectsChangedBeforeRemediation")
            return None, "", None
        return _apply(work, h, a, fix, ctx, resource=resource, change=change)


def _inspected(h: Head) -> tuple[object, ...]:
    """What an inspection saw: the write (ETag, LastModified, version) and the encryption."""
    r = h.response or {}
    return (*_state(h), r.get("ServerSideEncryption"), r.get("SSEKMSKeyId"))


def _apply(
    work: ObjectWork,
    h: Head,
    a: Assessment,
    fix: Remediation,
    ctx: Context,
    *,
    resource: S3ObjectRef,
    change: Change,
) -> tuple[Outcome | None, str, ObjectEncryption | None]:
    """The remediation itself, inside the object's lease, on a just re-inspected object."""
    try:
        if fix.method is Method.COPY:
            if _loop_detected(ctx, h):
                return (
                    Outcome.FAILED,
                    f"{a.problem}; the remediator already re-encrypted this object and the copy did not "
                    "take effect (bucket policy or default encryption?); not copying again",
                    a.encryption,
                )
            _write_ahead(work, ctx, a, fix, h, resource=resource, change=change)
            _copy(ctx, h, fix.target)
        else:
            assert fix.target.kms_key_arn is not None
            assert h.pinned  # _with_precondition: unpinned objects are copied, conditionally
            try:
                _write_ahead(work, ctx, a, fix, h, resource=resource, change=change)
                s3.update_encryption(h, fix.target.kms_key_arn)
            except UpdateUnavailable:
                logger.warning("UpdateObjectEncryption unavailable in this runtime; copying instead")
                fix = Remediation(Method.COPY, fix.target)
                _write_ahead(work, ctx, a, fix, h, resource=resource, change=change)
                _copy(ctx, h, fix.target)
    except ObjectChanged:
        logger.info("object changed since it was inspected; its own event covers it", extra={"key": h.ref.key})
        return None, "", None
    except CopyRolledBack as rolled_back:
        count("CopyRaces")
        logger.error(
            "a write landed during the re-encryption copy", extra={"key": h.ref.key, "problem": str(rolled_back)}
        )
        return Outcome.FAILED, f"{a.problem}; {rolled_back}", a.encryption
    except UnsupportedAcl as unsupported:
        return (
            Outcome.REPORTED,
            f"{a.problem}; not re-encrypted: a copy cannot carry over its ACL ({unsupported}), and "
            "copying without it would take the grantees' access away",
            a.encryption,
        )
    except Refused as error:
        message = error.message
        return (
            Outcome.FAILED,
            f"{a.problem}; {fix.method.value} failed: {error.code} {message}".strip(),
            a.encryption,
        )
    return Outcome.REMEDIATED, _remediated_detail(a, fix, h), fix.target


class HeadPrefetch:
    """HeadObject for many objects on a bounded thread pool, a sliding window ahead of use.

    The calls are the same ones the sequential path makes (one per object); they just overlap.
    At most ``window`` results are in flight or waiting, so memory stays bounded however many
    objects a batch carries. An error is kept and raised when its object is consumed, so it
    fails the right record.
    """

    def __init__(
        self,
        works: Sequence[ObjectWork],
        *,
        max_workers: int = 8,
        window: int = 64,
        head: Callable[[S3ObjectRef], Head] = s3.head,
    ) -> None:
        self._head = head
        self._order: list[S3ObjectRef] = list(dict.fromkeys(w.ref.at(None) for w in works))
        self._position: dict[S3ObjectRef, int] = {oid: i for i, oid in enumerate(self._order)}
        self._results: dict[S3ObjectRef, Future[Head]] = {}
        self._next = 0
        self._window = window
        self._pool: ThreadPoolExecutor | None = None
        if len(self._order) > 1:
            self._pool = ThreadPoolExecutor(max_workers=min(max_workers, len(self._order)), thread_name_prefix="head")
            self._fill(0)

    def _fill(self, consumed: int) -> None:
        assert self._pool is not None
        limit = min(len(self._order), consumed + self._window)
        while self._next < limit:
            ref = self._order[self._next]
            # In the submitting thread's context: a member account's work heads with its credentials.
            self._results[ref] = self._pool.submit(contextvars.copy_context().run, self._head, ref)
            self._next += 1

    def __call__(self, work: ObjectWork) -> Head:
        ref = work.ref.at(None)
        future = self._results.pop(ref, None)
        if self._pool is not None and ref in self._position:
            self._fill(self._position[ref] + 1)
        if future is None:
            return self._head(ref)
        return future.result()

    def close(self) -> None:
        """Stop: cancel what has not started (the batch ended early)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
