"""Findings into AWS Security Hub (docs/architecture.md §5a): a sibling output of SNS.

The publisher hands every finding it delivered on SNS to :class:`SecurityHubOutput`, which
builds its ASFF (:mod:`clguard.reporting.asff`) and imports them in batches:

- at most :data:`~clguard.reporting.asff.MAX_BATCH` findings per ``BatchImportFindings`` call;
  one finding per ``Id`` per batch (the last word on a condition wins); a batch is sent when it is
  full and when the unit of work ends (:meth:`SecurityHubOutput.flush`);
- paced to the documented rate (10 requests a second, bursts of 30: a token bucket per warm
  container) and backing off on throttling;
- ``FailedFindings`` are retried (:data:`RETRIES` times), then logged at ERROR with their ids
  and counted (``SecurityHubFailed``); a finding the guard itself finds invalid ASFF is logged
  and counted (``SecurityHubInvalid``), never sent;
- ``Workflow`` and ``Note`` of an existing finding cannot change by import: a muted finding is
  then set ``SUPPRESSED`` with the exception in its note, a fixed one ``RESOLVED``, with
  ``BatchUpdateFindings`` (at most 100 a call, grouped by status and note);
- nothing here raises: Security Hub being disabled, denied or down is logged and counted
  (``SecurityHubUnavailable``); SNS was already done.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters import securityhub
from clguard.errors import AwsError, Throttled
from clguard.observability import count, logger
from clguard.reporting import asff
from clguard.reporting.findings import Finding, utc_now

RETRIES: Final = 3
RATE_PER_SECOND: Final = 10.0
BURST: Final = 30.0
THROTTLE_BACKOFF: Final = 0.5  # seconds, doubled per throttled attempt


@dataclass(slots=True)
class TokenBucket:
    """The documented rate of BatchImportFindings/BatchUpdateFindings: 10/s, bursts of 30."""

    rate: float = RATE_PER_SECOND
    burst: float = BURST
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    tokens: float = BURST
    stamp: float | None = None

    def take(self) -> None:
        now = self.clock()
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            wait = (1 - self.tokens) / self.rate
            self.sleep(wait)
            self.stamp = self.clock()
            self.tokens = 1.0
        self.tokens -= 1


_PACE = TokenBucket()


@dataclass(slots=True)
class SecurityHubOutput:
    pace: TokenBucket = field(default_factory=lambda: _PACE)
    sleep: Callable[[float], None] = time.sleep
    pending: dict[str, tuple[Finding, dict[str, Any]]] = field(default_factory=dict)
    imported: int = 0
    failed: list[str] = field(default_factory=list)  # ids Security Hub did not take (logged)
    # A verify batch publishes from several threads: the pending batch is swapped under this lock,
    # and sent outside it.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, finding: Finding) -> None:
        document = asff.asff(finding, utc_now())
        problems = asff.problems(document)
        if problems:
            count("SecurityHubInvalid")
            logger.error(
                "security hub: the finding is not valid ASFF; not imported",
                extra={"problems": problems, "finding": finding.document()},
            )
            return
        with self.lock:
            self.pending.pop(document["Id"], None)
            self.pending[document["Id"]] = (finding, document)
            full = len(self.pending) >= asff.MAX_BATCH
        if full:
            self.flush()

    def flush(self) -> None:
        """Import what is pending, then set the workflow of the muted and fixed ones. Never raises."""
        with self.lock:
            batch, self.pending = list(self.pending.values()), {}
        for start in range(0, len(batch), asff.MAX_BATCH):
            chunk = batch[start : start + asff.MAX_BATCH]
            try:
                taken = self._import([d for _, d in chunk])
                self._workflows([(f, d) for f, d in chunk if d["Id"] in taken])
            except AwsError as error:
                count("SecurityHubUnavailable", len(chunk))
                logger.error(
                    "security hub: import failed; the findings were delivered on SNS only",
                    extra={"error": str(error), "ids": [d["Id"] for _, d in chunk]},
                )

    def _call[R](self, call: Callable[[], R]) -> R:
        for attempt in range(RETRIES + 1):
            self.pace.take()
            try:
                return call()
            except Throttled:
                if attempt == RETRIES:
                    raise
                self.sleep(THROTTLE_BACKOFF * 2**attempt)
        raise AssertionError("unreachable")

    def _import(self, documents: Sequence[dict[str, Any]]) -> set[str]:
        """Import, retrying the FailedFindings; the ids imported."""
        remaining = list(documents)
        rejected: list[securityhub.Rejected] = []
        for _attempt in range(RETRIES + 1):
            if not remaining:
                break
            rejected = self._call(functools.partial(securityhub.import_findings, remaining))
            self.imported += len(remaining) - len(rejected)
            again = {r.finding_id for r in rejected}
            remaining = [d for d in remaining if d["Id"] in again]
        if remaining:
            self._give_up(rejected)
        lost = {r.finding_id for r in rejected} if remaining else set()
        return {d["Id"] for d in documents} - lost

    def _give_up(self, rejected: Sequence[securityhub.Rejected]) -> None:
        self.failed.extend(r.finding_id for r in rejected)
        count("SecurityHubFailed", len(rejected))
        logger.error(
            "security hub: findings refused after retries",
            extra={"failed": [{"id": r.finding_id, "code": r.code, "message": r.message} for r in rejected]},
        )

    def _workflows(self, imported: Sequence[tuple[Finding, dict[str, Any]]]) -> None:
        groups: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
        for finding, document in imported:
            status = asff.workflow_status(finding)
            if status != "NEW":
                groups.setdefault((status, asff.note(finding)), []).append((document["Id"], document["ProductArn"]))
        for (status, note), identifiers in groups.items():
            for start in range(0, len(identifiers), asff.MAX_BATCH):
                chunk = identifiers[start : start + asff.MAX_BATCH]
                rejected = self._call(functools.partial(securityhub.update_findings, chunk, workflow=status, note=note))
                if rejected:
                    self._give_up(rejected)
