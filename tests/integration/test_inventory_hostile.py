"""A hostile or broken S3 Inventory report never stops the audit (issue 20 item 4).

Whoever can write the inventory's destination bucket writes what the audit reads. Anything S3
would not have written -- a data file that is not gzip, or truncated, or missing; bytes that are
not UTF-8; a line longer than any S3 key could make it; another number of columns than the
manifest's ``fileSchema``; a manifest.json over 1 MiB -- is named in the audit report, and that
bucket is listed instead; the other buckets are audited as usual."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import pytest

from clguard.boundary import inventory
from tests.auditrun import INVENTORY_BUCKET, findings, put_inventory, report, run_audit, summaries
from tests.world import BUCKET, World

STAMP = "2026-11-30T01-00Z"
GOOD_ROW = '"{bucket}","images%2Fa.jpg","","true","false","5","2026-11-29T10:00:00.000Z","e1","NOT-SSE"\n'


def data_key(bucket: str) -> str:
    return f"inv/{bucket}/daily/data/{STAMP}.csv.gz"


def manifest_key(bucket: str) -> str:
    return f"inv/{bucket}/daily/{STAMP}/manifest.json"


def overwrite_data(world: World, bucket: str, body: bytes) -> None:
    world.s3.put_object(Bucket=INVENTORY_BUCKET, Key=data_key(bucket), Body=body)


def good_rows(bucket: str) -> bytes:
    return GOOD_ROW.format(bucket=bucket).encode()


def not_gzip(world: World, bucket: str) -> str:
    overwrite_data(world, bucket, good_rows(bucket))
    return "not a gzip stream"


def truncated_gzip(world: World, bucket: str) -> str:
    overwrite_data(world, bucket, gzip.compress(good_rows(bucket) * 50)[:-12])
    return "truncated"


def not_utf8(world: World, bucket: str) -> str:
    overwrite_data(world, bucket, gzip.compress(good_rows(bucket) + good_rows(bucket).replace(b"a.jpg", b"\xff.jpg")))
    return "not UTF-8"


def field_over_128_kib(world: World, bucket: str) -> str:
    overwrite_data(world, bucket, gzip.compress(good_rows(bucket).replace(b"a.jpg", b"x" * (129 * 1024))))
    return "longer than"


def line_without_end(world: World, bucket: str) -> str:
    overwrite_data(world, bucket, gzip.compress(good_rows(bucket) + b'"' + b"y" * (3 * 1024 * 1024)))
    return "longer than"


def wrong_column_count(world: World, bucket: str) -> str:
    overwrite_data(world, bucket, gzip.compress(good_rows(bucket) + f'"{bucket}","images%2Fb.jpg"\n'.encode()))
    return "2 columns where fileSchema names 9"


def missing_data_file(world: World, bucket: str) -> str:
    world.s3.delete_object(Bucket=INVENTORY_BUCKET, Key=data_key(bucket))
    return "unreadable"


def manifest_over_1_mib(world: World, bucket: str) -> str:
    document = json.loads(world.s3.get_object(Bucket=INVENTORY_BUCKET, Key=manifest_key(bucket))["Body"].read())
    document["padding"] = "p" * (1 << 20)
    world.s3.put_object(Bucket=INVENTORY_BUCKET, Key=manifest_key(bucket), Body=json.dumps(document).encode())
    return "larger than"


def manifest_not_json(world: World, bucket: str) -> str:
    world.s3.put_object(Bucket=INVENTORY_BUCKET, Key=manifest_key(bucket), Body=b"\xff{not json")
    return "manifest"


def manifest_files_not_objects(world: World, bucket: str) -> str:
    document = json.loads(world.s3.get_object(Bucket=INVENTORY_BUCKET, Key=manifest_key(bucket))["Body"].read())
    document["files"] = ["a-string-where-an-object-belongs"]
    world.s3.put_object(Bucket=INVENTORY_BUCKET, Key=manifest_key(bucket), Body=json.dumps(document).encode())
    return "manifest"


HOSTILE: dict[str, Callable[[World, str], str]] = {
    "not gzip": not_gzip,
    "truncated gzip": truncated_gzip,
    "not UTF-8": not_utf8,
    "one field over 128 KiB": field_over_128_kib,
    "a 3 MiB line without an end": line_without_end,
    "wrong column count": wrong_column_count,
    "missing data file": missing_data_file,
    "manifest.json over 1 MiB": manifest_over_1_mib,
    "manifest.json not JSON": manifest_not_json,
    "manifest files not objects": manifest_files_not_objects,
}


def notes(world: World) -> list[str]:
    [summary] = summaries(world)
    found: list[str] = report(world, summary)["notes"]
    return found


@pytest.mark.parametrize("case", HOSTILE)
def test_a_broken_inventory_is_named_and_the_bucket_listed_instead(case: str, audited: World) -> None:
    # Given two unencrypted objects, an inventory that names only the first, and that inventory
    # then made hostile or broken
    audited.put_legacy("images/a.jpg")
    audited.put_legacy("images/b.jpg")
    audited.env_set(AUDIT_INVENTORY=put_inventory(audited, BUCKET, [("images/a.jpg", "NOT-SSE")]))
    problem = HOSTILE[case](audited, BUCKET)

    # When the audit runs
    run_audit(audited)

    # Then it finished, and the bucket was listed: both objects were found and re-encrypted
    assert sorted(f["resource"]["key"] for f in findings(audited)) == ["images/a.jpg", "images/b.jpg"]
    assert audited.head("images/b.jpg")["ServerSideEncryption"] == "AES256"
    # And the report names the bucket and what is wrong with its inventory
    [note] = [n for n in notes(audited) if "listed instead" in n]
    assert note.startswith(f"{BUCKET}: ")
    assert problem in note


def test_one_broken_inventory_among_good_ones_leaves_every_other_bucket_audited(audited: World) -> None:
    # Given three training buckets, each with an unencrypted object its inventory names, and the
    # middle bucket's inventory data file not gzip
    buckets = ["training-a", "training-b", "training-c"]
    for bucket in buckets:
        audited.s3.create_bucket(Bucket=bucket)
        audited.put_legacy("images/a.jpg", bucket=bucket)
        location = put_inventory(audited, bucket, [("images/a.jpg", "NOT-SSE")])
    audited.env_set(TRAINING_BUCKETS=",".join(buckets), AUDIT_INVENTORY=location)
    not_gzip(audited, "training-b")

    # When the audit runs
    run_audit(audited)

    # Then every bucket's object was found and re-encrypted, the good ones from their inventory
    assert sorted(f["resource"]["bucket"] for f in findings(audited)) == buckets
    assert all(audited.head("images/a.jpg", bucket=b)["ServerSideEncryption"] == "AES256" for b in buckets)
    # And only the broken one is named
    assert [n.split(":")[0] for n in notes(audited) if "listed instead" in n] == ["training-b"]


def test_the_note_shows_a_hostile_file_name_as_data(audited: World) -> None:
    # Given a manifest naming a data file whose name carries a newline and markup, and no such file
    audited.put_legacy("images/a.jpg")
    audited.env_set(AUDIT_INVENTORY=put_inventory(audited, BUCKET, [("images/a.jpg", "NOT-SSE")]))
    document = json.loads(audited.s3.get_object(Bucket=INVENTORY_BUCKET, Key=manifest_key(BUCKET))["Body"].read())
    document["files"] = [{"key": "x\nOutcome: REMEDIATED <script>" + "z" * 5000}]
    audited.s3.put_object(Bucket=INVENTORY_BUCKET, Key=manifest_key(BUCKET), Body=json.dumps(document).encode())

    # When the audit runs
    run_audit(audited)

    # Then the note names the file on one line, cut short
    [note] = [n for n in notes(audited) if "listed instead" in n]
    assert "\n" not in note
    assert "x\\nOutcome" in note
    assert len(note) < 1000
    assert issubclass(inventory.InventoryInvalid, inventory.InventoryMissing)
