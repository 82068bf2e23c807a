"""Figure 5: peak traced memory (tracemalloc) streaming a 250,000-line manifest through the code
that reads it — ``clguard.boundary.manifest.scan`` over ``clguard.adapters.s3.iter_chunks`` (GetObject,
streamed) — ÷ the peak for a 1,000-line manifest.

The manifests live in a moto server in a child process (bench.motoserver), reached over
loopback HTTP, so the traced heap is the reader's alone. The S3 client is created and used once
before tracing starts (client creation is a fixed cost, not streaming). Each size is measured
three times, interleaved; the figure uses the largest peak of each size.

Information row: the same stream packed into fan-out messages (``clguard.boundary.fanout.messages``, the
grant path's large-manifest branch) without sending them.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable

import boto3

from bench.common import Figure, environment, fresh_container, progress
from bench.motoserver import child_server
from clguard.adapters import clients, s3
from clguard.boundary import fanout, manifest
from clguard.boundary.s3ref import S3ObjectRef
from tests.world import BUCKET

SMALL = 1_000
LARGE = 250_000
REPEAT = 2


def manifest_body(lines: int) -> bytes:
    """Ground Truth image-classification lines, as Custom Labels writes them (~280 bytes each)."""
    out = []
    for n in range(lines):
        out.append(
            json.dumps(
                {
                    "source-ref": f"s3://{BUCKET}/datasets/cats/images/cat-{n:06}.jpg",
                    "cat": 1,
                    "cat-metadata": {
                        "confidence": 1,
                        "job-name": "labeling-job/cats",
                        "class-name": "cat",
                        "human-annotated": "yes",
                        "creation-date": "2026-11-28T20:00:00.000000",
                        "type": "groundtruth/image-classification",
                    },
                },
                separators=(",", ":"),
            )
        )
    return ("\n".join(out) + "\n").encode()


def name_of(lines: int) -> str:
    return f"datasets/bench/{lines}.manifest"


def scan_all(lines: int) -> int:
    stats = manifest.ManifestStats()
    count = sum(1 for _ in manifest.scan(s3.iter_chunks(S3ObjectRef(BUCKET, name_of(lines))), stats))
    if count != lines or stats.problems:
        raise RuntimeError(f"scanned {count} of {lines} lines: {stats.describe()}")
    return count


def pack_all(lines: int) -> int:
    stats = manifest.ManifestStats()
    refs = manifest.scan(s3.iter_chunks(S3ObjectRef(BUCKET, name_of(lines))), stats)
    bodies = fanout.messages(refs, source_event_id="bench", origin="bench", principals=["arn:aws:iam::1:role/x"])
    return sum(1 for _ in bodies)


def peak(action: Callable[[int], int], lines: int) -> int:
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    action(lines)
    return tracemalloc.get_traced_memory()[1] - before


def manifest_memory() -> list[Figure]:
    progress(f"figure 5: tracemalloc peak streaming {LARGE:,} vs {SMALL:,} manifest lines (moto server child)")
    with child_server() as endpoint, environment(AWS_ENDPOINT_URL=endpoint):
        fresh_container()
        setup = boto3.client("s3")
        setup.create_bucket(Bucket=BUCKET)
        sizes = {}
        for lines in (SMALL, LARGE):
            body = manifest_body(lines)
            sizes[lines] = len(body)
            setup.put_object(Bucket=BUCKET, Key=name_of(lines), Body=body)
            del body
        scan_all(SMALL)  # creates and warms the code's S3 client, outside tracing
        peaks: dict[str, dict[int, list[int]]] = {"scan": {SMALL: [], LARGE: []}, "pack": {SMALL: [], LARGE: []}}
        tracemalloc.start()
        try:
            for _ in range(REPEAT):
                for lines in (SMALL, LARGE):
                    peaks["scan"][lines].append(peak(scan_all, lines))
            for lines in (SMALL, LARGE):
                peaks["pack"][lines].append(peak(pack_all, lines))
        finally:
            tracemalloc.stop()
            clients.reset()
    scan_small, scan_large = max(peaks["scan"][SMALL]), max(peaks["scan"][LARGE])
    pack_small, pack_large = max(peaks["pack"][SMALL]), max(peaks["pack"][LARGE])
    ratio = scan_large / scan_small
    return [
        Figure(
            "manifest_peak_memory",
            f"Peak memory streaming a {LARGE:,}-line manifest ÷ a {SMALL:,}-line one "
            "(manifest.scan over s3.iter_chunks, tracemalloc)",
            ratio,
            f"{ratio:.2f}",
            1.2,
            "≤ 1.2",
            detail=f"peak {scan_large / 1024:.0f} KiB for {sizes[LARGE] / 1024**2:.1f} MiB vs "
            f"{scan_small / 1024:.0f} KiB for {sizes[SMALL] / 1024:.0f} KiB (max of {REPEAT})",
            data={
                "lines": {"small": SMALL, "large": LARGE},
                "bytes": {"small": sizes[SMALL], "large": sizes[LARGE]},
                "peak_bytes_small": peaks["scan"][SMALL],
                "peak_bytes_large": peaks["scan"][LARGE],
            },
        ),
        Figure(
            "fanout_peak_memory",
            f"Peak memory packing the {LARGE:,}-line stream into fan-out messages ÷ {SMALL:,} lines (not sent)",
            pack_large / pack_small,
            f"{pack_large / pack_small:.2f}",
            detail=f"peak {pack_large / 1024:.0f} KiB vs {pack_small / 1024:.0f} KiB "
            f"(one message is up to {fanout.MAX_MESSAGE_BYTES // 1024} KiB)",
            data={"peak_bytes_small": pack_small, "peak_bytes_large": pack_large},
        ),
    ]
