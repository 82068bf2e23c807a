"""A lease lock per KMS key in DynamoDB: KMS has no conditional write, so two writers on one key
would lose an update. Every key-policy edit, in either function, runs inside this lock.

Acquire is a conditional put (free, or the previous lease expired); release is a conditional
delete by owner. A crashed holder blocks the key for at most one lease. The holder re-reads the
policy inside the lock and checks the lease has time left before it writes.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

from clguard.adapters import dynamodb
from clguard.errors import LockTimeout
from clguard.observability import logger

LEASE_SECONDS: Final = 60.0
WAIT_SECONDS: Final = 30.0
TTL_GRACE_SECONDS: Final = 86_400  # DynamoDB TTL cleans up abandoned lock items a day later


class KeyLock:
    def __init__(
        self,
        table: str,
        name: str,
        *,
        lease_seconds: float = LEASE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table = table
        self.item_id = f"lock#{name}"
        self.owner = uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._lease_until = 0.0
        self.attempts = 0
        self.held_to_the_end = True  # False when release found the lease taken over

    def acquire(self) -> None:
        deadline = self._clock() + self.wait_seconds
        backoff = 0.01
        while True:
            now = self._clock()
            self.attempts += 1
            until = now + self.lease_seconds
            taken = dynamodb.put_if(
                self.table,
                {
                    "id": {"S": self.item_id},
                    "owner": {"S": self.owner},
                    "lease_until": {"N": f"{until:.3f}"},
                    "expiration": {"N": str(int(until + TTL_GRACE_SECONDS))},
                },
                "attribute_not_exists(id) OR lease_until < :now",
                {":now": {"N": f"{now:.3f}"}},
            )
            if taken:
                self._lease_until = until
                return
            if now >= deadline:
                raise LockTimeout(f"{self.item_id} is held by another writer; gave up after {self.wait_seconds}s")
            self._sleep(random.uniform(backoff / 2, backoff))  # noqa: S311 - jitter, not crypto
            backoff = min(backoff * 2, 0.5)

    def remaining(self) -> float:
        return self._lease_until - self._clock()

    def release(self) -> None:
        released = dynamodb.delete_if(
            self.table,
            {"id": {"S": self.item_id}},
            "#owner = :me",
            {":me": {"S": self.owner}},
            names={"#owner": "owner"},
        )
        if not released:
            self.held_to_the_end = False
            logger.warning("lock lease had expired and was taken over", extra={"lock": self.item_id})

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
