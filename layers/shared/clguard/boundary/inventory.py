"""S3 Inventory reports: find a bucket's latest report and stream its rows (CSV).

Layout S3 writes (Amazon S3 User Guide, "Inventory"): under the destination
``<prefix>/<source-bucket>/<configuration-id>/`` one folder per delivery
(``YYYY-MM-DDTHH-MMZ/``) holding ``manifest.json``, whose ``fileSchema`` names the columns
(``Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag,
EncryptionStatus, …``) and whose ``files`` are gzipped CSV data files. Keys in the CSV are
URL-encoded form-style: a space as ``+``, a ``+`` as ``%2B``. Only CSV is read; an ORC or
Parquet report is "missing" (the audit lists instead).

A report is used only when the source bucket's configuration that delivers it is enabled, CSV and
covers the whole bucket (no prefix ``Filter``): a filtered report lists part of the bucket, and an
audit that read it would never see the rest. When no such configuration delivered a report (or the
configurations cannot be read), the inventory is "missing" and the audit lists the bucket instead.
"""

from __future__ import annotations

import codecs
import csv
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus

from clguard.adapters import s3
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import Refused, RetryableError, Throttled

DATE_FOLDER_LENGTH: Final = len("2026-11-30T01-00Z/")


class InventoryMissing(Exception):
    """No usable inventory report for the bucket (none delivered, unreadable, not CSV)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    bucket: str  # destination bucket
    key: str  # manifest.json key
    columns: tuple[str, ...]
    files: tuple[str, ...]
    created: str


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    etag: str
    last_modified: str
    encryption: str  # NOT-SSE, SSE-S3, SSE-KMS, DSSE-KMS, SSE-C; "" when the report lacks the column


def _parse_s3_url(url: str) -> tuple[str, str]:
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def whole_bucket_configurations(source_bucket: str) -> set[str]:
    """The ids of ``source_bucket``'s inventory configurations whose reports the audit may use:
    enabled, CSV, and not limited to a prefix."""
    return {
        c.id
        for c in s3.inventory_configurations(source_bucket)
        if c.enabled and c.format == "CSV" and not c.filter_prefix
    }


def latest_manifest(destination: str, source_bucket: str) -> Manifest:
    """The newest CSV report delivered for ``source_bucket`` under ``destination`` (s3://bucket/prefix)."""
    dest_bucket, prefix = _parse_s3_url(destination)
    root = f"{prefix}/{source_bucket}/" if prefix else f"{source_bucket}/"
    try:
        whole = whole_bucket_configurations(source_bucket)
        if not whole:
            raise InventoryMissing(f"{source_bucket} has no enabled CSV inventory of the whole bucket")
        configs = [
            p for p in s3.list_page(dest_bucket, prefix=root, delimiter="/").prefixes if p[len(root) : -1] in whole
        ]
        candidates: list[str] = []
        for config in configs:
            dates = [p for p in s3.list_page(dest_bucket, prefix=config, delimiter="/").prefixes if p[-1:] == "/"]
            dated = [p for p in dates if len(p) - len(config) == DATE_FOLDER_LENGTH]
            if dated:
                candidates.append(max(dated, key=lambda p: p[len(config) :]))
        if not candidates:
            raise InventoryMissing(f"no inventory report under s3://{dest_bucket}/{root}")
        folder = max(candidates, key=lambda p: p[-DATE_FOLDER_LENGTH:])
        raw = s3.get_bytes(dest_bucket, folder + "manifest.json")
    except Throttled as error:
        # Retried by the audit itself (it continues in a new invocation), like a throttled listing.
        raise RetryableError(f"transient AWS error: {error}") from error
    except Refused as error:
        raise InventoryMissing(f"inventory of {source_bucket} unreadable: {error}") from error
    try:
        document = json.loads(raw)
        if str(document.get("fileFormat", "")).upper() != "CSV":
            raise InventoryMissing(f"inventory of {source_bucket} is {document.get('fileFormat')}, only CSV is read")
        columns = tuple(c.strip() for c in str(document["fileSchema"]).split(","))
        files = tuple(str(f["key"]) for f in document["files"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InventoryMissing(f"inventory manifest of {source_bucket} is invalid: {error!r}") from error
    if "Key" not in columns:
        raise InventoryMissing(f"inventory of {source_bucket} has no Key column")
    return Manifest(dest_bucket, folder + "manifest.json", columns, files, str(document.get("creationTimestamp", "")))


def _lines(bucket: str, key: str) -> Iterator[str]:
    """The data file's text lines, decompressed as they stream (bounded memory)."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if key.endswith(".gz") else None
    decode = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    for chunk in s3.iter_chunks(S3ObjectRef(bucket, key)):
        data = inflate.decompress(chunk) if inflate else chunk
        pending += decode.decode(data)
        *complete, pending = pending.split("\n")
        yield from complete
    tail = inflate.flush() if inflate else b""
    pending += decode.decode(tail, final=True)
    if pending:
        yield pending


def rows(manifest: Manifest, *, start_file: int = 0, skip_rows: int = 0) -> Iterator[tuple[int, int, Row]]:
    """(file index, row index, row) of the current objects (old versions and delete markers skipped)."""
    index = {name: i for i, name in enumerate(manifest.columns)}

    def column(values: list[str], name: str) -> str:
        i = index.get(name)
        return values[i] if i is not None and i < len(values) else ""

    for file_index in range(start_file, len(manifest.files)):
        lines = _lines(manifest.bucket, manifest.files[file_index])
        for row_index, values in enumerate(csv.reader(lines)):
            if file_index == start_file and row_index < skip_rows:
                continue
            if column(values, "IsLatest").lower() == "false" or column(values, "IsDeleteMarker").lower() == "true":
                continue
            key = unquote_plus(column(values, "Key"))  # S3 writes a space as "+", a "+" as "%2B"
            if not key:
                continue
            yield (
                file_index,
                row_index,
                Row(
                    key, column(values, "ETag"), column(values, "LastModifiedDate"), column(values, "EncryptionStatus")
                ),
            )
