"""Security Hub findings closed when the guard later sees their condition gone (docs/architecture.md
§5a): the bounded record of open findings (clguard.state.openfindings), a compliant re-upload, a
deleted object; never GetFindings."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting import asff
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.state import openfindings
from functions.verify_object_encryption import app
from localaws.doubles import SecurityHubFindings
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, BUCKET, REGION, TABLE, LambdaContext, World


def _hub() -> None:
    boto3.client("securityhub", region_name=REGION).enable_security_hub()


def _hub_findings() -> list[dict[str, Any]]:
    return SecurityHubFindings.findings(ACCOUNT, REGION)


def _lifecycle(finding: dict[str, Any]) -> tuple[str, str, str]:
    return finding["Workflow"]["Status"], finding["RecordState"], finding["Compliance"]["Status"]


def _verify(world: World, key: str, event_id: str) -> None:
    result = app.lambda_handler(sqs_event(world.object_created(key, event_id=event_id)), LambdaContext())
    assert result == {"batchItemFailures": []}


def _open_legacy_object(world: World, key: str) -> dict[str, Any]:
    world.env_set(SECURITY_HUB="on", REMEDIATION_MODE="report")
    world.put_legacy(key)
    _verify(world, key, "evt-open")
    (finding,) = _hub_findings()
    assert _lifecycle(finding) == ("NEW", "ACTIVE", "FAILED")
    return finding


def _record(key: str) -> list[dict[str, Any]]:
    return openfindings.open_findings(TABLE, ACCOUNT, REGION, f"s3://{BUCKET}/{key}")


def test_a_compliant_re_upload_closes_the_open_finding(world: World) -> None:
    # Given an unencrypted object reported (report mode) as an open Security Hub finding
    _hub()
    opened = _open_legacy_object(world, "images/a.jpg")
    assert [d["Id"] for d in _record("images/a.jpg")] == [opened["Id"]]
    # When the object is uploaded again, encrypted, and the guard verifies the new upload
    world.put("images/a.jpg", ServerSideEncryption="AES256")
    _verify(world, "images/a.jpg", "evt-fixed")
    # Then the same finding (not a new one) is PASSED, ARCHIVED and RESOLVED, and no longer recorded open
    (closed,) = _hub_findings()
    assert closed["Id"] == opened["Id"]
    assert _lifecycle(closed) == ("RESOLVED", "ARCHIVED", "PASSED")
    assert closed["ProductFields"]["CustomLabelsGuard/closed"] == "the object was found compliant"
    assert asff.problems(closed) == []
    assert _record("images/a.jpg") == []


def test_a_deleted_object_closes_the_open_finding(world: World) -> None:
    # Given an open finding on an object
    _hub()
    opened = _open_legacy_object(world, "images/b.jpg")
    # When the object is deleted and an event for it is verified (HeadObject 404)
    world.s3.delete_object(Bucket=BUCKET, Key="images/b.jpg")
    _verify(world, "images/b.jpg", "evt-deleted")
    # Then its finding is archived, not left ACTIVE forever
    (closed,) = _hub_findings()
    assert closed["Id"] == opened["Id"]
    assert _lifecycle(closed) == ("RESOLVED", "ARCHIVED", "PASSED")
    assert closed["ProductFields"]["CustomLabelsGuard/closed"] == "the object was deleted"
    assert _record("images/b.jpg") == []


def test_a_compliant_object_with_no_open_finding_imports_nothing(world: World, calls: Boundary) -> None:
    # Given Security Hub on and a compliant object never reported
    _hub()
    world.env_set(SECURITY_HUB="on")
    world.put("images/c.jpg", ServerSideEncryption="AES256")
    # When it is verified
    _verify(world, "images/c.jpg", "evt-c")
    # Then nothing goes to Security Hub (one state read for the batch, no import)
    assert calls.log.count("BatchImportFindings") == 0
    assert calls.log.count("BatchGetItem") == 1
    assert _hub_findings() == []


def test_security_hub_off_reads_no_record_for_compliant_objects(world: World, calls: Boundary) -> None:
    # Given SECURITY_HUB off (the default) and a compliant object
    world.put("images/d.jpg", ServerSideEncryption="AES256")
    # When it is verified
    before = calls.log.count("GetItem")
    _verify(world, "images/d.jpg", "evt-d")
    # Then the compliant path costs no read of open findings
    assert calls.log.count("GetItem") == before


def _document(i: int) -> dict[str, Any]:
    finding = Finding(
        finding_type=FindingType.OBJECT_UNENCRYPTED,
        outcome=Outcome.REPORTED,
        resource=S3ObjectRef(BUCKET, "k", f"v{i}"),
        detail="x" * 100,
        source_event_id=f"evt-{i}",
        account=ACCOUNT,
        region=REGION,
    )
    return asff.asff(finding, f"2026-12-07T00:00:{i % 60:02}.{i:06}Z")


def test_the_record_of_open_findings_is_bounded(world: World) -> None:
    # Given more open findings on one resource than an item keeps
    del world
    for i in range(openfindings.MAX_PER_RESOURCE + 5):
        assert openfindings.remember(TABLE, ACCOUNT, REGION, f"s3://{BUCKET}/k", _document(i))
    # Then the item keeps MAX_PER_RESOURCE of them (the newest), carries a TTL of about 90 days and
    # stays under DynamoDB's 400 KB item limit
    kept = openfindings.open_findings(TABLE, ACCOUNT, REGION, f"s3://{BUCKET}/k")
    assert len(kept) == openfindings.MAX_PER_RESOURCE
    assert _document(0)["Id"] not in {d["Id"] for d in kept}
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE, Key={"id": {"S": openfindings.item_id(ACCOUNT, REGION, f"s3://{BUCKET}/k")}}
    )["Item"]
    ttl = int(item["expiration"]["N"]) - time.time()
    assert 89 * 24 * 3600 < ttl <= openfindings.TTL_SECONDS
    assert openfindings.MAX_PER_RESOURCE * openfindings.DOC_BYTES < 400_000
    assert len(json.dumps(item).encode()) < 400_000
    # and a document over DOC_BYTES is not kept
    big = _document(1)
    big["ProductFields"] = {**big["ProductFields"], "CustomLabelsGuard/x": "x" * openfindings.DOC_BYTES}
    assert not openfindings.remember(TABLE, ACCOUNT, REGION, f"s3://{BUCKET}/big", big)
    assert openfindings.open_findings(TABLE, ACCOUNT, REGION, f"s3://{BUCKET}/big") == []


def test_forgetting_on_a_resource_never_recorded_writes_no_item(world: World) -> None:
    del world
    openfindings.forget(TABLE, ACCOUNT, REGION, "s3://b/none", ["x"])
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE, Key={"id": {"S": openfindings.item_id(ACCOUNT, REGION, "s3://b/none")}}
    )
    assert "Item" not in item
