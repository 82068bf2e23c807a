"""The virtual clock of ``bench/lambdatime.py``: concurrent invocations measured as if each had its
own processor (as each Lambda execution environment has). Figure 15b's goal is judged on it, so
these tests show it neither hides serialization nor invents parallelism, and fails rather than hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import boto3
import pytest
from moto import mock_aws

from bench import lambdatime


@pytest.fixture
def virtual_time() -> Iterator[None]:
    lambdatime.install()
    try:
        yield
    finally:
        lambdatime.uninstall()


def _burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's own CPU."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


@pytest.mark.usefixtures("virtual_time")
def test_invocations_that_wait_overlap_as_they_would_on_their_own_processors() -> None:
    # Given twenty jobs that each wait 100 ms (a write's latency)
    jobs = [lambda: time.sleep(0.1) for _ in range(20)]
    # When they run at once on virtual clocks
    started = lambdatime._REAL_MONOTONIC()
    ended = lambdatime.Schedule().run(jobs)
    # Then the burst takes one wait, not twenty, and no real time was slept
    assert ended.errors == []
    assert all(0.1 <= seconds < 0.15 for seconds in ended.seconds)
    assert 0.1 <= ended.makespan < 0.15
    assert lambdatime._REAL_MONOTONIC() - started < 1.0


@pytest.mark.usefixtures("virtual_time")
def test_cpu_is_charged_to_the_invocation_that_spent_it() -> None:
    # Given one job that computes for 60 ms and one that only waits 10 ms
    jobs = [lambda: _burn(0.06), lambda: time.sleep(0.01)]
    # When they run at once
    ended = lambdatime.Schedule().run(jobs)
    # Then the waiting one ends after its own 10 ms, not after the other's computation
    busy, waiting = ended.seconds
    assert busy >= 0.06
    assert 0.01 <= waiting < 0.03


@pytest.mark.usefixtures("virtual_time")
def test_work_serialized_by_shared_state_stays_serialized() -> None:
    # Given five jobs that each take a lease kept in shared state (polled, as the key lease is),
    # hold it for a 100 ms write and let it go
    lease: dict[str, int] = {}

    def job(n: int) -> None:
        while lease.setdefault("holder", n) != n:
            time.sleep(0.01)
        time.sleep(0.1)
        del lease["holder"]

    # When they run at once
    ended = lambdatime.Schedule().run([partial(job, n) for n in range(5)])
    # Then the writes follow one another: the burst lasts five writes, the first ends after one
    assert ended.errors == []
    assert ended.makespan >= 0.5
    assert min(ended.seconds) < 0.15


@pytest.mark.usefixtures("virtual_time")
def test_inside_a_run_the_clocks_read_the_invocations_own_time() -> None:
    # Given a job that reads every clock, waits 30 s (a lease's wait) and reads them again
    readings: list[tuple[float, float, float]] = []

    def job() -> None:
        readings.append((time.time(), time.monotonic(), time.perf_counter()))
        time.sleep(30)
        readings.append((time.time(), time.monotonic(), time.perf_counter()))

    # When it runs
    real_before = lambdatime._REAL_TIME()
    ended = lambdatime.Schedule().run([job])
    # Then each clock moved 30 s on, from where the real one stood, and the run took 30 s of its time
    before, after = readings
    assert all(30 <= b - a < 30.05 for a, b in zip(before, after, strict=True))
    assert before[0] >= real_before
    assert 30 <= ended.makespan < 30.05
    # And outside a run the real clocks are read (the run did not sleep for real)
    assert time.time() - real_before < 5


@pytest.mark.usefixtures("virtual_time")
def test_a_later_run_never_starts_before_an_earlier_run_ended() -> None:
    # Given a run whose virtual clock ran a minute ahead of the real one
    lambdatime.Schedule().run([lambda: time.sleep(60)])
    seen: list[float] = []
    # When the next run reads the time
    lambdatime.Schedule().run([lambda: seen.append(time.time())])
    # Then its time is after the end of the first (leases and deadlines written then are in its past)
    assert seen[0] >= lambdatime._REAL_TIME() + 55


@pytest.mark.usefixtures("virtual_time")
def test_state_is_seen_in_the_order_of_the_invocations_clocks() -> None:
    # Given one job that writes after 200 ms and one after 100 ms
    written: list[str] = []

    def late() -> None:
        time.sleep(0.2)
        written.append("late")

    def early() -> None:
        time.sleep(0.1)
        written.append("early")

    # When they run, the late one given first
    lambdatime.Schedule().run([late, early])
    # Then the writes land in the order of their clocks, not of the threads
    assert written == ["early", "late"]


@pytest.mark.usefixtures("virtual_time")
def test_calls_reach_aws_in_the_order_of_the_callers_clocks() -> None:
    # Given one job that computes for 50 ms, then calls AWS (its clock reads 0.05 at the call),
    # and one that waits 10 ms, then calls (0.01), the first given first
    sent: list[str] = []
    with mock_aws():
        client = boto3.client("sts", region_name="us-east-1")
        client.get_caller_identity()  # the client's first-call work done before the run
        names: dict[int, str] = {}
        client.meta.events.register("before-send", lambda **_: sent.append(names[threading.get_ident()]))

        def job(name: str, cpu: float, wait: float) -> None:
            names[threading.get_ident()] = name
            _burn(cpu)
            if wait:  # (a sleep of 0 would give the turn away too)
                time.sleep(wait)
            client.get_caller_identity()

        # When they run at once
        ended = lambdatime.Schedule().run([partial(job, "A", 0.05, 0.0), partial(job, "B", 0.0, 0.01)])
    # Then B's call reaches AWS first: the turn is given away before each call, and the earliest
    # clock runs (without it, A would call as soon as it had computed)
    assert ended.errors == []
    assert sent == ["B", "A"]


@pytest.mark.usefixtures("virtual_time")
def test_the_cpu_moto_spends_answering_is_awss_not_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an AWS service whose (emulated) answer costs 100 ms of CPU
    from moto.sts.models import STSBackend  # noqa: PLC0415

    original = STSBackend.get_caller_identity

    def slow_answer(backend: object, *args: object, **kwargs: object) -> object:
        _burn(0.1)
        return original(backend, *args, **kwargs)  # type: ignore[arg-type]

    with mock_aws():
        client = boto3.client("sts", region_name="us-east-1")
        client.get_caller_identity()
        monkeypatch.setattr(STSBackend, "get_caller_identity", slow_answer)
        # When a job calls it
        ended = lambdatime.Schedule().run([client.get_caller_identity])
    # Then the caller's clock holds its own work (botocore's, milliseconds), not moto's 100 ms
    assert ended.errors == []
    assert ended.makespan < 0.05


@pytest.mark.usefixtures("virtual_time")
def test_a_turn_given_away_inside_an_answer_never_runs_the_clock_backwards() -> None:
    # Given a moto answer (set aside) that computes, then sleeps (a double emulating latency)
    readings: list[float] = []

    def answer(_stubber: object) -> None:
        _burn(0.05)
        time.sleep(0.01)
        readings.append(time.monotonic())

    aws_side = lambdatime._aws_side(answer)

    def job() -> None:
        readings.append(time.monotonic())
        aws_side(None)
        time.sleep(0)
        readings.append(time.monotonic())

    # When a job gets that answer
    lambdatime.Schedule().run([job])
    # Then its clock only moves forward, by the sleep and not by moto's 50 ms
    assert readings == sorted(readings)
    assert 0.01 <= readings[-1] - readings[0] < 0.03


@pytest.mark.usefixtures("virtual_time")
def test_cpu_spent_outside_the_jobs_threads_fails_the_run() -> None:
    # Given a job that computes 200 ms in a thread of its own pool (no invocation's clock sees it)
    def job() -> None:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(_burn, 0.2).result()

    # When it runs, then the run refuses to measure
    with pytest.raises(lambdatime.Unaccounted, match="outside the jobs' threads"):
        lambdatime.Schedule().run([job])


@pytest.mark.usefixtures("virtual_time")
def test_the_nanosecond_clocks_read_the_invocations_time_too() -> None:
    # Given a job that reads the nanosecond clocks, waits 30 s and reads them again
    seen: list[tuple[int, int, int]] = []

    def job() -> None:
        seen.append((time.time_ns(), time.monotonic_ns(), time.perf_counter_ns()))
        time.sleep(30)
        seen.append((time.time_ns(), time.monotonic_ns(), time.perf_counter_ns()))

    # When it runs
    lambdatime.Schedule().run([job])
    # Then each moved 30 s on
    before, after = seen
    assert all(30e9 <= b - a < 30.05e9 for a, b in zip(before, after, strict=True))


@pytest.mark.usefixtures("virtual_time")
def test_a_run_that_cannot_move_fails_instead_of_hanging() -> None:
    # Given two jobs that share a real lock, one of which holds it across a sleep (gives the turn
    # away while the other must block on the lock: nothing can move)
    lock = threading.Lock()

    def holder() -> None:
        with lock:
            time.sleep(0.1)

    def blocked() -> None:
        time.sleep(0.01)
        with lock:
            pass

    # When they run
    # Then the run is reported stuck within its timeout
    with pytest.raises(lambdatime.Stuck, match=r"[01] of 2 jobs ended"):
        lambdatime.Schedule(timeout=0.5).run([holder, blocked])


@pytest.mark.usefixtures("virtual_time")
def test_a_failing_invocation_is_reported_and_the_others_finish() -> None:
    # Given one job that raises and one that waits
    def broken() -> None:
        raise ValueError("broken invocation")

    # When they run
    ended = lambdatime.Schedule().run([broken, lambda: time.sleep(0.05)])
    # Then the error is returned and the other job still ran to its end
    assert [str(e) for e in ended.errors] == ["broken invocation"]
    assert ended.seconds[1] >= 0.05


def test_uninstall_restores_the_real_clocks() -> None:
    # Given the virtual clock installed and removed again
    lambdatime.install()
    lambdatime.uninstall()
    # Then time and botocore are as they were
    from botocore.client import BaseClient  # noqa: PLC0415

    assert time.sleep is lambdatime._REAL_SLEEP
    assert time.time is lambdatime._REAL_TIME
    assert time.time_ns is lambdatime._REAL_NS["time"]
    assert not hasattr(vars(BaseClient)["_make_api_call"], "__wrapped_call__")
