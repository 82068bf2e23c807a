"""HeadPrefetch (clguard.usecases.prefetch): the batch's HeadObject calls overlap on a bounded pool, at
most ``window`` ahead of use, and an error is raised for the record whose object failed."""

from __future__ import annotations

import threading

import pytest

from clguard.adapters.s3 import Head, HeadStatus
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork
from clguard.usecases.prefetch import HeadPrefetch

BUCKET = "custom-labels-training"


def works(*keys: str) -> list[ObjectWork]:
    return [ObjectWork(S3ObjectRef(BUCKET, key), "event-1", "PutObject") for key in keys]


class FakeHead:
    """A head function that records its calls; ``gate`` holds calls until released."""

    def __init__(self, *, failing: str = "", barrier: threading.Barrier | None = None) -> None:
        self.failing = failing
        self.barrier = barrier
        self.started: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def __call__(self, ref: S3ObjectRef) -> Head:
        key = ref.key
        with self._lock:
            self.started.append(key)
        if self.barrier is not None:
            self.barrier.wait(timeout=5)
        self.gate.wait(timeout=5)
        if key == self.failing:
            raise ConnectionError(f"head of {key} failed")
        return Head(HeadStatus.FOUND, ref, {"ETag": f'"{key}"'})


def test_calls_overlap() -> None:
    # Given the barrier head function injected into the prefetch
    fake = FakeHead(barrier=threading.Barrier(2))
    items = works("a.jpg", "b.jpg")

    # When both are consumed
    prefetch = HeadPrefetch(items, max_workers=2, head=fake)
    try:
        heads = [prefetch(w) for w in items]
    finally:
        prefetch.close()

    # Then both calls met at the barrier (a sequential run would break it after 5 s)
    assert [h.ref.key for h in heads] == ["a.jpg", "b.jpg"]
    assert fake.barrier is not None
    assert not fake.barrier.broken
    assert sorted(fake.started) == ["a.jpg", "b.jpg"]


def test_the_window_bounds_how_far_ahead_calls_start() -> None:
    # Given ten objects, a window of three and a head function held at its gate
    fake = FakeHead()
    fake.gate.clear()
    items = works(*(f"{n}.jpg" for n in range(10)))

    # When the prefetch starts and nothing is consumed yet
    prefetch = HeadPrefetch(items, max_workers=8, window=3, head=fake)
    try:
        started_before_use = list(fake.started)
        fake.gate.set()
        first = prefetch(items[0])
        after_first = len(fake.started)
        rest = [prefetch(w) for w in items[1:]]
    finally:
        prefetch.close()

    # Then only three calls were started ahead of use, one more after each object consumed,
    # and every object got its own result, in order, one call each
    assert len(started_before_use) <= 3
    assert after_first <= 4
    assert [h.ref.key for h in [first, *rest]] == [w.ref.key for w in items]
    assert sorted(fake.started) == sorted(w.ref.key for w in items)


def test_an_error_is_raised_for_its_own_record_only() -> None:
    # Given three objects, the head of the second one failing
    fake = FakeHead(failing="b.jpg")
    items = works("a.jpg", "b.jpg", "c.jpg")

    prefetch = HeadPrefetch(items, max_workers=3, head=fake)
    try:
        # When they are consumed in order
        a = prefetch(items[0])
        with pytest.raises(ConnectionError, match=r"b\.jpg"):
            prefetch(items[1])
        c = prefetch(items[2])
    finally:
        prefetch.close()

    # Then the first and third records get their heads, and only the second one fails
    assert (a.ref.key, c.ref.key) == ("a.jpg", "c.jpg")


def test_an_object_not_in_the_prefetch_is_headed_on_demand() -> None:
    # Given a prefetch of two objects
    fake = FakeHead()
    prefetch = HeadPrefetch(works("a.jpg", "b.jpg"), head=fake)
    try:
        # When an object it does not hold is asked for
        [other] = works("z.jpg")
        h = prefetch(other)
    finally:
        prefetch.close()

    # Then it is headed then and there, with the same head function
    assert h.ref.key == "z.jpg"
    assert fake.started.count("z.jpg") == 1
