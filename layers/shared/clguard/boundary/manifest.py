"""Stream a Custom Labels manifest (SageMaker Ground Truth format, JSON Lines) in bounded memory.

Each line is a JSON object whose ``source-ref`` names an image (``s3://bucket/key``). Manifests
can have 250,000 lines and 1 GB: we never hold more than one line, and lines are capped in
length so one endless "line" cannot exhaust memory. Invalid lines are counted and a few are kept
as examples; the valid lines are still used.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from clguard.boundary.parsing import object_key
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import InvalidEvent
from clguard.rules.names import is_bucket_name

MAX_LINES: Final = 250_000
MAX_BYTES: Final = 1024**3
MAX_LINE_BYTES: Final = 256 * 1024
EXAMPLES: Final = 10


@dataclass(slots=True)
class ManifestStats:
    lines: int = 0
    images: int = 0
    invalid: int = 0
    examples: list[str] = field(default_factory=list)
    truncated: str = ""  # why reading stopped early, if it did

    def bad(self, line_no: int, reason: str) -> None:
        self.invalid += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"line {line_no}: {reason}")

    def describe(self) -> str:
        parts = [f"{self.invalid} invalid line(s) of {self.lines}"] if self.invalid else []
        if self.examples:
            parts.append("; ".join(self.examples) + (" …" if self.invalid > len(self.examples) else ""))
        if self.truncated:
            parts.append(self.truncated)
        return "; ".join(parts)

    @property
    def problems(self) -> bool:
        return bool(self.invalid or self.truncated)


def split_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """Lines of a byte stream; ``None`` stands for a line longer than ``max_line`` (skipped)."""
    pending = bytearray()
    overlong = False
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not overlong:
                    pending += chunk[start:]
                    if len(pending) > max_line:
                        overlong = True
                        pending.clear()
                break
            if overlong:
                yield None
            else:
                pending += chunk[start:end]
                yield None if len(pending) > max_line else bytes(pending)
            pending.clear()
            overlong = False
            start = end + 1
    if overlong:
        yield None
    elif pending:
        yield bytes(pending)


def parse_source_ref(value: object) -> S3ObjectRef | str:
    """``s3://bucket/key`` → S3ObjectRef, or why not."""
    if not isinstance(value, str):
        return "source-ref is missing or not a string"
    if not value.startswith("s3://"):
        return f"source-ref {value[:80]!r} is not an s3:// URI"
    bucket, slash, key = value[5:].partition("/")
    if not slash or not key:
        return f"source-ref {value[:80]!r} has no object key"
    if not is_bucket_name(bucket):
        return f"source-ref bucket {bucket[:80]!r} is not a valid bucket name"
    try:
        object_key(key, "source-ref key")
    except InvalidEvent as error:
        return str(error)  # the one S3 key rule (events' too), reported as this line's problem
    return S3ObjectRef(bucket, key)


def scan(chunks: Iterable[bytes], stats: ManifestStats, *, max_lines: int = MAX_LINES) -> Iterator[S3ObjectRef]:
    """The images of a manifest, one at a time; problems go to ``stats``."""
    read = 0
    for line in split_lines(_capped(chunks, stats)):
        if line is not None and not line.strip():
            continue
        stats.lines += 1
        if stats.lines > max_lines:
            stats.lines -= 1
            stats.truncated = f"the manifest has more than {max_lines} lines; the rest was not checked"
            return
        if line is None:
            stats.bad(stats.lines, f"longer than {MAX_LINE_BYTES} bytes")
            continue
        read += len(line)
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            stats.bad(stats.lines, "not JSON")
            continue
        if not isinstance(record, dict):
            stats.bad(stats.lines, "not a JSON object")
            continue
        ref = parse_source_ref(record.get("source-ref"))
        if isinstance(ref, str):
            stats.bad(stats.lines, ref)
            continue
        stats.images += 1
        yield ref


def _capped(chunks: Iterable[bytes], stats: ManifestStats, limit: int = MAX_BYTES) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            stats.truncated = f"the manifest is larger than {limit} bytes; the rest was not checked"
            yield chunk[: len(chunk) - (total - limit)]
            return
        yield chunk
