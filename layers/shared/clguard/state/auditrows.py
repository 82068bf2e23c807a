"""The audit report's records in STATE_TABLE: the rows of a run and the trend across runs.

Rows: each verify message of an audit run stores the rows it found (one per open condition,
change or accepted exception) as one item, and names it on the run record::

    {"id": "audit-rows#<run id>#<digest of the rows>", "rows": "<JSON list>", "expiration": <epoch>}

The id is a digest of the content, so a redelivered message rewrites the same item. An item stays
under DynamoDB's 400 KB (values are cut to VALUE_MAX characters, a message's rows split into
items of at most PART_BYTES); the run record names at most MAX_PARTS items and the report reads at
most MAX_ROWS rows of a run (the rest are counted as left out; the per-bucket counts come from the
run's tallies, which are complete): state that grows with the audit has a bound.

Trend: one item, ``audit-trend``, holding the per-type open counts of the last HISTORY_RUNS runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from clguard.adapters import dynamodb

ROWS_PREFIX: Final = "audit-rows#"
TREND_ID: Final = "audit-trend"
PART_BYTES: Final = 300_000  # one item's JSON, under DynamoDB's 400 KB item limit
VALUE_MAX: Final = 2_000  # characters of one value kept (an S3 key is at most 1,024 bytes)
MAX_ROWS: Final = 250_000  # rows of one run the report reads (the rest are counted, not listed)
MAX_PARTS: Final = 2_000  # row items one run record names (about 70 bytes each, of its 400 KB)
HISTORY_RUNS: Final = 30
TTL_SECONDS: Final = 30 * 24 * 3600


def _bounded(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v[:VALUE_MAX] if isinstance(v, str) else v) for k, v in row.items()}


def parts(run_id: str, rows: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, str]]:
    """The items' ids and JSON bodies for one message's rows, each under PART_BYTES."""
    chunk: list[str] = []
    size = 0
    encoded = (json.dumps(_bounded(r), ensure_ascii=False, sort_keys=True, separators=(",", ":")) for r in rows)
    for line in encoded:
        if chunk and size + len(line.encode()) + 1 > PART_BYTES:
            yield _part(run_id, chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line.encode()) + 1
    if chunk:
        yield _part(run_id, chunk)


def _part(run_id: str, lines: Sequence[str]) -> tuple[str, str]:
    body = "[" + ",".join(lines) + "]"
    return f"{ROWS_PREFIX}{run_id}#{hashlib.sha256(body.encode()).hexdigest()[:20]}", body


def save(table: str, run_id: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Store one message's rows; the ids of the items written (for the run record)."""
    expiration = str(int(time.time()) + TTL_SECONDS)
    ids = []
    for item_id, body in parts(run_id, rows):
        dynamodb.put(table, {"id": {"S": item_id}, "rows": {"S": body}, "expiration": {"N": expiration}})
        ids.append(item_id)
    return ids


def load(table: str, part_ids: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
    """The rows of a run (at most MAX_ROWS) and how many more there were."""
    rows: list[dict[str, Any]] = []
    dropped = 0
    for item_id in sorted(part_ids):
        item = dynamodb.get(table, item_id)
        if item is None:  # expired or never written: the tallies still count them
            continue
        found = json.loads(item["rows"]["S"])
        room = MAX_ROWS - len(rows)
        rows.extend(found[:room])
        dropped += max(len(found) - room, 0)
    return rows, dropped


def record_trend(table: str, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Add one run's open counts to the trend (replacing a run already there); the last
    HISTORY_RUNS runs, oldest first."""
    item = dynamodb.get(table, TREND_ID)
    history: list[dict[str, Any]] = json.loads(item["runs"]["S"]) if item else []
    history = [r for r in history if r.get("run_id") != run.get("run_id")]
    history.append(dict(run))
    history.sort(key=lambda r: str(r.get("started_at", "")))
    history = history[-HISTORY_RUNS:]
    dynamodb.put(table, {"id": {"S": TREND_ID}, "runs": {"S": json.dumps(history, sort_keys=True)}})
    return history
