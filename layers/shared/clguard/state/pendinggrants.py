"""Group commit: the principals waiting for one key's lease, to be written by its holder in one
PutKeyPolicy (docs/architecture.md §12).

One STATE_TABLE item per key, a map of entries, one per waiting principal and event::

    {"id": "pending-grants#<key ARN>",
     "entries": {"<entry id>": {"grants": "{\"arn:…\": [\"Sid\", …]}", "event": "<source event id>",
                                "origin": "…", "request": "…", "scope": "…", "drifted": "[\"arn:…\"]",
                                "at": <enqueued, epoch s>, "state": "waiting" | "taken" | "done",
                                "holder": "<lease owner>", "until": <the holder's write deadline;
                                                                     settled: when it was settled>,
                                "findings": "[<finding document>, …]", "lost": false}},
     "expiration": <epoch seconds>}   # DynamoDB TTL: a day after the last enqueue

A grant that cannot take the key's lease *enqueues* its principals, one entry per event and key
(``waiting``), after its own event decided and checked them and wrote its intent ahead; the
lease holder, just before it writes, *takes* the waiting entries (``taken``, with its write
deadline), re-validates each, writes once and *settles* each entry (``done``, the findings the
waiter's event publishes, or ``lost``); the waiter removes its entry once read. An entry
``taken`` past its ``until`` belongs to a holder that died: the next holder takes it again.

**Bound** (DynamoDB refuses an item over 400 KB): at most ``MAX_ENTRIES`` entries of at most
``MAX_ENTRY_BYTES`` each as enqueued, plus settled findings of at most ``MAX_FINDING_BYTES``
(their structured ``change`` left out, then their details cut, when larger): under 300 KB. An
enqueue past the bound is refused and the caller waits for the lease as before group commit (never a loss).
A holder removes entries older than ``HORIZON_SECONDS`` (longer than any Lambda invocation: their
waiter is gone; its retry finds its write-ahead intent) and entries settled more than
``SETTLED_SECONDS`` ago (a waiter that died before reading its outcome).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from clguard.adapters import dynamodb

PREFIX: Final = "pending-grants#"
TTL_SECONDS: Final = 86_400
MAX_ENTRIES: Final = 32
MAX_ENTRY_BYTES: Final = 3_000
MAX_FINDING_BYTES: Final = 6_000
HORIZON_SECONDS: Final = 3_600.0  # one Lambda invocation lasts at most 900 s
SETTLED_SECONDS: Final = 900.0

WAITING: Final = "waiting"
TAKEN: Final = "taken"
DONE: Final = "done"


def item_id(key_arn: str) -> str:
    return PREFIX + key_arn


@dataclass(frozen=True, slots=True)
class Waiter:
    """The principals (and the Sids of each) an event decided to grant on the key, waiting for
    the key's writer."""

    grants: tuple[tuple[str, tuple[str, ...]], ...]
    event: str
    origin: str
    request: str = ""
    scope: str = ""
    drifted: tuple[str, ...] = ()  # the principals whose grant a replaced key policy lost (drift)


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry as read back (``findings``: the settled finding documents as a JSON list, or "")."""

    entry_id: str
    waiter: Waiter
    at: float
    state: str
    holder: str = ""
    until: float = 0.0
    findings: str = ""
    lost: bool = False

    def abandoned(self, now: float) -> bool:
        """Taken by a holder whose write deadline has passed without settling it (it died)."""
        return self.state == TAKEN and self.until < now


def _encoded(waiter: Waiter, at: float) -> dict[str, Any]:
    return {
        "M": {
            "grants": {"S": json.dumps({p: list(sids) for p, sids in waiter.grants}, ensure_ascii=True)},
            "event": {"S": waiter.event},
            "origin": {"S": waiter.origin},
            "request": {"S": waiter.request},
            "scope": {"S": waiter.scope},
            "drifted": {"S": json.dumps(list(waiter.drifted), ensure_ascii=True)},
            "at": {"N": f"{at:.3f}"},
            "state": {"S": WAITING},
        }
    }


def entry_bytes(waiter: Waiter) -> int:
    """The size an entry takes in the item, as enqueued (bounded by ``MAX_ENTRY_BYTES``)."""
    return len(json.dumps(_encoded(waiter, 0.0)).encode())


def enqueue(table: str, key_arn: str, waiter: Waiter) -> str | None:
    """Add ``waiter`` to the key's pending entries. Returns its entry id, or None when the item
    is at its bound (or the entry too large): the caller then waits for the lease itself."""
    if entry_bytes(waiter) > MAX_ENTRY_BYTES:
        return None
    entry_id = uuid.uuid4().hex
    now = time.time()
    expiration = {"N": str(int(now) + TTL_SECONDS)}
    values = {":entry": _encoded(waiter, now), ":max": {"N": str(MAX_ENTRIES)}, ":exp": expiration}
    names = {"#e": entry_id}
    expression = "SET entries.#e = :entry, expiration = :exp"
    condition = "attribute_exists(entries) AND size(entries) < :max"
    if _update(table, key_arn, expression, names=names, values=values, condition=condition) is not None:
        return entry_id
    open_queue(table, key_arn, now=now)  # the item does not exist yet (or is full: the retry fails too)
    if _update(table, key_arn, expression, names=names, values=values, condition=condition) is not None:
        return entry_id
    return None


def open_queue(table: str, key_arn: str, *, now: float | None = None) -> None:
    """Make sure the key's record exists, so that an entry is added in one write. A lease holder
    opens it as it takes the lease: a grant that then finds the lease taken enqueues at once, in
    time for the holder's ``gather`` (else, on a key's first burst, the holder reads an empty
    record while the first waiters are still creating it, and writes without them)."""
    expiration = {"N": str(int(time.time() if now is None else now) + TTL_SECONDS)}
    _update(
        table,
        key_arn,
        "SET entries = if_not_exists(entries, :empty), expiration = :exp",
        values={":empty": {"M": {}}, ":exp": expiration},
    )


def _update(
    table: str,
    key_arn: str,
    expression: str,
    *,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    condition: str | None = None,
) -> dict[str, Any] | None:
    """UpdateItem on the key's record, returning only what it set (never the whole record)."""
    return dynamodb.update(
        table, item_id(key_arn), expression, names=names, values=values, condition=condition, returns="UPDATED_NEW"
    )


def _text(entry: Mapping[str, Any], name: str) -> str:
    value = entry.get(name)
    return str(value.get("S", "")) if isinstance(value, Mapping) else ""


def _number(entry: Mapping[str, Any], name: str) -> float:
    value = entry.get(name)
    try:
        return float(value.get("N", "0")) if isinstance(value, Mapping) else 0.0
    except ValueError:
        return 0.0


def _flag(entry: Mapping[str, Any], name: str) -> bool:
    value = entry.get(name)
    return bool(value.get("BOOL", False)) if isinstance(value, Mapping) else False


def _texts(entry: Mapping[str, Any], name: str) -> tuple[str, ...]:
    try:
        loaded = json.loads(_text(entry, name) or "[]")
    except ValueError:
        return ()
    return tuple(str(v) for v in loaded) if isinstance(loaded, list) else ()


def _parse(entry_id: str, value: object) -> Entry | None:
    """An entry of the item, or None when it is not one (a malformed or foreign value)."""
    fields = value.get("M") if isinstance(value, Mapping) else None
    if not isinstance(fields, Mapping):
        return None
    state = _text(fields, "state")
    try:
        loaded = json.loads(_text(fields, "grants") or "{}")
    except ValueError:
        return None
    grants = tuple(
        (str(p), tuple(str(s) for s in sids))
        for p, sids in (loaded.items() if isinstance(loaded, dict) else ())
        if p and isinstance(sids, list) and sids
    )
    if state not in (WAITING, TAKEN, DONE) or not grants:
        return None
    waiter = Waiter(
        grants=grants,
        event=_text(fields, "event"),
        origin=_text(fields, "origin"),
        request=_text(fields, "request"),
        scope=_text(fields, "scope"),
        drifted=_texts(fields, "drifted"),
    )
    return Entry(
        entry_id,
        waiter,
        at=_number(fields, "at"),
        state=state,
        holder=_text(fields, "holder"),
        until=_number(fields, "until"),
        findings=_text(fields, "findings"),
        lost=_flag(fields, "lost"),
    )


def read(table: str, key_arn: str) -> tuple[dict[str, Entry], list[str]]:
    """The key's entries by id (strongly consistent), and the ids of values that are not entries."""
    item = dynamodb.get(table, item_id(key_arn)) or {}
    raw = item.get("entries", {}).get("M", {})
    entries: dict[str, Entry] = {}
    malformed: list[str] = []
    for entry_id, value in raw.items() if isinstance(raw, Mapping) else ():
        parsed = _parse(str(entry_id), value)
        if parsed is None:
            malformed.append(str(entry_id))
        else:
            entries[parsed.entry_id] = parsed
    return entries, malformed


def read_one(table: str, key_arn: str, entry_id: str) -> Entry | None:
    """One entry (strongly consistent; only that entry is read), or None when it is not there."""
    item = dynamodb.get_part(table, item_id(key_arn), "entries.#e", {"#e": entry_id}) or {}
    raw = item.get("entries", {}).get("M", {})
    return _parse(entry_id, raw.get(entry_id)) if isinstance(raw, Mapping) else None


def stale(entries: Mapping[str, Entry], now: float) -> list[str]:
    """The entries a holder removes: older than the horizon, or settled long ago. Pure."""
    return [
        e.entry_id
        for e in entries.values()
        if e.at < now - HORIZON_SECONDS or (e.state == DONE and e.until < now - SETTLED_SECONDS)
    ]


def take(table: str, key_arn: str, entries: Sequence[Entry], *, holder: str, until: float) -> bool:
    """Mark ``entries`` taken by ``holder`` until its write deadline ``until``, all or none: each
    must still be waiting, or abandoned by a dead holder. False when one was not (withdrawn or
    settled meanwhile): the caller reads again."""
    if not entries:
        return True
    names: dict[str, str] = {"#s": "state", "#h": "holder", "#u": "until"}
    values: dict[str, Any] = {
        ":taken": {"S": TAKEN},
        ":waiting": {"S": WAITING},
        ":holder": {"S": holder},
        ":until": {"N": f"{until:.3f}"},
        ":now": {"N": f"{time.time():.3f}"},
    }
    sets: list[str] = []
    conditions: list[str] = []
    for index, entry in enumerate(entries):
        alias = f"#e{index}"
        names[alias] = entry.entry_id
        path = f"entries.{alias}"
        sets.append(f"{path}.#s = :taken, {path}.#h = :holder, {path}.#u = :until")
        conditions.append(f"({path}.#s = :waiting OR ({path}.#s = :taken AND {path}.#u < :now))")
    result = _update(
        table,
        key_arn,
        "SET " + ", ".join(sets),
        names=names,
        values=values,
        condition=" AND ".join(conditions),
    )
    return result is not None


def settle(table: str, key_arn: str, outcomes: Mapping[str, tuple[str, bool]], *, holder: str) -> None:
    """Mark each entry (id -> (its findings' documents as a JSON list, lost)) done, if ``holder``
    still has it (a waiter that took over from a holder it thought dead has the last word): in
    one write, else (one was taken over or removed meanwhile) entry by entry."""
    if not outcomes:
        return
    now = {"N": f"{time.time():.3f}"}
    names: dict[str, str] = {"#s": "state", "#f": "findings", "#l": "lost", "#u": "until", "#h": "holder"}
    values: dict[str, Any] = {":done": {"S": DONE}, ":now": now, ":holder": {"S": holder}}
    sets: list[str] = []
    conditions: list[str] = []
    for index, (entry_id, (findings, lost)) in enumerate(outcomes.items()):
        names[f"#e{index}"] = entry_id
        values[f":f{index}"] = {"S": findings}
        values[f":l{index}"] = {"BOOL": lost}
        path = f"entries.#e{index}"
        sets.append(f"{path}.#s = :done, {path}.#f = :f{index}, {path}.#l = :l{index}, {path}.#u = :now")
        conditions.append(f"{path}.#h = :holder")
    expression = "SET " + ", ".join(sets)
    if _update(table, key_arn, expression, names=names, values=values, condition=" AND ".join(conditions)) is not None:
        return
    if len(outcomes) > 1:
        for entry_id, outcome in outcomes.items():
            settle(table, key_arn, {entry_id: outcome}, holder=holder)


def hand_back(table: str, key_arn: str, entry_ids: Sequence[str], *, holder: str, until: float) -> None:
    """A holder that failed before it could settle: its entries count as abandoned from ``until``
    (when any write it sent has landed), so the next holder takes them again."""
    for entry_id in entry_ids:
        _update(
            table,
            key_arn,
            "SET entries.#e.#u = :until",
            names={"#e": entry_id, "#u": "until", "#h": "holder"},
            values={":until": {"N": f"{until:.3f}"}, ":holder": {"S": holder}},
            condition="entries.#e.#h = :holder",
        )


def remove(table: str, key_arn: str, entry_ids: Sequence[str]) -> None:
    """Remove entries (read by their waiter, or stale)."""
    if not entry_ids:
        return
    names = {f"#e{i}": entry_id for i, entry_id in enumerate(entry_ids)}
    _update(table, key_arn, "REMOVE " + ", ".join(f"entries.{alias}" for alias in names), names=names)


def withdraw(table: str, key_arn: str, entry_id: str) -> bool:
    """Remove a waiting entry before any holder took it. False when a holder has it."""
    return (
        _update(
            table,
            key_arn,
            "REMOVE entries.#e",
            names={"#e": entry_id, "#s": "state"},
            values={":waiting": {"S": WAITING}},
            condition="entries.#e.#s = :waiting",
        )
        is not None
    )


def bounded_findings(findings: Sequence[tuple[Mapping[str, Any], str]]) -> str:
    """An entry's settled findings as stored: ``[{"document": …, "scope": …}, …]`` as JSON of at
    most about ``MAX_FINDING_BYTES``: without the documents' structured ``change`` when larger
    (the detail still says what was added), then with each detail cut (said so). Pure."""

    def encoded(documents: Sequence[Mapping[str, Any]]) -> str:
        rows = [{"document": d, "scope": scope} for d, (_, scope) in zip(documents, findings, strict=True)]
        return json.dumps(rows, ensure_ascii=True, separators=(",", ":"))

    documents = [dict(d) for d, _ in findings]
    text = encoded(documents)
    if len(text) <= MAX_FINDING_BYTES:
        return text
    documents = [{k: v for k, v in d.items() if k not in ("change", "changes")} for d in documents]
    text = encoded(documents)
    over = len(text) - MAX_FINDING_BYTES
    if over > 0 and documents:  # details that long repeat outside strings: cut each, and say so
        share = over // len(documents) + 16
        for document in documents:
            detail = str(document.get("detail", ""))
            document["detail"] = detail[: max(0, len(detail) - share)] + " [cut]"
        text = encoded(documents)
    return text
