"""The audit run's record in STATE_TABLE (``audit-run#<run id>``, ``audit-last-run``): created once
per run, its tallies added by each verify message, closed once (the report and the one summary).
See ``clguard.usecases.audit`` for the run as a whole."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from clguard.adapters import dynamodb, sns
from clguard.boundary.config import Settings
from clguard.observability import count, logger
from clguard.reporting.rendering import chat_notification
from clguard.state import auditrows

if TYPE_CHECKING:
    from clguard.usecases.audit import AuditConfig
    from clguard.usecases.auditmembers import Targets

SUMMARY_KIND: Final = "clguard.audit-summary"
RUN_PREFIX: Final = "audit-run#"
RUN_TTL_SECONDS: Final = 30 * 24 * 3600


# --- the run record ------------------------------------------------------------------------------


def run_item_id(run_id: str) -> str:
    return RUN_PREFIX + run_id


def number(value: int) -> dict[str, str]:
    return {"N": str(value)}


def add_counts(
    table: str, run_id: str, counts: Mapping[str, int], *, keys: Sequence[str] = (), rowparts: Sequence[str] = ()
) -> dict[str, Any] | None:
    """ADD counters (flat attribute names), key ARNs and the ids of stored report rows
    (``clguard.state.auditrows``) to the run record; the item after it."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    parts = []
    for index, (name, value) in enumerate(sorted(counts.items())):
        names[f"#c{index}"] = name
        values[f":c{index}"] = number(value)
        parts.append(f"#c{index} :c{index}")
    if keys:
        names["#keys"] = "keys"
        values[":keys"] = {"SS": sorted(set(keys))}
        parts.append("#keys :keys")
    if rowparts:
        names["#rowparts"] = "rowparts"
        values[":rowparts"] = {"SS": sorted(set(rowparts))}
        parts.append("#rowparts :rowparts")
    if not parts:
        return None
    if rowparts:
        # The run record names at most MAX_PARTS row items (it must stay under DynamoDB's 400 KB);
        # past that, the caller counts the rows as not stored.
        values[":maxparts"] = number(auditrows.MAX_PARTS)
        return dynamodb.update(
            table,
            run_item_id(run_id),
            "ADD " + ", ".join(parts),
            names=names,
            values=values,
            condition="attribute_not_exists(#rowparts) OR size(#rowparts) < :maxparts",
        )
    return dynamodb.update(table, run_item_id(run_id), "ADD " + ", ".join(parts), names=names, values=values)


def plain_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain values (numbers as int)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        kind, raw = next(iter(value.items()))
        if kind == "N":
            out[name] = int(raw) if raw.lstrip("-").isdigit() else float(raw)
        elif kind == "SS":
            out[name] = sorted(raw)
        elif kind == "L":
            out[name] = [next(iter(v.values())) for v in raw]
        elif kind == "BOOL":
            out[name] = bool(raw)
        else:
            out[name] = raw
    return out


def is_complete(item: Mapping[str, Any]) -> bool:
    plain = plain_values(item)
    if not plain.get("listed") or plain.get("finalized"):
        return False
    return int(plain.get("done", 0)) >= int(plain.get("expected", 0)) + int(plain.get("more", 0))


def start(settings: Settings, config: AuditConfig, run_id: str, found: Targets) -> bool:
    """Create the run record; False when this run already started (a redelivered event)."""
    values = {
        ":exp": number(int(time.time()) + RUN_TTL_SECONDS),
        ":at": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        ":started": {"N": repr(time.time())},
        ":mode": {"S": settings.remediation_mode.value},
        ":req": {"S": settings.encryption_requirement.value},
        ":buckets": {"L": [{"S": b} for b in found.buckets]},
        # the account of each bucket (the report's per-account view); the own account's by default
        ":accounts": {"S": json.dumps({b: found.owners.get(b, settings.home) for b in found.buckets})},
        ":rb": {"S": config.reports_bucket},
        ":rp": {"S": config.reports_prefix},
    }
    created = dynamodb.update(
        settings.state_table,
        run_item_id(run_id),
        "SET expiration = :exp, started_at = :at, started = :started, #mode = :mode, requirement = :req, "
        "buckets = :buckets, bucket_accounts = :accounts, reports_bucket = :rb, reports_prefix = :rp",
        names={"#mode": "mode"},
        values=values,
        condition="attribute_not_exists(id)",
    )
    return created is not None


def record_trainings(settings: Settings, run_id: str, failed: Sequence[Mapping[str, Any]]) -> None:
    """The run's failed trainings (``clguard.usecases.failed_trainings``), for its report."""
    dynamodb.update(
        settings.state_table,
        run_item_id(run_id),
        "SET trainings = :t",
        values={":t": {"S": json.dumps(list(failed))}},
    )


def mark_listed(settings: Settings, run_id: str, messages: int, listed: int) -> dict[str, Any] | None:
    """Every bucket is listed: the run now expects ``messages`` verify messages; the item after it."""
    return dynamodb.update(
        settings.state_table,
        run_item_id(run_id),
        "SET listed = :t, expected = :e, listed_objects = :l",
        values={":t": {"BOOL": True}, ":e": number(messages), ":l": number(listed)},
    )


LAST_RUN_ID: Final = "audit-last-run"


def close_previous(settings: Settings, run_id: str, lambda_context: Any) -> None:
    """A run whose checks never all finished (a message in VerifyDLQ, an invocation in
    AuditDLQ) would never report: the next run reports it, marked incomplete, before starting."""
    last = dynamodb.get(settings.state_table, LAST_RUN_ID)
    dynamodb.put(settings.state_table, {"id": {"S": LAST_RUN_ID}, "run_id": {"S": run_id}})
    previous = str(last.get("run_id", {}).get("S", "")) if last else ""
    if not previous or previous == run_id:
        return
    record = dynamodb.get(settings.state_table, run_item_id(previous))
    if record is None or plain_values(record).get("finalized"):
        return
    plain = plain_values(record)
    done, expected = int(plain.get("done", 0)), int(plain.get("expected", 0)) + int(plain.get("more", 0))
    listing = "" if plain.get("listed") else "; its listing did not finish (see AuditDLQ)"
    note = (
        f"incomplete: {done} of {expected} messages were checked when the next run ({run_id}) started; "
        f"the others are in VerifyDLQ or still queued{listing}"
    )
    add_notes(settings, previous, [note])
    dynamodb.update(settings.state_table, run_item_id(previous), "SET listed = :t", values={":t": {"BOOL": True}})
    logger.warning("the previous audit run never completed; reporting it as incomplete", extra={"run_id": previous})
    count("AuditRunsIncomplete")
    finalize(settings, previous, lambda_context=lambda_context)


def add_notes(settings: Settings, run_id: str, notes: Sequence[str]) -> None:
    if notes:
        dynamodb.update(
            settings.state_table,
            run_item_id(run_id),
            "SET notes = list_append(if_not_exists(notes, :empty), :notes)",
            values={":empty": {"L": []}, ":notes": {"L": [{"S": n[:1000]} for n in notes]}},
        )


# --- the end of a run: report and summary -----------------------------------------------------------


def finalize(settings: Settings, run_id: str, *, lambda_context: Any = None) -> dict[str, str] | None:
    """Once per run (a conditional update elects the one caller): write the report, publish the
    summary. Returns the report's locations, or None when another caller finalizes."""
    item = dynamodb.update(
        settings.state_table,
        run_item_id(run_id),
        "SET finalized = :t",
        values={":t": {"BOOL": True}},
        condition="attribute_not_exists(finalized) AND listed = :t",
    )
    if item is None:
        return None
    from clguard.reporting import auditreport  # noqa: PLC0415 - only the last message of a run reports

    plain = plain_values(item)
    data = auditreport.build(settings, run_id, plain)
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
