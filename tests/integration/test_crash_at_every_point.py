"""Every change is reported exactly once, whatever AWS call the process dies at.

For each path that changes something (a grant from the grant function, a grant from the verify
function, an in-place re-encryption copy), the runtime is killed right before the n-th AWS call
of the first attempt, for every n. A ``BaseException`` no ``except Exception`` catches, as a killed
runtime (Lambda timeout, out of memory) runs no handler at all. Then the event is redelivered the
way AWS does it: Lambda's asynchronous retries (two, the template's ``MaximumRetryAttempts``; the
first while the dead attempt's idempotency record and lease are still live, the last after they
expired), or SQS redelivery (after the visibility timeout, longer than the function's timeout, so
the dead attempt's in-progress record has expired); the findings outbox's messages are consumed
like any verify-queue message. Then: a change that took effect is published exactly once, and no
change is reported that did not take effect.

The one window no design closes: the death between SNS accepting the Publish and the
acknowledgement being recorded (the idempotency record's ``COMPLETED``). SNS standard topics have
no deduplication id, so the retry cannot know the publish went out: it publishes again (at least
once, never zero times). The copies carry the same ``fingerprint`` (the document's
``source_event_id`` and condition), so consumers can tell them apart; the test pins that window to
exactly that one call (there, one or two copies).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from clguard.errors import GuardError
from clguard.rules import policy
from clguard.state import locks
from clguard.state.keydirectory import clear_cache
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import ACCOUNT, TABLE, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
CALLER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
# More than any path below makes on a first attempt: the n past the last call are the runs
# where nothing dies (the baseline).
MAX_CALLS = 24
AFTER = "(no call: the first attempt had ended)"


class Killed(BaseException):
    """The runtime was killed (Lambda timeout, out of memory)."""


def kill_at(calls: Boundary, n: int) -> list[str]:
    """The runtime dies right before the n-th AWS call (from 1) of the code under test. Returns
    the operations seen, in order, for the test's messages."""
    seen: list[str] = []

    def die(model: Any, **_: Any) -> None:
        if len(seen) == n:  # the dead process makes no more calls; its retries are not killed
            return
        seen.append(model.name)
        if len(seen) == n:
            raise Killed(f"killed before call {n} ({model.name})")

    calls.session.events.register_first("before-call.*.*", die, unique_id="test-kill")
    return seen


def revive(seen: list[str], n: int) -> None:
    """The next attempt runs in a new container (nothing cached), and nothing kills it."""
    seen.extend([AFTER] * (n - len(seen)))
    clear_cache()


def time_passes(world: World) -> None:
    """Time passes until the dead attempt's leases and in-progress idempotency records expire (the
    state table items keep their keys: only their clocks run out)."""
    for item in world.ddb.scan(TableName=TABLE)["Items"]:
        key = {"id": item["id"]}
        if "lease_until" in item:
            world.ddb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET lease_until = :z, write_deadline = :z",
                ExpressionAttributeValues={":z": {"N": "0"}},
            )
        if item.get("status", {}).get("S") == "INPROGRESS":
            world.ddb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET in_progress_expiration = :z",
                ExpressionAttributeValues={":z": {"N": "0"}},
            )


def verify(body: Any, receive_count: int = 1) -> bool:
    """One SQS delivery of ``body``; True when it succeeded (SQS deletes it)."""
    return app.lambda_handler(sqs_event(body, receive_count=receive_count), LambdaContext()) == {
        "batchItemFailures": []
    }


def drain_outbox(world: World) -> None:
    """Consume the verify queue (the findings outbox) as SQS and Lambda would: each message until
    it succeeds, redelivered after its visibility timeout (the producer's records have expired)."""
    for message in list(world.drain_queue()):
        for receive in range(1, 6):  # the queue's maxReceiveCount
            if verify(message["Body"], receive):
                break
            time_passes(world)
        else:  # pragma: no cover - the assertion message names the lost message
            pytest.fail(f"outbox message ended in the DLQ: {message['Body'][:300]}")


def remediated(world: World, resource: str) -> list[dict[str, Any]]:
    return [
        f
        for f in world.findings()
        if f["outcome"] == "REMEDIATED" and resource in (f.get("kms_key_arn"), f["resource"].get("key"))
    ]


def exactly_once_unless_between_publish_and_ack(
    reports: list[dict[str, Any]], seen: list[str], n: int, *, expected: int = 1
) -> None:
    """``seen``: the first attempt's calls; it died before call n, right after the Publish of the
    change's finding (the first Publish of every path here), or elsewhere, or not at all."""
    died = len(seen) >= n and seen[n - 1] != AFTER
    died_after_publish = died and n >= 2 and seen[n - 2] == "Publish" and seen.index("Publish") == n - 2
    if died_after_publish:  # at least once, at most once more: the same condition, twice
        assert len(reports) in (expected, 2 * expected), seen
        assert len({(r["source_event_id"], r["principal_arn"]) for r in reports}) == expected
    else:
        assert len(reports) == expected, (n, seen, [(r["finding_type"], r["outcome"]) for r in reports])


def first_attempt(run: Callable[[], object]) -> None:
    with contextlib.suppress(Killed, GuardError):
        run()


@pytest.fixture(autouse=True)
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry that meets the dead attempt's live lease gives up fast (and is retried later)."""
    monkeypatch.setattr(locks, "WAIT_SECONDS", 0.05)


@pytest.mark.parametrize("n", range(1, MAX_CALLS + 1))
def test_a_grant_by_the_grant_function_is_reported_exactly_once_whatever_call_it_dies_at(
    world: World, calls: Boundary, n: int
) -> None:
    # Given a training call naming a managed key its caller lacks, and a runtime that dies
    # right before the n-th AWS call
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    event = world.training_event(kms_key=key)
    for name in ("TrainingData", "TestingData", "OutputConfig"):
        event["detail"]["requestParameters"].pop(name)
    seen = kill_at(calls, n)
    first_attempt(lambda: grant_app.lambda_handler(event, LambdaContext(function_name="grant")))
    revive(seen, n)

    # When Lambda retries the event twice: first while the dead attempt's records are live,
    # then after they expired (and the outbox is consumed in between)
    for retry in range(2):
        if retry:
            time_passes(world)
        try:
            grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
        except GuardError:
            continue
        finally:
            drain_outbox(world)

    # Then the grant is in place and reported exactly once
    assert policy.is_granted(world.policy(key), CALLER, policy.TRAINING_DATA)
    exactly_once_unless_between_publish_and_ack(remediated(world, key), seen, n)


@pytest.mark.parametrize("n", range(1, MAX_CALLS + 1))
def test_a_grant_by_the_verify_function_is_reported_exactly_once_whatever_call_it_dies_at(
    world: World, calls: Boundary, cmk_object: str, n: int
) -> None:
    # Given an object under a managed key TRAINING_PRINCIPALS lack, and a runtime that dies
    # right before the n-th AWS call
    event = load_event("s3_object_created")
    seen = kill_at(calls, n)
    first_attempt(lambda: verify(event))
    revive(seen, n)

    # When SQS redelivers the record until it succeeds (and the outbox is consumed)
    for receive in range(2, 7):
        time_passes(world)
        done = verify(event, receive)
        drain_outbox(world)
        if done:
            break

    # Then the grant is in place and reported exactly once
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    exactly_once_unless_between_publish_and_ack(remediated(world, cmk_object), seen, n)


@pytest.mark.parametrize("n", range(1, MAX_CALLS + 1))
def test_a_reencryption_is_reported_exactly_once_whatever_call_it_dies_at(
    world: World, calls: Boundary, n: int
) -> None:
    # Given an unencrypted object, and a runtime that dies right before the n-th AWS call
    world.put_legacy(KEY)
    event = load_event("s3_object_created")
    seen = kill_at(calls, n)
    first_attempt(lambda: verify(event))
    revive(seen, n)

    # When SQS redelivers the record until it succeeds (and the outbox is consumed)
    for receive in range(2, 7):
        time_passes(world)
        done = verify(event, receive)
        drain_outbox(world)
        if done:
            break

    # Then the object is encrypted and its re-encryption reported exactly once
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    exactly_once_unless_between_publish_and_ack(remediated(world, KEY), seen, n)
