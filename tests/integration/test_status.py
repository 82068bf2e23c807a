"""``clguard status`` on the state table and the report location (moto): what each kind of last
audit run means, and the bound on the rows it reads."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from clguard.cli.main import main
from clguard.state import auditruns
from clguard.usecases import status
from tests.world import BUCKET, TABLE, World

REPORTS = "custom-labels-reports"


def run_status() -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = main(["status", "--json"], stdout=out, stderr=io.StringIO())
    return code, json.loads(out.getvalue())


def record_run(world: World, run_id: str, *, finished: bool, started: float, notes: tuple[str, ...] = ()) -> None:
    """An audit run record as the audit writes it (state/auditruns.py: start, then its tallies)."""
    ddb = world.ddb
    ddb.put_item(TableName=TABLE, Item={"id": {"S": auditruns.LAST_RUN_ID}, "run_id": {"S": run_id}})
    item: dict[str, Any] = {
        "id": {"S": auditruns.item_id(run_id)},
        "started_at": {"S": "2026-12-07T02:00:00Z"},
        "started": {"N": repr(started)},
        "buckets": {"L": [{"S": BUCKET}]},
        "reports_bucket": {"S": REPORTS},
        "reports_prefix": {"S": "audit/"},
        "listed": {"BOOL": True},
        "listed_objects": {"N": "3"},
        "expected": {"N": "2"},
        "done": {"N": "2" if finished else "1"},
    }
    if finished:
        item["finalized"] = {"BOOL": True}
    if notes:
        item["notes"] = {"L": [{"S": n} for n in notes]}
    ddb.put_item(TableName=TABLE, Item=item)


def write_rows(world: World, run_id: str, rows: list[dict[str, Any]]) -> None:
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    world.s3.put_object(Bucket=REPORTS, Key=f"audit/{run_id}/rows.jsonl", Body=body)


def open_row(finding_type: str = "OBJECT_UNENCRYPTED", owner: str = "ml-team") -> dict[str, Any]:
    return {"section": "open", "finding_type": finding_type, "severity": "HIGH", "owner": owner, "account": "1"}


@pytest.fixture
def reports(world: World) -> World:
    world.s3.create_bucket(Bucket=REPORTS)
    return world


def test_a_finished_clean_audit_and_no_stack_cannot_tell_the_alarms(reports: World) -> None:
    # Given a finished audit that found nothing open
    record_run(reports, "r1", finished=True, started=time.time() - 3600)
    write_rows(reports, "r1", [])
    # When status runs without --stack
    code, document = run_status()
    # Then the audit and findings are healthy, the alarms cannot be told: exit 3
    assert document["audit"]["state"] == "healthy"
    assert document["audit"]["report"] == f"s3://{REPORTS}/audit/r1/report.html"
    assert document["findings"] == {**document["findings"], "state": "healthy", "open": 0}
    assert document["alarms"]["state"] == "unknown"
    assert code == 3


def test_an_audit_unfinished_for_a_day_needs_attention(reports: World) -> None:
    # Given a run that started 25 hours ago and never finished (a message in VerifyDLQ)
    record_run(reports, "r2", finished=False, started=time.time() - 25 * 3600)
    # When status runs, Then it needs attention, saying how far it got
    code, document = run_status()
    assert code == 2
    assert document["audit"]["state"] == "attention"
    assert "1 of 2 checks done" in document["audit"]["summary"]
    # And a run that started a minute ago is simply in progress
    record_run(reports, "r3", finished=False, started=time.time() - 60)
    assert run_status()[1]["audit"]["state"] == "healthy"


def test_a_finished_run_with_notes_needs_attention(reports: World) -> None:
    # Given a finished run whose listing of a bucket kept failing
    record_run(reports, "r4", finished=True, started=time.time(), notes=(f"{BUCKET}: partly covered",))
    write_rows(reports, "r4", [])
    # When status runs, Then it needs attention and shows the note
    code, document = run_status()
    assert code == 2
    assert document["audit"]["notes"] == [f"{BUCKET}: partly covered"]


def test_the_rows_read_are_bounded_and_the_output_says_so(reports: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a finished run with more open rows than status reads
    monkeypatch.setattr(status, "MAX_ROWS", 5)
    record_run(reports, "r5", finished=True, started=time.time())
    write_rows(reports, "r5", [open_row(owner=f"team-{i % 2}") for i in range(8)])
    # When status runs
    code, document = run_status()
    # Then it counts the first MAX_ROWS rows and says it stopped there
    findings = document["findings"]
    assert code == 2
    assert findings["open"] == 5
    assert findings["complete"] is False
    assert "counted from the first 5 rows" in findings["summary"]
    assert findings["by_owner"] == {"team-0": 3, "team-1": 2}


def test_key_policy_changes_of_the_last_audit_are_listed_and_bounded(
    reports: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a finished run that granted on keys more often than status lists
    monkeypatch.setattr(status, "MAX_CHANGES", 2)
    fixed = {
        "section": "fixed",
        "finding_type": "KEY_ACCESS_MISSING",
        "kms_key_arn": "arn:aws:kms:us-east-1:1:key/k",
        "kms_key_alias": "alias/training",
        "principal_arn": "arn:aws:iam::1:role/Trainer",
        "since": "2026-12-07T02:01:00Z",
        "account": "1",
    }
    record_run(reports, "r6", finished=True, started=time.time())
    write_rows(reports, "r6", [fixed, fixed, fixed, open_row()])
    # When status runs
    _, document = run_status()
    # Then every change is counted, at most MAX_CHANGES listed, and CloudTrail named for the rest
    changes = document["key_policy_changes"]
    assert changes["made_by_last_audit"] == 3
    assert len(changes["listed"]) == 2
    assert changes["listed"][0]["kms_key_alias"] == "alias/training"
    assert "PutKeyPolicy" in changes["cloudtrail"]


def test_a_report_that_cannot_be_read_cannot_tell(reports: World) -> None:
    # Given a finished run whose rows are not there (deleted by a lifecycle rule, say)
    record_run(reports, "r7", finished=True, started=time.time())
    # When status runs, Then the findings cannot be told, naming what could not be read
    code, document = run_status()
    assert code == 3
    assert document["findings"]["state"] == "unknown"
    assert "rows.jsonl" in document["findings"]["summary"]


def test_without_a_state_table_status_is_a_usage_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no stack and no STATE_TABLE
    monkeypatch.delenv("STATE_TABLE")
    out, err = io.StringIO(), io.StringIO()
    # When status runs, Then exit 1 with what to pass
    assert main(["status"], stdout=out, stderr=err) == 1
    assert "--stack" in err.getvalue()
