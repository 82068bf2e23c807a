"""Re-encrypt one training object in place, when that is safe (docs/architecture.md §8), and
report the change exactly once.

The object's checks (``usecases.objects``) decide that a remediation is due; this module makes it:
one object's lease, a re-inspection under it, the precondition that confines the request to the
inspected object, the write-ahead intent of its finding (``state.intents``), the copy or
UpdateObjectEncryption, and the loop guard (``state.copymarks``) that reports a copy that did not
take effect instead of copying again. A retry recognises an earlier attempt's change
(``replay_intent``) and reports it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from clguard.adapters import s3
from clguard.adapters.s3 import Head, HeadStatus
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
from clguard.rules.encryption import (
    Assessment,
    Encryption,
    Method,
    ObjectEncryption,
    Remediation,
    UnknownEncryption,
    classify,
)
from clguard.state import copymarks
from clguard.state.locks import Lease
from clguard.usecases.keydecision import Context

# No invocation outlives Lambda's 900 s limit, so a live holder's lease never expires under it;
# a crashed holder blocks the object's remediation (not its check) for at most this long.
OBJECT_LEASE_SECONDS: Final = 900.0


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


def replay_intent(work: ObjectWork, ctx: Context, h: Head) -> None:
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


def remediate(
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
