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

A report is input from outside like any other (whoever can write the destination bucket writes
it): read in bounded memory whatever it holds, and anything S3 would not have written -- a
manifest.json over 1 MiB or not the documented JSON, a data file that is missing, not gzip or
truncated, bytes that are not UTF-8, a line over ``MAX_LINE_BYTES`` (no S3 key comes close),
a key over S3's 1,024 bytes, a row with another number of columns than ``fileSchema`` names --
raises InventoryInvalid naming the file and line; the audit lists that bucket instead
(docs/architecture.md §8). Memory: ``INFLATE_STEP`` decompressed bytes plus one unfinished line
at a time, however large (or however compressible) the file.
"""

from __future__ import annotations

import csv
import itertools
import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple
from urllib.parse import unquote

from clguard.adapters import s3
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import InvalidCall, Refused, RetryableError, Throttled

DATE_FOLDER_LENGTH: Final = len("2026-11-30T01-00Z/")
MAX_MANIFEST_BYTES: Final = 1 << 20  # a manifest.json lists data files only: far below this
MAX_LINE_BYTES: Final = 64 * 1024  # one CSV row; csv's own field limit (128 KiB) is never reached
GZIP: Final = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
INFLATE_STEP: Final = 64 * 1024  # decompressed bytes handled at a time (a gzip bomb inflates in steps)
MAX_KEY_BYTES: Final = 1024  # the longest key S3 allows (UTF-8)
# "true"/"false" in any case, as sets: one lookup per row instead of a lower() and a compare
_TRUE: Final = frozenset(map("".join, itertools.product(*zip("true", "TRUE", strict=True))))
_FALSE: Final = frozenset(map("".join, itertools.product(*zip("false", "FALSE", strict=True))))


class InventoryMissing(Exception):
    """No usable inventory report for the bucket (none delivered, unreadable, not CSV)."""


class InventoryInvalid(InventoryMissing):
    """A delivered report that is not what S3 writes (see the module docstring): named, not used."""


@dataclass(frozen=True, slots=True)
class Manifest:
    bucket: str  # destination bucket
    key: str  # manifest.json key
    columns: tuple[str, ...]
    files: tuple[str, ...]
    created: str


class Row(NamedTuple):  # a NamedTuple: built once per row of reports of a billion rows
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
    """The newest CSV report delivered for ``source_bucket`` under ``destination`` (s3://bucket/prefix).

    Two steps: ``_newest_folder`` finds the newest dated folder of a whole-bucket CSV configuration
    (S3 errors mapped to the audit's taxonomy), ``_parsed_manifest`` reads its manifest.json.
    """
    dest_bucket, prefix = _parse_s3_url(destination)
    root = f"{prefix}/{source_bucket}/" if prefix else f"{source_bucket}/"
    try:
        folder = _newest_folder(dest_bucket, root, source_bucket)
        raw = s3.get_bytes(dest_bucket, folder + "manifest.json", limit=MAX_MANIFEST_BYTES)
    except ValueError as error:  # over the limit
        raise InventoryInvalid(f"inventory manifest of {source_bucket} is invalid: {error}") from error
    except Throttled as error:
        # Retried by the audit itself (it continues in a new invocation), like a throttled listing.
        raise RetryableError(f"transient AWS error: {error}") from error
    except Refused as error:
        raise InventoryMissing(f"inventory of {source_bucket} unreadable: {error}") from error
    columns, files, created = _parsed_manifest(raw, source_bucket)
    return Manifest(dest_bucket, folder + "manifest.json", columns, files, created)


def _newest_folder(dest_bucket: str, root: str, source_bucket: str) -> str:
    """The newest ``YYYY-MM-DDTHH-MMZ/`` folder under any enabled whole-bucket CSV configuration."""
    whole = whole_bucket_configurations(source_bucket)
    if not whole:
        raise InventoryMissing(f"{source_bucket} has no enabled CSV inventory of the whole bucket")
    configs = [p for p in s3.list_page(dest_bucket, prefix=root, delimiter="/").prefixes if p[len(root) : -1] in whole]
    candidates: list[str] = []
    for config in configs:
        dates = [p for p in s3.list_page(dest_bucket, prefix=config, delimiter="/").prefixes if p[-1:] == "/"]
        dated = [p for p in dates if len(p) - len(config) == DATE_FOLDER_LENGTH]
        if dated:
            candidates.append(max(dated, key=lambda p: p[len(config) :]))
    if not candidates:
        raise InventoryMissing(f"no inventory report under s3://{dest_bucket}/{root}")
    return max(candidates, key=lambda p: p[-DATE_FOLDER_LENGTH:])


def _parsed_manifest(raw: bytes, source_bucket: str) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """A manifest.json's columns, data file keys and creation timestamp; CSV only, with a Key column."""
    try:
        document = json.loads(raw)
        if str(document.get("fileFormat", "")).upper() != "CSV":
            raise InventoryMissing(
                f"inventory of {source_bucket} is {str(document.get('fileFormat'))[:40]!r}, only CSV is read"
            )
        columns = tuple(c.strip() for c in str(document["fileSchema"]).split(","))
        files = tuple(_file_key(f) for f in document["files"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InventoryInvalid(f"inventory manifest of {source_bucket} is invalid: {str(error)[:200]!r}") from error
    if "Key" not in columns:
        raise InventoryInvalid(f"inventory of {source_bucket} has no Key column")
    return columns, files, str(document.get("creationTimestamp", ""))


def _file_key(entry: object) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
        raise TypeError("every entry of files needs a key")
    return str(entry["key"])


def _inflated(bucket: str, key: str) -> Iterator[bytes]:
    """The data file's bytes, gunzipped (every member) as they stream, at most ``INFLATE_STEP`` at a
    time. A ``.gz``-less name is read as it is."""
    chunks = s3.iter_chunks(S3ObjectRef(bucket, key), chunk_size=INFLATE_STEP)
    if not key.endswith(".gz"):
        yield from chunks
        return
    inflate = zlib.decompressobj(GZIP)
    for chunk in chunks:
        data = chunk
        while True:
            if inflate.eof and data:  # a next gzip member (gzip allows several, concatenated)
                inflate = zlib.decompressobj(GZIP)
            out = inflate.decompress(data, INFLATE_STEP)
            if out:
                yield out
            data = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
            if not data and (inflate.eof or len(out) < INFLATE_STEP):
                break
    if not inflate.eof:
        raise InventoryInvalid("the gzip stream is truncated")


def _line_blocks(bucket: str, key: str) -> Iterator[list[str]]:
    """The data file's lines, a block at a time, each line's length checked before it is decoded."""
    pending = b""
    for block in _inflated(bucket, key):
        data = pending + block if pending else block
        cut = data.rfind(b"\n")
        pending = data[cut + 1 :]
        if len(pending) > MAX_LINE_BYTES:
            raise InventoryInvalid(f"a line is longer than {MAX_LINE_BYTES} bytes")
        if cut >= 0:
            yield _decoded(data[:cut])
    if pending:
        yield _decoded(pending)


def _decoded(data: bytes) -> list[str]:
    """The lines of a block, with the two form-style escapes nearly every key has ("+" for a space,
    ``%2F`` for each folder) undone on the whole block at once: several times faster than per key,
    and the same as ``unquote_plus`` of the Key column (the rest of its escapes are undone per key).
    No other column the reader uses holds either (ETag is hex, LastModifiedDate ISO 8601 in UTC,
    the others fixed words) and neither is special to CSV."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InventoryInvalid(f"bytes that are not UTF-8 ({error.reason})") from None
    lines = text.replace("+", " ").replace("%2F", "/").split("\n")
    if max(map(len, lines)) > MAX_LINE_BYTES:  # characters: at most as many as bytes
        raise InventoryInvalid(f"a line is longer than {MAX_LINE_BYTES} bytes")
    return lines


def rows(manifest: Manifest, *, start_file: int = 0, skip_rows: int = 0) -> Iterator[tuple[int, int, Row]]:
    """(file index, row index, row) of the current objects (old versions and delete markers skipped).
    Raises InventoryInvalid (see the module docstring), RetryableError when S3 is throttling."""
    for file_index in range(start_file, len(manifest.files)):
        at = _Position()
        try:
            yield from _file_rows(manifest, file_index, skip_rows if file_index == start_file else 0, at)
        except InventoryInvalid as invalid:
            raise InventoryInvalid(f"{_where(manifest, file_index, at)}: {invalid}") from None
        except zlib.error as error:
            raise InventoryInvalid(f"{_where(manifest, file_index, at)}: not a gzip stream ({error})") from None
        except csv.Error as error:
            raise InventoryInvalid(f"{_where(manifest, file_index, at)}: not CSV ({error})") from None
        except Throttled as error:
            raise RetryableError(f"transient AWS error reading the inventory: {error}") from error
        except (Refused, InvalidCall) as error:
            raise InventoryInvalid(f"{_where(manifest, file_index, at)}: unreadable ({error})") from None


@dataclass(slots=True)
class _Position:
    row: int = -1


class _Layout:
    """Where each column of a data file is, and the one per-row check, ``current_row``: the row of
    a current, live object, or None for a row that holds none (a noncurrent version, a delete
    marker, an empty key). A column the configuration does not deliver reads as "" (an index one
    past the row, which ``current_row`` fills)."""

    __slots__ = ("_deleted", "_fields", "_key", "_latest", "_pad", "columns")

    def __init__(self, columns: Sequence[str]) -> None:
        index = {name: i for i, name in enumerate(columns)}
        self.columns = len(columns)
        self._key = index["Key"]
        self._latest = index.get("IsLatest")
        self._deleted = index.get("IsDeleteMarker")
        self._fields = tuple(index.get(name, self.columns) for name in ("ETag", "LastModifiedDate", "EncryptionStatus"))
        self._pad = self.columns in self._fields

    def current_row(self, values: list[str]) -> Row | None:
        if self._latest is not None and values[self._latest] in _FALSE:
            return None  # a noncurrent version
        if self._deleted is not None and values[self._deleted] in _TRUE:
            return None  # a delete marker
        key = values[self._key]
        if "%" in key:
            key = unquote(key)  # "+" and "%2F" are undone already (_decoded)
        if not key:
            return None
        if self._pad:
            values.append("")
        etag, modified, encryption = self._fields
        return Row(key, values[etag], values[modified], values[encryption])


def _file_rows(manifest: Manifest, file_index: int, skip: int, at: _Position) -> Iterator[tuple[int, int, Row]]:
    layout = _Layout(manifest.columns)
    row_index = -1
    for lines in _line_blocks(manifest.bucket, manifest.files[file_index]):
        for values in csv.reader(lines):
            row_index += 1
            if len(values) != layout.columns:
                at.row = row_index - 1
                if values:  # an empty line holds no object
                    raise InventoryInvalid(f"{len(values)} columns where fileSchema names {layout.columns}")
                continue
            if row_index < skip:
                continue
            row = layout.current_row(values)
            if row is None:
                continue
            key = row.key
            if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                at.row = row_index - 1
                raise InventoryInvalid(f"a key longer than the {MAX_KEY_BYTES} bytes S3 allows")
            at.row = row_index
            yield file_index, row_index, row
    at.row = row_index


def _where(manifest: Manifest, file_index: int, at: _Position) -> str:
    return f"inventory data file {manifest.files[file_index][:300]!r} (after line {at.row + 1})"
