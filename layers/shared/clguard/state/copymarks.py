"""The object states the guard's own copies produced (the loop guard, docs/architecture.md §8).

A copy in place makes a new object state (ETag, LastModified) and a new event for it. When that
exact state is seen again and is still not compliant, the copy did not take effect: copying again
would loop. One small item per copy::

    {"id": "remediated#<bucket>#<key>#<ETag>#<LastModified, epoch seconds>",
     "expiration": <epoch seconds>}   # DynamoDB TTL: TTL_SECONDS after the copy

Bound: one item per copy the guard made, each gone ``TTL_SECONDS`` later (an expired item that
DynamoDB has not removed yet is read as absent).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Final

from clguard.adapters import dynamodb
from clguard.boundary.s3ref import S3ObjectRef

PREFIX: Final = "remediated#"
TTL_SECONDS: Final = 3600


def item_id(ref: S3ObjectRef, etag: str | None, modified: object) -> str:
    stamp = int(modified.timestamp()) if isinstance(modified, datetime) else modified
    return f"{PREFIX}{ref.bucket}#{ref.key}#{etag}#{stamp}"


def produced_by_us(table: str, ref: S3ObjectRef, etag: str | None, modified: object) -> bool:
    """Whether this object state is one a copy of ours produced (and its mark has not expired)."""
    marker = dynamodb.get(table, item_id(ref, etag, modified))
    return marker is not None and int(marker.get("expiration", {}).get("N", "0")) > int(time.time())


def mark(table: str, ref: S3ObjectRef, etag: str | None, modified: object) -> None:
    """Note the state a copy of ours produced. Raises the adapter's errors."""
    dynamodb.put(
        table,
        {"id": {"S": item_id(ref, etag, modified)}, "expiration": {"N": str(int(time.time()) + TTL_SECONDS)}},
    )
