"""The audit's run records in STATE_TABLE: one item per run, and the id of the last run started.

==================  ===========================================================================
``audit-run#<id>``  The run: how it started (``start``: mode, requirement, buckets and their
                    accounts, where the report goes), the failed trainings, notes, counters the
                    verify messages ``add`` (flat names, ``done``/``more``/``expected``), the key
                    ARNs seen, the ids of its stored rows (``clguard.state.auditrows``),
                    ``listed``, ``finalized``. TTL ``RUN_TTL_SECONDS`` (set at the start).
                    Bound: the counters are per bucket and kind; notes are cut to
                    ``NOTE_MAX`` characters; the row ids are at most ``auditrows.MAX_PARTS``
                    (the condition of ``add``): under DynamoDB's 400 KB.
``audit-last-run``  ``{"run_id": …}``: the run started last (one item, overwritten).
==================  ===========================================================================

The use case speaks in these verbs; the item's attribute names and DynamoDB expressions live
here only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from clguard.adapters import dynamodb
from clguard.state import auditrows

RUN_PREFIX: Final = "audit-run#"
RUN_TTL_SECONDS: Final = 30 * 24 * 3600
LAST_RUN_ID: Final = "audit-last-run"
NOTE_MAX: Final = 1000


def item_id(run_id: str) -> str:
    return RUN_PREFIX + run_id


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain values (numbers as int)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        kind, raw = next(iter(value.items()))
        if kind == "N":
            out[name] = int(raw) if raw.lstrip("-").isdigit() else float(raw)
        elif kind == "SS":
            out[name] = sorted(raw)
        elif kind == "L":
            out[name] = [next(iter(v.values())) for v in raw]
        elif kind == "BOOL":
            out[name] = bool(raw)
        else:
            out[name] = raw
    return out


def start(
    table: str,
    run_id: str,
    *,
    started_at: str,
    mode: str,
    requirement: str,
    buckets: Sequence[str],
    bucket_accounts: Mapping[str, str],
    reports_bucket: str,
    reports_prefix: str,
) -> bool:
    """Create the run record; False when this run already started (a redelivered event)."""
    values = {
        ":exp": _n(int(time.time()) + RUN_TTL_SECONDS),
        ":at": {"S": started_at},
        ":started": {"N": repr(time.time())},
        ":mode": {"S": mode},
        ":req": {"S": requirement},
        ":buckets": {"L": [{"S": b} for b in buckets]},
        ":accounts": {"S": json.dumps(dict(bucket_accounts))},
        ":rb": {"S": reports_bucket},
        ":rp": {"S": reports_prefix},
    }
    created = dynamodb.update(
        table,
        item_id(run_id),
        "SET expiration = :exp, started_at = :at, started = :started, #mode = :mode, requirement = :req, "
        "buckets = :buckets, bucket_accounts = :accounts, reports_bucket = :rb, reports_prefix = :rp",
        names={"#mode": "mode"},
        values=values,
        condition="attribute_not_exists(id)",
    )
    return created is not None


def add(
    table: str, run_id: str, counts: Mapping[str, int], *, keys: Sequence[str] = (), rowparts: Sequence[str] = ()
) -> dict[str, Any] | None:
    """ADD counters (flat attribute names), key ARNs and the ids of stored report rows
    (``clguard.state.auditrows``) to the run record; the item after it. With ``rowparts``: None
    when the run already names ``auditrows.MAX_PARTS`` row items (nothing added)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    parts = []
    for index, (name, value) in enumerate(sorted(counts.items())):
        names[f"#c{index}"] = name
        values[f":c{index}"] = _n(value)
        parts.append(f"#c{index} :c{index}")
    if keys:
        names["#keys"] = "keys"
        values[":keys"] = {"SS": sorted(set(keys))}
        parts.append("#keys :keys")
    if rowparts:
        names["#rowparts"] = "rowparts"
        values[":rowparts"] = {"SS": sorted(set(rowparts))}
        parts.append("#rowparts :rowparts")
    if not parts:
        return None
    if rowparts:
        # The run record names at most MAX_PARTS row items (it must stay under DynamoDB's 400 KB);
        # past that, the caller counts the rows as not stored.
        values[":maxparts"] = _n(auditrows.MAX_PARTS)
        return dynamodb.update(
            table,
            item_id(run_id),
            "ADD " + ", ".join(parts),
            names=names,
            values=values,
            condition="attribute_not_exists(#rowparts) OR size(#rowparts) < :maxparts",
        )
    return dynamodb.update(table, item_id(run_id), "ADD " + ", ".join(parts), names=names, values=values)


def set_trainings(table: str, run_id: str, trainings: Sequence[Mapping[str, Any]]) -> None:
    """The run's failed trainings (diagnosed before the listing starts)."""
    dynamodb.update(table, item_id(run_id), "SET trainings = :t", values={":t": {"S": json.dumps(list(trainings))}})


def note(table: str, run_id: str, notes: Sequence[str]) -> None:
    """Append notes for the report (each cut to ``NOTE_MAX`` characters)."""
    if notes:
        dynamodb.update(
            table,
            item_id(run_id),
            "SET notes = list_append(if_not_exists(notes, :empty), :notes)",
            values={":empty": {"L": []}, ":notes": {"L": [{"S": n[:NOTE_MAX]} for n in notes]}},
        )


def mark_listed(table: str, run_id: str, *, expected: int | None = None, listed: int = 0) -> dict[str, Any] | None:
    """The listing is over (``expected``: the messages it sent, and the objects it ``listed``);
    the item after it."""
    if expected is None:
        return dynamodb.update(table, item_id(run_id), "SET listed = :t", values={":t": {"BOOL": True}})
    return dynamodb.update(
        table,
        item_id(run_id),
        "SET listed = :t, expected = :e, listed_objects = :l",
        values={":t": {"BOOL": True}, ":e": _n(expected), ":l": _n(listed)},
    )


def claim_finalize(table: str, run_id: str) -> dict[str, Any] | None:
    """Elect the one caller that finalizes a listed run (a conditional update): the item, or None
    when another caller did (or the run is not listed yet)."""
    return dynamodb.update(
        table,
        item_id(run_id),
        "SET finalized = :t",
        values={":t": {"BOOL": True}},
        condition="attribute_not_exists(finalized) AND listed = :t",
    )


def get(table: str, run_id: str) -> dict[str, Any] | None:
    """The run record as plain values, or None."""
    item = dynamodb.get(table, item_id(run_id))
    return None if item is None else plain(item)


def swap_last_run(table: str, run_id: str) -> str:
    """Make ``run_id`` the run started last; the one that was ("" if none)."""
    last = dynamodb.get(table, LAST_RUN_ID)
    dynamodb.put(table, {"id": {"S": LAST_RUN_ID}, "run_id": {"S": run_id}})
    return str(last.get("run_id", {}).get("S", "")) if last else ""


def last_run_id(table: str) -> str:
    """The run started last ("" if none ever started)."""
    last = dynamodb.get(table, LAST_RUN_ID)
    return str(last.get("run_id", {}).get("S", "")) if last else ""
