"""The S3 Batch Operations jobs of one bucket that the audit created and has not settled yet.

One item per bucket, ``bulkjobs#<account>#<bucket>``, with ``jobs``: a JSON map of the job's
ClientRequestToken -> ``{"job_id", "count", "manifest", "reported", "run"}``. The entry is written
*before* ``CreateJob`` (write-ahead): an audit that dies between the job's creation and its finding
creates it again with the same token (S3 answers with the same job, no second one) and reports it;
the next run reconciles every entry with the job's completion report and removes it, noting
``settled_at`` (epoch seconds): an inventory report created before then still shows the objects as
they were before the job, so it starts no new job for them.

Bounded: at most ``MAX_JOBS`` entries per bucket (the audit creates no more until they settle), a
few hundred bytes each, well under DynamoDB's 400 KB item; the item expires (TTL) after
``TTL_SECONDS`` so a bucket removed from the guard leaves nothing behind.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from clguard.adapters import dynamodb

MAX_JOBS: Final = 500
TTL_SECONDS: Final = 90 * 24 * 3600


def _id(account: str, bucket: str) -> str:
    return f"bulkjobs#{account}#{bucket}"


def load(table: str, account: str, bucket: str) -> tuple[dict[str, dict[str, Any]], float]:
    """The bucket's unsettled jobs, by token, and when its last job was settled (0: never)."""
    item = dynamodb.get(table, _id(account, bucket))
    if item is None:
        return {}, 0.0
    loaded = json.loads(item.get("jobs", {}).get("S", "{}"))
    entries = {str(token): dict(entry) for token, entry in loaded.items()} if isinstance(loaded, dict) else {}
    return entries, float(item.get("settled_at", {}).get("N", "0"))


def save(table: str, account: str, bucket: str, entries: dict[str, dict[str, Any]], settled_at: float = 0.0) -> None:
    """Write the bucket's unsettled jobs and when the last one was settled."""
    dynamodb.put(
        table,
        {
            "id": {"S": _id(account, bucket)},
            "jobs": {"S": json.dumps(entries, sort_keys=True)},
            "settled_at": {"N": repr(settled_at)},
            "expiration": {"N": str(int(time.time()) + TTL_SECONDS)},
        },
    )
