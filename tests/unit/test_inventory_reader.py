"""The S3 Inventory reader, without S3: whatever the chunking of the stream, every row comes out
once and exactly; whatever a data file holds, memory stays bounded (issue 20 item 4, issue 26
item 3)."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import tracemalloc
import zlib
from collections.abc import Iterator
from urllib.parse import quote_plus, unquote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.adapters import s3
from clguard.boundary import inventory
from clguard.boundary.s3ref import S3ObjectRef

COLUMNS = ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag")
DATA = "inv/b/daily/data/x.csv.gz"


def manifest(files: tuple[str, ...] = (DATA,)) -> inventory.Manifest:
    return inventory.Manifest("inventory", "inv/b/daily/m/manifest.json", COLUMNS, files, "0")


def csv_bytes(keys: list[str]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for n, key in enumerate(keys):
        writer.writerow(["b", quote_plus(key), "", "true", "false", "5", "2026-11-29T10:00:00.000Z", f"e{n}"])
    return text.getvalue().encode()


def serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, list[bytes]]) -> None:
    """s3.iter_chunks answers each data file with the given chunks."""

    def iter_chunks(ref: S3ObjectRef, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        del chunk_size
        return iter(files[ref.key])

    monkeypatch.setattr(s3, "iter_chunks", iter_chunks)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


keys = st.lists(st.text(min_size=1, max_size=40).filter(lambda k: "\x00" not in k), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=keys, members=st.integers(1, 3), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_every_row_comes_out_once_whatever_the_chunking(
    keys: list[str], members: int, cuts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the rows of some keys, gzipped in one or more members (gzip allows several), streamed
    # in arbitrary chunks
    body = csv_bytes(keys)
    third = len(body) // members + 1
    parts = [body[i : i + third] for i in range(0, len(body), third)] or [b""]
    data = b"".join(gzip.compress(p) for p in parts)
    with monkeypatch.context() as patch:
        serve(patch, {DATA: split(data, cuts)})

        # When the reader streams it
        found = [(row.key, row.etag) for _, _, row in inventory.rows(manifest())]

    # Then every key comes out once, in order, exactly as written
    assert found == [(key, f"e{n}") for n, key in enumerate(keys)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.text(alphabet="abc/ ", min_size=1, max_size=10), min_size=1, max_size=20), data=st.data())
def test_a_resumed_read_continues_exactly_where_it_stopped(
    keys: list[str], data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a report of two data files, and a position (file, row) some invocation stopped at
    files = {DATA: [gzip.compress(csv_bytes(keys))], DATA + "2": [gzip.compress(csv_bytes(keys))]}
    files = {DATA + ".1.gz": files[DATA], DATA + ".2.gz": files[DATA + "2"]}
    m = manifest(tuple(files))
    every = [(f, r) for f, r, _ in inventory_rows(monkeypatch, files, m)]
    stop = data.draw(st.integers(0, len(every) - 1))
    file_index, row_index = every[stop]

    # When the next invocation resumes from it
    rest = [(f, r) for f, r, _ in inventory_rows(monkeypatch, files, m, start_file=file_index, skip_rows=row_index)]

    # Then it reads exactly the rows from there on
    assert rest == every[stop:]


def inventory_rows(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, list[bytes]], m: inventory.Manifest, **position: int
) -> list[tuple[int, int, inventory.Row]]:
    with monkeypatch.context() as patch:
        serve(patch, files)
        return list(inventory.rows(m, **position))


def peak_reading(monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]) -> tuple[int, str]:
    serve(monkeypatch, {DATA: chunks})
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        try:
            for _ in inventory.rows(manifest()):
                pass
        except inventory.InventoryInvalid as invalid:
            problem = str(invalid)
        else:
            problem = ""
        return tracemalloc.get_traced_memory()[1] - before, problem
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_read_in_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a data file of 200 KiB that inflates to 200 MiB of one line (no newline)
    compress = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"x" * (1 << 20)
    bomb = b"".join(compress.compress(block) for _ in range(200)) + compress.flush()
    assert len(bomb) < 300 * 1024

    # When the reader streams it
    peak, problem = peak_reading(monkeypatch, split(bomb, list(range(0, len(bomb), 64 * 1024))))

    # Then it is named, having held a few MiB at most
    assert "longer than" in problem
    assert peak < 4 * 1024 * 1024


def test_many_short_lines_inflating_far_are_read_in_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a data file whose rows inflate 100-fold to 100 MiB of wrong rows
    compress = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b'"a"\n' * (1 << 18)
    body = b"".join(compress.compress(block) for _ in range(100)) + compress.flush()

    # When the reader streams it
    peak, problem = peak_reading(monkeypatch, [body])

    # Then the first wrong row is named, in bounded memory
    assert "1 columns where fileSchema names 8" in problem
    assert "after line 0" in problem
    assert peak < 4 * 1024 * 1024


def test_a_key_longer_than_s3_allows_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given one row whose key is 300 four-byte characters (1,200 bytes: S3 allows 1,024)
    body = gzip.compress(csv_bytes(["ok.jpg", "\U0001f600" * 300]))

    # When the reader streams it
    _, problem = peak_reading(monkeypatch, [body])

    # Then it is named, after the good first row
    assert f"a key longer than the {inventory.MAX_KEY_BYTES} bytes S3 allows" in problem
    assert "after line 1" in problem


def raw_csv(columns: list[str]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for n, column in enumerate(columns):
        writer.writerow(["b", column, "", "true", "false", "5", "2026-11-29T10:00:00.000Z", f"e{n}"])
    return text.getvalue().encode()


escapes = st.text(alphabet=st.sampled_from(["%", "2", "F", "f", "B", "+", "E", "9", "8", "A", "/", "a", " ", "é"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(columns=st.lists(escapes | st.text().filter(lambda k: "\x00" not in k and "\n" not in k and "\r" not in k)))
def test_the_key_column_is_read_exactly_as_unquote_plus_reads_it(
    columns: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given any text in the Key column (escapes, pluses, broken escapes, non-ASCII)
    with monkeypatch.context() as patch:
        serve(patch, {DATA: [gzip.compress(raw_csv(columns))]})

        # When the reader streams it
        found = [row.key for _, _, row in inventory.rows(manifest())]

    # Then each key is what unquote_plus makes of its column (empty keys hold no object)
    assert found == [unquote_plus(c) for c in columns if unquote_plus(c)]
