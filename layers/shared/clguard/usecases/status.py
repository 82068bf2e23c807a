"""``clguard status``: how is the deployed guard doing today? Read-only.

Three sections, each read from where the guard keeps it, each with a bound:

- **the last audit**: the audit's run records in STATE_TABLE (``audit-last-run`` names the run,
  ``audit-run#<id>`` says when it started, what it covered, whether it finished, its notes);
- **open findings** by type, severity, owner and account, and the **key-policy changes** the
  guard made: the last finished run's ``rows.jsonl`` beside its report (one row per open
  condition and per change the run made; at most ``MAX_ROWS`` rows read, and the output says
  when it stopped there). The guard keeps no durable record of the grants made on the event
  path between audits (its write journal holds the last hour, for its own locking): CloudTrail
  does (``PutKeyPolicy`` by the guard's roles, 90 days), and the output says so;
- **the stack's alarms** (``--stack``): ListStackResources, then DescribeAlarms.

Exit status (the CLI's, ``clguard.cli.main``): 0 healthy, 2 attention needed (an alarm in
ALARM, open findings, an audit that did not finish), 3 cannot tell (no audit ever ran, a section
could not be read, no ``--stack`` for the alarms) and nothing needs attention.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters import operator, s3
from clguard.boundary.config import Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import AwsError
from clguard.state import auditruns

HEALTHY, ATTENTION, UNKNOWN = "healthy", "attention", "unknown"
EXIT: Final = {HEALTHY: 0, ATTENTION: 2, UNKNOWN: 3}
MAX_ROWS: Final = 100_000  # rows of the last report read (the audit keeps at most 250,000)
MAX_CHANGES: Final = 20  # key-policy changes listed (all are counted)
STALE_RUN_SECONDS: Final = 24 * 3600  # an unfinished run older than this needs attention
CLOUDTRAIL_HINT: Final = (
    "aws cloudtrail lookup-events --lookup-attributes AttributeKey=EventName,AttributeValue=PutKeyPolicy"
)


@dataclass(slots=True)
class Section:
    name: str
    state: str  # healthy / attention / unknown
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {"state": self.state, "summary": self.summary, **self.data}


@dataclass(slots=True)
class Report:
    sections: list[Section] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        states = {s.state for s in self.sections}
        return ATTENTION if ATTENTION in states else UNKNOWN if UNKNOWN in states else HEALTHY

    @property
    def exit_status(self) -> int:
        return EXIT[self.verdict]

    def document(self) -> dict[str, Any]:
        return {"verdict": self.verdict, **{s.name: s.document() for s in self.sections}}


def last_run(settings: Settings) -> dict[str, Any] | None:
    """The last audit run's record (plain values), or None when no audit ever ran."""
    run_id = auditruns.last_run_id(settings.state_table)
    if not run_id:
        return None
    return {"run_id": run_id, **(auditruns.get(settings.state_table, run_id) or {})}


def audit_section(run: Mapping[str, Any] | None, now: float) -> Section:
    if run is None:
        return Section("audit", UNKNOWN, "no audit has run yet (it runs on the stack's AuditSchedule)")
    started = float(run.get("started", 0) or 0)
    finished = bool(run.get("finalized"))
    done, expected = int(run.get("done", 0)), int(run.get("expected", 0)) + int(run.get("more", 0))
    buckets = list(run.get("buckets", []))
    data = {
        "run_id": run["run_id"],
        "started_at": run.get("started_at", ""),
        "finished": finished,
        "buckets": buckets,
        "objects_listed": int(run.get("listed_objects", 0)),
        "checks_done": done,
        "checks_expected": expected,
        "notes": [str(n) for n in run.get("notes", [])],
        "report": _report_url(run, "report.html") if finished else None,
    }
    covered = f"{len(buckets)} bucket(s), {data['objects_listed']} object(s) listed"
    if finished:
        state = ATTENTION if data["notes"] else HEALTHY
        return Section("audit", state, f"finished: {covered}" + ("; with notes" if data["notes"] else ""), data)
    stale = started and now - started > STALE_RUN_SECONDS
    summary = f"not finished: {done} of {expected} checks done ({covered})"
    return Section("audit", ATTENTION if stale else HEALTHY, summary + ("; see VerifyDLQ" if stale else ""), data)


def _report_url(run: Mapping[str, Any], name: str) -> str:
    return f"s3://{run.get('reports_bucket', '')}/{run.get('reports_prefix', '')}{run['run_id']}/{name}"


def _rows(run: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    ref = S3ObjectRef(str(run["reports_bucket"]), f"{run.get('reports_prefix', '')}{run['run_id']}/rows.jsonl")
    rest = b""
    for chunk in s3.iter_chunks(ref):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield from _row(line)
    yield from _row(rest)


def _row(line: bytes) -> Iterator[dict[str, Any]]:
    if not line.strip():
        return
    try:
        row = json.loads(line)
    except ValueError:
        return
    if isinstance(row, dict):
        yield row


def findings_sections(run: Mapping[str, Any] | None) -> list[Section]:
    """Open findings and key-policy changes, from the last finished run's rows."""
    if run is None or not run.get("finalized"):
        why = "no audit has finished yet" if run is None or not run.get("run_id") else "the last audit has not finished"
        return [
            Section("findings", UNKNOWN, f"{why}: the open findings are counted by the audit"),
            Section("key_policy_changes", UNKNOWN, f"{why}; CloudTrail keeps every PutKeyPolicy: {CLOUDTRAIL_HINT}"),
        ]
    try:
        tally = _tally_rows(run)
    except AwsError as error:
        why = f"could not read {_report_url(run, 'rows.jsonl')}: {error}"
        return [Section("findings", UNKNOWN, why), Section("key_policy_changes", UNKNOWN, why)]
    by, changes, changed, complete = tally.by, tally.changes, tally.changed, tally.complete
    opened = sum(by["type"].values())
    cut = "" if complete else f" (counted from the first {MAX_ROWS} rows of the report)"
    findings = Section(
        "findings",
        ATTENTION if opened else HEALTHY,
        (f"{opened} open as of the last audit" if opened else "none open as of the last audit") + cut,
        {
            "open": opened,
            "complete": complete,
            **{f"by_{name}": dict(sorted(counts.items())) for name, counts in by.items()},
            "rows": _report_url(run, "rows.jsonl"),
        },
    )
    policy_changes = Section(
        "key_policy_changes",
        HEALTHY,
        f"{changed} made by the last audit; grants made for training calls are in CloudTrail: {CLOUDTRAIL_HINT}",
        {"made_by_last_audit": changed, "listed": changes, "cloudtrail": CLOUDTRAIL_HINT},
    )
    return [findings, policy_changes]


_CHANGE_FIELDS: Final = ("since", "kms_key_arn", "kms_key_alias", "principal_arn", "account")


@dataclass(slots=True)
class _RowTally:
    """The last run's rows, counted: open findings by type, severity, owner and account; the
    guard's key-policy changes (at most ``MAX_CHANGES`` listed); whether every row was read."""

    by: dict[str, Counter[str]] = field(
        default_factory=lambda: {k: Counter() for k in ("type", "severity", "owner", "account")}
    )
    changes: list[dict[str, str]] = field(default_factory=list)
    changed: int = 0
    complete: bool = True

    def add(self, row: Mapping[str, Any]) -> None:
        if row.get("section") == "open":
            self.by["type"][str(row.get("finding_type", ""))] += 1
            self.by["severity"][str(row.get("severity", ""))] += 1
            self.by["owner"][str(row.get("owner") or "(no owner)")] += 1
            self.by["account"][str(row.get("account", ""))] += 1
        elif row.get("section") == "fixed" and row.get("finding_type") == "KEY_ACCESS_MISSING":
            self.changed += 1
            if len(self.changes) < MAX_CHANGES:
                self.changes.append({k: str(row.get(k) or "") for k in _CHANGE_FIELDS})


def _tally_rows(run: Mapping[str, Any]) -> _RowTally:
    """At most ``MAX_ROWS`` rows of the run's report, counted (raises AwsError when unreadable)."""
    tally = _RowTally()
    for read, row in enumerate(_rows(run)):
        if read >= MAX_ROWS:
            tally.complete = False
            break
        tally.add(row)
    return tally


def alarms_section(stack: str | None) -> Section:
    if not stack:
        return Section("alarms", UNKNOWN, "pass --stack to read the stack's alarms")
    try:
        names = operator.stack_alarm_names(stack)
        states = operator.alarm_states(names) if names else {}
    except AwsError as error:
        return Section("alarms", UNKNOWN, f"could not read them: {error}")
    firing = sorted(name for name, state in states.items() if state == "ALARM")
    waiting = sorted(name for name, state in states.items() if state == "INSUFFICIENT_DATA")
    data = {"states": dict(sorted(states.items())), "in_alarm": firing}
    if firing:
        return Section("alarms", ATTENTION, f"{len(firing)} of {len(states)} in ALARM: {', '.join(firing)}", data)
    summary = f"{len(states)} alarm(s), none in ALARM" + (f" ({len(waiting)} without data yet)" if waiting else "")
    return Section("alarms", HEALTHY, summary, data)


def run(settings: Settings, *, stack: str | None, now: float | None = None) -> Report:
    report = Report()
    try:
        record = last_run(settings)
    except AwsError as error:
        why = f"could not read the state table {settings.state_table}: {error}"
        report.sections += [Section(n, UNKNOWN, why) for n in ("audit", "findings", "key_policy_changes")]
    else:
        report.sections.append(audit_section(record, time.time() if now is None else now))
        report.sections += findings_sections(record)
    report.sections.append(alarms_section(stack))
    return report
