"""Bounded state: the per-key journal of key-policy writes stays under a stated bound however many
grants one key sees, a state table that refuses a write ends as a FAILED finding, and a failed
training's marker expires after the window in which the audit reads it."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.boundary.config import current_settings
from clguard.reporting.publisher import Publisher
from clguard.rules import policy
from clguard.state import trainingalerts, writejournal
from clguard.usecases import failed_trainings
from functions.verify_object_encryption import app
from localaws.doubles import ItemSizeLimit, RekognitionCustomLabels
from tests.auditrun import findings, run_audit
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import ACCOUNT, BUCKET, TABLE, LambdaContext, World

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
    # write journal (an item over DynamoDB's limit: ValidationException; the first UpdateItem opens
    # the key's pending grants, best effort)
    calls.faults.add(
        "UpdateItem",
        "ValidationException",
        message="Item size has exceeded the maximum allowed size",
        times=1,
        after=1,
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


# --- training-failed#<version>: a TTL longer than the audit's look-back (issue 20 item 2) ---------


def _failed_training(world: World, name: str, *, ended_at: float | None = None) -> str:
    rekognition = world.behaviour[RekognitionCustomLabels]
    key = world.key()
    world.put(f"{name}.manifest", b"{}", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    project = rekognition.create_project(name)
    return rekognition.create_project_version(
        project,
        "v1",
        status="TRAINING_FAILED",
        status_message="The S3 bucket permissions are incorrect for the training manifest.",
        training_manifests=[(BUCKET, f"{name}.manifest")],
        ended_at=ended_at,
    )


def _trainer(world: World) -> None:
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    world.role("Trainer", "/ml/")


def _training_alerts(world: World) -> list[str]:
    return [f["resource"]["arn"] for f in findings(world) if f["finding_type"] == "TRAINING_FAILED"]


def test_a_failed_trainings_marker_expires_and_outlives_the_audits_look_back(audited: World) -> None:
    # Given a training that failed for access, alerted by a scheduled audit
    _trainer(audited)
    version = _failed_training(audited, "cats")
    before = time.time()
    run_audit(audited)
    assert _training_alerts(audited) == [version]
    # Then its marker carries a TTL (the table's "expiration"), TTL_SECONDS from now, which is
    # longer than the window in which the audit reads a failed version
    item = audited.ddb.get_item(TableName=TABLE, Key={"id": {"S": trainingalerts.PREFIX + version}})["Item"]
    expiration = int(item["expiration"]["N"])
    assert int(before) + trainingalerts.TTL_SECONDS <= expiration <= time.time() + trainingalerts.TTL_SECONDS
    assert trainingalerts.TTL_SECONDS > failed_trainings.LOOK_BACK_SECONDS


def test_a_failure_whose_marker_expired_is_beyond_the_look_back_and_never_alerted_twice(audited: World) -> None:
    # Given a training that failed for access and was alerted once
    _trainer(audited)
    version = _failed_training(audited, "cats")
    run_audit(audited)
    assert _training_alerts(audited) == [version]
    settings = current_settings(os.environ, account_id=ACCOUNT)
    # When its marker expires (DynamoDB deletes it once TTL_SECONDS passed) and the audit reads the
    # failed trainings at that moment, and at every later day of a look-back past it
    audited.ddb.delete_item(TableName=TABLE, Key={"id": {"S": trainingalerts.PREFIX + version}})
    expired_at = time.time() + trainingalerts.TTL_SECONDS
    for day in (0, 1, 30):
        publisher = Publisher(settings)
        read = failed_trainings.audit(settings, publisher, "later-run", now=expired_at + day * 86_400)
        publisher.flush()
        # Then the version is beyond the look-back: not read, not alerted again
        assert read == []
    assert _training_alerts(audited) == [version]


def test_within_the_look_back_a_version_is_read_and_beyond_it_not(audited: World) -> None:
    # Given two access failures: one whose training ended just inside the look-back, one just beyond
    _trainer(audited)
    now = time.time()
    inside = _failed_training(audited, "recent", ended_at=now - failed_trainings.LOOK_BACK_SECONDS + 3_600)
    _failed_training(audited, "old", ended_at=now - failed_trainings.LOOK_BACK_SECONDS - 3_600)
    # When the audit runs
    run_audit(audited)
    # Then only the recent one is alerted
    assert _training_alerts(audited) == [inside]
