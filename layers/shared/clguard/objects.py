"""Verify one training object (design §8) and remediate what is safe to remediate.

HeadObject → classify → assess against the configuration → (enforce) re-encrypt in place →
for objects under a CMK, ensure every training principal can use the key. The in-place copy
raises a new ``Object Created`` (reason CopyObject) event; that second pass finds the object
compliant and does nothing. A loop guard makes sure a copy that did not take effect is reported
(FAILED) instead of copied again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from clguard import policy
from clguard.adapters import dynamodb, s3
from clguard.adapters.clients import error_code, raise_if_transient
from clguard.adapters.s3 import Head, HeadStatus, ObjectChanged
from clguard.config import EncryptionRequirement
from clguard.encryption import (
    Assessment,
    Encryption,
    Method,
    ObjectEncryption,
    Remediation,
    UnknownEncryption,
    assess,
    classify,
)
from clguard.events import ObjectWork
from clguard.findings import Finding, FindingType, Outcome, S3ObjectResource
from clguard.keyaccess import Context, KeyResult, ensure_access
from clguard.observability import count, logger

LOOP_GUARD_SECONDS: Final = 3600


@dataclass(slots=True)
class ObjectResult:
    work: ObjectWork
    status: str  # ignored | gone | checked
    findings: list[Finding] = field(default_factory=list)
    key_results: list[KeyResult] = field(default_factory=list)


type HeadFn = Callable[[ObjectWork], Head]


def _default_head(work: ObjectWork) -> Head:
    """The *current* object. An event's version id is compared with it, never inspected or copied
    itself: copying an old version onto the key would bring back a deleted object or roll back a
    newer upload (which has its own event)."""
    return s3.head(work.bucket, work.key)


def verify_object(work: ObjectWork, ctx: Context, head_fn: HeadFn | None = None) -> ObjectResult:
    settings = ctx.settings
    in_training = work.bucket in settings.training_buckets
    if not in_training and not work.anywhere:
        logger.info(
            "bucket is not a training bucket; ignored",
            extra={"bucket": work.bucket, "key": work.key},
        )
        count("EventsIgnored")
        return ObjectResult(work, "ignored")

    h = (head_fn or _default_head)(work)
    if h.status is HeadStatus.GONE:
        logger.info("object is gone; skipped", extra={"bucket": work.bucket, "key": work.key})
        count("ObjectsGone")
        return ObjectResult(work, "gone")
    current = h.version_id if h.version_id not in (None, "null") else None
    if work.version_id not in (None, "null") and current is not None and work.version_id != current:
        logger.info(
            "a newer version replaced the object since the event; its own event covers it",
            extra={"bucket": work.bucket, "key": h.key, "event_version": work.version_id, "current": current},
        )
        count("ObjectsSuperseded")
        return ObjectResult(work, "superseded")
    result = ObjectResult(work, "checked")
    count("ObjectsChecked")
    resource = S3ObjectResource(work.bucket, h.key, current)

    def publish(finding_type: FindingType, outcome: Outcome, detail: str, key_arn: str | None) -> None:
        finding = Finding(
            finding_type=finding_type,
            outcome=outcome,
            resource=resource,
            detail=detail,
            source_event_id=work.source_event_id,
            account=settings.account_id,
            region=settings.region,
            kms_key_arn=key_arn,
            origin=work.origin,
        )
        count(f"Violation.{finding_type.value}")
        if ctx.publisher.publish(finding):
            result.findings.append(finding)

    if h.status is HeadStatus.DENIED:
        publish(
            FindingType.OBJECT_UNVERIFIABLE,
            Outcome.REPORTED,
            f"object could not be inspected: {h.problem}",
            None,
        )
        return result
    if h.status is HeadStatus.SSE_C:
        encryption = ObjectEncryption(Encryption.SSE_C)
    else:
        assert h.response is not None
        try:
            encryption = classify(h.response)
        except UnknownEncryption as unknown:
            publish(
                FindingType.OBJECT_UNVERIFIABLE,
                Outcome.REPORTED,
                f"object could not be classified: {unknown}",
                None,
            )
            return result

    assessment = assess(encryption, settings, aws_managed_key=_aws_managed(ctx, encryption))
    final: ObjectEncryption | None = encryption
    if not assessment.compliant:
        assert assessment.finding_type is not None
        outcome, detail, final = _remediate(work, h, assessment, ctx, in_training)
        if outcome is None:
            return result  # the object changed under us: its own event covers the new one
        key_arn = encryption.kms_key_arn or (final.kms_key_arn if final else None)
        publish(FindingType(assessment.finding_type), outcome, detail, key_arn)
        if outcome is Outcome.REMEDIATED:
            count("Remediations")
    else:
        logger.debug(
            "object compliant",
            extra={"bucket": work.bucket, "key": h.key, "encryption": encryption.describe()},
        )

    if final is not None and final.kind.is_kms and final.kms_key_arn:
        _ensure_key_access(work, ctx, resource, final.kms_key_arn, result)
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
    work: ObjectWork, ctx: Context, resource: S3ObjectResource, key_arn: str, result: ObjectResult
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


def _state_id(bucket: str, key: str, etag: str | None, modified: object) -> str:
    stamp = int(modified.timestamp()) if isinstance(modified, datetime) else modified
    return f"remediated#{bucket}#{key}#{etag}#{stamp}"


def _loop_detected(ctx: Context, bucket: str, h: Head) -> bool:
    """True when this exact object state (ETag + LastModified) is one our own copy produced:
    the copy did not take effect and copying again would loop. Only states our copies created
    count, so a copy that failed (and is retried) is never mistaken for a loop."""
    assert h.response is not None
    marker = dynamodb.get(ctx.settings.state_table, _state_id(bucket, h.key, h.etag, h.response.get("LastModified")))
    return marker is not None and int(marker.get("expiration", {}).get("N", "0")) > int(time.time())


def _copy(ctx: Context, bucket: str, h: Head, target: ObjectEncryption) -> s3.Rewritten:
    """Copy the object onto itself, then note the state the copy produced (for the loop guard)."""
    rewritten = s3.copy_in_place(bucket, h, target)
    _mark_produced(ctx, bucket, h.key, rewritten)
    return rewritten


def _mark_produced(ctx: Context, bucket: str, key: str, rewritten: s3.Rewritten) -> None:
    """Best effort: a failure here must not fail the record (the copy is done; its finding must
    still be published), it only weakens the loop guard for this one object."""
    try:
        etag, modified = rewritten.etag, rewritten.last_modified
        if modified is None:  # CompleteMultipartUpload does not say; ask
            after = s3.head(bucket, key)
            etag, modified = after.etag, after.response.get("LastModified") if after.response else None
        dynamodb.put(
            ctx.settings.state_table,
            {
                "id": {"S": _state_id(bucket, key, etag, modified)},
                "expiration": {"N": str(int(time.time()) + LOOP_GUARD_SECONDS)},
            },
        )
    except (ClientError, BotoCoreError) as error:
        logger.warning("could not record the copy for the loop guard", extra={"key": key, "error": str(error)})


def _remediate(
    work: ObjectWork, h: Head, a: Assessment, ctx: Context, in_training: bool
) -> tuple[Outcome | None, str, ObjectEncryption | None]:
    """Returns (outcome, detail, the encryption the object ends with). Outcome None: skip."""
    settings = ctx.settings
    fix = a.remediation
    if fix is None:
        return Outcome.REPORTED, f"{a.problem}; {a.why_not}", a.encryption
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
    try:
        if fix.method is Method.COPY:
            if _loop_detected(ctx, work.bucket, h):
                return (
                    Outcome.FAILED,
                    f"{a.problem}; the remediator already re-encrypted this object and the copy did not "
                    "take effect (bucket policy or default encryption?); not copying again",
                    a.encryption,
                )
            rewritten = _copy(ctx, work.bucket, h, fix.target)
        else:
            assert fix.target.kms_key_arn is not None
            try:
                s3.update_encryption(work.bucket, h, fix.target.kms_key_arn)
                rewritten = None
            except s3.UpdateUnavailable:
                logger.warning("UpdateObjectEncryption unavailable in this runtime; copying instead")
                fix = Remediation(Method.COPY, fix.target)
                rewritten = _copy(ctx, work.bucket, h, fix.target)
    except ObjectChanged:
        logger.info("object changed since it was inspected; its own event covers it", extra={"key": h.key})
        return None, "", None
    except ClientError as error:
        raise_if_transient(error)
        message = error.response.get("Error", {}).get("Message", "")
        return (
            Outcome.FAILED,
            f"{a.problem}; {fix.method.value} failed: {error_code(error)} {message}".strip(),
            a.encryption,
        )
    detail = f"{a.problem}; {fix.describe()}"
    if rewritten is not None and h.version_id not in (None, "null"):
        detail += f"; the previous version {h.version_id} keeps its old encryption"
    return Outcome.REMEDIATED, detail, fix.target


type _ObjectId = tuple[str, str]


class HeadPrefetch:
    """HeadObject for many objects on a bounded thread pool, a sliding window ahead of use.

    The calls are the same ones the sequential path makes (one per object); they just overlap.
    At most ``window`` results are in flight or waiting, so memory stays bounded however many
    objects a batch carries. An error is kept and raised when its object is consumed, so it
    fails the right record.
    """

    def __init__(self, works: Sequence[ObjectWork], *, max_workers: int = 8, window: int = 64) -> None:
        self._order: list[_ObjectId] = list(dict.fromkeys((w.bucket, w.key) for w in works))
        self._position: dict[_ObjectId, int] = {oid: i for i, oid in enumerate(self._order)}
        self._results: dict[_ObjectId, Future[Head]] = {}
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
            bucket, key = oid = self._order[self._next]
            self._results[oid] = self._pool.submit(s3.head, bucket, key)
            self._next += 1

    def __call__(self, work: ObjectWork) -> Head:
        oid = (work.bucket, work.key)
        future = self._results.pop(oid, None)
        if self._pool is not None and oid in self._position:
            self._fill(self._position[oid] + 1)
        if future is None:
            return _default_head(work)
        return future.result()

    def close(self) -> None:
        """Stop: cancel what has not started (the batch ended early)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
