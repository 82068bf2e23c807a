"""The audit: the state no event announces (see docs/architecture.md, "What runs").

One run, started by the schedule (or by hand with ``{}``):

1. a run record ``audit-run#<run id>`` in STATE_TABLE (what the run covers, its tallies);
2. failed trainings (``clguard.usecases.failed_trainings``): ``TRAINING_FAILED`` findings, once per version;
3. every object of every training bucket, page by page (ListObjectsV2, or the bucket's latest
   S3 Inventory report), fanned out to the verify queue as ``clguard.verify-objects`` v2
   messages (``clguard.boundary.fanout``), which the verify function checks exactly as uploads;
   objects whose inventory ``EncryptionStatus`` settles the question are counted, not sent;
4. when the invocation runs short of time, it invokes itself asynchronously with a
   ``clguard.audit-continue`` event carrying the cursor: the next one resumes, never restarts;
5. each verify message adds its tally to the run record (one UpdateItem per message); the one
   that completes the run (or the audit function, if it lists last) writes the report
   (``clguard.reporting.auditreport``) and publishes the run's one summary message. A run that never
   completes (a message ended in VerifyDLQ) is reported, marked incomplete, by the next run.

Idempotent across runs: findings of audit checks are scoped by the state of what was checked
(an object's ETag and LastModified as listed, a key's policy), not by the run, so the next run
alerts nothing already reported, and a condition that reappears after a fix (a new object
state, another policy) is new. Changes the remediator makes are each reported (run-scoped).

This module drives one invocation; the run's parts: ``auditmembers`` (which buckets, in which
account; the members' trainings), ``auditlist`` (the listing, its cursor), ``auditrecord`` (the run
record, its report and summary), ``audittally`` (the verify side: a message's findings and tally).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from clguard.boundary.config import Settings
from clguard.errors import (
    AwsError,
    ConfigError,
    InvalidEvent,
    RetryableError,
)
from clguard.observability import count, logger
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Unit
from clguard.usecases import accounts, auditlist, auditmembers, auditrecord, bulkremediation

MAX_TRANSIENT_ATTEMPTS: Final = 5  # continuations in a row after throttling, then the bucket is noted as partial


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """The audit's own variables: AUDIT_REPORTS (``s3://bucket/prefix``, required) and
    AUDIT_INVENTORY (``s3://destination-bucket/prefix`` of the S3 Inventory reports, optional)."""

    reports_bucket: str
    reports_prefix: str
    inventory: str | None = None
    bulk: bulkremediation.BulkConfig = field(default_factory=bulkremediation.BulkConfig)


def _s3_location(name: str, value: str) -> tuple[str, str]:
    if not value.startswith("s3://") or not value[5:].split("/", 1)[0]:
        raise ConfigError(name, f"{value!r} is not an s3://bucket/prefix location")
    bucket, _, prefix = value[5:].partition("/")
    return bucket, prefix.strip("/")


def load_config(env: Mapping[str, str]) -> AuditConfig:
    raw = env.get("AUDIT_REPORTS", "").strip()
    if not raw:
        raise ConfigError("AUDIT_REPORTS", "is required and empty or not set")
    bucket, prefix = _s3_location("AUDIT_REPORTS", raw)
    inventory_location = env.get("AUDIT_INVENTORY", "").strip() or None
    if inventory_location is not None:
        _s3_location("AUDIT_INVENTORY", inventory_location)
    bulk = bulkremediation.load_config(env)
    return AuditConfig(bucket, f"{prefix}/" if prefix else "", inventory_location, bulk)


# --- the audit function ------------------------------------------------------------------------------


def _new_run_id(event: Mapping[str, Any]) -> str:
    """A scheduled firing's run id comes from its event (a redelivery is the same run); a run
    by hand (``{}``) gets a new one."""
    event_id = event.get("id") if isinstance(event.get("id"), str) else None
    fired = event.get("time") if isinstance(event.get("time"), str) else None
    if event_id and fired:
        return f"{fired.replace(':', '-')}-{event_id[:8]}"
    return f"{datetime.now(UTC).strftime('%Y-%m-%dT%H-%M-%SZ')}-{uuid.uuid4().hex[:8]}"


def parse_input(event: Any) -> auditlist.Cursor | None:
    """None: a new run (the scheduled event or ``{}``); a Cursor: a continuation."""
    if not isinstance(event, dict):
        raise InvalidEvent("the audit takes a JSON object: the scheduled event, {} or a continuation")
    if event.get("kind") == auditlist.CONTINUE_KIND:
        return auditlist.Cursor.from_event(event)
    if event and not (event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events"):
        raise InvalidEvent("the audit takes the scheduled event, {} or a continuation")
    return None


def run(
    event: Any,
    lambda_context: Any,
    settings: Settings,
    config: AuditConfig,
    *,
    continue_with: Any = None,
    trainings: Any = None,
) -> dict[str, Any]:
    """One invocation of the audit. ``continue_with(function_arn, event)`` invokes the next one
    (default: Lambda asynchronous invocation of this function); ``trainings(settings,
    publisher, run_id)`` audits the failed trainings (default: ``clguard.usecases.failed_trainings``)."""
    cursor = parse_input(event)
    settings = accounts.with_organization(settings)  # MEMBER_OU's accounts are members too
    publisher = Publisher(settings, lambda_context=lambda_context)
    unit = Unit(publisher)  # the first invocation's failed trainings: retried by Lambda as a whole
    found = auditmembers.targets(settings)
    if cursor is None:
        run_id = _new_run_id(event)
        cursor = auditlist.Cursor(run_id=run_id, started=time.time())
        # The failed trainings first (idempotent: a marker per version, fingerprinted findings,
        # write-ahead grants): a finding neither published nor deferred fails this invocation
        # before the run is recorded, so Lambda's retry of the same event does them again.
        failed = auditmembers.all_failed_trainings(settings, publisher, run_id, trainings, found)
        publisher.flush()
        unit.finish()
        if not auditrecord.start(settings, config, run_id, found):
            logger.info("this scheduled event already started its run; nothing to do", extra={"run_id": run_id})
            return {"run_id": run_id, "status": "duplicate"}
        auditrecord.close_previous(settings, run_id, lambda_context)
        auditrecord.record_trainings(settings, run_id, failed)
        auditrecord.add_notes(settings, run_id, auditmembers.report_unreachable(settings, publisher, run_id, found))
        auditrecord.add_notes(settings, run_id, auditmembers.report_refused_claims(settings, publisher, run_id, found))
        auditmembers.close_settled(settings, publisher, found)
        logger.info("audit started", extra={"run_id": run_id, "buckets": list(found.buckets)})
    lister = auditlist.Lister(settings, config, cursor, lambda_context, publisher, found.buckets, owners=found.owners)
    try:
        lister.run()
    except AwsError:
        publisher.send_queued()  # the findings made so far still go out
        raise  # an AWS call no step of the listing handles failed: Lambda retries the invocation
    except (auditlist.OutOfTime, RetryableError) as stop:
        publisher.flush()
        lister.flush()
        lister._write_settled()
        auditrecord.add_notes(settings, lister.cursor.run_id, lister.notes)
        return _continue(settings, lister, stop, continue_with)
    publisher.flush()
    auditrecord.add_notes(settings, lister.cursor.run_id, lister.notes)
    item = auditrecord.mark_listed(settings, lister.cursor.run_id, lister.cursor.messages, lister.cursor.listed)
    summary: dict[str, Any] = {
        "run_id": lister.cursor.run_id,
        "status": "listed",
        "buckets": len(lister.buckets),
        "objects_listed": lister.cursor.listed,
        "messages": lister.cursor.messages,
    }
    if item is not None and auditrecord.is_complete(item):
        report = auditrecord.finalize(settings, lister.cursor.run_id, lambda_context=lambda_context)
        if report is not None:
            summary.update(status="finished", report=report)
    return summary


def _continue(settings: Settings, lister: auditlist.Lister, stop: Exception, continue_with: Any) -> dict[str, Any]:
    cursor = lister.cursor
    if isinstance(stop, RetryableError):
        cursor.attempt += 1
        logger.warning("transient failure; continuing in a new invocation", extra={"error": str(stop)})
        if cursor.attempt > MAX_TRANSIENT_ATTEMPTS:
            bucket = lister.buckets[cursor.bucket_index]
            auditrecord.add_notes(settings, cursor.run_id, [f"{bucket}: partly covered, listing kept failing ({stop})"])
            cursor = replace(cursor, bucket_index=cursor.bucket_index + 1, token=None, source="", attempt=0, bulk={})
            cursor.inventory_file = cursor.inventory_row = 0
    function_arn = getattr(lister.lambda_context, "invoked_function_arn", None)
    if continue_with is None:
        from clguard.adapters import lambda_  # noqa: PLC0415 - only a long run continues

        continue_with = lambda_.invoke_async
    if not function_arn:
        raise RetryableError("out of time and no function to continue in")
    continue_with(function_arn, cursor.to_event())
    count("AuditContinued")
    logger.info("audit continues in a new invocation", extra={"cursor": asdict(cursor)})
    return {"run_id": cursor.run_id, "status": "continuing", "objects_listed": cursor.listed}
