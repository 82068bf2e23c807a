"""KMS has no conditional write: without serialization two writers on one key lose an update.
These tests run 20 grants of different principals on one key at the same moment, from both
functions, and show that none is lost — and that the same run without the lock does lose some."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from clguard import fanout, keyaccess, policy
from clguard.adapters import kms
from clguard.errors import LockTimeout, RetryableError
from clguard.locks import KeyLock
from clguard.manifest import ImageRef
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from tests.eventsamples import sqs_event
from tests.world import BUCKET, LambdaContext, World

WRITERS = 20


def slow_writes(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.02) -> None:
    """Widen the read-modify-write window, as a slow network would."""
    original = kms.put_policy

    def put_policy(key_arn: str, text: str) -> None:
        time.sleep(seconds)
        original(key_arn, text)

    monkeypatch.setattr(kms, "put_policy", put_policy)


def run_together(jobs: list[Callable[[], Any]]) -> list[BaseException]:
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def runner(job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as error:  # collected and asserted on by the test
            errors.append(error)

    threads = [threading.Thread(target=runner, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def jobs_for(world: World, key: str, roles: list[str]) -> list[Callable[[], Any]]:
    """Half the principals arrive through CreateProjectVersion (grant function), half through
    fanned-out image checks of an object under the key (verify function)."""
    world.put("datasets/shared/img.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    jobs: list[Callable[[], Any]] = []
    for index, role in enumerate(roles):
        if index % 2 == 0:
            event = world.training_event(kms_key=key, event_id=f"cpv-{index}", issuer=role)
            params = event["detail"]["requestParameters"]
            params.pop("TrainingData"), params.pop("TestingData"), params.pop("OutputConfig")
            jobs.append(partial(grant_app.lambda_handler, event, LambdaContext(function_name="grant")))
        else:
            [body] = fanout.messages(
                [ImageRef(BUCKET, "datasets/shared/img.jpg")],
                source_event_id=f"fan-{index}",
                origin="test",
                principals=[role],
            )
            batch = sqs_event(body)
            jobs.append(partial(verify_app.lambda_handler, batch, LambdaContext()))
    return jobs


def granted(world: World, key: str) -> set[str]:
    found: set[str] = set()
    for sid in (policy.TRAINING_DATA.sid, policy.COPIED_IMAGES_USE.sid):
        statement = world.statement(key, sid)
        if statement:
            found.update(policy.as_list(statement["Principal"]["AWS"]))
    return found


@pytest.fixture
def roles(world: World) -> list[str]:
    return [world.role(f"Trainer{n:02}", "/ml/") for n in range(WRITERS)]


def test_twenty_concurrent_grants_from_both_functions_lose_nothing(
    world: World, roles: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one managed key, 20 principals, and slow policy writes
    key = world.key()
    original = world.policy(key)["Statement"]
    slow_writes(monkeypatch)

    # When 20 grants run at the same moment, from both functions
    errors = run_together(jobs_for(world, key, roles))

    # Then every principal is in the policy and every original statement is unchanged
    assert errors == []
    assert granted(world, key) == set(roles)
    assert world.policy(key)["Statement"][: len(original)] == original
    # And every grant was confirmed and reported exactly once
    remediated = [f for f in world.findings() if f["outcome"] == "REMEDIATED"]
    assert sorted(f["principal_arn"] for f in remediated) == sorted(roles)


class NoLock:
    """What the code would do without the key lock (to show the test can fail)."""

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def __enter__(self) -> NoLock:
        return self

    def __exit__(self, *_: Any) -> None:
        pass

    def remaining(self) -> float:
        return 60.0


def test_without_the_lock_updates_are_lost(world: World, roles: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    key = world.key()
    slow_writes(monkeypatch)
    monkeypatch.setattr(keyaccess, "KeyLock", NoLock)
    run_together(jobs_for(world, key, roles))
    assert len(granted(world, key)) < len(roles)


def test_lock_holder_crash_does_not_block_forever(world: World) -> None:
    # Given a lock item left by a holder that crashed (its lease expired)
    stale = KeyLock(world.env()["STATE_TABLE"], "arn:aws:kms:us-east-1:123456789012:key/x", lease_seconds=0.05)
    stale.acquire()
    time.sleep(0.1)
    # When another writer asks for it
    fresh = KeyLock(world.env()["STATE_TABLE"], "arn:aws:kms:us-east-1:123456789012:key/x", wait_seconds=1)
    fresh.acquire()
    # Then it gets it, and the stale holder's release does not free the new holder's lease
    stale.release()
    item = world.ddb.get_item(TableName=world.env()["STATE_TABLE"], Key={"id": {"S": fresh.item_id}})["Item"]
    assert item["owner"]["S"] == fresh.owner
    fresh.release()
    assert "Item" not in world.ddb.get_item(TableName=world.env()["STATE_TABLE"], Key={"id": {"S": fresh.item_id}})


def test_lock_contention_times_out_with_a_retryable_error(world: World) -> None:
    table = world.env()["STATE_TABLE"]
    holder = KeyLock(table, "k")
    holder.acquire()
    waiter = KeyLock(table, "k", wait_seconds=0.2)
    with pytest.raises(LockTimeout) as raised:
        waiter.acquire()
    assert isinstance(raised.value, RetryableError)
    assert waiter.attempts > 1
