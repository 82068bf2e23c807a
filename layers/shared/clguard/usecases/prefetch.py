"""HeadObject for a batch's objects ahead of their checks (docs/architecture.md §8): the verify
batch and the grant path's inline images overlap the calls on a bounded thread pool."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from clguard.adapters import s3
from clguard.adapters.s3 import Head
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork


class HeadPrefetch:
    """HeadObject for many objects on a bounded thread pool, a sliding window ahead of use.

    The calls are the same ones the sequential path makes (one per object); they just overlap.
    At most ``window`` results are in flight or waiting, so memory stays bounded however many
    objects a batch carries. An error is kept and raised when its object is consumed, so it
    fails the right record.
    """

    def __init__(
        self,
        works: Sequence[ObjectWork],
        *,
        max_workers: int = 8,
        window: int = 64,
        head: Callable[[S3ObjectRef], Head] = s3.head,
    ) -> None:
        self._head = head
        self._order: list[S3ObjectRef] = list(dict.fromkeys(w.ref.at(None) for w in works))
        self._position: dict[S3ObjectRef, int] = {oid: i for i, oid in enumerate(self._order)}
        self._results: dict[S3ObjectRef, Future[Head]] = {}
        self._next = 0
        self._window = window
        self._pool: ThreadPoolExecutor | None = None
        if len(self._order) > 1:
            self._pool = ThreadPoolExecutor(max_workers=min(max_workers, len(self._order)), thread_name_prefix="head")
            self._fill(0)

    def _fill(self, consumed: int) -> None:
        assert self._pool is not None
        limit = min(len(self._order), consumed + self._window)
        while self._next < limit:
            ref = self._order[self._next]
            # In the submitting thread's context: a member account's work heads with its credentials.
            self._results[ref] = self._pool.submit(contextvars.copy_context().run, self._head, ref)
            self._next += 1

    def __call__(self, work: ObjectWork) -> Head:
        ref = work.ref.at(None)
        future = self._results.pop(ref, None)
        if self._pool is not None and ref in self._position:
            self._fill(self._position[ref] + 1)
        if future is None:
            return self._head(ref)
        return future.result()

    def close(self) -> None:
        """Stop: cancel what has not started (the batch ended early)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
