"""The audit report's rows as a published finding would read them (issue 25's remaining gaps):
a condition an earlier run reported keeps its accepted exception, and a key shows its alias next
to its ARN, in the rows and in the keys table (escaped: tests/unit/test_audit_page_escaping.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from clguard.reporting import exceptions, htmlparts
from clguard.state import firstseen
from tests.auditrun import REPORTS, run_audit, summaries
from tests.world import BUCKET, REGION, TABLE, World

PARAMETER = "/guard/exceptions"
ARCHIVE = {
    "id": "archive-legacy",
    "finding_types": ["OBJECT_UNENCRYPTED"],
    "resources": [f"s3://{BUCKET}/archive/*"],
    "reason": "vendor archive, read by the vendor's own pipeline",
    "owner": "ml-platform",
    "expires": "2099-03-31",
}


def _read(world: World, url: str) -> bytes:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    assert bucket == REPORTS
    body: bytes = world.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _rows(world: World, summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _read(world, summary["report"]["jsonl"]).decode().splitlines()]


def test_a_suppressed_condition_stays_an_accepted_exception_in_later_runs(
    audited: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an accepted exception for the archive, and an unencrypted object in it and one outside
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=PARAMETER, Value=json.dumps({"exceptions": [ARCHIVE]}), Type="String", Overwrite=True
    )
    audited.env_set(EXCEPTIONS=f"ssm:{PARAMETER}", REMEDIATION_MODE="report")
    audited.put_legacy("archive/old.jpg")
    audited.put_legacy("images/old.jpg")
    counted: list[str] = []
    monkeypatch.setattr(exceptions, "count", lambda name, value=1: counted.append(name))

    # When the audit runs twice (the second run publishes nothing: an earlier run reported both)
    run_audit(audited)
    run_audit(audited)
    first, second = summaries(audited)

    # Then in both runs the archived object is an accepted exception, the other one open
    def sections(summary: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
        return sorted((r["section"], r["key"], r["exception_id"], r["new"]) for r in _rows(audited, summary))

    assert sections(first) == [
        ("accepted", "archive/old.jpg", "archive-legacy", True),
        ("open", "images/old.jpg", "", True),
    ]
    assert sections(second) == [
        ("accepted", "archive/old.jpg", "archive-legacy", False),
        ("open", "images/old.jpg", "", False),
    ]
    # And the second run's page counts it under accepted exceptions, not open
    page = _read(audited, second["report"]["html"]).decode()
    assert '<li data-total="open"><strong>1</strong>' in page
    assert '<li data-total="accepted"><strong>1</strong>' in page
    # And FindingsSuppressed counted the publisher's judgements (one per run: it judges before its
    # once-per-condition check), never the report's rows
    assert counted.count("FindingsSuppressed") == 2


def test_a_keys_alias_is_shown_next_to_its_arn_in_rows_and_key_table(audited: World) -> None:
    # Given an object under a key with an alias that did not opt in, and a training principal
    trainer = audited.role("Trainer", "/ml/")
    key = audited.key(managed=False, alias="alias/vendor-data")
    audited.put("images/cmk.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    audited.env_set(TRAINING_PRINCIPALS=trainer)

    # When the audit runs twice (the second rebuilds the row: nothing is published again)
    run_audit(audited)
    run_audit(audited)

    for summary in summaries(audited):
        # Then the key's row carries the alias beside the ARN, in the exports and on the page
        rows = _rows(audited, summary)
        assert [(r["finding_type"], r["resource"], r["kms_key_alias"]) for r in rows] == [
            ("KEY_NOT_MANAGED", key, "alias/vendor-data")
        ]
        page = _read(audited, summary["report"]["html"]).decode()
        shown = f'<code>{htmlparts.text(key)}</code> <span class="alias">(alias/vendor-data)</span>'
        rows_table = page.split('class="rows"', 1)[1].split("</table>", 1)[0]
        keys_table = page.split('<table id="keys"', 1)[1].split("</table>", 1)[0]
        assert shown in rows_table
        assert shown in keys_table


# --- since when: the first time a condition was seen ----------------------------------------------

LONG_AGO = "2026-01-02T03:04:05Z"


def _first_seen_items(world: World) -> list[dict[str, Any]]:
    items = world.ddb.scan(TableName=TABLE)["Items"]
    return [i for i in items if i["id"]["S"].startswith(firstseen.PREFIX)]


def test_since_is_when_the_condition_was_first_seen_until_it_is_fixed(audited: World) -> None:
    # Given an unencrypted object, audited once in report mode
    audited.env_set(REMEDIATION_MODE="report")
    audited.put_legacy("images/old.jpg")
    run_audit(audited)
    (first,) = summaries(audited)
    (row,) = _rows(audited, first)
    # (the run recorded when it first saw the condition: the finding's time)
    (item,) = _first_seen_items(audited)
    assert item["first_seen"]["S"] == row["since"]
    # And the condition as an earlier run left it, first seen long ago
    audited.ddb.update_item(
        TableName=TABLE,
        Key={"id": item["id"]},
        UpdateExpression="SET first_seen = :t",
        ExpressionAttributeValues={":t": {"S": LONG_AGO}},
    )

    # When the audit runs again (nothing published: reported earlier)
    run_audit(audited)
    # Then the still-open row says since when it was first seen, not since this run
    (row,) = _rows(audited, summaries(audited)[1])
    assert (row["section"], row["new"], row["since"]) == ("open", False, LONG_AGO)
    page = _read(audited, summaries(audited)[1]["report"]["html"]).decode()
    assert f"<td>{LONG_AGO}</td>" in page
    # And the record's TTL was refreshed by the run that still found it open
    (item,) = _first_seen_items(audited)
    assert int(item["expiration"]["N"]) >= int(time.time()) + firstseen.TTL_SECONDS - 120

    # When a run fixes it (enforce), and the object is later uploaded unencrypted again
    audited.env_set(REMEDIATION_MODE="enforce")
    run_audit(audited)
    assert _first_seen_items(audited) == []  # the fix forgot it
    audited.put_legacy("images/old.jpg", body=b"another image")
    audited.env_set(REMEDIATION_MODE="report")
    run_audit(audited)

    # Then the new condition is new: its since is not the old one's
    (row,) = _rows(audited, summaries(audited)[3])
    assert row["new"] is True
    assert row["since"] != LONG_AGO
    (item,) = _first_seen_items(audited)
    assert item["first_seen"]["S"] == row["since"]


def test_an_expired_record_that_ttl_has_not_deleted_yet_is_absent(world: World) -> None:
    # Given a first-seen record past its expiration (DynamoDB deletes expired items within days,
    # and reads return them until then)
    condition = firstseen.condition_id("111122223333", REGION, "OBJECT_UNENCRYPTED", "s3://b/k", "", "e@t")
    now = 2_000_000_000.0
    firstseen.seen(TABLE, {condition: LONG_AGO}, now=now - firstseen.TTL_SECONDS - 10)

    # When the condition is seen again
    first = firstseen.seen(TABLE, {condition: "2033-05-18T03:33:20Z"}, now=now)

    # Then it counts as first seen now, and its record says so, with a fresh TTL
    assert first == {condition: "2033-05-18T03:33:20Z"}
    item = world.ddb.get_item(TableName=TABLE, Key={"id": {"S": condition}})["Item"]
    assert item["first_seen"]["S"] == "2033-05-18T03:33:20Z"
    assert item["expiration"]["N"] == str(int(now) + firstseen.TTL_SECONDS)


def test_a_live_record_keeps_its_first_time_and_is_refreshed(world: World) -> None:
    # Given a condition first seen at one time
    condition = firstseen.condition_id("111122223333", REGION, "KEY_NOT_MANAGED", "arn:aws:kms:k", "", "")
    now = 2_000_000_000.0
    firstseen.seen(TABLE, {condition: LONG_AGO}, now=now - 3600)
    # When it is seen again an hour later
    first = firstseen.seen(TABLE, {condition: "2033-05-18T03:33:20Z"}, now=now)
    # Then it keeps its first time, and its TTL runs from now
    assert first == {condition: LONG_AGO}
    item = world.ddb.get_item(TableName=TABLE, Key={"id": {"S": condition}})["Item"]
    assert item["expiration"]["N"] == str(int(now) + firstseen.TTL_SECONDS)
