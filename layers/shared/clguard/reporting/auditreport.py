"""The audit's report: its data (JSON), its rows (CSV and JSON Lines exports) and one
self-contained HTML page (``clguard.reporting.auditpage``), written side by side.

Rows: one per open condition, change made this run, or accepted exception (a finding with the
contract's ``suppressed``), with the fields of ``docs/audit-row.schema.json``. Per bucket: objects
by encryption and by condition; per key in use: the principals that can use it for training and
how they got it; failed trainings and their diagnosis; the run's notes.
"""

from __future__ import annotations

import csv
import io
import json
import operator
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from clguard.adapters import clients, s3
from clguard.boundary.config import Settings
from clguard.errors import AwsError, KeyUnreadable, MemberUnreachable
from clguard.reporting import auditpage, labels, rendering
from clguard.reporting.findings import Finding, FindingType, Outcome, ProjectVersionResource
from clguard.rules import policy
from clguard.rules.arns import account_of
from clguard.rules.policy import OWNED_SIDS, TRAINING_DATA
from clguard.state.keydirectory import KeyDirectory

SCHEMA: Final = "clguard.audit-report/1"


def _counts(plain: Mapping[str, Any], prefix: str) -> list[tuple[list[str], int]]:
    return [
        (name.split("|")[1:], value)
        for name, value in plain.items()
        if name.startswith(prefix + "|") and isinstance(value, int)
    ]


def key_principals(settings: Settings, key_arn: str, keys: KeyDirectory) -> dict[str, Any]:
    """Who can use the key for training (kms:Decrypt and kms:GenerateDataKey) and through which
    statement; which TRAINING_PRINCIPALS cannot."""
    lookup = keys.lookup(key_arn)
    if lookup.key is None:
        return {"arn": key_arn, "state": lookup.problem or "not found", "principals": [], "lacking": []}
    try:
        document = keys.policy(lookup.key.arn)
    except (AwsError, KeyUnreadable) as error:
        return {"arn": key_arn, "state": f"policy unreadable: {error}", "principals": [], "lacking": []}
    principals = []
    for candidate in _candidates(settings, document):
        how = _how_granted(document, candidate, lookup.key.arn)
        if how is not None:
            principals.append({"arn": candidate, "how": how})
    granted = {p["arn"] for p in principals}
    lacking = [p for p in settings.training_principals if p not in granted]
    return {
        "arn": lookup.key.arn,
        "alias": labels.alias_of(lookup.key.arn) or "",
        "state": lookup.key.state,
        "principals": principals,
        "lacking": lacking,
    }


def _candidates(settings: Settings, document: Mapping[str, Any]) -> dict[str, None]:
    """Every principal the policy names, then TRAINING_PRINCIPALS (in order, once each)."""
    candidates: dict[str, None] = {}
    for statement in policy.statements(document):
        principal = statement.get("Principal")
        named = policy.as_list(principal.get("AWS")) if isinstance(principal, Mapping) else [principal]
        candidates.update((str(p), None) for p in named if isinstance(p, str))
    candidates.update((p, None) for p in settings.training_principals)
    return candidates


def _how_granted(document: Mapping[str, Any], candidate: str, key_arn: str) -> str | None:
    """The first statement that alone grants ``candidate`` the training data actions, said in words."""
    for index, statement in enumerate(policy.statements(document)):
        if policy.is_granted({"Statement": [statement]}, candidate, TRAINING_DATA, key_arn):
            sid = str(statement.get("Sid") or f"#{index + 1}")
            how = f"added by the guard (statement {sid})" if sid in OWNED_SIDS else f"key policy statement {sid}"
            if candidate.endswith(":root"):
                how += ": the account's IAM policies decide who else"
            return how
    return None


def key_entry(settings: Settings, key_arn: str, keys: KeyDirectory) -> dict[str, Any]:
    """``key_principals`` read in the key's own account: a member's key only through that
    member's role (design §11), with the member's guardrails; ``account`` names the owner."""
    account = account_of(key_arn) or settings.home
    if account == settings.home or not settings.serves(account):
        return {**key_principals(settings, key_arn, keys), "account": account}
    member = settings.for_account(account) or settings
    try:
        with clients.acting_in(clients.Member(account, settings.member_role_arn(account))):
            entry = key_principals(member, key_arn, keys)
    except MemberUnreachable as error:
        entry = {"arn": key_arn, "state": f"not read: {error}", "principals": [], "lacking": []}
    return {**entry, "account": account}


def accounts_view(
    settings: Settings, buckets: list[dict[str, Any]], keys: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The per-account view of a run: each account's buckets, object and condition totals, keys."""
    view: dict[str, dict[str, Any]] = {}
    for bucket in buckets:
        entry = view.setdefault(
            bucket["account"],
            {"account": bucket["account"], "buckets": [], "objects": 0, "compliant": 0, "by_condition": Counter()},
        )
        entry["buckets"].append(bucket["name"])
        entry["objects"] += bucket["objects"]
        entry["compliant"] += bucket["compliant"]
        entry["by_condition"].update(bucket["by_condition"])
    for key in keys:
        view.setdefault(
            key["account"],
            {"account": key["account"], "buckets": [], "objects": 0, "compliant": 0, "by_condition": Counter()},
        ).setdefault("keys", []).append(key["arn"])
    return [
        {**entry, "by_condition": dict(sorted(entry["by_condition"].items())), "keys": entry.get("keys", [])}
        for _, entry in sorted(view.items(), key=lambda item: (item[0] != settings.home, item[0]))
    ]


def _bucket_entry(name: str) -> dict[str, Any]:
    return {"name": name, "objects": 0, "by_encryption": Counter(), "by_condition": Counter(), "gone": 0}


def _bucket_tallies(plain: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per bucket: objects by encryption and by condition (``n|bucket|encryption|condition``), and
    objects seen gone (``gone|bucket|…``); every bucket of the run, even one with no object."""
    buckets = {b: _bucket_entry(b) for b in plain.get("buckets", [])}
    for (bucket, encryption, condition), value in (
        (parts, value) for parts, value in _counts(plain, "n") if len(parts) == 3
    ):
        entry = buckets.setdefault(bucket, _bucket_entry(bucket))
        entry["objects"] += value
        entry["by_encryption"][encryption] += value
        entry["by_condition"][condition] += value
    for (bucket, *_), value in _counts(plain, "gone"):
        if bucket in buckets:
            buckets[bucket]["gone"] += value
    return buckets


def _condition_totals(
    buckets: Mapping[str, Mapping[str, Any]], plain: Mapping[str, Any], trainings: list[dict[str, Any]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Open conditions by finding type (objects not OK, failed trainings) and new alerts by type."""
    findings_by_type: defaultdict[str, int] = defaultdict(int)
    for entry in buckets.values():
        for condition, value in entry["by_condition"].items():
            if condition != "OK":
                findings_by_type[condition] += value
    alerts = {parts[0]: value for parts, value in _counts(plain, "a")}
    for training in trainings:
        findings_by_type["TRAINING_FAILED"] += 1
        if training.get("alerted"):
            alerts["TRAINING_FAILED"] = alerts.get("TRAINING_FAILED", 0) + 1
    return findings_by_type, alerts


def build(settings: Settings, run_id: str, plain: Mapping[str, Any]) -> dict[str, Any]:
    """The report's data, from the run record."""
    buckets = _bucket_tallies(plain)
    trainings = json.loads(str(plain.get("trainings") or "[]"))
    findings_by_type, alerts = _condition_totals(buckets, plain, trainings)
    keys = KeyDirectory()
    started = float(plain.get("started") or time.time())
    owners: dict[str, str] = json.loads(str(plain.get("bucket_accounts") or "{}"))
    bucket_rows = [
        {
            **entry,
            "account": owners.get(str(entry["name"]), settings.home),
            "by_encryption": dict(sorted(entry["by_encryption"].items())),
            "by_condition": dict(sorted(entry["by_condition"].items())),
            "compliant": entry["by_condition"].get("OK", 0),
        }
        for entry in sorted(buckets.values(), key=lambda e: str(e["name"]))
    ]
    key_rows = [key_entry(settings, arn, keys) for arn in plain.get("keys", [])]
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "account": settings.account_id,
        "region": settings.region,
        "started_at": plain.get("started_at", ""),
        "duration_seconds": round(time.time() - started, 1),
        "mode": plain.get("mode", settings.remediation_mode.value),
        "requirement": plain.get("requirement", settings.encryption_requirement.value),
        "reports_bucket": plain.get("reports_bucket", ""),
        "reports_prefix": plain.get("reports_prefix", ""),
        "objects_listed": int(plain.get("listed_objects", 0)),
        "buckets": bucket_rows,
        "keys": key_rows,
        # Per account (the deployment's own first): the data the report's per-account section shows.
        "accounts": accounts_view(settings, bucket_rows, key_rows),
        "trainings": trainings,
        "conditions_by_type": dict(sorted(findings_by_type.items())),
        "new_alerts_by_type": dict(sorted(alerts.items())),
        "notes": list(plain.get("notes", [])),
    }


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
_SEVERITY_ORDER: Final = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}


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
