"""The audit's rows settled from an S3 Inventory report (compliant, no HeadObject) close the open
Security Hub findings of their objects only when that is certain (docs/architecture.md §5a): the
report may be up to 48 hours old and may not show the latest writes, so a row closes only the
findings raised before the report was started and before the row's version was written. Found
through a per-bucket index of objects with open findings: one read per bucket, none per row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from clguard.state import openfindings
from functions.verify_object_encryption import app
from localaws.doubles import SecurityHubFindings
from tests.auditrun import put_inventory, run_audit
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, BUCKET, REGION, TABLE, LambdaContext, World

KEY = "images/fixed.jpg"


def _open_finding(world: World) -> dict[str, Any]:
    """An unencrypted object reported (report mode): one open Security Hub finding, raised now."""
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(SECURITY_HUB="on", REMEDIATION_MODE="report")
    world.put_legacy(KEY)
    result = app.lambda_handler(sqs_event(world.object_created(KEY, event_id="evt-open")), LambdaContext())
    assert result == {"batchItemFailures": []}
    (finding,) = SecurityHubFindings.findings(ACCOUNT, REGION)
    assert finding["RecordState"] == "ACTIVE"
    return finding


def _at(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def _ms(when: datetime) -> str:
    return str(int(when.timestamp() * 1000))


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(
    ("report_started", "row_written", "closed"),
    [
        # the object was fixed (a compliant version written) after the finding, and the report
        # started after that: the finding is gone
        (2, 1, True),
        # the report started before the finding was raised (it may not show the write the
        # finding is about): nothing closes, whatever the row says
        (-1, -2, False),
        (-1, 1, False),
        # the report started after the finding but its row is a version older than the finding
        # (a listing that lags behind a write): nothing closes
        (2, -1, False),
    ],
)
def test_an_inventory_row_closes_only_findings_raised_before_its_evidence(
    audited: World, report_started: float, row_written: float, closed: bool
) -> None:
    # Given an open finding on an object, raised now, and the object since made compliant
    # (its event missed)
    opened = _open_finding(audited)
    audited.put(KEY, ServerSideEncryption="AES256")
    # When the audit reads a report, started at report_started hours from now, whose row shows the
    # object SSE-S3, written at row_written hours from now
    location = put_inventory(
        audited,
        BUCKET,
        [(KEY, "SSE-S3")],
        created_ms=_ms(_at(report_started)),
        last_modified=_iso(_at(row_written)),
    )
    audited.env_set(AUDIT_INVENTORY=location)
    run_audit(audited)
    # Then the finding is closed (PASSED, RESOLVED, ARCHIVED, saying which report) only when certain
    (after,) = SecurityHubFindings.findings(ACCOUNT, REGION)
    assert after["Id"] == opened["Id"]
    if closed:
        assert (after["Workflow"]["Status"], after["RecordState"], after["Compliance"]["Status"]) == (
            "RESOLVED",
            "ARCHIVED",
            "PASSED",
        )
        assert after["ProductFields"]["CustomLabelsGuard/closed"].startswith("the S3 Inventory report of ")
        assert openfindings.indexed(TABLE, ACCOUNT, REGION, BUCKET) == frozenset()
    else:
        assert (after["Workflow"]["Status"], after["RecordState"]) == ("NEW", "ACTIVE")
        assert len(openfindings.indexed(TABLE, ACCOUNT, REGION, BUCKET)) == 1


def test_settled_rows_cost_one_read_per_bucket_not_one_per_row(audited: World, calls: Boundary) -> None:
    # Given one open finding in the bucket and a report of 500 other compliant objects
    _open_finding(audited)
    rows = [(f"images/ok-{i}.jpg", "SSE-S3") for i in range(500)]
    audited.env_set(AUDIT_INVENTORY=put_inventory(audited, BUCKET, rows, created_ms=_ms(_at(1))))
    calls.log.clear()
    # When the audit settles them from the report
    run_audit(audited)
    # Then no row needed a read of open findings: the bucket's index was read once
    assert calls.log.count("BatchGetItem") == 0
    index_reads = calls.log.count("GetItem")
    assert index_reads < 20  # the run's own records; not 500


def test_the_index_of_open_objects_is_bounded_per_bucket(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a bucket whose index is full
    del world
    monkeypatch.setattr(openfindings, "MAX_INDEXED", 3)
    names = [f"s3://{BUCKET}/k{i}" for i in range(3)]
    assert openfindings.index(TABLE, ACCOUNT, REGION, names) == 0
    # When more objects get open findings
    refused = openfindings.index(TABLE, ACCOUNT, REGION, [f"s3://{BUCKET}/k9"])
    # Then they are refused (counted by the caller), the index keeps its bound, and other buckets are unaffected
    assert refused == 1
    assert len(openfindings.indexed(TABLE, ACCOUNT, REGION, BUCKET)) == 3
    assert openfindings.index(TABLE, ACCOUNT, REGION, ["s3://other-bucket/k"]) == 0
    # and a name leaves the index when it is unindexed, making room again
    openfindings.unindex(TABLE, ACCOUNT, REGION, names[:1])
    assert openfindings.index(TABLE, ACCOUNT, REGION, [f"s3://{BUCKET}/k9"]) == 0
