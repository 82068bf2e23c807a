"""Group commit (docs/architecture.md §12): twenty first-time trainers on one key at the same
moment are written in one or two PutKeyPolicy calls, each reported once by its own event — and
a holder that dies after taking the waiting principals loses none of them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from clguard.adapters import dynamodb, kms
from clguard.errors import RetryableError, Throttled
from clguard.rules import policy
from clguard.state import locks, pendinggrants
from clguard.state.locks import Lease
from clguard.state.pendinggrants import Waiter
from clguard.usecases import keyaccess, keyattempt, keygroup, keywrite
from tests.integration.test_concurrency import grant_job, granted, run_together
from tests.integration.test_crash_at_every_point import drain_outbox
from tests.world import ACCOUNT, World

TRAINERS = 20


class Killed(BaseException):
    """The runtime was killed (Lambda timeout, out of memory): no ``except Exception`` runs."""


@pytest.fixture
def roles(world: World) -> list[str]:
    return [world.role(f"Trainer{n:02}", "/ml/") for n in range(TRAINERS)]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every PutKeyPolicy sent, each taking 100 ms (a KMS write's latency)."""
    sent: list[str] = []
    original = kms.put_policy

    def put_policy(key_arn: str, text: str, **kwargs: Any) -> None:
        sent.append(text)
        time.sleep(0.1)
        original(key_arn, text, **kwargs)

    monkeypatch.setattr(kms, "put_policy", put_policy)
    return sent


def at_the_same_moment(monkeypatch: pytest.MonkeyPatch, parties: int) -> None:
    """Every grant reaches its write (the key's lease) at the same moment."""
    barrier = threading.Barrier(parties, timeout=120)
    arrived: list[int] = []
    original = keywrite.grant

    def grant(*args: Any, **kwargs: Any) -> None:
        arrived.append(1)
        if len(arrived) <= parties:  # the first ``parties`` grants; a later retry goes straight on
            barrier.wait()
        original(*args, **kwargs)

    monkeypatch.setattr(keyaccess, "grant", grant)  # where ensure_access calls it


def remediated(world: World) -> list[str]:
    return sorted(f["principal_arn"] for f in world.findings() if f["outcome"] == "REMEDIATED")


def jobs(world: World, key: str, roles: list[str]) -> list[Callable[[], Any]]:
    return [grant_job(world, key, role, f"cpv-{n}") for n, role in enumerate(roles)]


def test_twenty_first_time_trainers_on_one_key_are_written_in_at_most_two_writes(
    world: World, roles: list[str], writes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one managed key and twenty trainers none of which it grants yet
    key = world.key()
    original = world.policy(key)["Statement"]
    at_the_same_moment(monkeypatch, TRAINERS)

    # When all twenty train on it at the same moment
    errors = run_together(jobs(world, key, roles))

    # Then every principal is granted, in at most two PutKeyPolicy calls, the original
    # statements unchanged
    assert errors == []
    assert granted(world, key) == set(roles)
    assert len(writes) <= 2
    assert world.policy(key)["Statement"][: len(original)] == original
    # And each trainer's event reported its own grant exactly once
    assert remediated(world) == sorted(roles)
    events = {f["principal_arn"]: f["source_event_id"] for f in world.findings() if f["outcome"] == "REMEDIATED"}
    assert events == {role: f"cpv-{n}" for n, role in enumerate(roles)}
    # And the pending record is left empty
    entries, _ = pendinggrants.read(world.env()["STATE_TABLE"], key)
    assert entries == {}


@pytest.fixture
def short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """2 s leases, a 0.2 s in-flight bound, and a holder presumed dead 0.2 s after that."""
    monkeypatch.setattr(keywrite, "Lease", partial(Lease, lease_seconds=2.0, in_flight_seconds=0.2))
    monkeypatch.setattr(locks, "IN_FLIGHT_SECONDS", 0.2, raising=False)
    monkeypatch.setattr(keyattempt, "MIN_LEASE_LEFT", 0.5)
    monkeypatch.setattr(keygroup, "PRESUMED_DEAD_AFTER", 0.2)


def holder_waits_for(monkeypatch: pytest.MonkeyPatch, world: World, key: str, waiting: int) -> list[int]:
    """The first holder takes the pending principals only once ``waiting`` have enqueued (so the
    one that dies below has taken them all). Returns how many each holder took."""
    original = keygroup.gather
    first = threading.Event()
    took: list[int] = []

    def gather(*args: Any, **kwargs: Any) -> None:
        if not first.is_set():
            first.set()
            deadline = time.monotonic() + 120
            while len(pendinggrants.read(world.env()["STATE_TABLE"], key)[0]) < waiting:
                assert time.monotonic() < deadline, "the waiters never enqueued"
                time.sleep(0.02)
        original(*args, **kwargs)
        took.append(len(args[-1].members))

    monkeypatch.setattr(keygroup, "gather", gather)
    return took


@pytest.mark.usefixtures("short_leases")
@pytest.mark.parametrize("dies", ["before its write", "after its write"])
def test_a_holder_that_dies_after_taking_the_waiting_principals_loses_none(
    world: World, writes: list[str], monkeypatch: pytest.MonkeyPatch, dies: str
) -> None:
    # Given one managed key, five trainers at the same moment, and a holder that takes the four
    # others' principals and then dies (the runtime killed: no handler runs)
    roles = [world.role(f"Trainer{n}", "/ml/") for n in range(5)]
    key = world.key()
    at_the_same_moment(monkeypatch, len(roles))
    took = holder_waits_for(monkeypatch, world, key, waiting=len(roles) - 1)
    died: list[str] = []
    if dies == "before its write":
        original_put = kms.put_policy

        def put_policy(key_arn: str, text: str, **kwargs: Any) -> None:
            if not died:
                died.append(text)
                raise Killed("killed right before PutKeyPolicy")
            original_put(key_arn, text, **kwargs)

        monkeypatch.setattr(kms, "put_policy", put_policy)
    else:
        original_settle = pendinggrants.settle

        def settle(*args: Any, **kwargs: Any) -> None:
            if not died:
                died.append("settle")
                raise Killed("killed after the write, before the waiters' outcome was recorded")
            original_settle(*args, **kwargs)

        monkeypatch.setattr(pendinggrants, "settle", settle)

    # When they run, and the dead holder's event is retried by Lambda
    errors = run_together(jobs(world, key, roles))
    [killed] = [e for e in errors if isinstance(e, Killed)]
    assert [e for e in errors if e is not killed] == []
    unreported = [n for n, role in enumerate(roles) if role not in remediated(world)]
    for n in unreported:
        grant_job(world, key, roles[n], f"cpv-{n}")()
    # (a finding the dead holder had claimed but not sent yet is handed by the retry to the findings
    # outbox, which publishes it once the dead attempt's in-progress record has expired)
    drain_outbox(world)

    # Then the dead holder had taken the four others' principals, and every principal is granted
    # and reported exactly once, by its own event
    assert died
    assert took[0] == len(roles) - 1
    assert granted(world, key) == set(roles)
    assert remediated(world) == sorted(roles)
    # (only the dead holder's own event needed its retry)
    assert len(unreported) <= 1


def test_a_principal_outside_the_guardrails_in_a_forged_pending_entry_is_never_written(
    world: World, writes: list[str]
) -> None:
    # Given pending entries nobody's checks passed: a principal of another account, and the
    # account's root
    key = world.key()
    table = world.env()["STATE_TABLE"]
    trainer = world.role("Trainer", "/ml/")
    outsiders = ["arn:aws:iam::999999999999:role/ml/Stranger", f"arn:aws:iam::{ACCOUNT}:root"]
    for n, outsider in enumerate(outsiders):
        forged = Waiter(grants=((outsider, (policy.TRAINING_DATA.sid,)),), event=f"forged-{n}", origin="forged")
        assert pendinggrants.enqueue(table, key, forged) is not None

    # When a real trainer's grant takes the lease and writes
    grant_job(world, key, trainer, "cpv-real")()

    # Then only the trainer is in the policy, in one write; the forged entries were refused
    assert granted(world, key) == {trainer}
    assert len(writes) == 1
    assert remediated(world) == [trainer]
    entries, _ = pendinggrants.read(table, key)
    assert {e.state for e in entries.values()} == {pendinggrants.DONE}
    settled = [row["document"] for e in entries.values() for row in json.loads(e.findings)]
    # (the root needs nothing: the key's own statement already lets it use the key)
    assert [(d["principal_arn"], d["finding_type"], d["outcome"]) for d in settled] == [
        (outsiders[0], "KEY_ACCESS_MISSING", "REFUSED")
    ]


@pytest.fixture
def full_record(world: World, monkeypatch: pytest.MonkeyPatch) -> str:
    """A key whose pending record holds ``MAX_ENTRIES`` waiting entries of trainers (bound 3)."""
    monkeypatch.setattr(pendinggrants, "MAX_ENTRIES", 3)
    key = world.key()
    table = world.env()["STATE_TABLE"]
    for n in range(3):
        role = world.role(f"Queued{n}", "/ml/")
        waiter = Waiter(grants=((role, (policy.TRAINING_DATA.sid,)),), event=f"queued-{n}", origin="test")
        assert pendinggrants.enqueue(table, key, waiter) is not None
    return key


def test_past_the_pending_records_bound_a_grant_waits_for_the_lease_and_is_not_lost(
    world: World, full_record: str, writes: list[str]
) -> None:
    # Given a key's pending record at its bound, and the key's lease held by another writer
    key = full_record
    table = world.env()["STATE_TABLE"]
    late = world.role("Late", "/ml/")
    holder = Lease(table, key)
    holder.acquire()
    assert (
        pendinggrants.enqueue(table, key, Waiter(grants=((late, (policy.TRAINING_DATA.sid,)),), event="x", origin="t"))
        is None
    )

    # When a trainer's grant comes and the holder releases the lease a moment later
    threading.Timer(0.5, holder.release).start()
    grant_job(world, key, late, "cpv-late")()

    # Then the grant waited for the lease (no entry of its own) and wrote, with the queued ones
    assert late in granted(world, key)
    assert len(granted(world, key)) == 4
    assert remediated(world) == [late]
    entries, _ = pendinggrants.read(table, key)
    assert len(entries) == 3
    assert all(e.waiter.event.startswith("queued-") for e in entries.values())


def test_an_over_long_wait_ends_as_a_failed_finding_and_a_retry_never_silence(
    world: World, writes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a key whose lease another writer holds and does not release within the wait (0.3 s)
    monkeypatch.setattr(locks, "WAIT_SECONDS", 0.3)
    key = world.key()
    table = world.env()["STATE_TABLE"]
    trainer = world.role("Trainer", "/ml/")
    holder = Lease(table, key)
    holder.acquire()

    # When the trainer's grant joins the holder's write and the holder never takes it
    with pytest.raises(RetryableError):
        grant_job(world, key, trainer, "cpv-wait")()

    # Then it said so (FAILED, nothing written), withdrew its entry, and its event is retried
    failed = [(f["principal_arn"], f["outcome"]) for f in world.findings() if f["finding_type"] == "KEY_ACCESS_MISSING"]
    assert failed == [(trainer, "FAILED")]
    assert writes == []
    assert pendinggrants.read(table, key)[0] == {}
    # And the retry, once the lease is free, grants and reports it
    holder.release()
    grant_job(world, key, trainer, "cpv-wait")()
    assert granted(world, key) == {trainer}
    assert remediated(world) == [trainer]


def test_a_grant_that_finds_the_lease_taken_joins_the_queue_in_one_write(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a first-time trainer's grant on a key never written before, and, while that grant
    # holds the key's lease (during its PutKeyPolicy), another trainer's grant joining the queue
    key = world.key()
    table = world.env()["STATE_TABLE"]
    late = world.role("Late", "/ml/")
    updates: list[str] = []
    original_update, original_put = pendinggrants._update, kms.put_policy

    def counted(table: str, key_arn: str, expression: str, **kwargs: Any) -> Any:
        updates.append(expression)
        return original_update(table, key_arn, expression, **kwargs)

    joined: list[str | None] = []

    def put_policy(key_arn: str, text: str, **kwargs: Any) -> None:
        monkeypatch.setattr(pendinggrants, "_update", counted)
        waiter = Waiter(grants=((late, (policy.TRAINING_DATA.sid,)),), event="cpv-late", origin="t")
        joined.append(pendinggrants.enqueue(table, key_arn, waiter))
        monkeypatch.setattr(pendinggrants, "_update", original_update)
        original_put(key_arn, text, **kwargs)

    monkeypatch.setattr(kms, "put_policy", put_policy)

    # When the first grant runs
    grant_job(world, key, world.role("First", "/ml/"), "cpv-first")()

    # Then the holder had opened the key's queue as it took the lease: the joining grant's entry
    # took one write (not three: a failed write, the record's creation, the write again), so it
    # is there in time for a holder that gathers a moment later
    assert joined[0] is not None
    assert len(updates) == 1
    entries, _ = pendinggrants.read(table, key)
    assert [e.waiter.event for e in entries.values()] == ["cpv-late"]


def slow_writes(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[str]:
    """Every PutKeyPolicy sent, each taking ``seconds``."""
    sent: list[str] = []
    original = kms.put_policy

    def put_policy(key_arn: str, text: str, **kwargs: Any) -> None:
        sent.append(text)
        time.sleep(seconds)
        original(key_arn, text, **kwargs)

    monkeypatch.setattr(kms, "put_policy", put_policy)
    return sent


def counted(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Each call of ``owner.name``, counted."""
    calls: list[int] = []
    original = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def two_trainers(world: World, monkeypatch: pytest.MonkeyPatch, write_seconds: float) -> tuple[str, list[str]]:
    """A managed key, two first-time trainers that reach it at the same moment, and writes that
    take ``write_seconds``."""
    slow_writes(monkeypatch, write_seconds)
    at_the_same_moment(monkeypatch, 2)
    return world.key(), [world.role(f"Trainer{n:02}", "/ml/") for n in range(2)]


def test_a_waiter_watches_the_holders_lease_not_the_pending_record_while_it_writes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two first-time trainers on one key at the same moment, and a holder whose write takes
    # two seconds (a slow KMS, or a read that lags and is read twice)
    key, roles = two_trainers(world, monkeypatch, 2.0)
    record_reads = counted(monkeypatch, pendinggrants, "read_one")
    lease_reads = counted(monkeypatch, Lease, "current_owner")

    # When both train
    errors = run_together(jobs(world, key, roles))

    # Then both are granted and reported once, and while the holder wrote, the waiter read the
    # small lease item (every 10-20 ms, then 50-100 ms) and the pending record (up to ~300 KB, each
    # read charged whole) only a few times: not every 20 ms, nor on a back-off to 250 ms (~11 reads)
    assert errors == []
    assert granted(world, key) == set(roles)
    assert remediated(world) == sorted(roles)
    assert len(lease_reads) >= 10
    assert len(record_reads) <= 6


def test_a_waiter_whose_read_is_throttled_reads_again_and_reports_its_grant(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two first-time trainers on one key at the same moment, and DynamoDB throttling the
    # waiter's first two reads of its pending entry (after botocore's own retries)
    key, roles = two_trainers(world, monkeypatch, 0.3)
    original = pendinggrants.read_one
    throttled: list[int] = []

    def read_one(*args: Any, **kwargs: Any) -> Any:
        if len(throttled) < 2:
            throttled.append(1)
            raise Throttled("ProvisionedThroughputExceededException", code="ProvisionedThroughputExceededException")
        return original(*args, **kwargs)

    monkeypatch.setattr(pendinggrants, "read_one", read_one)

    # When both train
    errors = run_together(jobs(world, key, roles))

    # Then the waiter took the throttling as no news and read again: no invocation failed (no
    # retry, no orphaned entry), both are granted and each reported once
    assert len(throttled) == 2
    assert errors == []
    assert granted(world, key) == set(roles)
    assert remediated(world) == sorted(roles)
    entries, _ = pendinggrants.read(world.env()["STATE_TABLE"], key)
    assert entries == {}


@pytest.mark.usefixtures("short_leases")
def test_a_waiter_takes_a_dead_holders_lease_as_soon_as_it_expires(world: World) -> None:
    # Given a key whose lease a writer took for one second and then died with (never released)
    key = world.key()
    table = world.env()["STATE_TABLE"]
    dead = Lease(table, key, lease_seconds=1.0, in_flight_seconds=0.2)
    dead.acquire()
    role = world.role("Trainer", "/ml/")

    # When a first-time trainer's grant comes meanwhile (it queues, and watches the lease)
    started = time.monotonic()
    grant_job(world, key, role, "cpv-after-a-dead-writer")()

    # Then it took the expired lease itself and wrote, within moments of the expiry (an expired
    # lease counts as nobody's), not at the end of its 30 s wait
    assert role in granted(world, key)
    assert remediated(world) == [role]
    assert time.monotonic() - started < 5


@pytest.mark.usefixtures("short_leases")
def test_a_waiter_whose_read_under_a_taken_lease_is_throttled_lets_the_lease_go(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a dead writer's expired lease on a key, and a first-time trainer's grant that queues
    # behind it, takes the lease once it expires, and has its read under that lease throttled
    key = world.key()
    table = world.env()["STATE_TABLE"]
    Lease(table, key, lease_seconds=1.0, in_flight_seconds=0.2).acquire()
    role = world.role("Trainer", "/ml/")
    taken: list[Lease] = []
    original_try, original_read = Lease.try_acquire, pendinggrants.read_one

    def try_acquire(lease: Lease) -> bool:
        took = original_try(lease)
        if took:
            taken.append(lease)
        return took

    throttled: list[int] = []

    def read_one(*args: Any, **kwargs: Any) -> Any:
        if taken and taken[-1].held and not throttled:
            throttled.append(1)
            raise Throttled("ProvisionedThroughputExceededException", code="ProvisionedThroughputExceededException")
        return original_read(*args, **kwargs)

    monkeypatch.setattr(Lease, "try_acquire", try_acquire)
    monkeypatch.setattr(pendinggrants, "read_one", read_one)

    # When the grant runs
    grant_job(world, key, role, "cpv-throttled-under-the-lease")()

    # Then the throttled read gave the lease back (no 60 s lease held for nothing), the grant took
    # it again, wrote and reported once, and no lease is left behind
    assert throttled == [1]
    assert role in granted(world, key)
    assert remediated(world) == [role]
    assert dynamodb.get(table, f"lock#{key}") is None


@pytest.mark.usefixtures("short_leases")
def test_a_holder_that_settles_our_entry_after_we_took_its_lease_over_is_still_reported(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writer H0 whose lease expires mid-write: it took a first-time trainer's queued entry
    # and its write of the principal landed, and it settles the entry (REMEDIATED) only after the
    # trainer's own grant read the entry abandoned and took the lease over
    key = world.key()
    table = world.env()["STATE_TABLE"]
    h0 = Lease(table, key, lease_seconds=1.0, in_flight_seconds=0.2)
    h0.acquire()
    pendinggrants.open_queue(table, key)
    role = world.role("Trainer", "/ml/")
    original_enqueue, original_wait = pendinggrants.enqueue, keygroup._wait

    def enqueue(table_: str, key_arn: str, waiter: Any) -> Any:
        entry_id = original_enqueue(table_, key_arn, waiter)
        assert entry_id is not None
        entries, _ = pendinggrants.read(table_, key_arn)
        assert pendinggrants.take(table_, key_arn, [entries[entry_id]], holder=h0.owner, until=h0.write_deadline())
        grants = [(p, tuple(keygroup.SPECS_BY_SID[s] for s in sids)) for p, sids in waiter.grants]
        merged = policy.merge_grants(
            policy.parse(kms.get_policy(key_arn)), grants, key_account=ACCOUNT, key_arn=key_arn
        )
        kms.put_policy(key_arn, policy.serialize(merged.document))
        return entry_id

    def wait(ctx: Any, lock: Lease, key_info: Any, needed: Any, entry_id: str) -> Any:
        out = original_wait(ctx, lock, key_info, needed, entry_id)
        assert out is None  # the takeover: this grant holds the lease now
        assert lock.held
        found = [keyattempt.remediated_finding(ctx, key_info, p, specs) for p, specs in needed.items()]
        text = pendinggrants.bounded_findings([(f.document(), f.scope) for f in found])
        pendinggrants.settle(table, key_info.arn, {entry_id: (text, False)}, holder=h0.owner)
        return out

    monkeypatch.setattr(pendinggrants, "enqueue", enqueue)
    monkeypatch.setattr(keygroup, "_wait", wait)

    # When the trainer's grant runs
    grant_job(world, key, role, "cpv-late-settle")()

    # Then the principal is granted once and its REMEDIATED is published once (from H0's
    # settlement: the takeover finds it granted and writes nothing), and the record is left empty
    assert role in granted(world, key)
    assert remediated(world) == [role]
    entries, _ = pendinggrants.read(table, key)
    assert entries == {}
