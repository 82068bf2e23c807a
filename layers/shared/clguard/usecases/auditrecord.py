"""The audit run's record in STATE_TABLE (``audit-run#<run id>``, ``audit-last-run``): created once
per run, its tallies added by each verify message, closed once (the report and the one summary).
See ``clguard.usecases.audit`` for the run as a whole."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from clguard.adapters import sns
from clguard.boundary.config import Settings
from clguard.observability import count, logger
from clguard.reporting.rendering import chat_notification
from clguard.state import auditrows, auditruns
from clguard.usecases import accounts

if TYPE_CHECKING:
    from clguard.usecases.audit import AuditConfig
    from clguard.usecases.auditmembers import Targets

SUMMARY_KIND: Final = "clguard.audit-summary"
# --- the run record (kept by ``clguard.state.auditruns``) -------------------------------------------


def add_counts(
    table: str, run_id: str, counts: Mapping[str, int], *, keys: Sequence[str] = (), rowparts: Sequence[str] = ()
) -> dict[str, Any] | None:
    """ADD counters, key ARNs and stored report row ids to the run record; the item after it."""
    return auditruns.add(table, run_id, counts, keys=keys, rowparts=rowparts)


def is_complete(item: Mapping[str, Any]) -> bool:
    plain = auditruns.plain(item)
    if not plain.get("listed") or plain.get("finalized"):
        return False
    return int(plain.get("done", 0)) >= int(plain.get("expected", 0)) + int(plain.get("more", 0))


def start(settings: Settings, config: AuditConfig, run_id: str, found: Targets) -> bool:
    """Create the run record; False when this run already started (a redelivered event)."""
    return auditruns.start(
        settings.state_table,
        run_id,
        started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        mode=settings.remediation_mode.value,
        requirement=settings.encryption_requirement.value,
        buckets=found.buckets,
        # the account of each bucket (the report's per-account view); the own account's by default
        bucket_accounts={b: found.owners.get(b, settings.home) for b in found.buckets},
        reports_bucket=config.reports_bucket,
        reports_prefix=config.reports_prefix,
    )


def record_trainings(settings: Settings, run_id: str, failed: Sequence[Mapping[str, Any]]) -> None:
    """The run's failed trainings (``clguard.usecases.failed_trainings``), for its report."""
    auditruns.set_trainings(settings.state_table, run_id, failed)


def mark_listed(settings: Settings, run_id: str, messages: int, listed: int) -> dict[str, Any] | None:
    """Every bucket is listed: the run now expects ``messages`` verify messages; the item after it."""
    return auditruns.mark_listed(settings.state_table, run_id, expected=messages, listed=listed)


def close_previous(settings: Settings, run_id: str, lambda_context: Any) -> None:
    """A run whose checks never all finished (a message in VerifyDLQ, an invocation in
    AuditDLQ) would never report: the next run reports it, marked incomplete, before starting."""
    previous = auditruns.swap_last_run(settings.state_table, run_id)
    if not previous or previous == run_id:
        return
    plain = auditruns.get(settings.state_table, previous)
    if plain is None or plain.get("finalized"):
        return
    done, expected = int(plain.get("done", 0)), int(plain.get("expected", 0)) + int(plain.get("more", 0))
    listing = "" if plain.get("listed") else "; its listing did not finish (see AuditDLQ)"
    note = (
        f"incomplete: {done} of {expected} messages were checked when the next run ({run_id}) started; "
        f"the others are in VerifyDLQ or still queued{listing}"
    )
    add_notes(settings, previous, [note])
    auditruns.mark_listed(settings.state_table, previous)
    logger.warning("the previous audit run never completed; reporting it as incomplete", extra={"run_id": previous})
    count("AuditRunsIncomplete")
    finalize(settings, previous, lambda_context=lambda_context)


def add_notes(settings: Settings, run_id: str, notes: Sequence[str]) -> None:
    auditruns.note(settings.state_table, run_id, notes)


# --- the end of a run: report and summary -----------------------------------------------------------


def finalize(settings: Settings, run_id: str, *, lambda_context: Any = None) -> dict[str, str] | None:
    """Once per run (a conditional update elects the one caller): write the report, publish the
    summary. Returns the report's locations, or None when another caller finalizes."""
    settings = accounts.with_organization(settings)  # a member key of MEMBER_OU is read as the member
    item = auditruns.claim_finalize(settings.state_table, run_id)
    if item is None:
        return None
    from clguard.reporting import auditdata, auditreport  # noqa: PLC0415 - only the last message of a run reports
    from clguard.usecases import keylifecycle  # noqa: PLC0415

    plain = auditruns.plain(item)
    # The keys with open Security Hub findings the run's checks did not meet: re-read, bounded (§5a).
    swept = keylifecycle.sweep(settings, run_id, plain.get("keys", []))
    data = auditdata.build(settings, run_id, plain)
    if (note := swept.note()) is not None:
        data["notes"].append(note)
    stored, dropped = auditrows.load(settings.state_table, list(plain.get("rowparts", [])))
    dropped += int(plain.get("rows_unstored", 0))
    rows = auditreport.ordered_rows([*stored, *auditreport.training_rows(settings, data["trainings"])])
    if dropped:
        data["rows_dropped"] = dropped
        data["notes"].append(f"{dropped} rows beyond the report's bound of {auditrows.MAX_ROWS} are counted only")
    history = auditrows.record_trend(settings.state_table, auditreport.trend_entry(data, rows))
    locations = auditreport.write(
        data, bucket=str(data["reports_bucket"]), prefix=str(data["reports_prefix"]), rows=rows, history=history
    )
    publish_summary(settings, data, locations)
    return locations


def publish_summary(settings: Settings, data: Mapping[str, Any], locations: Mapping[str, str]) -> None:
    """The run's one summary: its own message on the alerts topic, marked by the
    ``message_kind`` attribute (no ``finding_type``: finding subscribers' filters skip it)."""
    from clguard.reporting import auditreport  # noqa: PLC0415

    text = auditreport.summary_text(data, locations)
    subject = auditreport.summary_subject(data)
    document = {"message_kind": SUMMARY_KIND, "schema_version": "1", **auditreport.summary_document(data, locations)}
    chat = chat_notification(f":bar_chart: {subject}", text.replace("`", "'"))
    message = json.dumps(
        {"default": json.dumps(document), "email": text, "https": json.dumps(chat)},
        ensure_ascii=False,
    )
    sns.publish(
        settings.alert_topic_arn,
        subject=subject,
        message=message,
        attributes={"message_kind": {"DataType": "String", "StringValue": SUMMARY_KIND}},
    )
    count("AuditSummaries")
