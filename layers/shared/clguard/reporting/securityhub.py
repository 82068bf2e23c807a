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
- every open finding imported is recorded (:mod:`clguard.state.openfindings`, per resource,
  bounded, with a TTL) and a closed one forgotten; a condition the guard later sees gone
  (:meth:`SecurityHubOutput.seen_gone`: the object or key compliant, or deleted) has its recorded
  open findings re-imported PASSED/ARCHIVED and set RESOLVED at the next flush (GetFindings is
  never trusted for this: it is eventually consistent);
- a finding lands in the account of its resource (§5a): a member account's findings are imported
  (and updated) through that member's role (``clients.acting_in``), on the member's own
  ``default`` product; a member whose role or Security Hub refuses is counted and logged;
- nothing here raises: Security Hub being disabled, denied or down is logged and counted
  (``SecurityHubUnavailable``); SNS was already done.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters import clients, securityhub
from clguard.errors import AwsError, MemberUnreachable, RetryableError, Throttled
from clguard.observability import count, logger
from clguard.reporting import asff
from clguard.reporting.findings import Finding, utc_now
from clguard.state import openfindings

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
    # STATE_TABLE, where open findings are recorded (None: no record, nothing closed later).
    table: str | None = None
    # Resources seen without their condition since the last flush: (account, region, name) -> why.
    gone: dict[tuple[str, str, str], str] = field(default_factory=dict)
    closed: int = 0
    # The deployment's own account, and the role to act through in any other (MEMBER_ACCOUNTS):
    # a member's findings are imported into the member's Security Hub. None: the own account only.
    home: str | None = None
    member_role: Callable[[str], str] | None = None

    def _in(self, account: str) -> contextlib.AbstractContextManager[None]:
        """Where ``account``'s findings are imported: its own Security Hub (a member's role)."""
        if self.home is None or self.member_role is None or account == self.home:
            return contextlib.nullcontext()
        return clients.acting_in(clients.Member(account, self.member_role(account)))

    def seen_gone(self, account: str, region: str, resource: object, why: str) -> None:
        """The condition(s) on ``resource`` are gone (compliant, or the resource deleted): its
        recorded open findings are closed at the next flush. Costs nothing until then."""
        if self.table is None:
            return
        with self.lock:
            self.gone[(account, region, asff.resource_name(resource))] = why

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
            gone, self.gone = dict(self.gone), {}
        reopened: set[tuple[str, str, str]] = set()
        by_account: dict[str, list[tuple[Finding, dict[str, Any]]]] = {}
        for finding, document in batch:
            by_account.setdefault(str(document["AwsAccountId"]), []).append((finding, document))
        for account, findings in by_account.items():
            self._flush_account(account, findings, reopened)
        self._close_gone({where: why for where, why in gone.items() if where not in reopened})

    def _flush_account(
        self, account: str, batch: Sequence[tuple[Finding, dict[str, Any]]], reopened: set[tuple[str, str, str]]
    ) -> None:
        for start in range(0, len(batch), asff.MAX_BATCH):
            chunk = batch[start : start + asff.MAX_BATCH]
            try:
                with self._in(account):
                    taken = self._import([d for _, d in chunk])
                    self._workflows([(f, d) for f, d in chunk if d["Id"] in taken])
                self._record([(f, d) for f, d in chunk if d["Id"] in taken], reopened)
            except (AwsError, MemberUnreachable, RetryableError) as error:
                count("SecurityHubUnavailable", len(chunk))
                logger.error(
                    "security hub: import failed; the findings were delivered on SNS only",
                    extra={"error": str(error), "account": account, "ids": [d["Id"] for _, d in chunk]},
                )

    def _record(self, imported: Sequence[tuple[Finding, dict[str, Any]]], reopened: set[tuple[str, str, str]]) -> None:
        """Open findings recorded, closed ones forgotten (a failure is counted and logged)."""
        if self.table is None:
            return
        for finding, document in imported:
            where = (finding.account, finding.region, asff.resource_name(finding.resource))
            try:
                if asff.is_open(finding):
                    reopened.add(where)
                    if not openfindings.remember(self.table, *where, document):
                        count("SecurityHubUntracked")
                        logger.warning(
                            "security hub: finding too large to record as open", extra={"id": document["Id"]}
                        )
                else:
                    openfindings.forget(self.table, *where, [document["Id"]])
            except AwsError as error:
                count("SecurityHubUntracked")
                logger.error(
                    "security hub: could not record the finding's state; a later fix may leave it open",
                    extra={"error": str(error), "id": document["Id"]},
                )

    def _close_gone(self, gone: dict[tuple[str, str, str], str]) -> None:
        """Close the recorded open findings of the resources whose condition is gone: one
        BatchGetItem per 100 resources finds them (most have none: a compliant object stays cheap)."""
        if not gone or self.table is None:
            return
        try:
            recorded = openfindings.open_findings_of(self.table, list(gone))
        except AwsError as error:
            count("SecurityHubUntracked", len(gone))
            logger.error(
                "security hub: could not read the open findings of resources seen without their condition",
                extra={"error": str(error), "resources": [where[2] for where in gone][:20]},
            )
            return
        for where, documents in recorded.items():
            self._close(where, documents, gone[where])

    def _close(self, where: tuple[str, str, str], documents: Sequence[Mapping[str, Any]], why: str) -> None:
        """Re-import one resource's open findings PASSED/ARCHIVED, set them RESOLVED, forget them."""
        assert self.table is not None
        try:
            now = utc_now()
            closed = [asff.closed(d, now, why) for d in documents]
            with self._in(where[0]):
                taken = self._import(closed)
                done = [d for d in closed if d["Id"] in taken]
                identifiers = [(d["Id"], d["ProductArn"]) for d in done]
                for start in range(0, len(identifiers), asff.MAX_BATCH):
                    chunk = identifiers[start : start + asff.MAX_BATCH]
                    rejected = self._call(
                        functools.partial(securityhub.update_findings, chunk, workflow="RESOLVED", note=why)
                    )
                    if rejected:
                        self._give_up(rejected)
            openfindings.forget(self.table, *where, [d["Id"] for d in done])
            self.closed += len(done)
            count("SecurityHubClosed", len(done))
        except (AwsError, MemberUnreachable, RetryableError) as error:
            count("SecurityHubUnavailable", len(documents))
            logger.error(
                "security hub: could not close the findings of a resource seen without its condition",
                extra={"error": str(error), "resource": where[2]},
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
