"""KMS has no conditional write: without serialization two writers on one key lose an update.
These tests run 20 grants of different principals on one key at the same moment, from both
functions, and show that none is lost — and that the same run without the lock does lose some."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from moto.kms.models import KmsBackend

from clguard.adapters import clients, kms
from clguard.boundary import fanout
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import LockTimeout, RetryableError
from clguard.rules import policy
from clguard.state import locks
from clguard.state.locks import Lease
from clguard.usecases import keyattempt, keywrite
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import BUCKET, LambdaContext, World

WRITERS = 20


def slow_writes(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.02) -> None:
    """Widen the read-modify-write window, as a slow network would."""
    original = kms.put_policy

    def put_policy(key_arn: str, text: str, **kwargs: Any) -> None:
        time.sleep(seconds)
        original(key_arn, text, **kwargs)

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
                [S3ObjectRef(BUCKET, "datasets/shared/img.jpg")],
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

    owner = "no-lock"
    held_to_the_end = True
    acquired_at = 0.0

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def try_acquire(self) -> bool:  # every writer "holds" it: no group commit either
        return True

    def write_deadline(self) -> float:
        return time.time() + 60.0

    def __enter__(self) -> NoLock:
        return self

    def __exit__(self, *_: Any) -> None:
        pass

    def remaining(self) -> float:
        return 60.0

    def send_deadline(self) -> float:
        return time.time() + 60.0


def test_without_the_lock_updates_are_lost(world: World, roles: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Given one managed key, 20 principals, slow policy writes, and no key lock
    key = world.key()
    slow_writes(monkeypatch)
    monkeypatch.setattr(keywrite, "Lease", NoLock)

    # When 20 grants run at the same moment
    run_together(jobs_for(world, key, roles))

    # Then some grants are lost (so the test above can fail)
    assert len(granted(world, key)) < len(roles)


def test_lock_holder_crash_does_not_block_forever(world: World) -> None:
    # Given a lock item left by a holder that crashed (its lease expired)
    stale = Lease(
        world.env()["STATE_TABLE"],
        "arn:aws:kms:us-east-1:123456789012:key/x",
        lease_seconds=0.05,
        in_flight_seconds=0.05,
    )
    stale.acquire()
    time.sleep(0.1)
    # When another writer asks for it
    fresh = Lease(world.env()["STATE_TABLE"], "arn:aws:kms:us-east-1:123456789012:key/x", wait_seconds=1)
    fresh.acquire()
    # Then it gets it, and the stale holder's release does not free the new holder's lease
    stale.release()
    item = world.ddb.get_item(TableName=world.env()["STATE_TABLE"], Key={"id": {"S": fresh.item_id}})["Item"]
    assert item["owner"]["S"] == fresh.owner
    fresh.release()
    assert "Item" not in world.ddb.get_item(TableName=world.env()["STATE_TABLE"], Key={"id": {"S": fresh.item_id}})


def test_lock_contention_times_out_with_a_retryable_error(world: World) -> None:
    # Given a lock held by one writer
    table = world.env()["STATE_TABLE"]
    holder = Lease(table, "k")
    holder.acquire()

    # When another waits for it longer than its wait allows
    waiter = Lease(table, "k", wait_seconds=0.2)
    with pytest.raises(LockTimeout) as raised:
        waiter.acquire()

    # Then it times out, after more than one attempt, with an error that retries the event
    assert isinstance(raised.value, RetryableError)
    assert waiter.attempts > 1


# --- lease takeover: a write that stalls in flight past its lease ------------------------------


# Only a safety net: each wait below ends on the event that proves the state it waits for, however
# loaded the machine is (a fixed short timeout failed under load).
SAFETY_NET_SECONDS = 300.0


def reached(event: threading.Event, writer: threading.Thread, errors: list[BaseException]) -> bool:
    """Wait until ``event`` is set; fail at once if ``writer`` ended without setting it (its
    errors say why) rather than wait out the safety net."""
    deadline = time.monotonic() + SAFETY_NET_SECONDS
    while not event.wait(0.05):
        assert writer.is_alive() or event.is_set(), f"the writer ended before the state was reached: {errors!r}"
        if time.monotonic() > deadline:
            return False
    return True


def stall_writes_of(monkeypatch: pytest.MonkeyPatch, principal: str) -> tuple[threading.Event, threading.Event]:
    """A double on moto's KMS backend: a PutKeyPolicy that adds ``principal`` reaches KMS and
    stalls there (in flight) until released. Returns (arrived, release)."""
    arrived, release = threading.Event(), threading.Event()
    original = KmsBackend.put_key_policy

    def put_key_policy(self: KmsBackend, key_id: str, document: str) -> None:
        if principal in document and not arrived.is_set():
            arrived.set()
            assert release.wait(SAFETY_NET_SECONDS), "the test never released the stalled write"
        original(self, key_id, document)

    monkeypatch.setattr(KmsBackend, "put_key_policy", put_key_policy)
    return arrived, release


def grant_job(world: World, key: str, role: str, event_id: str) -> Callable[[], Any]:
    event = world.training_event(kms_key=key, event_id=event_id, issuer=role)
    params = event["detail"]["requestParameters"]
    params.pop("TrainingData"), params.pop("TestingData"), params.pop("OutputConfig")
    return partial(grant_app.lambda_handler, event, LambdaContext(function_name="grant"))


def short_leases(monkeypatch: pytest.MonkeyPatch, *, lease: float = 1.0, in_flight: float = 1.5) -> None:
    monkeypatch.setattr(keywrite, "Lease", partial(Lease, lease_seconds=lease))
    monkeypatch.setattr(locks, "IN_FLIGHT_SECONDS", in_flight, raising=False)
    monkeypatch.setattr(keyattempt, "MIN_LEASE_LEFT", lease / 2)


def test_a_write_stalled_in_flight_past_its_lease_does_not_erase_the_next_writers_grant(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 1 s leases, writes that stay in flight within a bound no load reaches (B's wait for
    # A's write deadline ends when A has ended: the event that proves the wait is over, where a
    # short real bound made B read before A's write under load), and two trainers of one key
    a_ended, b_waits_out = threading.Event(), threading.Event()
    take_over = Lease._wait_out

    def sleep(seconds: float) -> None:
        a_ended.wait(seconds)

    def waiting_out(self: Lease, old: dict[str, object]) -> None:
        b_waits_out.set()
        take_over(self, old)

    short_leases(monkeypatch, in_flight=SAFETY_NET_SECONDS)
    monkeypatch.setattr(Lease, "_wait_out", waiting_out)
    monkeypatch.setattr(keywrite, "Lease", partial(Lease, lease_seconds=1.0, sleep=sleep))
    first, second = world.role("TrainerA", "/ml/"), world.role("TrainerB", "/ml/")
    key = world.key()
    # And writer A's PutKeyPolicy, sent inside its lease, stalls in flight
    arrived, release = stall_writes_of(monkeypatch, first)
    errors: list[BaseException] = []

    def job_a() -> None:
        errors.extend(run_together([grant_job(world, key, first, "cpv-a")]))
        a_ended.set()

    writer_a = threading.Thread(target=job_a)
    writer_a.start()
    assert reached(arrived, writer_a, errors)

    # When A's lease expires, writer B takes the lock over and waits out A's write, and only
    # then A's stalled write lands (still within its in-flight bound)
    time.sleep(1.1)
    writer_b = threading.Thread(target=lambda: errors.extend(run_together([grant_job(world, key, second, "cpv-b")])))
    writer_b.start()
    assert reached(b_waits_out, writer_b, errors)
    release.set()
    writer_a.join(SAFETY_NET_SECONDS)
    writer_b.join(SAFETY_NET_SECONDS)

    # Then neither grant is lost: B waited out A's write before reading the policy
    assert errors == []
    assert granted(world, key) == {first, second}
    remediated = sorted(f["principal_arn"] for f in world.findings() if f["outcome"] == "REMEDIATED")
    assert remediated == sorted([first, second])


def lease_expired(world: World, key: str) -> None:
    """Wait until the key's lease item says its lease has ended (a generous safety net)."""
    table = world.env()["STATE_TABLE"]
    deadline = time.monotonic() + SAFETY_NET_SECONDS
    while True:
        item = world.ddb.get_item(TableName=table, Key={"id": {"S": f"lock#{key}"}}, ConsistentRead=True)
        until = float(item.get("Item", {}).get("lease_until", {}).get("N", "0"))
        if until and until < time.time():
            return
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)


def test_a_write_that_lands_beyond_its_in_flight_bound_is_caught_and_the_erased_grant_restored(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 1 s leases, and writer A's PutKeyPolicy stalled in flight longer than any bound
    short_leases(monkeypatch, in_flight=0.2)
    first, second = world.role("TrainerA", "/ml/"), world.role("TrainerB", "/ml/")
    key = world.key()
    arrived, release = stall_writes_of(monkeypatch, first)
    errors: list[BaseException] = []
    writer_a = threading.Thread(target=lambda: errors.extend(run_together([grant_job(world, key, first, "cpv-a")])))
    writer_a.start()
    assert reached(arrived, writer_a, errors)

    # When B takes the expired lease over, grants, confirms and reports, and only then A's write
    # lands (erasing B's principal). (B waits for the condition — A's lease has expired — not a
    # fixed time, and takes a full lease of its own: with A's 1 s lease a loaded machine made B
    # refuse its own write for lack of lease time, and B's grant had not landed.)
    lease_expired(world, key)
    monkeypatch.setattr(keywrite, "Lease", Lease)
    errors.extend(run_together([grant_job(world, key, second, "cpv-b")]))
    assert granted(world, key) == {second}
    release.set()
    writer_a.join(SAFETY_NET_SECONDS)

    # Then A, finding its lease was taken over, checks every principal written since it took the
    # lock, and puts B's back: nothing is lost
    assert errors == []
    assert granted(world, key) == {first, second}
    restored = [f for f in world.findings() if f["source_event_id"] == "cpv-a" and f["principal_arn"] == second]
    assert [(f["outcome"], "restoring a grant a concurrent write erased" in f["detail"]) for f in restored] == [
        ("REMEDIATED", True)
    ]


def test_a_write_that_stalls_before_it_is_sent_is_not_sent_after_its_lease(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 1 s leases and writer A stalled after its lease check, before its request is sent
    short_leases(monkeypatch)
    first, second = world.role("TrainerA", "/ml/"), world.role("TrainerB", "/ml/")
    key = world.key()
    stalled, release = threading.Event(), threading.Event()

    def stall_first(params: dict[str, Any], **_: Any) -> None:
        if first in str(params) and not stalled.is_set():
            stalled.set()
            assert release.wait(SAFETY_NET_SECONDS), "the test never released the stalled write"

    calls.session.events.register("before-call.kms.PutKeyPolicy", stall_first)
    clients.reset(calls.session)
    errors: list[BaseException] = []
    writer_a = threading.Thread(target=lambda: errors.extend(run_together([grant_job(world, key, first, "cpv-a")])))
    writer_a.start()
    assert reached(stalled, writer_a, errors)

    # When B takes the expired lease over and grants, and A wakes up after its lease ended
    time.sleep(1.1)
    run_together([grant_job(world, key, second, "cpv-b")])
    release.set()
    writer_a.join(SAFETY_NET_SECONDS)

    # Then A's write was never sent (A fails, to be retried), and B's grant stands
    assert [type(e).__name__ for e in errors] == ["LeaseExpired"]
    assert granted(world, key) == {second}
    assert [f["principal_arn"] for f in world.findings() if f["outcome"] == "REMEDIATED"] == [second]
    # And A's retry grants A
    grant_job(world, key, first, "cpv-a")()
    assert granted(world, key) == {first, second}


def test_taking_over_an_expired_lease_waits_out_the_holders_write_deadline(world: World) -> None:
    # Given a holder whose 60 s lease has expired, with writes in flight for up to 13 s after it
    table = world.env()["STATE_TABLE"]
    now = [1_000.0]
    slept: list[float] = []

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    holder = Lease(table, "k", clock=clock, sleep=sleep, lease_seconds=60, in_flight_seconds=13)
    holder.acquire()
    item = world.ddb.get_item(TableName=table, Key={"id": {"S": holder.item_id}})["Item"]
    assert float(item["write_deadline"]["N"]) == 1_073.0  # stored in the lock item
    now[0] = 1_061.0  # the lease ended a second ago

    # When another writer takes the lock over
    taker = Lease(table, "k", clock=clock, sleep=sleep, lease_seconds=60, in_flight_seconds=13)
    taker.acquire()

    # Then it waited until the holder's write deadline, and its own lease starts after the wait
    assert taker.took_over == holder.owner
    assert slept == [12.0]
    assert taker.remaining() == 60.0
    assert taker.send_deadline() == 1_133.0
    # And the holder can no longer send: its send deadline has passed
    assert holder.send_deadline() < clock()


def verify(*bodies: object) -> dict[str, object]:
    return verify_app.lambda_handler(sqs_event(*bodies), LambdaContext())  # type: ignore[arg-type]


def test_a_grant_lost_to_an_expired_lease_is_retried_not_reported(
    world: World, cmk_object: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writer whose lease expires during its write, and a stale writer that then puts
    # back the policy it had read before (our grant is lost)
    before = world.policy(cmk_object)
    release = Lease.release

    def expired_release(self: Lease) -> None:
        world.kms.put_key_policy(KeyId=cmk_object, PolicyName="default", Policy=json.dumps(before))
        release(self)
        self.held_to_the_end = False

    monkeypatch.setattr(Lease, "release", expired_release)

    # When the object's event is processed
    response = verify(load_event("s3_object_created"))

    # Then the record fails (to be retried) and no REMEDIATED was published for a lost grant
    assert len(response["batchItemFailures"]) == 1  # type: ignore[arg-type]
    assert world.published() == []
    # And the retry, with an honest lease, grants and reports once
    monkeypatch.setattr(Lease, "release", release)
    assert verify(load_event("s3_object_created")) == {"batchItemFailures": []}
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("KEY_ACCESS_MISSING", "REMEDIATED")]
