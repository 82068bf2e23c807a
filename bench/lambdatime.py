"""Concurrent Lambda invocations, each on its own processor: a virtual clock for benchmarks.

In Lambda, twenty concurrent invocations run in twenty execution environments: each has its own
CPU, and what one computes does not slow the others. Here they are twenty threads of one
interpreter on two shared cores, so the wall time of a burst measures this machine's GIL more
than the code (figure 15: twenty grants' CPU, serialized, is several times the whole goal). This
module measures what Lambda would see, with the real code, the real AWS calls (moto) and the real
coordination between the invocations:

* the threads of one run take turns; exactly one runs at a time, and the one that runs is always
  the one whose own clock is earliest (ties in the order the jobs were given);
* a thread's clock advances by the CPU it uses (``time.thread_time``, which only counts its own
  work) and by what it sleeps (``time.sleep`` does not block: it moves the clock on and gives the
  turn away);
* a thread gives up its turn before each AWS call (where a real invocation would wait on the
  network), so the shared state — DynamoDB items, the key policy — is read and written in the order
  of the threads' own clocks, to within the CPU one thread spends between two AWS calls;
* inside a thread of the run, ``time.time``, ``time.monotonic`` and ``time.perf_counter`` read its
  clock (so leases, deadlines and poll loops see virtual time); every other thread reads the real
  clocks.

A run's makespan is the latest clock at which a job ended: the wall time of the burst had each
invocation its own processor. The CPU moto spends answering a call (in production, AWS's servers')
is set aside, not charged to the caller (moto's DynamoDB expression parser alone takes 0.3 s of CPU
for one UpdateItem of 19 clauses, which DynamoDB serves in milliseconds); each AWS call instead
takes ``aws_call_seconds`` (``install``), 0 by default: the strictest setting for a ratio to a
single invocation, which is then as fast as it can be.

What it cannot see, and how a run guards against it: CPU spent by threads a job starts (a thread
pool) is no invocation's: ``Schedule.run`` measures the process's CPU beside the jobs' and raises
``Unaccounted`` when more than a little ran elsewhere. A job that blocks on something other than
the clock (a lock another job holds across a sleep, ``Event.wait``) takes real time the clocks do
not count, or stops the run: a run that cannot move raises ``Stuck``. ``datetime.now()`` reads the
real clock (the product uses it for timestamps, never for waits).

``install()`` must run before anything binds the ``time`` functions at import (the product's
``sleep: Callable = time.sleep`` defaults do), so a benchmark that uses it runs in its own process
(``python -m bench.lambdatime MODULE:FUNCTION``). The tests in ``tests/tooling/test_lambda_time.py``
show the clock is faithful: parallel sleeps overlap, CPU is charged to the thread that spent it and
moto's is not, a lease held across sleeps serializes, an AWS call lets the earlier clocks run first,
and a run that cannot move, or that spends CPU outside its jobs, fails instead of measuring.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, SupportsIndex

_REAL_SLEEP = time.sleep
_REAL_TIME = time.time
_REAL_MONOTONIC = time.monotonic
_REAL_PERF_COUNTER = time.perf_counter

_active: Schedule | None = None  # the run in progress (one at a time)
_REAL = {"time": _REAL_TIME, "monotonic": _REAL_MONOTONIC, "perf_counter": _REAL_PERF_COUNTER}
_REAL_NS = {"time": time.time_ns, "monotonic": time.monotonic_ns, "perf_counter": time.perf_counter_ns}
_reached: dict[str, float] = {}  # each clock's latest virtual reading of a finished run


class Stuck(RuntimeError):
    """A run whose threads stopped taking turns (a job blocked on something other than the clock)."""


class Unaccounted(RuntimeError):
    """A run whose process spent CPU outside its jobs' threads (threads a job started): its
    clocks would not have counted it."""


@dataclass
class Ended:
    """What a run measured: each job's end on its own clock (all started at 0), and its errors."""

    seconds: list[float]
    errors: list[BaseException]

    @property
    def makespan(self) -> float:
        return max(self.seconds, default=0.0)


@dataclass
class Schedule:
    """One run of jobs on virtual clocks; see the module's text."""

    timeout: float = 300.0  # real seconds a run may take before it is called stuck
    _turn: int | None = None
    _order: dict[int, int] = field(default_factory=dict)  # thread ident -> job index
    _clock: dict[int, float] = field(default_factory=dict)  # live threads' clocks
    _segment: dict[int, float] = field(default_factory=dict)  # thread CPU when its turn began
    _ended: dict[int, float] = field(default_factory=dict)  # job index -> its clock at the end
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _stuck: bool = False  # set when the run gave up: every thread still waiting for a turn stops
    _aside: dict[int, float] = field(default_factory=dict)  # CPU of this turn that was AWS's (moto)
    _answering: dict[int, float] = field(default_factory=dict)  # thread CPU when moto began answering
    _spent: dict[int, float] = field(default_factory=dict)  # job index -> its thread's whole CPU
    outside_limit: float = 0.05  # CPU seconds a run may spend outside its jobs (the scheduler's own)
    origin: dict[str, float] = field(default_factory=dict)  # each clock's reading at virtual 0

    def run(self, jobs: Sequence[Callable[[], Any]]) -> Ended:
        global _active  # noqa: PLW0603 - the patched time functions find the run here
        if _active is not None:
            raise RuntimeError("one virtual-time run at a time")
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=self._job, args=(n, job, errors), daemon=True, name=f"invocation-{n}")
            for n, job in enumerate(jobs)
        ]
        # A run starts where the real clocks stand, or where the last run's clocks got to if it
        # ran ahead of them (a virtual sleep takes no real time): time never goes backwards.
        self.origin = {name: max(real(), _reached.get(name, 0.0)) for name, real in _REAL.items()}
        cpu = time.process_time()
        _active = self
        try:
            for thread in threads:
                thread.start()
            deadline = _REAL_MONOTONIC() + self.timeout
            with self._cond:
                while len(self._order) < len(jobs):  # every job registered, at clock 0
                    self._cond.wait(0.05)
                self._give_turn()
                while len(self._ended) < len(jobs):
                    if _REAL_MONOTONIC() > deadline:
                        self._stuck = True
                        self._cond.notify_all()
                        raise Stuck(f"virtual-time run stuck: {len(self._ended)} of {len(jobs)} jobs ended")
                    self._cond.wait(0.05)
        finally:
            _active = None
        for thread in threads:
            thread.join()
        outside = time.process_time() - cpu - sum(self._spent.values())
        if outside > self.outside_limit + 0.05 * sum(self._spent.values()):
            raise Unaccounted(f"{outside:.3f} s of CPU ran outside the jobs' threads (a thread a job started?)")
        if not jobs:
            return Ended([], errors)
        ended = Ended([self._ended[n] for n in range(len(jobs))], errors)
        for name, origin in self.origin.items():
            _reached[name] = origin + ended.makespan
        return ended

    def _job(self, index: int, job: Callable[[], Any], errors: list[BaseException]) -> None:
        me = threading.get_ident()
        with self._cond:
            self._order[me], self._clock[me] = index, 0.0
            self._cond.notify_all()
            self._await_turn(me)
        began = time.thread_time()
        try:
            job()
        except BaseException as error:  # noqa: BLE001 - the run reports it; the others go on
            errors.append(error)
        finally:
            with self._cond:
                self._charge(me)
                self._spent[index] = time.thread_time() - began
                self._ended[index] = self._clock.pop(me)
                self._give_turn()

    def participates(self) -> bool:
        return threading.get_ident() in self._clock

    def now(self) -> float:
        return self._clock[threading.get_ident()] + self._own_cpu(threading.get_ident())

    def sleep(self, seconds: float) -> None:
        """Move this thread's clock on by its CPU and ``seconds``; run whoever is earliest next."""
        me = threading.get_ident()
        with self._cond:
            self._charge(me)
            self._clock[me] += max(0.0, seconds)
            self._give_turn()
            self._await_turn(me)

    def _await_turn(self, me: int) -> None:
        while self._turn != me:
            if self._stuck:
                raise Stuck("the virtual-time run gave up")
            self._cond.wait()
        self._segment[me] = time.thread_time()
        self._aside.pop(me, None)

    def _own_cpu(self, me: int) -> float:
        """The CPU of this thread's current turn that is the invocation's: all of it but what
        moto spent answering its calls (done, and under way)."""
        now, began = time.thread_time(), self._segment[me]
        cpu = now - began - self._aside.get(me, 0.0)
        answering = self._answering.get(me)
        if answering is not None:
            cpu -= now - max(answering, began)
        return cpu

    def _charge(self, me: int) -> None:
        self._clock[me] += self._own_cpu(me)
        self._aside.pop(me, None)

    def begin_answer(self) -> None:
        """moto starts answering an AWS call on this thread: AWS's CPU from here."""
        self._answering[threading.get_ident()] = time.thread_time()

    def end_answer(self) -> None:
        """moto answered: what it spent in this turn is set aside (a turn given away inside the
        answer already left out the part before it)."""
        me = threading.get_ident()
        answering = self._answering.pop(me)
        self._aside[me] = self._aside.get(me, 0.0) + time.thread_time() - max(answering, self._segment[me])

    def _give_turn(self) -> None:
        live = self._clock
        self._turn = min(live, key=lambda t: (live[t], self._order[t])) if live else None
        self._cond.notify_all()


def _sleep(seconds: float | SupportsIndex) -> None:
    run = _active
    if run is not None and run.participates():
        run.sleep(float(seconds))
    else:
        _REAL_SLEEP(seconds)


def _clock(name: str) -> Callable[[], float]:
    real = _REAL[name]

    def read() -> float:
        run = _active
        if run is not None and run.participates():
            return run.origin[name] + run.now()
        return real()

    return read


def _clock_ns(name: str) -> Callable[[], int]:
    real = _REAL_NS[name]

    def read() -> int:
        run = _active
        if run is not None and run.participates():
            return int((run.origin[name] + run.now()) * 1e9)
        return real()

    return read


def _around_call(original: Callable[..., Any]) -> Callable[..., Any]:
    def make_api_call(client: Any, operation: str, params: Any) -> Any:
        run = _active
        if run is None or not run.participates():
            return original(client, operation, params)
        run.sleep(0.0)  # where an invocation waits on the network, the others may run
        try:
            return original(client, operation, params)
        finally:
            run.sleep(call_seconds)  # the round trip and AWS's own time, as stated by the benchmark

    make_api_call.__wrapped_call__ = original  # type: ignore[attr-defined]
    return make_api_call


def _aws_side(original: Callable[..., Any]) -> Callable[..., Any]:
    def answer(stubber: Any, *args: Any, **kwargs: Any) -> Any:
        run = _active
        if run is None or not run.participates():
            return original(stubber, *args, **kwargs)
        run.begin_answer()
        try:
            return original(stubber, *args, **kwargs)
        finally:
            run.end_answer()

    answer.__wrapped_call__ = original  # type: ignore[attr-defined]
    return answer


call_seconds = 0.0  # what every AWS call takes beyond the caller's own CPU (see ``install``)


def install(*, aws_call_seconds: float = 0.0) -> None:
    """Put the virtual clock under ``time`` (seconds and nanoseconds) and around every botocore
    call and moto answer, for this process. ``aws_call_seconds``: what each AWS call takes on the
    caller's clock beyond its own CPU (the round trip and the service's time)."""
    global call_seconds  # noqa: PLW0603 - one setting for the process
    call_seconds = aws_call_seconds
    if time.sleep is _sleep:
        return
    time.sleep = _sleep
    time.time, time.monotonic, time.perf_counter = _clock("time"), _clock("monotonic"), _clock("perf_counter")
    time.time_ns, time.monotonic_ns = _clock_ns("time"), _clock_ns("monotonic")
    time.perf_counter_ns = _clock_ns("perf_counter")
    from botocore.client import BaseClient  # noqa: PLC0415 - after the clock, like every other import
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415

    for owner, name, wrap in ((BaseClient, "_make_api_call", _around_call), (BotocoreStubber, "__call__", _aws_side)):
        setattr(owner, name, wrap(getattr(owner, name)))


def uninstall() -> None:
    """Back to the real clocks (tests of this module; a benchmark process just exits)."""
    from botocore.client import BaseClient  # noqa: PLC0415

    time.sleep, time.time = _REAL_SLEEP, _REAL_TIME
    time.monotonic, time.perf_counter = _REAL_MONOTONIC, _REAL_PERF_COUNTER
    time.time_ns, time.monotonic_ns = _REAL_NS["time"], _REAL_NS["monotonic"]
    time.perf_counter_ns = _REAL_NS["perf_counter"]
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415

    for owner, name in ((BaseClient, "_make_api_call"), (BotocoreStubber, "__call__")):
        original = getattr(getattr(owner, name), "__wrapped_call__", None)
        if original is not None:
            setattr(owner, name, original)


if __name__ == "__main__":  # python -m bench.lambdatime [--aws-call-seconds S] MODULE:FUNCTION -> its JSON
    import argparse
    import importlib
    import json

    clocks = importlib.import_module("bench.lambdatime")  # the module the measured code sees, not this copy

    parser = argparse.ArgumentParser(prog="python -m bench.lambdatime")
    parser.add_argument("--aws-call-seconds", type=float, default=0.0)
    parser.add_argument("target", help="MODULE:FUNCTION, called with no arguments; its result printed as JSON")
    arguments = parser.parse_args()
    clocks.install(aws_call_seconds=arguments.aws_call_seconds)  # before the product binds ``time`` at import
    module, _, function = arguments.target.partition(":")
    print(json.dumps(getattr(importlib.import_module(module), function)()))
