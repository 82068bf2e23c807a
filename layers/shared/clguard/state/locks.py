"""A lease in DynamoDB on one named thing: a KMS key (KMS has no conditional write, so two writers
on one key would lose an update: every key-policy edit, in either function, runs inside the key's
lease) or an S3 object (one remediation of an object at a time). ``lock#<name>``, one item per
leased thing, TTL a day after the lease.

Acquire is a conditional put (free, or the previous lease expired); release is a conditional
delete by owner. A crashed holder blocks the key for at most one lease. The holder re-reads the
policy inside the lock and checks the lease has time left before it writes.

Taking over an *expired* lease: the previous holder may still have a write in flight (it checked
its lease, then stalled). A holder sends a write only while its lease lasts (``send_deadline``,
enforced by the KMS adapter right before the request goes on the wire), and a sent write lands
or fails within ``IN_FLIGHT_SECONDS`` (the bounded client's connect + read timeouts). The lock
item stores that bound as ``write_deadline``; a writer that takes over an expired lease waits it
out before it reads the policy, so the previous holder's late write is in what it reads and can
no longer land after it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

from clguard.adapters import dynamodb
from clguard.adapters.clients import WRITE_CONFIG
from clguard.errors import LockTimeout
from clguard.observability import count, logger

LEASE_SECONDS: Final = 60.0
WAIT_SECONDS: Final = 30.0
TTL_GRACE_SECONDS: Final = 86_400  # DynamoDB TTL cleans up abandoned lock items a day later
# The longest a write sent before the lease ended can stay in flight: the bounded client's
# connect and read timeouts (one attempt, see clients.WRITE_CONFIG).
IN_FLIGHT_SECONDS: Final = float(WRITE_CONFIG.connect_timeout + WRITE_CONFIG.read_timeout)  # type: ignore[attr-defined]


class Lease:
    """A lease on ``name`` (``"<key ARN>"`` or ``"object#s3://…"``), taken with ``with``."""

    def __init__(
        self,
        table: str,
        name: str,
        *,
        lease_seconds: float | None = None,
        wait_seconds: float | None = None,
        in_flight_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table = table
        self.item_id = f"lock#{name}"
        self.owner = uuid.uuid4().hex
        self.lease_seconds = LEASE_SECONDS if lease_seconds is None else lease_seconds
        self.wait_seconds = WAIT_SECONDS if wait_seconds is None else wait_seconds
        self.in_flight_seconds = IN_FLIGHT_SECONDS if in_flight_seconds is None else in_flight_seconds
        self._clock = clock
        self._sleep = sleep
        self._lease_until = 0.0
        self.attempts = 0
        self.held_to_the_end = True  # False when release found the lease taken over
        self.took_over: str | None = None  # the owner of the expired lease this one replaced
        self.acquired_at = 0.0
        self._held = False

    def _item(self, now: float) -> tuple[float, dict[str, object]]:
        until = now + self.lease_seconds
        return until, {
            "id": {"S": self.item_id},
            "owner": {"S": self.owner},
            "lease_until": {"N": f"{until:.3f}"},
            "write_deadline": {"N": f"{until + self.in_flight_seconds:.3f}"},
            "expiration": {"N": str(int(until + TTL_GRACE_SECONDS))},
        }

    @property
    def held(self) -> bool:
        """Whether this lease was taken (and not released yet)."""
        return self._held

    def try_acquire(self) -> bool:
        """One attempt: take the lease if it is free or expired (then wait out the previous
        holder's write deadline, as ``acquire``). False when another writer holds it."""
        now = self._clock()
        self.attempts += 1
        until, item = self._item(now)
        taken, old = dynamodb.put_if_returning_old(
            self.table,
            item,
            "attribute_not_exists(id) OR lease_until < :now",
            {":now": {"N": f"{now:.3f}"}},
        )
        if not taken:
            return False
        self._lease_until = until
        self.acquired_at = now
        self._held = True
        if old is not None:
            self._wait_out(old)
        return True

    def acquire(self) -> None:
        if self.held:  # taken by ``try_acquire`` (group commit: a waiter that became the holder)
            return
        deadline = self._clock() + self.wait_seconds
        backoff = 0.01
        while True:
            now = self._clock()
            if self.try_acquire():
                return
            if now >= deadline:
                raise LockTimeout(f"{self.item_id} is held by another writer; gave up after {self.wait_seconds}s")
            self._sleep(random.uniform(backoff / 2, backoff))  # noqa: S311 - jitter, not crypto
            backoff = min(backoff * 2, 0.5)

    def _wait_out(self, old: dict[str, object]) -> None:
        """We replaced an expired lease: wait until the previous holder's last write has landed
        (or failed), then renew our own lease for the time we waited."""
        self.took_over = str(_attr(old, "owner", "S") or "")
        previous_until = float(_attr(old, "lease_until", "N") or 0)
        write_deadline = float(_attr(old, "write_deadline", "N") or previous_until + self.in_flight_seconds)
        count("LeaseTakeovers")
        left = write_deadline - self._clock()
        logger.warning(
            "took over an expired lease; waiting out the previous holder's write deadline",
            extra={"lock": self.item_id, "previous_owner": self.took_over, "wait_seconds": round(max(left, 0), 3)},
        )
        if left <= 0:
            return
        self._sleep(left)
        now = self._clock()
        until, item = self._item(now)
        if not dynamodb.put_if(self.table, item, "#owner = :me", {":me": {"S": self.owner}}, names={"#owner": "owner"}):
            raise LockTimeout(f"{self.item_id} was taken over while waiting out the previous holder")
        self._lease_until = until

    def send_deadline(self) -> float:
        """The holder sends no write after this (epoch seconds, the clock of ``time.time``)."""
        return self._lease_until

    def write_deadline(self) -> float:
        """A write sent before ``send_deadline`` has landed or failed by then (epoch seconds)."""
        return self._lease_until + self.in_flight_seconds

    def remaining(self) -> float:
        return self._lease_until - self._clock()

    def current_owner(self) -> str | None:
        """Who holds the lease as the table has it now (one small strongly consistent read), None
        when nobody does (no lease, or an expired one: it is free to take). Group commit's
        waiters watch it while a holder writes for them."""
        names = {"#owner": "owner", "#until": "lease_until"}
        item = dynamodb.get_part(self.table, self.item_id, "#owner, #until", names)
        if item is None or float(_attr(item, "lease_until", "N") or 0) < self._clock():
            return None
        return str(_attr(item, "owner", "S") or "") or None

    def release(self) -> None:
        self._held = False
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


def _attr(item: dict[str, object], name: str, kind: str) -> str | None:
    value = item.get(name)
    found = value.get(kind) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None
