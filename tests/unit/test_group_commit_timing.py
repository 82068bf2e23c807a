"""Group commit's timing rules (usecases/keygroup.py): how often a waiter reads its entry, and how
long a holder lingers for grants still arriving. Pure rules, checked over every input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clguard.state import pendinggrants
from clguard.state.pendinggrants import Entry, Waiter
from clguard.usecases import keygroup
from clguard.usecases.keygroup import LINGER_STEP, POLL_FIRST, POLL_MAX, POLL_SOON, SOON_SECONDS

seconds = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)


@given(previous=seconds, waited=seconds, taken=st.booleans())
def test_a_waiter_reads_often_while_its_wait_is_young_and_never_more_than_its_bound(
    previous: float, waited: float, taken: bool
) -> None:
    # Given any previous interval, any time waited so far, and the entry taken by a holder or not
    # When the next interval is chosen
    poll = keygroup.next_poll(previous, waited=waited, taken=taken)
    # Then it is never shorter than POLL_FIRST (a bound on reads a second) and never longer than
    # POLL_SOON while the wait is young, POLL_MAX after
    young = waited < SOON_SECONDS
    assert POLL_FIRST <= poll <= (POLL_SOON if young else POLL_MAX)
    # And a holder writing our entry is read every POLL_FIRST while young; otherwise the interval
    # doubles up to its bound
    if young and taken:
        assert poll == POLL_FIRST
    else:
        assert poll == min(max(previous * 2, POLL_FIRST), POLL_SOON if young else POLL_MAX)


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
