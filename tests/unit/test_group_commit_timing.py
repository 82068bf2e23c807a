"""Group commit's timing rules (usecases/keygroup.py): how often a waiter reads its entry, and how
long a holder lingers for grants still arriving — the pure rules over every input, and the
holder's linger (``_arrived``) against arrivals in time (a fake clock; the record in moto)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import lambdatime
from clguard.rules import policy
from clguard.state import pendinggrants
from clguard.state.pendinggrants import Entry, Waiter
from clguard.usecases import keygroup
from clguard.usecases.keygroup import LINGER_STEP, POLL_FIRST, POLL_MAX

seconds = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)


@given(previous=seconds)
def test_a_waiters_reads_of_its_entry_back_off_within_their_bounds(previous: float) -> None:
    # Given any previous interval
    # When the next one is chosen
    poll = keygroup.next_poll(previous)
    # Then it is never shorter than POLL_FIRST (a bound on reads a second) nor longer than
    # POLL_MAX (a bound on how late a waiter learns its outcome), and it never shrinks below
    # the previous one inside those bounds (a back-off)
    assert POLL_FIRST <= poll <= POLL_MAX
    assert poll >= min(previous, POLL_MAX)


def _entry(n: int, at: float, state: str) -> Entry:
    return Entry(entry_id=f"e{n}", waiter=Waiter(grants=(), event=f"ev{n}", origin="o"), at=at, state=state)


arrivals = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=2_000.0, allow_nan=False),
        st.sampled_from([pendinggrants.WAITING, pendinggrants.TAKEN, pendinggrants.DONE]),
    ),
    max_size=8,
)


@given(arrivals=arrivals, now=st.floats(min_value=0.0, max_value=2_000.0, allow_nan=False))
def test_a_holder_lingers_only_while_waiting_grants_keep_arriving(
    arrivals: list[tuple[float, str]], now: float
) -> None:
    # Given entries that arrived at any moment (some stamped after our clock: another instance's
    # skew), each waiting, taken or settled
    entries = {f"e{n}": _entry(n, at, state) for n, (at, state) in enumerate(arrivals)}
    # When the holder asks how long the key has been quiet
    quiet = keygroup._quiet_for(entries, now)
    # Then it is the time since the newest waiting arrival, at most LINGER_STEP (no linger) and
    # never negative; entries no longer waiting do not hold the holder back
    waiting = [at for at, state in arrivals if state == pendinggrants.WAITING]
    assert 0.0 <= quiet <= LINGER_STEP
    if not waiting:
        assert quiet == LINGER_STEP
    else:
        assert quiet == min(LINGER_STEP, max(0.0, now - max(waiting)))


@pytest.fixture
def virtual_time() -> Iterator[None]:
    """Each job on its own clock (``bench/lambdatime.py``): the holder's sleeps and the grants'
    arrivals happen in virtual time, read by the product's own ``time.time``."""
    lambdatime.install()
    try:
        yield
    finally:
        lambdatime.uninstall()


def _arrival(table: str, key: str, n: int, at: float) -> Callable[[], None]:
    def arrive() -> None:
        time.sleep(at)
        role = f"arn:aws:iam::123456789012:role/ml/Trainer{n}"
        waiter = Waiter(grants=((role, (policy.TRAINING_DATA.sid,)),), event=f"cpv-{n}", origin="o")
        assert pendinggrants.enqueue(table, key, waiter) is not None

    return arrive


def _gather_with(world: Any, *, queued: int, arriving: list[float], holder_at: float = 0.01) -> tuple[int, float]:
    """``queued`` grants joining the key's queue at 0, more at the given moments, and a holder
    that starts gathering at ``holder_at``: how many it took, and when it stopped lingering."""
    table, key = world.env()["STATE_TABLE"], world.key()
    pendinggrants.read(table, key)  # the DynamoDB client made before the clocks start
    arriving = [0.0] * queued + arriving
    took: list[int] = []
    ended: list[float] = []

    def holder() -> None:
        time.sleep(holder_at)
        # (the grants queued at 0 are in the record first, whatever CPU — a garbage collection —
        # their writes took on their own clocks)
        while len(pendinggrants.read(table, key)[0]) < queued:
            time.sleep(0.001)
        entries, _ = keygroup._arrived(cast(Any, SimpleNamespace(sleep=time.sleep)), table, key)
        took.append(len(entries))
        ended.append(time.monotonic())

    jobs = [holder] + [_arrival(table, key, n, at) for n, at in enumerate(arriving)]
    run = lambdatime.Schedule()
    assert run.run(jobs).errors == []
    return took[0], ended[0] - run.origin["monotonic"]


@pytest.mark.usefixtures("virtual_time")
def test_a_holder_waits_for_grants_still_arriving_until_none_came_for_a_step(world: Any) -> None:
    # Given one grant queued and three more arriving 30 ms apart
    # When the holder gathers at once
    took, stopped = _gather_with(world, queued=1, arriving=[0.03, 0.06, 0.09])
    # Then it took all four, and stopped once none had arrived for LINGER_STEP (its own CPU apart)
    assert took == 4
    assert 0.09 + LINGER_STEP <= stopped < 0.09 + LINGER_STEP + 0.02


@pytest.mark.usefixtures("virtual_time")
def test_a_holder_does_not_wait_for_grants_that_queued_long_ago(world: Any) -> None:
    # Given two grants that queued 200 ms before the holder gathers (during an earlier write)
    # When it gathers
    took, stopped = _gather_with(world, queued=2, arriving=[], holder_at=0.2)
    # Then it takes them at once: nothing more is coming with them
    assert took == 2
    assert stopped < 0.2 + 0.02


@pytest.mark.usefixtures("virtual_time")
def test_a_holder_alone_never_waits(world: Any) -> None:
    # Given no grant waiting on the key; when the holder gathers, then it writes at once
    took, stopped = _gather_with(world, queued=0, arriving=[])
    assert took == 0
    assert stopped < 0.01 + 0.02


@pytest.mark.usefixtures("virtual_time")
def test_a_stream_that_never_stops_holds_the_holder_back_at_most_linger_max(world: Any) -> None:
    # Given a grant queued and one more arriving every 20 ms (up to the record's bound)
    arriving = [0.02 * n for n in range(1, pendinggrants.MAX_ENTRIES)]
    # When the holder gathers
    _took, stopped = _gather_with(world, queued=1, arriving=arriving)
    # Then it lingered LINGER_MAX, no more, and wrote
    assert keygroup.LINGER_MAX <= stopped < keygroup.LINGER_MAX + 0.05
