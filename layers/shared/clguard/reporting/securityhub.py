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
  never trusted for this: it is eventually consistent). What is gone is said by a :class:`Gone`:
  a key's findings are per principal (:meth:`SecurityHubOutput.key_decided`: a principal found
  granted closes its own, a new decision on it closes the ones it supersedes; a usable key
  closes its KEY_UNUSABLE; :meth:`SecurityHubOutput.key_unusable`: a deleted, pending-deletion or
  disabled key archives its access findings), dated evidence (an S3 Inventory row) closes only what was
  raised before it, a REMEDIATED finding closes every other open condition on its resource (and
  principal), a member the audit reads (:meth:`SecurityHubOutput.member_reached`) closes its
  MEMBER_UNREACHABLE and its refused claims that no longer hold, and a finding imported open in
  the same flush is never closed by it;
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
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clguard.adapters import clients, securityhub
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import AwsError, MemberUnreachable, RetryableError, Throttled
from clguard.observability import count, logger
from clguard.reporting import asff
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, MemberRoleResource, utc_now
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

# A key's findings about one principal (one condition per key and principal), and which of them a
# key decision on that principal leaves open (by keydecision.KeyStatus value): a decision closes the
# others (superseded: e.g. KEY_NOT_MANAGED once the key is opted in), "ok" closes them all.
PER_PRINCIPAL: Final = frozenset(
    {
        FindingType.KEY_ACCESS_MISSING.value,
        FindingType.KEY_NOT_MANAGED.value,
        FindingType.PRINCIPAL_NOT_ALLOWED.value,
        FindingType.KEY_POLICY_LIMIT.value,
    }
)
STILL_OPEN: Final[Mapping[str, frozenset[str]]] = {
    "ok": frozenset(),
    "refused": frozenset({FindingType.PRINCIPAL_NOT_ALLOWED.value}),
    "denied": frozenset({FindingType.KEY_ACCESS_MISSING.value}),
    "not managed": frozenset({FindingType.KEY_NOT_MANAGED.value}),
    "reported": frozenset({FindingType.KEY_ACCESS_MISSING.value}),
    "granted": frozenset({FindingType.KEY_ACCESS_MISSING.value, FindingType.KEY_POLICY_LIMIT.value}),
}
DELETION_STATES: Final = frozenset({"PendingDeletion", "PendingReplicaDeletion"})
# The key states (DescribeKey KeyState) in which no principal's access to the key matters: its
# access findings are closed (a key enabled again is decided afresh by the next event or audit).
CLOSING_STATES: Final = DELETION_STATES | {"Disabled"}


@dataclass(frozen=True, slots=True)
class Gone:
    """Which recorded open findings on one resource are gone, and why: those of ``types`` (None:
    any), about ``principal`` (None: any), not of a type in ``keep``, and raised before
    ``evidence`` (None: fresh evidence, the resource as it is now); of the Ids in ``ids`` alone
    (None: any) and never of one in ``keep_ids`` (a member's findings: ``member_reached``)."""

    why: str
    principal: str | None = None
    types: frozenset[str] | None = None
    keep: frozenset[str] = frozenset()
    evidence: datetime | None = None
    ids: frozenset[str] | None = None
    keep_ids: frozenset[str] = frozenset()

    def closes(self, document: Mapping[str, Any]) -> bool:
        if self.ids is not None and document.get("Id") not in self.ids:
            return False
        if document.get("Id") in self.keep_ids:
            return False
        found = openfindings.condition(document)
        if self.types is not None and found.finding_type not in self.types:
            return False
        if found.finding_type in self.keep:
            return False
        if self.principal is not None and found.principal != self.principal:
            return False
        if self.evidence is not None:
            return found.raised_at is not None and found.raised_at < self.evidence
        return True


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
    # Resources seen without (some of) their conditions since the last flush: (account, region, name) -> what.
    # (a dict as an ordered set: the same Gone, said by every object of a batch under one key, is kept once)
    gone: dict[tuple[str, str, str], dict[Gone, None]] = field(default_factory=dict)
    closed: int = 0
    # The deployment's own account, and the role to act through in any other (MEMBER_ACCOUNTS):
    # a member's findings are imported into the member's Security Hub. None: the own account only.
    home: str | None = None
    member_role: Callable[[str], str] | None = None
    # Conditions seen open again that SNS's idempotency did not publish now, by Id: imported open
    # again at the flush when their recorded finding was closed since.
    seen_open: dict[str, tuple[Finding, dict[str, Any]]] = field(default_factory=dict)

    def _in(self, account: str) -> contextlib.AbstractContextManager[None]:
        """Where ``account``'s findings are imported: its own Security Hub (a member's role)."""
        if self.home is None or self.member_role is None or account == self.home:
            return contextlib.nullcontext()
        return clients.acting_in(clients.Member(account, self.member_role(account)))

    def seen_gone(self, account: str, region: str, resource: object, why: str | Gone) -> None:
        """The condition(s) on ``resource`` are gone (compliant, or the resource deleted; a
        :class:`Gone` says which): its recorded open findings are closed at the next flush. Costs
        nothing until then."""
        if self.table is None:
            return
        gone = why if isinstance(why, Gone) else Gone(why)
        with self.lock:
            self.gone.setdefault((account, region, asff.resource_name(resource)), {})[gone] = None

    def key_decided(self, account: str, region: str, key_arn: str, statuses: Mapping[str, str]) -> None:
        """The grant path decided on these principals of a usable, readable key (``statuses``:
        principal -> keydecision.KeyStatus value): a principal already granted ("ok") has all its
        findings on the key closed, any other decision closes the ones it supersedes; and the key's
        KEY_UNUSABLE is gone."""
        resource = KmsKeyResource(key_arn)
        for principal, status in statuses.items():
            still = STILL_OPEN.get(status)
            if still is None:
                continue
            why = (
                f"{principal} can use the key for training"
                if not still
                else f"superseded: the guard's decision on {principal} is now {status}"
            )
            self.seen_gone(account, region, resource, Gone(why, principal, PER_PRINCIPAL, keep=still))
        if statuses:
            unusable = frozenset({FindingType.KEY_UNUSABLE.value})
            self.seen_gone(account, region, resource, Gone("the key is usable", types=unusable))

    def key_unusable(self, account: str, region: str, key_arn: str, state: str | None, *, not_found: bool) -> bool:
        """A key found deleted (KMS: not found), pending deletion or disabled (CLOSING_STATES):
        its access findings (per principal) are archived; its KEY_UNUSABLE, which says so, stays
        open. The one closing path of a key that cannot serve training: the grant path, the key
        lifecycle events and the audit's sweep (``usecases.keylifecycle``) all end here. False
        when the state closes nothing."""
        if not_found:
            why = "the key was deleted"
        elif state in CLOSING_STATES:
            why = f"the key is {state}"
        else:
            return False
        keep = frozenset({FindingType.KEY_UNUSABLE.value})
        self.seen_gone(account, region, KmsKeyResource(key_arn), Gone(why, keep=keep))
        return True

    def member_reached(self, account: str, region: str, role_arn: str, claimed: Sequence[str] | None) -> None:
        """An audit run read member ``account``'s declaration through its role: its finding that it
        cannot be acted in is gone; and, when S3 settled each of its claims (``claimed``: the
        buckets of its claim refused now, none when nothing is; None when S3 could not tell
        for one), so are its refused-claim findings on other buckets than those (the member
        stopped claiming them, or S3 now says they are its own)."""
        role = MemberRoleResource(role_arn)
        member = FindingType.MEMBER_UNREACHABLE
        reachability = asff.condition_id(account, region, member, role)
        reached = Gone("the audit read the member's declaration through its role", ids=frozenset({reachability}))
        self.seen_gone(account, region, role, reached)
        if claimed is None:
            return
        keep = {reachability} | (
            {asff.condition_id(account, region, member, role, claimed=claimed)} if claimed else set()
        )
        why = "the claim is no longer refused as it was: the member's declaration, or who owns the buckets, changed"
        self.seen_gone(account, region, role, Gone(why, types=frozenset({member.value}), keep_ids=frozenset(keep)))

    def still_open(self, finding: Finding) -> None:
        """A condition published before (so SNS's idempotency sent nothing now) is seen again: if
        its Security Hub finding was closed since, it is imported open again at the flush (Security
        Hub then sets its workflow back to NEW). One BatchGetItem per 100 such conditions."""
        if self.table is None or not asff.is_open(finding):
            return
        document = asff.asff(finding, utc_now())
        if not asff.problems(document):
            with self.lock:
                self.seen_open[document["Id"]] = (finding, document)

    def _reopened(self, seen: Mapping[str, tuple[Finding, dict[str, Any]]]) -> list[tuple[Finding, dict[str, Any]]]:
        """Of the conditions seen open again, those whose recorded open finding is gone (closed)."""
        if not seen or self.table is None:
            return []
        places = {(f.account, f.region, asff.resource_name(f.resource)) for f, _ in seen.values()}
        try:
            recorded = openfindings.open_findings_of(self.table, list(places))
        except AwsError as error:
            logger.error("security hub: could not read the open findings to reopen", extra={"error": str(error)})
            return []
        still = {str(d.get("Id")) for documents in recorded.values() for d in documents}
        again = [(f, d) for i, (f, d) in seen.items() if i not in still]
        if again:
            count("SecurityHubReopened", len(again))
        return again

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
            gone, self.gone = {where: dict(g) for where, g in self.gone.items()}, {}
            seen, self.seen_open = dict(self.seen_open), {}
        taken = {d["Id"] for _, d in batch}
        batch += self._reopened({i: fd for i, fd in seen.items() if i not in taken})
        reopened: set[str] = set()  # ids imported open by this flush: none of them is closed by it
        by_account: dict[str, list[tuple[Finding, dict[str, Any]]]] = {}
        for finding, document in batch:
            by_account.setdefault(str(document["AwsAccountId"]), []).append((finding, document))
            if not asff.is_open(finding):  # fixed: its resource's (and principal's) other conditions too
                where = (finding.account, finding.region, asff.resource_name(finding.resource))
                why = f"fixed by the guard ({finding.finding_type.value} {finding.outcome.value})"
                gone.setdefault(where, {})[Gone(why, finding.principal_arn)] = None
        for account, findings in by_account.items():
            self._flush_account(account, findings, reopened)
        self._close_gone(gone, reopened)

    def _flush_account(self, account: str, batch: Sequence[tuple[Finding, dict[str, Any]]], reopened: set[str]) -> None:
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

    def _record(self, imported: Sequence[tuple[Finding, dict[str, Any]]], reopened: set[str]) -> None:
        """Open findings recorded (objects indexed per bucket), closed ones forgotten (a failure is
        counted and logged)."""
        if self.table is None:
            return
        for finding, document in imported:
            where = (finding.account, finding.region, asff.resource_name(finding.resource))
            try:
                if asff.is_open(finding):
                    reopened.add(str(document["Id"]))
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
        self._index([(f, d) for f, d in imported if asff.is_open(f)])

    def _index(self, opened: Sequence[tuple[Finding, dict[str, Any]]]) -> None:
        """The objects with open findings, indexed per bucket (one UpdateItem per bucket and account)."""
        assert self.table is not None
        by_place: dict[tuple[str, str], set[str]] = {}
        for finding, _ in opened:
            by_place.setdefault((finding.account, finding.region), set()).add(asff.resource_name(finding.resource))
        for (account, region), names in by_place.items():
            try:
                refused = openfindings.index(self.table, account, region, names)
            except AwsError as error:
                refused = len(names)
                logger.error("security hub: could not index open findings", extra={"error": str(error)})
            if refused:
                count("SecurityHubUnindexed", refused)
                logger.warning(
                    "security hub: an index of open findings is full (a bucket's: an inventory will not close "
                    "these; the keys': the audit's sweep will not)",
                    extra={"resources": refused, "account": account},
                )

    def _close_gone(self, gone: Mapping[tuple[str, str, str], Mapping[Gone, None]], reopened: set[str]) -> None:
        """Close the recorded open findings that are gone (and were not imported open by this
        flush): one BatchGetItem per 100 resources finds them (most have none: a compliant object
        stays cheap)."""
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
            by_why: dict[str, list[dict[str, Any]]] = {}
            for document in documents:
                if document.get("Id") in reopened:
                    continue
                match = next((g for g in gone[where] if g.closes(document)), None)
                if match is not None:
                    by_why.setdefault(match.why, []).append(document)
            for why, closing in by_why.items():
                self._close(where, closing, why)

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


# A row's LastModifiedDate has milliseconds, a finding's raise time whole seconds (rounded down):
# a compliant version proves a finding gone only when written more than this after it.
RAISE_TIME_RESOLUTION: Final = timedelta(seconds=1)


def inventory_closer(
    output: SecurityHubOutput | None, account: str, region: str, bucket: str, created: str
) -> Callable[[str, str], None]:
    """What the audit calls for each row of ``bucket``'s S3 Inventory report (created at
    ``created``, its manifest's ``creationTimestamp`` in epoch milliseconds) that settles an object
    compliant without a HeadObject: ``(key, last_modified)``. Its open findings are closed when
    that is certain although the report may be up to 48 hours old and, as S3 documents, may not
    reflect the latest writes:

    - only findings raised before the report was started (a finding raised after it may be about
      a write the report never saw), and
    - only findings raised before the row's version was written (``LastModifiedDate``): the row
      then shows a compliant version that replaced whatever the finding was about. A row older
      than the finding (a stale listing, or a non-compliant write after it) closes nothing, and
      neither does a row without ``LastModifiedDate``.

    One GetItem per bucket reads the index of its objects with open findings; each row costs a
    hash and a set lookup, and only indexed rows are handed to the flush. Without Security Hub
    (or without a usable report date) it does nothing."""
    if output is None or output.table is None:
        return _nothing
    try:
        taken = datetime.fromtimestamp(int(created) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return _nothing
    try:
        names = openfindings.indexed(output.table, account, region, bucket)
    except AwsError as error:
        logger.error("security hub: could not read a bucket's open findings", extra={"error": str(error)})
        return _nothing
    if not names:
        return _nothing
    why = f"the S3 Inventory report of {taken.strftime('%Y-%m-%dT%H:%MZ')} shows the object compliant"

    def settled(key: str, last_modified: str) -> None:
        name = f"s3://{bucket}/{key}"
        if openfindings.name_digest(name) not in names:
            return
        written = openfindings.parse_time(last_modified)
        if written is None:
            return
        evidence = min(taken, written - RAISE_TIME_RESOLUTION)
        output.seen_gone(account, region, S3ObjectRef(bucket, key), Gone(why, evidence=evidence))

    return settled


def _nothing(key: str, last_modified: str) -> None:
    del key, last_modified
