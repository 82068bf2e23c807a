"""The verify function's logic: one SQS batch of verify-queue messages.

Each record is processed on its own (powertools BatchProcessor, partial batch response): a bad
record fails alone and reaches the DLQ after its retries; the others are processed normally.
Work is shared across the batch: each KMS key is described and its policy read once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from clguard import fanout
from clguard.adapters import sqs
from clguard.config import Settings
from clguard.errors import InvalidEvent, RetryableError
from clguard.events import FindingMessage, ObjectWork, parse_verify_message
from clguard.findings import Finding
from clguard.keyaccess import Context
from clguard.keydirectory import KeyDirectory
from clguard.manifest import ImageRef
from clguard.objects import HeadPrefetch, ObjectResult, verify_object
from clguard.observability import count, logger
from clguard.publisher import Publisher

KEY_FINDING_WINDOW_SECONDS = 3600
TIME_RESERVE_MS = 30_000  # stop starting new fan-out objects when less than this is left


def key_finding_scope(work: ObjectWork, now: float | None = None) -> str:
    """Key-level conditions seen through plain S3 events are reported once per key and hour;
    those of a training request (fan-out) once per request."""
    if work.anywhere:
        return ""
    return f"window:{int((now or time.time()) // KEY_FINDING_WINDOW_SECONDS)}"


class BatchRun:
    """State shared by the records of one batch."""

    def __init__(self, settings: Settings, *, lambda_context: Any = None) -> None:
        self.settings = settings
        self.lambda_context = lambda_context
        self.publisher = Publisher(settings, lambda_context=lambda_context)
        self.keys = KeyDirectory()
        self.prefetch_heads: HeadPrefetch | None = None

    def verify(self, work: ObjectWork) -> ObjectResult:
        ctx = Context(
            settings=self.settings,
            publisher=self.publisher,
            keys=self.keys,
            source_event_id=work.source_event_id,
            origin=work.origin,
            scope=key_finding_scope(work),
            request=work.origin,
        )
        return verify_object(work, ctx, self.prefetch_heads)

    def prefetch(self, event: Mapping[str, Any]) -> None:
        """Start the batch's HeadObject calls together (one per object, overlapped)."""
        works = []
        for record in event.get("Records") or []:
            try:
                message = parse_verify_message(record.get("body") or "")
            except (InvalidEvent, AttributeError, TypeError):
                continue  # reported when the record itself is handled
            if isinstance(message, list):
                works += [w for w in message if w.anywhere or w.bucket in self.settings.training_buckets]
        if len(works) > 1:
            self.prefetch_heads = HeadPrefetch(works)

    def close(self) -> None:
        if self.prefetch_heads is not None:
            self.prefetch_heads.close()

    def handle_record(self, record: SQSRecord) -> None:
        try:
            message = parse_verify_message(record.body)
        except InvalidEvent as invalid:
            count("InvalidRecords")
            logger.error(
                "invalid record: it fails and reaches the DLQ after its retries",
                extra={
                    "message_id": record.message_id,
                    "problem": str(invalid),
                    "body_prefix": record.body[:500],
                },
            )
            raise
        if message is None:
            logger.info(
                "event needs no verification (the write was refused by S3)",
                extra={"message_id": record.message_id},
            )
            return
        if isinstance(message, FindingMessage):
            try:
                finding = Finding.from_document(message.document, scope=message.scope)
            except (KeyError, ValueError, TypeError, AttributeError) as error:
                count("InvalidRecords")
                logger.error(
                    "invalid finding in the outbox", extra={"message_id": record.message_id, "problem": repr(error)}
                )
                raise InvalidEvent(f"clguard.finding message has no valid finding: {error!r}") from error
            self.publisher.publish(finding, defer=False)
            return
        for index, work in enumerate(message):
            logger.set_correlation_id(work.source_event_id)
            if work.anywhere and self._time_short():
                self._continue_later(message[index:])
                return
            self.verify(work)

    def _time_short(self) -> bool:
        remaining = getattr(self.lambda_context, "get_remaining_time_in_millis", None)
        return remaining is not None and remaining() < TIME_RESERVE_MS

    def _continue_later(self, rest: list[ObjectWork]) -> None:
        """A fan-out message carries thousands of objects and a batch carries many messages: when
        the invocation runs short of time, queue what is left as a new message (same request,
        same principals) instead of being killed halfway and redoing it all."""
        first = rest[0]
        queue = self.settings.verify_queue_url
        if queue is None:
            raise RetryableError("out of time and no verify queue to continue on")
        refs = (ImageRef(w.bucket, w.key) for w in rest)
        bodies = fanout.messages(
            refs, source_event_id=first.source_event_id, origin=first.origin, principals=first.principals
        )
        sent = sqs.send_all(queue, list(bodies))
        count("FanoutContinued", sent)
        logger.info("out of time: the rest of the message continues in new messages", extra={"objects": len(rest)})


def handle_batch(event: Mapping[str, Any], context: Any, settings: Settings) -> dict[str, Any]:
    run = BatchRun(settings, lambda_context=context)
    run.prefetch(event)
    # Every failure is listed in batchItemFailures, even when the whole batch failed: same retry
    # effect as raising, and the response says exactly which records failed.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    try:
        response = process_partial_response(
            event=dict(event), record_handler=run.handle_record, processor=processor, context=context
        )
    finally:
        run.close()
    return dict(response)
