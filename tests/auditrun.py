"""Run the audit in tests: the audit function, then the verify function on every message it queued."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from clguard.usecases import auditrecord
from functions.audit import app as audit_app
from functions.verify_object_encryption import app as verify_app
from tests.eventsamples import load_event, sqs_event
from tests.world import LambdaContext, World

REPORTS = "custom-labels-guard-reports"


def scheduled_event() -> dict[str, Any]:
    """The sample scheduled event as one more firing of the schedule (each firing has its own id)."""
    event = load_event("scheduled_audit")
    event["id"] = str(uuid.uuid4())
    return event


def run_audit(world: World, event: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    """One audit invocation, then the verify function on every message it queued (until empty)."""
    summary = audit_app.lambda_handler(
        scheduled_event() if event is None else event, LambdaContext(function_name="audit", **context)
    )
    drain_to_verify(world)
    return summary


def drain_to_verify(world: World) -> int:
    handled = 0
    while True:
        bodies = [m["Body"] for m in world.drain_queue()]
        if not bodies:
            return handled
        for body in bodies:
            response = verify_app.lambda_handler(sqs_event(body), LambdaContext())
            assert response == {"batchItemFailures": []}
            handled += 1


def summaries(world: World) -> list[dict[str, Any]]:
    return [
        json.loads(p.structure["default"])
        for p in world.published()
        if p.attributes.get("message_kind", {}).get("Value") == auditrecord.SUMMARY_KIND
    ]


def findings(world: World) -> list[dict[str, Any]]:
    return [p.finding for p in world.published() if "message_kind" not in p.attributes]


def report(world: World, summary: dict[str, Any]) -> dict[str, Any]:
    url = summary["report"]["json"].removeprefix("s3://")
    bucket, _, key = url.partition("/")
    value: dict[str, Any] = json.loads(world.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return value


INVENTORY_BUCKET = "custom-labels-inventory"
INVENTORY_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, EncryptionStatus"


def put_inventory_configuration(
    world: World, source_bucket: str, *, config_id: str = "daily", prefix: str | None = None, fmt: str = "CSV"
) -> None:
    """The source bucket's inventory configuration that delivers the report ``put_inventory`` writes
    (``prefix``: a Filter limiting it to part of the bucket)."""
    configuration: dict[str, Any] = {
        "Id": config_id,
        "IsEnabled": True,
        "IncludedObjectVersions": "Current",
        "Schedule": {"Frequency": "Daily"},
        "OptionalFields": ["Size", "LastModifiedDate", "ETag", "EncryptionStatus"],
        "Destination": {
            "S3BucketDestination": {
                "Bucket": f"arn:aws:s3:::{INVENTORY_BUCKET}",
                "Prefix": "inv",
                "Format": fmt,
            }
        },
    }
    if prefix is not None:
        configuration["Filter"] = {"Prefix": prefix}
    world.s3.put_bucket_inventory_configuration(
        Bucket=source_bucket, Id=config_id, InventoryConfiguration=configuration
    )


def put_inventory(
    world: World,
    source_bucket: str,
    rows: list[tuple[str, str]],
    *,
    stamp: str = "2026-11-30T01-00Z",
    encode_key: Callable[[str], str] = quote,
    created_ms: str = "1764464400000",
    last_modified: str = "2026-11-29T10:00:00.000Z",
) -> str:
    """An S3 Inventory delivery as S3 writes it (gzipped CSV data file, manifest.json), for
    ``rows`` of (key, EncryptionStatus); returns the AUDIT_INVENTORY location. ``encode_key``:
    how the Key column is URL-encoded (S3 writes a space as ``+``: ``urllib.parse.quote_plus``);
    ``created_ms`` the manifest's creationTimestamp, ``last_modified`` every row's LastModifiedDate."""
    world.s3.create_bucket(Bucket=INVENTORY_BUCKET)
    put_inventory_configuration(world, source_bucket)
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for key, status in rows:
        writer.writerow([source_bucket, encode_key(key), "", "true", "false", "5", last_modified, "e1", status])
    root = f"inv/{source_bucket}/daily"
    data_key = f"{root}/data/{stamp}.csv.gz"
    world.s3.put_object(Bucket=INVENTORY_BUCKET, Key=data_key, Body=gzip.compress(text.getvalue().encode()))
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{INVENTORY_BUCKET}",
        "version": "2016-11-30",
        "creationTimestamp": created_ms,
        "fileFormat": "CSV",
        "fileSchema": INVENTORY_SCHEMA,
        "files": [{"key": data_key, "size": 1, "MD5checksum": "0"}],
    }
    world.s3.put_object(
        Bucket=INVENTORY_BUCKET, Key=f"{root}/{stamp}/manifest.json", Body=json.dumps(manifest).encode()
    )
    return f"s3://{INVENTORY_BUCKET}/inv"
