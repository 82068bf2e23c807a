"""Bounded state: the per-key journal of key-policy writes stays under a stated bound however many
grants one key sees, and a state table that refuses a write ends as a FAILED finding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.rules import policy
from clguard.state import writejournal
from functions.verify_object_encryption import app
from localaws.doubles import ItemSizeLimit
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import ACCOUNT, TABLE, LambdaContext, World

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
# The stated bound of one key's journal item: two sets of at most MAX_SET_BYTES, and the rest.
BOUND_BYTES = 2 * writejournal.MAX_SET_BYTES + 4_096


def item_bytes(item: dict[str, dict[str, object]]) -> int:
    """DynamoDB's item size: attribute names and values, UTF-8."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        for kind, content in value.items():
            if kind == "SS":
                assert isinstance(content, list)
                total += sum(len(str(v).encode()) for v in content)
            else:
                total += len(str(content).encode())
    return total


def long_principal(n: int, branch: str = "") -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{'p' * 200}/trainer-{n:05d}{branch}"


def test_one_key_journals_past_400_kb_of_writes_without_a_refusal(world: World) -> None:
    # Given one managed key, and DynamoDB's 400 KB item limit (ItemSizeLimit; moto has none)
    key = world.key()
    assert world.behaviour[ItemSizeLimit]
    largest = 0
    # When 900 grants (300 writes of three long principals, each journaled before and after:
    # about 500 KB of entries unpruned) land on it within the hour
    for n in range(300):
        grants = {long_principal(n, b): [policy.TRAINING_DATA.sid] for b in "abc"}
        writejournal.note(TABLE, key, grants)
        writejournal.note(TABLE, key, grants, accepted=True)
        item = world.ddb.get_item(TableName=TABLE, Key={"id": {"S": writejournal.item_id(key)}})["Item"]
        largest = max(largest, item_bytes(item))
    # Then every write was accepted and the item stayed under the stated bound
    assert largest <= BOUND_BYTES < 400 * 1024
    # And the newest writes are there for the next writer
    assert long_principal(299, "c") in writejournal.written_since(TABLE, key, 0, accepted=True)


class StateTable:
    """The journal's items in memory, refusing an item over 400 KB as DynamoDB does (the same
    rule as ``localaws.doubles.ItemSizeLimit``): fast enough for tens of thousands of writes."""

    LIMIT = 400 * 1024

    def __init__(self) -> None:
        self.sets: dict[tuple[str, str], set[str]] = {}
        self.bytes: dict[str, int] = {}
        self.largest = 0

    def add_to_set(self, table: str, item_id: str, attribute: str, values: list[str], expiration: int) -> list[str]:
        members = self.sets.setdefault((item_id, attribute), set())
        new = [v for v in set(values) if v not in members]
        size = self.bytes.get(item_id, len(b"id") + len(item_id.encode()) + len(b"expiration") + 10)
        size += sum(len(v.encode()) for v in new) + (len(attribute) if not members else 0)
        if size > self.LIMIT:
            raise AssertionError(f"ValidationException: item {item_id} would be {size} bytes")
        members.update(new)
        self.bytes[item_id] = size
        self.largest = max(self.largest, size)
        return list(members)

    def remove_from_set(self, table: str, item_id: str, attribute: str, values: list[str]) -> None:
        members = self.sets[(item_id, attribute)]
        gone = set(values) & members
        members -= gone
        self.bytes[item_id] -= sum(len(v.encode()) for v in gone)

    def get(self, table: str, item_id: str) -> dict[str, dict[str, object]] | None:
        return {a: {"SS": sorted(m)} for (i, a), m in self.sets.items() if i == item_id} or None


def test_one_key_through_forty_thousand_grants_keeps_its_journal_under_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given one key's journal on a state table that refuses items over 400 KB
    table = StateTable()
    monkeypatch.setattr(writejournal, "dynamodb", table)
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    # When 40,000 grants (20,000 writes of two long principals, journaled before and after) land on it
    for n in range(20_000):
        grants = {long_principal(n, b): [policy.TRAINING_DATA.sid, policy.COPIED_IMAGES_USE.sid] for b in "ab"}
        writejournal.note(TABLE, key, grants)
        writejournal.note(TABLE, key, grants, accepted=True)
    # Then no write was refused, and the item never passed the stated bound
    assert table.largest <= BOUND_BYTES
    assert long_principal(19_999, "b") in writejournal.written_since(TABLE, key, 0, accepted=True)


@given(
    st.lists(st.tuples(st.floats(min_value=0, max_value=10_000), st.text(min_size=1, max_size=300)), max_size=60),
    st.floats(min_value=0, max_value=10_000),
)
def test_pruning_keeps_the_newest_within_the_horizon_and_the_byte_budget(
    stamps: list[tuple[float, str]], now: float
) -> None:
    entries = list({f"{at:.3f}|{p.replace('|', '/')}|Sid" for at, p in stamps})
    stale = writejournal.to_prune(entries, now)
    kept = [e for e in entries if e not in stale]
    assert set(stale) <= set(entries)
    assert sum(len(e.encode()) for e in kept) <= writejournal.MAX_SET_BYTES
    assert all(float(e.split("|")[0]) >= now - writejournal.HORIZON_SECONDS for e in kept)
    if kept and stale:  # every kept entry is at least as new as every pruned one
        assert min(float(e.split("|")[0]) for e in kept) >= max(float(e.split("|")[0]) for e in stale) or any(
            float(e.split("|")[0]) < now - writejournal.HORIZON_SECONDS for e in stale
        )


def test_a_state_table_that_refuses_the_journal_ends_as_a_failed_finding(
    world: World, calls: Boundary, cmk_object: str
) -> None:
    # Given an object under a managed key the trainer lacks, and a state table that refuses the
    # write journal (an item over DynamoDB's limit: ValidationException)
    calls.faults.add(
        "UpdateItem", "ValidationException", message="Item size has exceeded the maximum allowed size", times=1
    )

    # When its upload is verified
    app.lambda_handler(sqs_event(load_event("s3_object_created")), LambdaContext())

    # Then nothing is written, and a FAILED finding says why (never silence)
    assert not policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    assert calls.log.count("PutKeyPolicy") == 0
    failed = [f for f in world.findings() if f["outcome"] == "FAILED"]
    assert [(f["finding_type"], f["principal_arn"]) for f in failed] == [("KEY_ACCESS_MISSING", TRAINER)]
    assert "state table" in failed[0]["detail"]


def test_a_state_table_that_refuses_the_write_ahead_intent_ends_as_a_failed_finding(
    world: World, calls: Boundary, cmk_object: str
) -> None:
    # Given an object under a managed key the trainer lacks, and a state table that refuses the
    # write-ahead intent (the second PutItem: the first takes the key's lease)
    calls.faults.add(
        "PutItem", "ValidationException", message="Item size has exceeded the maximum allowed size", times=1, after=1
    )

    # When its upload is verified
    app.lambda_handler(sqs_event(load_event("s3_object_created")), LambdaContext())

    # Then nothing is written, and a FAILED finding says why
    assert calls.log.count("PutKeyPolicy") == 0
    failed = [f for f in world.findings() if f["outcome"] == "FAILED"]
    assert [(f["finding_type"], f["principal_arn"]) for f in failed] == [("KEY_ACCESS_MISSING", TRAINER)]
    assert "state table" in failed[0]["detail"]
