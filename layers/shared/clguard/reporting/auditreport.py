"""The audit's report: its rows (CSV and JSON Lines exports) written beside its data (JSON,
``clguard.reporting.auditdata``) and one self-contained HTML page (``clguard.reporting.auditpage``),
and the run's summary message.

Rows: one per open condition, change made this run, or accepted exception (a finding with the
contract's ``suppressed``), with the fields of ``docs/audit-row.schema.json``.
"""

from __future__ import annotations

import csv
import io
import json
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from clguard.adapters import s3
from clguard.boundary.config import Settings
from clguard.reporting import auditpage, rendering
from clguard.reporting.findings import Finding, FindingType, Outcome, ProjectVersionResource, Severity

# --- rows: one per open condition, change or accepted exception ------------------------------------

ROW_FIELDS: Final = (
    "section",
    "account",
    "region",
    "owner",
    "resource",
    "resource_type",
    "bucket",
    "key",
    "kms_key_arn",
    "kms_key_alias",
    "principal_arn",
    "finding_type",
    "finding",
    "severity",
    "outcome",
    "since",
    "new",
    "detail",
    "next_step",
    "exception_id",
    "exception_reason",
    "exception_expires",
)
SECTIONS: Final = ("open", "fixed", "accepted")
_SEVERITY_ORDER: Final = {severity.value: rank for rank, severity in enumerate(Severity)}  # most severe first


def row_of(finding: Finding, *, new: bool) -> dict[str, Any]:
    """A finding as one row of the report (the exports' fields, ``docs/audit-row.schema.json``)."""
    return row_of_document(finding.document(), next_step=" ".join(rendering.next_steps(finding)), new=new)


def row_of_document(document: Mapping[str, Any], *, next_step: str, new: bool) -> dict[str, Any]:
    """A finding document (the contract, design §5) as one row. ``owner`` and ``suppressed`` are
    the contract's optional fields (§5, §5b): used when present."""
    raw_suppressed = document.get("suppressed")
    suppressed: Mapping[str, Any] = raw_suppressed if isinstance(raw_suppressed, Mapping) else {}
    raw_resource = document.get("resource")
    resource: Mapping[str, Any] = raw_resource if isinstance(raw_resource, Mapping) else {}
    outcome = str(document.get("outcome", ""))
    section = "accepted" if suppressed else "fixed" if outcome == Outcome.REMEDIATED.value else "open"
    finding_type = str(document.get("finding_type", ""))
    if resource.get("type") == "s3-object":
        label = f"s3://{resource.get('bucket', '')}/{resource.get('key', '')}"
    else:
        label = str(resource.get("arn") or resource.get("location") or "")
    return {
        "section": section,
        "account": str(document.get("account", "")),
        "region": str(document.get("region", "")),
        "owner": str(document.get("owner") or ""),
        "resource": label,
        "resource_type": str(resource.get("type", "")),
        "bucket": str(resource.get("bucket") or ""),
        "key": str(resource.get("key") or ""),
        "kms_key_arn": str(document.get("kms_key_arn") or ""),
        "kms_key_alias": str(document.get("kms_key_alias") or ""),
        "principal_arn": str(document.get("principal_arn") or ""),
        "finding_type": finding_type,
        "finding": auditpage.words(finding_type),
        "severity": str(document.get("severity", "")),
        "outcome": outcome,
        "since": str(document.get("observed_at", "")),
        "new": new,
        "detail": str(document.get("detail", "")),
        "next_step": next_step,
        "exception_id": str(suppressed.get("exception_id", "")),
        "exception_reason": str(suppressed.get("reason", "")),
        "exception_expires": str(suppressed.get("expires", "")),
    }


_RESOURCE: Final = operator.itemgetter("resource")
_IDENTITY: Final = operator.itemgetter("section", "finding_type", "resource", "principal_arn", "outcome")


def ordered_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per condition (a key seen by many messages is one row), most severe first, then by
    type, then by resource. Rows have every field of ROW_FIELDS (``row_of_document``)."""
    unique: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        identity = _IDENTITY(row)
        kept = unique.get(identity)
        if kept is None or (row["new"] and not kept["new"]):
            unique[identity] = row
    ordered = sorted(unique.values(), key=_RESOURCE)  # one string per row: fast for 100,000 rows
    ordered.sort(key=lambda r: (_SEVERITY_ORDER.get(r["severity"], 9), r["finding_type"]))  # stable
    return ordered


def training_rows(settings: Settings, trainings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for training in trainings:
        finding = Finding(
            finding_type=FindingType.TRAINING_FAILED,
            outcome=Outcome.REMEDIATED if training.get("fixed") else Outcome.REPORTED,
            resource=ProjectVersionResource(str(training.get("arn", ""))),
            detail=str(training.get("diagnosis", "")),
            source_event_id="audit",
            account=settings.account_id,
            region=settings.region,
        )
        rows.append(row_of(finding, new=bool(training.get("alerted"))))
    return rows


# --- exports: every row, beside the report -----------------------------------------------------------

_CSV_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    """A spreadsheet must show a value, never evaluate it: a leading formula character is quoted
    with an apostrophe (OWASP's CSV injection advice)."""
    cell = "true" if value is True else "false" if value is False else str(value)
    return "'" + cell if cell.startswith(_CSV_FORMULA) else cell


def csv_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ROW_FIELDS)
    writer.writerows([_csv_cell(row.get(name, "")) for name in ROW_FIELDS] for row in rows)
    return buffer.getvalue().encode()


def jsonl_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(
        json.dumps({name: row.get(name, "") for name in ROW_FIELDS}, ensure_ascii=False) + "\n" for row in rows
    ).encode()


def render_html(
    data: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]] = (),
    history: Sequence[Mapping[str, Any]] = (),
) -> str:
    return auditpage.render(data, rows, history)


def trend_entry(data: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    counts = Counter(str(r["finding_type"]) for r in rows if r.get("section") == "open")
    return {
        "run_id": data["run_id"],
        "started_at": data.get("started_at", ""),
        "open_by_type": dict(sorted(counts.items())),
    }


def write(
    data: Mapping[str, Any],
    *,
    bucket: str,
    prefix: str,
    rows: Sequence[Mapping[str, Any]] = (),
    history: Sequence[Mapping[str, Any]] = (),
) -> dict[str, str]:
    """Put the JSON, the exports (CSV, JSON Lines) and the HTML page under ``<prefix><run id>/``;
    their s3:// URLs. The page links the others by relative name (they sit beside it)."""
    base = f"{prefix}{data['run_id']}/"
    document = {**data, "exports": dict(EXPORT_NAMES), "rows_total": len(rows)}
    s3.put_object(bucket, base + EXPORT_NAMES["csv"], csv_bytes(rows), "text/csv; charset=utf-8")
    s3.put_object(bucket, base + EXPORT_NAMES["jsonl"], jsonl_bytes(rows), "application/x-ndjson; charset=utf-8")
    body = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
    s3.put_object(bucket, base + EXPORT_NAMES["json"], body, "application/json")
    s3.put_object(
        bucket, base + "report.html", render_html(document, rows, history).encode(), "text/html; charset=utf-8"
    )
    locations = {kind: f"s3://{bucket}/{base}{name}" for kind, name in EXPORT_NAMES.items()}
    return {**locations, "html": f"s3://{bucket}/{base}report.html"}


EXPORT_NAMES: Final[Mapping[str, str]] = {"json": "report.json", "csv": "rows.csv", "jsonl": "rows.jsonl"}


def summary_document(data: Mapping[str, Any], locations: Mapping[str, str]) -> dict[str, Any]:
    return {
        "run_id": data["run_id"],
        "account": data["account"],
        "region": data["region"],
        "started_at": data["started_at"],
        "duration_seconds": data["duration_seconds"],
        "buckets": len(data["buckets"]),
        "objects": sum(int(b["objects"]) for b in data["buckets"]),
        "objects_listed": data["objects_listed"],
        "conditions_by_type": data["conditions_by_type"],
        "new_alerts_by_type": data["new_alerts_by_type"],
        "report": dict(locations),
    }


def summary_subject(data: Mapping[str, Any]) -> str:
    new = sum(int(v) for v in data["new_alerts_by_type"].values())
    objects = sum(int(b["objects"]) for b in data["buckets"])
    return f"[AUDIT] Custom Labels Guard: {new} new findings, {len(data['buckets'])} buckets, {objects} objects"[:99]


def summary_text(data: Mapping[str, Any], locations: Mapping[str, str]) -> str:
    lines = [
        f"Custom Labels Guard audit {data['run_id']} ({data['mode']} mode) finished in {data['duration_seconds']} s.",
        f"Buckets: {len(data['buckets'])}; objects checked: {sum(int(b['objects']) for b in data['buckets'])}.",
        "Conditions found: " + (", ".join(f"{k} {v}" for k, v in data["conditions_by_type"].items()) or "none") + ".",
        "New alerts: " + (", ".join(f"{k} {v}" for k, v in data["new_alerts_by_type"].items()) or "none") + ".",
        f"Report: {locations.get('html', '')} (data: {locations.get('json', '')})",
    ]
    lines += [f"Note: {note}" for note in data["notes"]]
    return "\n".join(lines)
