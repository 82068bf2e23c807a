"""When each open condition was first seen, for the audit report's "since" (docs/architecture.md §3).

One small item per open condition in STATE_TABLE::

    {"id": "first-seen#<digest of account, region, finding type, resource, principal, state>",
     "first_seen": "<ISO 8601, UTC>", "expiration": <epoch>}

The condition is what the audit scopes its findings by: an object's condition includes the
object's state as listed (ETag@LastModified), so a condition that reappears after a fix or a new
upload is new, with a new first-seen time; a key's condition is the key and principal (a fix by
the guard forgets it: ``forget``). Every run that still finds the condition open refreshes the
item's TTL; a condition not seen for TTL_SECONDS is forgotten (DynamoDB's TTL deletes the item;
an item past its expiration that TTL has not deleted yet is treated as absent). State that grows
has its bound here: at most one item per open condition, each gone TTL_SECONDS after it was last
seen.

Note: the Security Hub open-findings record (``findings`` branch, ``state/openfindings``) keeps
one item per resource of the findings imported to Security Hub; this one exists without Security
Hub. They are candidates to become one record.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Final

from clguard.adapters import dynamodb

PREFIX: Final = "first-seen#"
TTL_SECONDS: Final = 30 * 24 * 3600  # as the audit's runs and rows: a condition unseen this long is new again


def condition_id(*fields: str) -> str:
    """The item's id for a condition's fields: account, region, finding type, resource, principal, state."""
    digest = hashlib.sha256(json.dumps(list(fields)).encode())
    return f"{PREFIX}{digest.hexdigest()[:40]}"


def seen(table: str, conditions: Mapping[str, str], *, now: float | None = None) -> dict[str, str]:
    """Record that each condition (its id -> when this run observed it) is open now; the time each
    was first seen. One UpdateItem per condition already known, two for a new one."""
    now = time.time() if now is None else now
    expiration = {"N": str(int(now) + TTL_SECONDS)}
    first: dict[str, str] = {}
    for item_id, observed in conditions.items():
        # Known and not expired: refresh its TTL and read when it was first seen.
        item = dynamodb.update(
            table,
            item_id,
            "SET expiration = :e",
            values={":e": expiration, ":now": {"N": str(int(now))}},
            condition="attribute_exists(first_seen) AND expiration >= :now",
        )
        if item is not None and "S" in item.get("first_seen", {}):
            first[item_id] = str(item["first_seen"]["S"])
            continue
        dynamodb.update(
            table, item_id, "SET first_seen = :t, expiration = :e", values={":t": {"S": observed}, ":e": expiration}
        )
        first[item_id] = observed
    return first


def forget(table: str, item_ids: list[str]) -> None:
    """These conditions were fixed: the next time one is seen it is new."""
    for item_id in sorted(set(item_ids)):
        dynamodb.delete(table, item_id)
