"""Streaming a Custom Labels manifest (JSON Lines) in bounded memory."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.boundary import manifest
from clguard.boundary.manifest import (
    EXAMPLES,
    MAX_BYTES,
    MAX_LINE_BYTES,
    ManifestStats,
    parse_source_ref,
    scan,
    split_lines,
)
from clguard.boundary.s3ref import S3ObjectRef


def _line(ref: object, **extra: object) -> bytes:
    return json.dumps({"source-ref": ref, **extra}).encode()


def _scan(
    data: bytes, *, chunk: int = 7, max_lines: int = manifest.MAX_LINES
) -> tuple[list[S3ObjectRef], ManifestStats]:
    stats = ManifestStats()
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return list(scan(chunks, stats, max_lines=max_lines)), stats


# --- split_lines ------------------------------------------------------------------------------


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


line_bytes = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" "))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(line_bytes, max_size=12),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    trailing_newline=st.booleans(),
)
def test_split_lines_reproduces_the_lines_for_any_chunking(lines: list[bytes], cuts: list[int], trailing_newline):
    # Given lines joined by newlines (with or without a final newline), cut into arbitrary chunks
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    chunks = _chunked(data, cuts)
    # When split
    result = list(split_lines(chunks, max_line=30))
    # Then the lines come back (a final empty line is the same as a terminating newline)
    expected = list(lines)
    if expected and expected[-1] == b"" and not trailing_newline:
        expected.pop()
    assert result == expected


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"x")), max_size=10),
    cuts=st.lists(st.integers(0, 500), max_size=15),
    max_line=st.integers(1, 20),
)
def test_overlong_lines_become_none_without_breaking_the_next(lines: list[bytes], cuts: list[int], max_line: int):
    # Given lines of which some are longer than max_line, in arbitrary chunks
    data = b"".join(line + b"\n" for line in lines)
    # When split
    result = list(split_lines(_chunked(data, cuts), max_line=max_line))
    # Then each long line is None and every other line is intact, in order
    assert result == [None if len(line) > max_line else line for line in lines]


def test_split_lines_of_empty_input() -> None:
    # Given no data, or empty chunks
    # When split
    # Then there are no lines
    assert list(split_lines([])) == []
    assert list(split_lines([b"", b""])) == []


def test_overlong_last_line_without_newline() -> None:
    # Given a stream ending in an unterminated line that is too long
    # When split
    # Then it is reported as None
    assert list(split_lines([b"ok\n", b"x" * 5, b"x" * 5], max_line=8)) == [b"ok", None]


def test_line_exactly_at_the_limit_is_kept() -> None:
    # Given lines of exactly max_line and max_line + 1 bytes
    # When split
    # Then the first is kept and the second is None
    assert list(split_lines([b"12345678\n123456789\n"], max_line=8)) == [b"12345678", None]


def test_overlong_line_does_not_accumulate_memory() -> None:
    # Given a "line" of 64 MiB without a newline, streamed in 1 MiB chunks, then a valid line
    chunk = b"x" * (1024 * 1024)

    def stream() -> Iterator[bytes]:
        for _ in range(64):
            yield chunk
        yield b"\nlast"

    # When split with the default cap
    # Then the long line is one None and the next line is intact
    assert list(split_lines(stream())) == [None, b"last"]
    assert len(chunk) * 64 > MAX_LINE_BYTES


# --- parse_source_ref -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://custom-labels-training/images/a.jpg", S3ObjectRef("custom-labels-training", "images/a.jpg")),
        ("s3://b.c-d/k", S3ObjectRef("b.c-d", "k")),
        ("s3://bkt/猫/画像 1.jpg", S3ObjectRef("bkt", "猫/画像 1.jpg")),
        ("s3://bkt/a/b/", S3ObjectRef("bkt", "a/b/")),
        ("s3://bkt//double", S3ObjectRef("bkt", "/double")),
    ],
)
def test_parse_source_ref(value: str, expected: S3ObjectRef) -> None:
    # Given an s3:// URI
    # When parsed
    # Then bucket and key are split at the first slash
    assert parse_source_ref(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "missing"),
        (42, "not a string"),
        (["s3://b/k"], "not a string"),
        ("https://bkt.s3.amazonaws.com/k", "s3://"),
        ("S3://bkt/k", "s3://"),
        ("s3://bkt", "no object key"),
        ("s3://bkt/", "no object key"),
        ("s3://bu ck/k", "bucket"),
        ("s3://ab/k", "bucket"),
        ("s3://" + "b" * 256 + "/k", "bucket"),
        ("s3://b\u00fcck/k", "bucket"),
        ("s3:///k", "bucket"),
        ("s3://bkt/" + "k" * 1025, "key"),
        ("s3://bkt/a\x00b", "key"),
    ],
)
def test_parse_source_ref_rejects(value: object, why: str) -> None:
    # Given a source-ref that cannot name an S3 object
    # When parsed
    result = parse_source_ref(value)
    # Then the result is a reason, not a reference
    assert isinstance(result, str)
    assert why in result


def test_long_source_ref_reason_is_bounded() -> None:
    # Given a very long invalid source-ref
    # When parsed
    result = parse_source_ref("http://" + "x" * 100_000)
    # Then the reason quotes only a prefix
    assert isinstance(result, str)
    assert len(result) < 200


def test_source_ref_key_must_be_valid_utf8() -> None:
    # Given a manifest line whose key has a lone surrogate (valid JSON escape, not valid UTF-8)
    data = b'{"source-ref": "s3://bkt/a\\ud800.jpg"}\n'
    # When scanned
    refs, stats = _scan(data)
    # Then the line is invalid: no S3 key can hold it
    assert refs == []
    assert stats.invalid == 1


# --- scan -------------------------------------------------------------------------------------


def test_scan_valid_lines() -> None:
    # Given a manifest with two image lines (with other Ground Truth fields)
    data = b"\n".join(
        [
            _line("s3://custom-labels-training/images/a.jpg", cat=1, **{"cat-metadata": {"class-name": "cat"}}),
            _line("s3://custom-labels-training/images/b.jpg"),
        ]
    )
    # When scanned (in small chunks)
    refs, stats = _scan(data, chunk=5)
    # Then both images come back, and nothing is invalid
    assert refs == [
        S3ObjectRef("custom-labels-training", "images/a.jpg"),
        S3ObjectRef("custom-labels-training", "images/b.jpg"),
    ]
    assert (stats.lines, stats.images, stats.invalid, stats.truncated) == (2, 2, 0, "")
    assert not stats.problems
    assert stats.describe() == ""


def test_blank_lines_are_skipped() -> None:
    # Given blank and whitespace-only lines (and CRLF endings) between image lines
    data = b"\n\r\n" + _line("s3://bkt/a.jpg") + b"\r\n   \n\t\n" + _line("s3://bkt/b.jpg") + b"\n\n"
    # When scanned
    refs, stats = _scan(data)
    # Then they are not counted as lines or as invalid
    assert [r.key for r in refs] == ["a.jpg", "b.jpg"]
    assert stats.lines == 2
    assert stats.invalid == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"source-ref": "s3://bkt/a.jpg"', "not JSON"),
        (b"\xff\xfe\xfa", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"s3://bkt/a.jpg"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'{"cat": 1}', "missing"),
        (b'{"source-ref": 5}', "not a string"),
        (b'{"source-ref": "/local/a.jpg"}', "s3://"),
        (b'{"source-ref": "s3://B:KT/a.jpg"}', "bucket"),
        (b'{"source-ref": "s3://bkt"}', "no object key"),
        (b"[" * 50_000 + b"]" * 50_000, "not"),
    ],
)
def test_invalid_lines_are_counted_and_the_rest_still_used(line: bytes, reason: str) -> None:
    # Given an invalid line between two valid ones
    data = b"\n".join([_line("s3://bkt/first.jpg"), line, _line("s3://bkt/last.jpg")])
    # When scanned
    refs, stats = _scan(data, chunk=4096)
    # Then the valid lines are used, and the invalid one is counted with its line number and reason
    assert [r.key for r in refs] == ["first.jpg", "last.jpg"]
    assert (stats.lines, stats.images, stats.invalid) == (3, 2, 1)
    assert stats.examples[0].startswith("line 2: ")
    assert reason in stats.examples[0]
    assert stats.problems


def test_overlong_line_is_invalid_and_the_next_line_is_used() -> None:
    # Given a line longer than the per-line cap, then a valid line
    long_line = _line("s3://bkt/" + "k" * 100, pad="x" * MAX_LINE_BYTES)
    data = long_line + b"\n" + _line("s3://bkt/next.jpg") + b"\n"
    # When scanned
    refs, stats = _scan(data, chunk=65536)
    # Then the long line is invalid and the next one is read
    assert [r.key for r in refs] == ["next.jpg"]
    assert stats.invalid == 1
    assert "longer than" in stats.examples[0]


def test_max_lines_truncates() -> None:
    # Given a manifest with more lines than allowed
    data = b"\n".join(_line(f"s3://bkt/{i}.jpg") for i in range(10))
    # When scanned with max_lines=4
    refs, stats = _scan(data, max_lines=4)
    # Then exactly the first four are read and the truncation is recorded
    assert [r.key for r in refs] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert stats.lines == 4
    assert "more than 4 lines" in stats.truncated
    assert stats.problems
    assert "more than 4 lines" in stats.describe()


def test_exactly_max_lines_is_not_truncated() -> None:
    # Given exactly max_lines lines (plus trailing blank lines)
    data = b"\n".join(_line(f"s3://bkt/{i}.jpg") for i in range(4)) + b"\n\n\n"
    # When scanned
    refs, stats = _scan(data, max_lines=4)
    # Then nothing is truncated
    assert len(refs) == 4
    assert stats.truncated == ""


def test_default_limits_match_the_design() -> None:
    # Given the module's limits
    # Then they are Custom Labels' manifest limits: 250,000 lines and 1 GB
    assert manifest.MAX_LINES == 250_000
    assert MAX_BYTES == 1024**3


def test_byte_cap_stops_reading() -> None:
    # Given a manifest whose first line is valid, followed by more than 1 GiB without a newline,
    # then a valid line beyond the cap (the filler is one reused buffer: nothing is really allocated)
    filler = b"x" * (64 * 1024 * 1024)
    pulled = []

    def stream() -> Iterator[bytes]:
        yield _line("s3://bkt/before.jpg") + b"\n"
        for _ in range(MAX_BYTES // len(filler)):
            pulled.append(1)
            yield filler
        yield b"\n" + _line("s3://bkt/after.jpg") + b"\n"
        pulled.append(2)

    stats = ManifestStats()
    # When scanned
    refs = list(scan(stream(), stats))
    # Then the valid line before the cap is used, the line past it is never read, and the
    # truncation is recorded
    assert [r.key for r in refs] == ["before.jpg"]
    assert "larger than" in stats.truncated
    assert 2 not in pulled
    assert stats.problems


def test_byte_cap_boundary() -> None:
    # Given a stream of exactly `limit` bytes, and one of limit + 1 bytes
    exact = ManifestStats()
    over = ManifestStats()
    # When capped
    # Then the first passes whole, the second is cut at the limit and marked truncated
    assert b"".join(manifest._capped([b"abc", b"def"], exact, limit=6)) == b"abcdef"
    assert exact.truncated == ""
    assert b"".join(manifest._capped([b"abc", b"defg", b"h"], over, limit=6)) == b"abcdef"
    assert "larger than 6 bytes" in over.truncated


# --- stats.describe ---------------------------------------------------------------------------


def test_describe_lists_at_most_ten_examples() -> None:
    # Given a manifest with 12 invalid lines and one valid line
    data = b"\n".join([b"bad"] * 12 + [_line("s3://bkt/a.jpg")])
    # When scanned
    refs, stats = _scan(data)
    # Then all 12 are counted, 10 kept as examples, and the description says there are more
    assert len(refs) == 1
    assert stats.invalid == 12
    assert len(stats.examples) == EXAMPLES == 10
    text = stats.describe()
    assert text.startswith("12 invalid line(s) of 13")
    assert "line 1: not JSON" in text
    assert "line 10: not JSON" in text
    assert "line 11" not in text
    assert text.endswith("…")


def test_describe_combines_invalid_lines_and_truncation() -> None:
    # Given a manifest with one invalid line that is also truncated
    data = b"bad\n" + b"\n".join(_line(f"s3://bkt/{i}.jpg") for i in range(5))
    # When scanned with max_lines=3
    _, stats = _scan(data, max_lines=3)
    # Then the description has the count, the example and the truncation, and no ellipsis
    assert stats.describe() == (
        "1 invalid line(s) of 3; line 1: not JSON; the manifest has more than 3 lines; the rest was not checked"
    )


# --- property: scan agrees with a line-by-line model ---------------------------------------------

refs_or_junk = st.one_of(
    st.builds(
        lambda b, k: ("ok", f"s3://{b}/{k}"),
        st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True),
        st.text(min_size=1, max_size=20).filter(lambda k: "\x00" not in k),
    ),
    st.sampled_from([("bad", "nope"), ("bad", "[]"), ("blank", ""), ("blank", "  ")]),
)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(refs_or_junk, max_size=15), chunk=st.integers(1, 64))
def test_scan_matches_a_line_by_line_model(items: list[tuple[str, str]], chunk: int) -> None:
    # Given a manifest of valid image lines, junk lines and blank lines
    lines = [json.dumps({"source-ref": v}).encode() if kind == "ok" else v.encode() for kind, v in items]
    data = b"\n".join(lines)
    # When scanned in chunks of any size
    refs, stats = _scan(data, chunk=chunk)
    # Then every valid line yields its image, junk is counted, blank lines are ignored
    expected = [parse_source_ref(v) for kind, v in items if kind == "ok"]
    assert refs == expected
    assert stats.invalid == sum(kind == "bad" for kind, _ in items)
    assert stats.lines == sum(kind != "blank" for kind, _ in items)
    assert stats.images == len(refs)
