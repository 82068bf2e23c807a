"""The verify function's logic: one SQS batch of verify-queue messages.

Each record is processed on its own (powertools BatchProcessor, partial batch response): a bad
record fails alone and reaches the DLQ after its retries; the others are processed normally.
Work is shared across the batch: each KMS key is described and its policy read once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from clguard.adapters import clients, sqs
from clguard.boundary import fanout
from clguard.boundary.config import Settings
from clguard.boundary.events import ParsedBody, VerifyMessage, parse_body
from clguard.boundary.outbox import FindingMessage
from clguard.boundary.work import ObjectWork
from clguard.errors import GuardError, InvalidEvent, MemberUnreachable, RetryableError, UntrustedSender
from clguard.observability import count, logger
from clguard.reporting.findings import Finding
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Unit
from clguard.state.intents import Journal
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases.accounts import member_of, settings_for
from clguard.usecases.keydecision import Context
from clguard.usecases.objects import ObjectResult, record_decides, verify_object
from clguard.usecases.prefetch import HeadPrefetch

KEY_FINDING_WINDOW_SECONDS = 3600
TIME_RESERVE_MS = 30_000  # stop starting new objects (fan-out or plain) when less than this is left


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
        self._bodies: dict[tuple[str, str, bool], ParsedBody] = {}  # this batch's records, parsed once
        self.prefetch_heads: dict[str, HeadPrefetch] = {}

    def verify(self, work: ObjectWork, *, redelivered: bool = False) -> ObjectResult:
        """``redelivered``: SQS delivered the record before (an earlier attempt may have made a
        change and died before reporting it: look for its write-ahead intents)."""
        account = work.account or self.settings.account_id
        settings = settings_for(self.settings, account)
        if settings is None:
            logger.warning(
                "event from an account this deployment does not serve; nothing assumed, nothing changed",
                extra={"account": account, "bucket": work.ref.bucket, "key": work.ref.key},
            )
            count("EventsForeignAccount")
            return ObjectResult(work, "ignored")
        publisher = self.publisher
        if work.audit_run:
            from clguard.usecases.audittally import AuditPublisher  # noqa: PLC0415 - audit messages only

            publisher = AuditPublisher(self.publisher, work, self.keys)
        with clients.acting_in(member_of(settings)):
            ctx = Context(
                settings=settings,
                publisher=publisher,
                keys=self.keys,
                source_event_id=work.source_event_id,
                origin=work.origin,
                scope=key_finding_scope(work),
                journal=Journal(settings.state_table, redelivered=redelivered),
                request=work.origin,
            )
            return verify_object(work, ctx, self.prefetch_heads.get(account))

    def from_guard(self, sender_id: object) -> bool:
        """Whether an SQS SenderId is one of the guard's functions: a role session's SenderId is
        "<RoleId>:<session name>" (Lambda: the function name), checked against GUARD_ROLE_IDS."""
        if not isinstance(sender_id, str) or not sender_id:
            return False
        role_id, _, _session = sender_id.partition(":")
        return role_id in self.settings.guard_role_ids

    def parsed(self, message_id: str, body: str, sender_id: object) -> VerifyMessage | None:
        """The record's message, parsed once per batch (the prefetch, then the handling, read it
        here); raises what makes the record invalid. Bounded by the batch (cleared by ``close``)."""
        key = (message_id, body, self.from_guard(sender_id))
        found = self._bodies.get(key)
        if found is None:
            found = self._bodies[key] = parse_body(body, from_guard=key[2])
        return found.value()

    def prefetch(self, event: Mapping[str, Any]) -> None:
        """Start the batch's HeadObject calls together (one per object, overlapped), one window
        per account served (each runs with that account's credentials), except for the data
        events whose records already show their objects compliant."""
        by_account: dict[str, list[ObjectWork]] = {}
        for record in event.get("Records") or []:
            for w in self._works_of(record):
                account = w.account or self.settings.account_id
                try:
                    settings = settings_for(self.settings, account)
                except (RetryableError, MemberUnreachable):
                    continue  # reported when the record itself is handled
                if (
                    settings is not None
                    and (w.anywhere or w.ref.bucket in settings.training_buckets)
                    and not record_decides(w, settings)
                ):
                    by_account.setdefault(account, []).append(w)
        for account, works in by_account.items():
            if len(works) > 1:
                self._prefetch_in(account, works)

    def _works_of(self, record: Any) -> list[ObjectWork]:
        """The objects a record asks to verify (none for an invalid record or an outbox finding:
        those are reported when the record itself is handled)."""
        try:
            attributes = record.get("attributes") or {}
            message = self.parsed(
                str(record.get("messageId") or ""), record.get("body") or "", attributes.get("SenderId")
            )
        except (GuardError, AttributeError, TypeError):
            return []
        return message if isinstance(message, list) else []

    def _prefetch_in(self, account: str, works: list[ObjectWork]) -> None:
        try:
            settings = settings_for(self.settings, account)
            if settings is None:
                return
            with clients.acting_in(member_of(settings)):
                self.prefetch_heads[account] = HeadPrefetch(works)
        except (RetryableError, MemberUnreachable) as error:
            # Each record meets the same problem when it is handled, and fails alone.
            logger.warning("no prefetch for a member account", extra={"account": account, "error": str(error)})

    def close(self) -> None:
        self._bodies.clear()
        for prefetch in self.prefetch_heads.values():
            prefetch.close()
        self.publisher.flush()

    def handle_record(self, record: SQSRecord) -> None:
        """One record. Every finding it makes is tried; if one could be delivered neither to SNS
        nor to the outbox, the record fails afterwards so that SQS redelivers it."""
        with Unit(self.publisher):
            self._handle(record)

    def _handle(self, record: SQSRecord) -> None:
        sender = (record.get("attributes") or {}).get("SenderId")
        try:
            message = self.parsed(record.message_id, record.body, sender)
        except UntrustedSender as untrusted:
            count("UntrustedMessages")
            logger.error(
                "refused: one of the guard's own message kinds from another sender (forged, or sent "
                "by hand); nothing is granted or published for it, and it fails into the DLQ",
                extra={
                    "message_id": record.message_id,
                    "sender_id": sender,
                    "problem": str(untrusted),
                    "body_prefix": record.body[:500],
                },
            )
            raise
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
            except (InvalidEvent, KeyError, ValueError, TypeError, AttributeError) as error:
                count("InvalidRecords")
                logger.error(
                    "invalid finding in the outbox", extra={"message_id": record.message_id, "problem": repr(error)}
                )
                raise InvalidEvent(f"clguard.finding message has no valid finding: {error!r}") from error
            self.publisher.publish(finding, defer=False, in_progress=message.in_progress)
            return
        audit_run = message[0].audit_run if message else ""
        tally = None
        if audit_run:
            from clguard.usecases.audittally import Tally  # noqa: PLC0415 - audit messages only

            tally = Tally()
        continued = 0
        for index, work in enumerate(message):
            logger.set_correlation_id(work.source_event_id)
            if self._time_short():
                if not (work.anywhere or work.audit_run):
                    # A plain S3 event is one object: fail it before it starts (SQS redelivers
                    # it) rather than be killed halfway through a multi-GB copy.
                    count("RecordsNotStarted")
                    raise RetryableError("too little time left in this invocation to start the object; retried")
                continued = self._continue_later(message[index:])
                break
            result = self.verify(work, redelivered=_receive_count(record) > 1)
            if tally is not None:
                tally.add(work.ref.bucket, result.status, result.encryption, result.condition, result.final_key)
                tally.alerts(result.findings)
                tally.report_rows(self.settings, work, result, partial(self.publisher.prepared, counted=False))
        if tally is not None:
            from clguard.usecases.audittally import record_message  # noqa: PLC0415

            self.publisher.send_queued()  # the message's findings go out before it counts in its run
            record_message(self.settings, audit_run, tally, continued=continued, lambda_context=self.lambda_context)

    def _time_short(self) -> bool:
        remaining = getattr(self.lambda_context, "get_remaining_time_in_millis", None)
        return remaining is not None and remaining() < TIME_RESERVE_MS

    def _continue_later(self, rest: list[ObjectWork]) -> int:
        """A fan-out message carries thousands of objects and a batch carries many messages: when
        the invocation runs short of time, queue what is left as a new message (same request,
        same principals) instead of being killed halfway and redoing it all."""
        first = rest[0]
        queue = self.settings.verify_queue_url
        if queue is None:
            raise RetryableError("out of time and no verify queue to continue on")
        if first.audit_run:
            packer = fanout.Packer(
                source_event_id=first.source_event_id,
                origin=first.origin,
                principals=first.principals,
                audit_run=first.audit_run,
                bucket=first.ref.bucket,
                account=first.account,
            )
            packed = [packer.add(w.ref.at(None), w.state) for w in rest]
            bodies = [b for b in (*packed, packer.flush()) if b is not None]
        else:
            refs = (w.ref.at(None) for w in rest)
            bodies = list(
                fanout.messages(
                    refs,
                    source_event_id=first.source_event_id,
                    origin=first.origin,
                    principals=first.principals,
                    account=first.account,
                )
            )
        sent = sqs.send_all(queue, bodies)
        count("FanoutContinued", sent)
        logger.info("out of time: the rest of the message continues in new messages", extra={"objects": len(rest)})
        return sent


def _receive_count(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count or 1)
    except (TypeError, ValueError, KeyError):
        return 1


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
