"""The per-key journal of key-policy writes: which principals the guard wrote, and when.

One STATE_TABLE item per key, two string sets of ``"<epoch seconds>|<principal>|<sid,sid>"``::

    {"id": "written#<key ARN>",
     "entries":  {"SS": [...]},     # about to be written (journaled before each PutKeyPolicy)
     "accepted": {"SS": [...]},     # accepted by KMS
     "expiration": <epoch seconds>} # DynamoDB TTL: a day after the last write

Its readers need only the recent past: a writer whose lease was taken over checks the principals
written since it took the lock (a lease: ``LEASE_SECONDS`` plus the wait-out, inside one Lambda
invocation of at most 900 s), and a writer that reads the policy inside the lock waits for KMS to
show the writes accepted in the last ``CAUGHT_UP_WINDOW`` seconds.

**Bound** (DynamoDB refuses an item over 400 KB, and every later write on the key would fail):
a write that leaves a set over ``MAX_SET_BYTES``, or holding an entry older than
``HORIZON_SECONDS``, prunes it to the entries of the horizon and, newest first, to
``PRUNED_TO_BYTES`` (so a prune is rare: one in some hundred writes); a set never passes
``MAX_SET_BYTES`` (two sets: well under 400 KB with the key and TTL). A writer
needs the entries of one lease; only a key written more than ``MAX_SET_BYTES`` worth (about a
thousand grants) within one lease could lose one, and writes on a key are serialized by its lease.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Final

from clguard.adapters import dynamodb

PREFIX: Final = "written#"
TTL_SECONDS: Final = 86_400
HORIZON_SECONDS: Final = 3_600.0  # longer than any lease (one Lambda invocation lasts at most 900 s)
MAX_SET_BYTES: Final = 150_000  # per set; two sets and the item's key stay under DynamoDB's 400 KB
PRUNED_TO_BYTES: Final = 100_000  # a prune leaves room for many writes before the next one


def _over(entries: Sequence[str], now: float) -> bool:
    """Whether the set passed its byte budget or holds an entry past the horizon (the oldest
    entry sorts first: epoch seconds have ten digits until the year 2286)."""
    if not entries:
        return False
    oldest = _parse(min(entries))
    return sum(len(e.encode()) for e in entries) > MAX_SET_BYTES or (
        oldest is not None and oldest[0] < now - HORIZON_SECONDS
    )


def item_id(key_arn: str) -> str:
    return PREFIX + key_arn


def _entry(at: float, principal: str, sids: Sequence[str]) -> str:
    return f"{at:.3f}|{principal}|{','.join(sids)}"


def _parse(entry: str) -> tuple[float, str, tuple[str, ...]] | None:
    at, _, rest = entry.partition("|")
    principal, _, sids = rest.rpartition("|")
    try:
        when = float(at)
    except ValueError:
        return None
    return when, principal, tuple(s for s in sids.split(",") if s)


def to_prune(entries: Sequence[str], now: float, budget: int = MAX_SET_BYTES) -> list[str]:
    """The entries past the horizon, or beyond ``budget`` bytes (the oldest first). Pure."""
    dated = sorted(((p[0] if (p := _parse(e)) else 0.0), e) for e in entries)
    keep_bytes = 0
    kept: set[str] = set()
    for when, entry in reversed(dated):  # newest first
        size = len(entry.encode())
        if when < now - HORIZON_SECONDS or keep_bytes + size > budget:
            break
        keep_bytes += size
        kept.add(entry)
    return [e for _, e in dated if e not in kept]


def note(table: str, key_arn: str, grants: Mapping[str, Sequence[str]], *, accepted: bool = False) -> None:
    """Journal that ``grants`` (principal -> the Sids written) are being written (``accepted``:
    were accepted by KMS), and prune the set to its bound. Raises the adapter's errors."""
    at = time.time()
    attribute = "accepted" if accepted else "entries"
    entries = [_entry(at, p, sids) for p, sids in grants.items()]
    now_set = dynamodb.add_to_set(table, item_id(key_arn), attribute, entries, int(at) + TTL_SECONDS)
    if not _over(now_set, at):
        return
    stale = to_prune(now_set, at, PRUNED_TO_BYTES)
    if stale:
        dynamodb.remove_from_set(table, item_id(key_arn), attribute, stale)


def written_since(table: str, key_arn: str, since: float, *, accepted: bool = False) -> dict[str, tuple[str, ...]]:
    """The principals journaled as written (``accepted``: accepted by KMS) since ``since``, and
    the Sids written for each."""
    item = dynamodb.get(table, item_id(key_arn)) or {}
    out: dict[str, tuple[str, ...]] = {}
    for entry in item.get("accepted" if accepted else "entries", {}).get("SS", []):
        parsed = _parse(entry)
        if parsed is None:
            continue
        when, principal, sids = parsed
        if when >= since and principal and sids:
            known = out.get(principal, ())
            out[principal] = (*known, *(s for s in sids if s not in known))
    return out
