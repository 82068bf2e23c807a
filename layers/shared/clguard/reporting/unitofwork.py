"""Change, then report it exactly once: the one owner of that guarantee (docs/architecture.md §12).

Two nested spans, both plain objects over the batch's :class:`~clguard.reporting.publisher.Publisher`:

=============  ==================================================================================
``Unit``       What is retried as a whole (an SQS record, a grant invocation, an audit's first
               invocation). Every finding made while it is open is tried; ``finish`` raises
               ``RetryableError`` if one of them was delivered neither to SNS nor to the findings
               outbox, so the retry publishes it (the intent below lets the retry know a change
               it did not make).
``Change``     One change of one resource (an object, a key) inside a unit:
               ``intend``   write-ahead: the findings the change will produce, in STATE_TABLE,
                            before the CopyObject / UpdateObjectEncryption / PutKeyPolicy
                            (``state.intents``); raises if it cannot (the change is not made);
               ``pending``  what an earlier attempt of the same event wrote ahead and did not
                            acknowledge (the caller decides whether it took effect);
               ``report``   publish a finding (SNS, else the outbox: ``Publisher``);
               exit         the acknowledgement: the intent is cleared only when the span ended
                            without an error and every finding made in it was delivered.
=============  ==================================================================================

The publisher queues the findings it claimed and sends them in SNS PublishBatch requests: each
span sends the queue (``Publisher.send_queued``) *before* it asks whether its findings were
delivered, so "delivered" keeps meaning "SNS or the outbox took it". A ``Change`` does not send:
its acknowledgement waits for its findings to go out in the unit's requests
(``Publisher.when_sent``), and is dropped if one of them is lost. A ``Unit`` left by an error sends
what is queued too (the findings were made), then lets the error through.

Delivery itself (idempotency per fingerprint, the outbox, an in-progress record handed to the
outbox) stays in the publisher; what was not delivered is its ``undelivered`` record, and only
this module reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Self

from clguard.errors import RetryableError
from clguard.reporting.findings import Finding
from clguard.reporting.publisher import Publisher
from clguard.state.intents import Intent, Journal


class Unit:
    """A span of work retried as a whole: ``finish`` (or leaving the ``with`` block without an
    error) fails it if a finding made since it opened was not delivered."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._mark = len(publisher.undelivered)

    def report(self, finding: Finding) -> bool:
        """Publish ``finding`` (True when it was sent now; never raises for a delivery failure)."""
        return self.publisher.publish(finding)

    @property
    def delivered(self) -> bool:
        """Whether every finding made since the span opened reached SNS or the outbox (the
        queued ones are sent first)."""
        self.publisher.send_queued()
        return len(self.publisher.undelivered) == self._mark

    def finish(self) -> None:
        self.publisher.send_queued()
        lost = len(self.publisher.undelivered) - self._mark
        if lost:
            raise RetryableError(f"{lost} finding(s) could not be delivered (logged at ERROR); retrying")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.finish()
        elif issubclass(kind, Exception):  # not a killed runtime: what was made is still sent
            self.publisher.send_queued()


class Change(Unit):
    """One change of ``resource`` by the event ``event_id``: its write-ahead intent, its findings,
    and their acknowledgement when the ``with`` block ends cleanly (no journal: delivery only)."""

    def __init__(self, publisher: Publisher, journal: Journal | None, event_id: str, resource: str) -> None:
        super().__init__(publisher)
        self.journal = journal
        self.event_id = event_id
        self.resource = resource
        self._wrote = False  # this change wrote an intent ahead
        self._found = False  # an earlier attempt's intent was read: cleared even if nothing is written now
        self._claims = publisher.claims  # the publisher's claims before the span: not its findings

    def intend(self, findings: Sequence[Finding], target: str = "") -> None:
        """Before the change: durably note what it will report. Raises the state table's error."""
        if self.journal is not None:
            self.journal.record(self.event_id, self.resource, findings, target)
            self._wrote = True

    def pending(self) -> Intent | None:
        """What an earlier attempt of this event wrote ahead for the resource and did not clear."""
        if self.journal is None:
            return None
        intent = self.journal.pending(self.event_id, self.resource)
        self._found = self._found or intent is not None
        return intent

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        # Not acknowledged after an error or an undelivered finding: the retry finds the intent.
        # Its findings still queued, the acknowledgement waits until they are sent (the unit's
        # requests): delivered, the intent is cleared; lost, or the runtime dies first, it stays.
        acknowledging = kind is None and self.journal is not None and (self._wrote or self._found)
        if acknowledging and len(self.publisher.undelivered) == self._mark:
            self.publisher.when_sent(self._claims, self._acknowledge)

    def _acknowledge(self) -> None:
        assert self.journal is not None
        self.journal.clear(self.event_id, self.resource)
