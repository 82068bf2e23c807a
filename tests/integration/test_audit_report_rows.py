"""The audit report people act on: a row per open condition, changes and accepted exceptions in
their own sections, every row in CSV and JSON Lines exports beside the page (the JSON validated
against the schema shipped in docs/), and a trend over the last runs; its state bounded."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from clguard.reporting import auditreport
from clguard.state import auditrows
from tests.auditrun import REPORTS, run_audit, summaries
from tests.world import ACCOUNT, BUCKET, OUTPUT_BUCKET, TABLE, World

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "audit-row.schema.json").read_text())
HOSTILE_KEY = "images/<!--<script>\u202egpj.exe</script>.jpg"


def seed(world: World) -> str:
    """3 SSE-S3 objects, 1 under a managed CMK, 2 unencrypted (one with a hostile key): under
    report mode the 2 unencrypted ones are open conditions."""
    key = world.key()
    for index in range(3):
        world.put(f"images/s3-{index}.jpg", ServerSideEncryption="AES256")
    world.put("images/cmk.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.put_legacy("images/old.jpg")
    world.put_legacy(HOSTILE_KEY)
    return key


def read(world: World, url: str) -> bytes:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    assert bucket == REPORTS
    body: bytes = world.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def exports(world: World, summary: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, str]], str]:
    jsonl = [json.loads(line) for line in read(world, summary["report"]["jsonl"]).decode().splitlines()]
    table = list(csv.DictReader(io.StringIO(read(world, summary["report"]["csv"]).decode(), newline="")))
    page = read(world, summary["report"]["html"]).decode()
    return jsonl, table, page


def test_open_conditions_fixes_exports_and_trend_across_runs(audited: World) -> None:
    # Given objects of which two are unencrypted (one under a hostile key), in report mode
    seed(audited)
    audited.env_set(REMEDIATION_MODE="report")

    # When the audit runs twice in report mode, then once in enforce mode
    run_audit(audited)
    run_audit(audited)
    audited.env_set(REMEDIATION_MODE="enforce")
    run_audit(audited)
    first, second, third = summaries(audited)

    # Then the first run's exports hold one open row per unencrypted object, new, with what to do
    rows, table, page = exports(audited, first)
    for row in rows:
        jsonschema.validate(row, SCHEMA)
    assert sorted((r["section"], r["resource"], r["finding_type"], r["outcome"], r["new"]) for r in rows) == [
        ("open", f"s3://{BUCKET}/{HOSTILE_KEY}", "OBJECT_UNENCRYPTED", "REPORTED", True),
        ("open", f"s3://{BUCKET}/images/old.jpg", "OBJECT_UNENCRYPTED", "REPORTED", True),
    ]
    assert all(r["account"] == ACCOUNT and r["next_step"] and r["severity"] == "HIGH" for r in rows)
    # And the CSV holds the same rows, same fields in the schema's order
    assert list(table[0]) == list(auditreport.ROW_FIELDS)
    assert [(r["resource"], r["key"]) for r in table] == [(r["resource"], r["key"]) for r in rows]
    # And the page links the exports beside it, and shows the totals
    assert 'href="rows.csv"' in page
    assert 'href="rows.jsonl"' in page
    assert 'href="report.json"' in page
    assert '<li data-total="open"><strong>2</strong>' in page

    # And the second run still lists both as open, reported by the earlier run (not new)
    rows, _, _ = exports(audited, second)
    assert sorted((r["section"], r["key"], r["new"]) for r in rows) == [
        ("open", HOSTILE_KEY, False),
        ("open", "images/old.jpg", False),
    ]

    # And the enforce run lists both as fixed this run, none open
    rows, _, page = exports(audited, third)
    assert sorted((r["section"], r["key"], r["outcome"]) for r in rows) == [
        ("fixed", HOSTILE_KEY, "REMEDIATED"),
        ("fixed", "images/old.jpg", "REMEDIATED"),
    ]
    assert '<li data-total="open"><strong>0</strong>' in page
    assert '<li data-total="fixed"><strong>2</strong>' in page
    # And its trend has the three runs: 2, 2, then 0 open OBJECT_UNENCRYPTED
    report = json.loads(read(audited, third["report"]["json"]))
    assert report["rows_total"] == 2
    assert report["exports"] == {"json": "report.json", "csv": "rows.csv", "jsonl": "rows.jsonl"}
    trend_rows = page.split('<table id="trend">')[1].split("</tbody>")[0].split("<tr>")[2:]
    assert [row.count('data-sort="2"') for row in trend_rows] == [2, 2, 0]


def test_accepted_exceptions_and_owners_have_their_own_rows() -> None:
    # Given finding documents carrying the contract's optional owner and suppressed (design §5b)
    base = {
        "finding_type": "OBJECT_SSE_C",
        "severity": "HIGH",
        "outcome": "REPORTED",
        "account": "111122223333",
        "region": "eu-west-1",
        "resource": {"type": "s3-object", "bucket": "train", "key": "archive/a.jpg", "version_id": None},
        "detail": "SSE-C",
        "observed_at": "2026-12-01T00:00:00Z",
    }
    suppressed = {"exception_id": "archive-sse-c", "reason": "vendor archive", "owner": "ml", "expires": "2027-03-31"}

    # When they become rows
    accepted = auditreport.row_of_document({**base, "suppressed": suppressed}, next_step="", new=True)
    owned = auditreport.row_of_document({**base, "owner": "vision-team"}, next_step="re-upload", new=True)

    # Then the suppressed one is an accepted exception with its exception, the other an open row
    # with its owner and account
    assert (accepted["section"], accepted["exception_id"], accepted["exception_reason"]) == (
        "accepted",
        "archive-sse-c",
        "vendor archive",
    )
    assert accepted["exception_expires"] == "2027-03-31"
    assert (owned["section"], owned["owner"], owned["account"]) == ("open", "vision-team", "111122223333")
    for row in (accepted, owned):
        jsonschema.validate(row, SCHEMA)
    # And on the page each is in its section, with totals per owner and per account
    page = auditreport.render_html({"run_id": "r", "buckets": []}, auditreport.ordered_rows([accepted, owned]))
    assert 'id="rows-accepted"' in page
    assert "archive-sse-c" in page
    assert 'id="open-by-owner"' in page
    assert "vision-team" in page
    assert 'id="open-by-account"' in page
    assert "111122223333" in page


def test_exports_keep_hostile_values_whole_and_inert() -> None:
    # Given a row whose key has a line break, a formula and a very long tail
    key = '=HYPERLINK("https://evil.example")\n' + "k" * 3000
    row = auditreport.row_of_document(
        {
            "finding_type": "OBJECT_UNENCRYPTED",
            "severity": "HIGH",
            "outcome": "REPORTED",
            "resource": {"type": "s3-object", "bucket": "b", "key": key},
        },
        next_step="",
        new=True,
    )

    # When exported
    [from_csv] = list(csv.DictReader(io.StringIO(auditreport.csv_bytes([row]).decode(), newline="")))
    [from_jsonl] = [json.loads(line) for line in auditreport.jsonl_bytes([row]).decode().splitlines()]

    # Then JSON Lines has the value whole; the CSV too, but a spreadsheet sees text, not a formula
    assert from_jsonl["key"] == key
    assert from_csv["key"] == "'" + key
    jsonschema.validate(from_jsonl, SCHEMA)


def test_the_rows_state_is_bounded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given many rows with values at their largest
    monkeypatch.setattr(auditrows, "MAX_ROWS", 1500)
    row = {name: "v" * 5000 for name in auditreport.ROW_FIELDS}
    rows = [{**row, "resource": f"s3://b/{i}"} for i in range(1000)]

    # When one message's rows are stored, twice (a redelivered message), then another's
    first = auditrows.save(TABLE, "run", rows)
    again = auditrows.save(TABLE, "run", rows)
    other = auditrows.save(TABLE, "run", rows[:800])

    # Then each item stays under DynamoDB's item limit, a redelivery rewrites the same items
    for item_id in (*first, *other):
        item = world.ddb.get_item(TableName=TABLE, Key={"id": {"S": item_id}})["Item"]
        assert len(item["rows"]["S"].encode()) <= auditrows.PART_BYTES
        assert "expiration" in item
    assert first == again
    # And the report reads at most MAX_ROWS of the run, and says how many more there were
    loaded, dropped = auditrows.load(TABLE, [*first, *other])
    assert (len(loaded), dropped) == (1500, 300)
    assert all(len(v) <= auditrows.VALUE_MAX for r in loaded for v in r.values())


def test_the_trend_keeps_the_last_runs_only(world: World) -> None:
    # Given more runs than the trend keeps
    history: list[dict[str, Any]] = []
    for index in range(auditrows.HISTORY_RUNS + 7):
        run = {"run_id": f"r{index:03}", "started_at": f"2026-12-07T{index:03}", "open_by_type": {"X": index}}
        history = auditrows.record_trend(TABLE, run)

    # Then it holds the last HISTORY_RUNS of them, oldest first
    assert [r["run_id"] for r in history] == [f"r{i:03}" for i in range(7, auditrows.HISTORY_RUNS + 7)]


def test_a_key_condition_still_open_stays_a_row_in_later_runs(audited: World) -> None:
    # Given an object under a key that did not opt in, and a training principal that lacks access
    trainer = audited.role("Trainer", "/ml/")
    key = audited.key(managed=False)
    audited.put("images/cmk.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    audited.env_set(TRAINING_PRINCIPALS=trainer)

    # When the audit runs twice
    run_audit(audited)
    run_audit(audited)
    first, second = summaries(audited)

    # Then both runs list the key's condition once, as open: new in the first, still open in the second
    def key_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
        rows, _, _ = exports(audited, summary)
        return [(r["section"], r["finding_type"], r["resource"], r["new"]) for r in rows]

    assert key_rows(first) == [("open", "KEY_NOT_MANAGED", key, True)]
    assert key_rows(second) == [("open", "KEY_NOT_MANAGED", key, False)]


def test_a_run_names_a_bounded_number_of_row_items_and_counts_the_rest(
    audited: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two training buckets (one fan-out message each), an open condition in each, and a run
    # record that may name one row item only
    monkeypatch.setattr(auditrows, "MAX_PARTS", 1)
    audited.env_set(TRAINING_BUCKETS=f"{BUCKET},{OUTPUT_BUCKET}", REMEDIATION_MODE="report")
    audited.put_legacy("images/old.jpg")
    audited.put_legacy("images/old.jpg", bucket=OUTPUT_BUCKET)

    # When the audit runs
    run_audit(audited)
    [summary] = summaries(audited)

    # Then one message's row is listed, the other's is counted as left out, and the report says so
    rows, _, page = exports(audited, summary)
    report = json.loads(read(audited, summary["report"]["json"]))
    assert len(rows) == 1
    assert report["rows_dropped"] == 1
    assert any("1 rows beyond the report's bound" in note for note in report["notes"])
    assert "1 more rows were beyond the report" in page
    # And the tallies still count both objects
    assert report["conditions_by_type"] == {"OBJECT_UNENCRYPTED": 2}
