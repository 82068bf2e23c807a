"""Group commit: the grants waiting for one key's lease written by its holder in one PutKeyPolicy
(docs/architecture.md §12; the record is ``state.pendinggrants``).

The waiter (``wait_for_writer``): a grant that cannot take the key's lease at once writes its
findings ahead (its intent, as before any change), enqueues its principals — each already decided
and checked by its own event (``keydecision.decide``: guardrails, the key policy's Denies, the
opt-in tag, the mode) — and polls for its outcome. It publishes what the holder settled through
its own unit of work; a lost write is retried; an entry a holder took and never settled (the
holder died) is taken back by whoever holds the lease next — the waiter itself when the lease is
free — and an over-long wait withdraws the entry and ends as a FAILED finding, then a retry of
the event (as a lease wait that timed out was; when a holder still has the entry it cannot be
withdrawn: the event is retried once that holder's deadline passed, and its intent reports a
write that landed meanwhile).

The holder (``gather`` just before its write, ``settle`` after its lease): takes every waiting or
abandoned entry, re-checks each principal with the same ``decide`` on the policy it is about to
write over (an entry the re-check refuses is never written: a forged or stale entry gains
nothing), writes them with its own in one ``keyattempt.attempt_write`` (additive, 32 KB-checked,
MalformedPolicyDocument handled, confirmed by read-back) and settles each entry with the findings
made for that entry's event.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters.kms import KeyInfo
from clguard.errors import AwsError, InvalidEvent, RetryableError, Transient
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.reporting.unitofwork import Change
from clguard.rules import policy
from clguard.rules.policy import StatementSpec
from clguard.state import pendinggrants
from clguard.state.locks import Lease
from clguard.state.pendinggrants import Entry, Waiter
from clguard.usecases.keyattempt import Attempt, remediated_finding
from clguard.usecases.keydecision import Context, KeyStatus, decide

SPECS_BY_SID: Final = {s.sid: s for s in (policy.TRAINING_DATA, policy.COPIED_IMAGES_GRANT, policy.COPIED_IMAGES_USE)}
# A waiter reads its entry every POLL_FIRST seconds, doubling to POLL_MAX; while a lease is held it
# watches the lease instead (``_lease_ended``: a small item, every POLL_FIRST / 2 to POLL_FIRST) and
# reads its entry again as the lease changes hands.
POLL_FIRST: Final = 0.02
POLL_SOON: Final = 0.1
POLL_MAX: Final = 0.25
WATCH_SLOWS_AFTER: Final = 1.0  # seconds of watching one lease: a write that long is not about to end
# A taken entry with no outcome this long after its holder's write deadline: the holder died.
PRESUMED_DEAD_AFTER: Final = 5.0
# A holder that finds grants waiting lingers while more keep arriving (until none has arrived for
# LINGER_STEP, at most LINGER_MAX in all): trainers started together reach the key within moments
# of each other, and one more write for each straggler would cost more than the wait (a commit
# delay). Grants that queued during an earlier write are taken at once.
LINGER_STEP: Final = 0.05
LINGER_MAX: Final = 0.5


@dataclass(frozen=True, slots=True)
class Waited:
    """What a waiter learnt: the findings its event publishes, and whether its event must be
    retried (its grant was lost to an expired lease, or it gave up waiting)."""

    findings: list[Finding]
    retry: str = ""  # why the event is retried after the findings are published


def _entry_of(ctx: Context, key: KeyInfo, needed: Mapping[str, Sequence[StatementSpec]]) -> Waiter:
    drifted = ctx.drifted.get(key.arn, frozenset())
    return Waiter(
        grants=tuple((p, tuple(s.sid for s in specs)) for p, specs in needed.items()),
        event=ctx.source_event_id,
        origin=ctx.origin,
        request=ctx.request,
        scope=ctx.scope,
        drifted=tuple(p for p in needed if p in drifted),
    )


def wait_for_writer(
    ctx: Context, change: Change, lock: Lease, key: KeyInfo, needed: Mapping[str, Sequence[StatementSpec]]
) -> tuple[Waited | None, str | None]:
    """Take the key's lease, or join the group its holder writes next. Returns (the outcome, when
    another writer wrote for us; None when this caller holds the lease now or must wait for it as
    before group commit) and the id of this caller's entry, if it made one."""
    table = ctx.settings.state_table
    if lock.try_acquire():
        try:
            pendinggrants.open_queue(table, key.arn)
        except AwsError as error:  # best effort: the waiters create the record themselves
            logger.warning("could not open the key's pending grants", extra={"key": key.arn, "error": str(error)})
        return None, None
    try:
        change.intend([remediated_finding(ctx, key, p, specs) for p, specs in needed.items()])
        entry_id = pendinggrants.enqueue(table, key.arn, _entry_of(ctx, key, needed))
    except AwsError as error:  # the lease path writes ahead again, and says FAILED if it cannot
        logger.warning("could not join the key's group commit", extra={"key": key.arn, "error": str(error)})
        return None, None
    if entry_id is None:
        count("GroupCommitFull")
        logger.info("the key's pending grants are at their bound; waiting for the lease", extra={"key": key.arn})
        return None, None
    count("GroupCommitWaits")
    return _wait(ctx, lock, key, needed, entry_id), entry_id


def _wait(
    ctx: Context, lock: Lease, key: KeyInfo, needed: Mapping[str, Sequence[StatementSpec]], entry_id: str
) -> Waited | None:
    started = time.monotonic()
    give_up = started + lock.wait_seconds
    last_resort = give_up + lock.lease_seconds + lock.in_flight_seconds + PRESUMED_DEAD_AFTER
    poll = POLL_FIRST / 2  # doubled before the first sleep
    watched = ""  # the holder whose lease we saw end: not watched again
    while True:
        mine = _read_mine(ctx, key, entry_id, last_resort)
        now = time.time()
        if mine is None:  # removed as stale: wait for the lease as before group commit
            return None
        if mine is not NO_NEWS:
            if mine.state == pendinggrants.DONE:
                return _done(ctx, key, mine, needed)
            free = mine.state == pendinggrants.WAITING or now > mine.until + PRESUMED_DEAD_AFTER
            if free and lock.try_acquire():
                if _keep_the_lease(ctx, lock, key, entry_id):
                    return None  # this caller holds the lease now: it writes (``gather`` finds its own entry)
                continue
            if time.monotonic() > give_up:
                if mine.state == pendinggrants.WAITING and pendinggrants.withdraw(
                    ctx.settings.state_table, key.arn, entry_id
                ):
                    waited = time.monotonic() - started
                    why = f"waited {waited:.0f}s for the key's writer"
                    return Waited(_timed_out(ctx, key, needed, waited), retry=why)
                if time.monotonic() > last_resort:
                    raise RetryableError(f"waited {lock.wait_seconds:.0f}s and more for the writer of {key.arn}")
            # Until the lease changes hands there is no news: watch it (a small item), then read.
            holder, until = _holder(lock, mine), now + give_up - time.monotonic()
            if mine.state == pendinggrants.TAKEN:
                until = min(until, mine.until + PRESUMED_DEAD_AFTER)
            if holder is not None and holder != watched and _lease_ended(ctx, lock, holder, until):
                # A holder settles its entries just after its lease ends: read then, not at once.
                watched, poll = holder, POLL_FIRST / 2
                ctx.sleep(random.uniform(POLL_FIRST / 4, POLL_FIRST / 2))  # noqa: S311 - jitter, not crypto
                continue
        poll = next_poll(poll)
        ctx.sleep(random.uniform(poll / 2, poll))  # noqa: S311 - jitter, not crypto


NO_NEWS: Final = Entry(entry_id="", waiter=Waiter(grants=(), event="", origin=""), at=0.0, state="")


def _read_mine(ctx: Context, key: KeyInfo, entry_id: str, last_resort: float) -> Entry | None:
    """Our entry as the table has it; ``NO_NEWS`` when the read was throttled or unanswered (read
    again later, not a failed invocation that would leave the entry behind), until ``last_resort``."""
    try:
        return pendinggrants.read_one(ctx.settings.state_table, key.arn, entry_id)
    except Transient as error:
        count("GroupCommitPollErrors")
        logger.warning("could not read our pending entry", extra={"key": key.arn, "error": str(error)})
        if time.monotonic() > last_resort:
            raise
        return NO_NEWS


def _done(ctx: Context, key: KeyInfo, mine: Entry, needed: Mapping[str, object]) -> Waited:
    """A holder settled our entry: its findings are ours to publish (and the entry ours to remove)."""
    try:
        pendinggrants.remove(ctx.settings.state_table, key.arn, [mine.entry_id])
    except AwsError as error:  # best effort: a holder removes settled entries later
        logger.warning("could not remove a settled entry", extra={"key": key.arn, "error": str(error)})
    lost = "the key's writer lost our grant to an expired lease" if mine.lost else ""
    return Waited(_settled(ctx, key, mine, needed), retry=lost)


def _keep_the_lease(ctx: Context, lock: Lease, key: KeyInfo, entry_id: str) -> bool:
    """We took the lease: read our entry again under it. A holder may have taken (or even
    settled) it between our read and its release: then its outcome is ours to wait for, and the
    lease goes back. Kept when the entry still waits, or its holder died (abandoned)."""
    try:
        mine = pendinggrants.read_one(ctx.settings.state_table, key.arn, entry_id)
    except Transient as error:  # no news: the lease is not ours to hold meanwhile
        logger.warning("could not read our pending entry", extra={"key": key.arn, "error": str(error)})
        _let_go(lock)
        ctx.sleep(random.uniform(POLL_FIRST / 2, POLL_FIRST))  # noqa: S311 - jitter, not crypto
        return False
    if mine is not None and (mine.state == pendinggrants.WAITING or mine.abandoned(time.time())):
        if mine.state == pendinggrants.TAKEN:
            count("GroupCommitTakenOver")
            logger.warning("the key's writer stopped before settling our entry", extra={"key": key.arn})
        return True
    _let_go(lock)
    return False


def _let_go(lock: Lease) -> None:
    """Release a lease taken only to look (best effort: unreleased, it expires with its lease)."""
    try:
        lock.release()
    except AwsError as error:
        logger.warning("could not release the key's lease", extra={"key": lock.item_id, "error": str(error)})


def _holder(lock: Lease, mine: Entry) -> str | None:
    """Whose lease decides our entry's next state: the holder that took it, else whoever holds
    the key's lease now (None: nobody, or it cannot be read — read the entry again later)."""
    if mine.state == pendinggrants.TAKEN:
        return mine.holder
    try:
        return lock.current_owner()
    except AwsError as error:
        logger.warning("could not read the key's lease", extra={"key": lock.item_id, "error": str(error)})
        return None


def _lease_ended(ctx: Context, lock: Lease, holder: str, until: float) -> bool:
    """While ``holder`` holds the key's lease (writing our entry, or writing before it takes the
    next ones): watch the lease, a small item, every ``POLL_FIRST`` / 2 to ``POLL_FIRST`` (after
    ``WATCH_SLOWS_AFTER``, every ``POLL_SOON`` / 2 to ``POLL_SOON``), rather than read the pending
    record (up to ~300 KB, and DynamoDB charges a read by the whole item). True
    once the lease no longer names ``holder`` (a holder settles its entries just after); False
    when ``until`` (epoch seconds: a taken entry's write deadline and ``PRESUMED_DEAD_AFTER``, or
    our own wait's end) passed first, or the lease cannot be read."""
    watched = time.monotonic()
    while time.time() < until:
        slow = time.monotonic() - watched > WATCH_SLOWS_AFTER  # a long write: every POLL_SOON instead
        interval = POLL_SOON if slow else POLL_FIRST
        ctx.sleep(random.uniform(interval / 2, interval))  # noqa: S311 - jitter, not crypto
        try:
            if lock.current_owner() != holder:
                return True
        except AwsError as error:  # no news: back to reading the entry
            logger.warning("could not read the key's lease", extra={"key": lock.item_id, "error": str(error)})
            return False
    return False


def next_poll(previous: float) -> float:
    """Seconds until a waiter's next read of its entry, before jitter: from ``POLL_FIRST``
    doubling to ``POLL_MAX``. Pure."""
    return min(max(previous * 2, POLL_FIRST), POLL_MAX)


def _settled(ctx: Context, key: KeyInfo, entry: Entry, needed: Mapping[str, object]) -> list[Finding]:
    """The findings the holder settled for this entry: only this event's, on this key, for the
    principals it enqueued (anything else in the record is not ours to publish)."""
    out: list[Finding] = []
    try:
        rows = json.loads(entry.findings or "[]")
    except ValueError:
        rows = None
    for row in rows if isinstance(rows, list) else ():
        try:
            finding = Finding.from_document(row["document"], scope=str(row.get("scope") or ""))
        except (InvalidEvent, ValueError, TypeError, AttributeError, KeyError):
            continue
        if (
            finding.source_event_id == ctx.source_event_id
            and finding.kms_key_arn == key.arn
            and finding.principal_arn in needed
        ):
            out.append(finding)
    return out


def _timed_out(
    ctx: Context, key: KeyInfo, needed: Mapping[str, Sequence[StatementSpec]], waited: float
) -> list[Finding]:
    count("GroupCommitTimeouts")
    return [
        ctx.finding(
            FindingType.KEY_ACCESS_MISSING,
            Outcome.FAILED,
            key.arn,
            f"not adding {p} ({', '.join(policy.actions_of(specs))}) to the policy of {key.arn} (for "
            f"{ctx.origin}): waited {waited:.0f}s for the key's writer (another grant held its lease) and "
            "gave up; nothing was written yet. The event is retried (a later REMEDIATED says when it is written)",
            p,
            attempted=True,
        )
        for p, specs in needed.items()
    ]


@dataclass(slots=True)
class Member:
    """A waiting entry the holder took: its event's context and the principals the re-check passed."""

    entry: Entry
    ctx: Context
    grants: dict[str, tuple[StatementSpec, ...]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)  # made without a write (re-check, granted before)


@dataclass(slots=True)
class Group:
    """What the holder took: the members, its own entry (a waiter that became the holder), and
    findings for its own event from that entry (a dead holder's write it reports)."""

    members: list[Member] = field(default_factory=list)
    own: str | None = None
    found: list[Finding] = field(default_factory=list)

    def grants(self, own: Sequence[policy.Grant]) -> list[policy.Grant]:
        """The holder's grants and the members', one per principal (its specs united)."""
        merged: dict[str, list[StatementSpec]] = {p: list(specs) for p, specs in own}
        for member in self.members:
            for principal, specs in member.grants.items():
                known = merged.setdefault(principal, [])
                known += [s for s in specs if s not in known]
        return [(p, tuple(specs)) for p, specs in merged.items()]

    def audience(self, ctx: Context, own: Sequence[policy.Grant]) -> dict[str, list[Context]]:
        """Whose findings each principal's outcome becomes."""
        readers: dict[str, list[Context]] = {p: [ctx] for p, _ in own}
        for member in self.members:
            for principal in member.grants:
                readers.setdefault(principal, []).append(member.ctx)
        return readers

    @property
    def taken(self) -> list[str]:
        return [m.entry.entry_id for m in self.members]


def gather(ctx: Context, lock: Lease, key: KeyInfo, document: dict[str, Any], group: Group) -> None:
    """Just before the holder writes: take every waiting (or abandoned) entry of the key into
    ``group``, and re-check each principal with ``decide`` on ``document``, the policy the write
    builds on."""
    table = ctx.settings.state_table
    own_entry = group.own
    candidates: list[Entry] = []
    for _ in range(3):
        entries, malformed = _arrived(ctx, table, key.arn)
        now = time.time()
        gone = pendinggrants.stale(entries, now) + malformed
        candidates = [
            e
            for e in entries.values()
            if e.entry_id not in gone and (e.state == pendinggrants.WAITING or e.abandoned(now))
        ]
        if gone:
            pendinggrants.remove(table, key.arn, gone)
        if pendinggrants.take(table, key.arn, candidates, holder=lock.owner, until=lock.write_deadline()):
            break
    else:  # entries kept changing under us: they wait for the next holder
        return
    group.found += _settled_after_takeover(ctx, key, document, entries.get(own_entry or ""))
    for entry in candidates:
        member_ctx = Context(
            settings=ctx.settings,
            publisher=ctx.publisher,
            keys=ctx.keys,
            source_event_id=entry.waiter.event,
            origin=entry.waiter.origin,
            scope=entry.waiter.scope,
            request=entry.waiter.request,
            sleep=ctx.sleep,
            drifted={key.arn: frozenset(entry.waiter.drifted)},
        )
        reader = ctx if entry.entry_id == own_entry else member_ctx
        member = Member(entry, reader)
        _recheck(ctx, key, document, member)
        if entry.entry_id == own_entry:  # ours: the holder's own grants cover its principals
            group.found += member.findings
        else:
            group.members.append(member)
    if group.members:
        count("GroupCommitMembers", len(group.members))
        logger.info(
            "writing the grants waiting on the key with ours", extra={"key": key.arn, "waiting": len(group.members)}
        )


def _settled_after_takeover(ctx: Context, key: KeyInfo, document: dict[str, Any], own: Entry | None) -> list[Finding]:
    """Our own entry, settled by the holder whose expired lease we took over, after we read it
    abandoned: that holder's write landed and its report is ours to publish (our write finds the
    principal granted and makes none). Only REMEDIATED findings for principals ``document`` — the
    policy read under our lease — grants; a grant settled as lost is written again by us."""
    if own is None or own.state != pendinggrants.DONE or own.lost:
        return []
    wants = {p: tuple(SPECS_BY_SID[s] for s in sids if s in SPECS_BY_SID) for p, sids in own.waiter.grants}
    return [
        f
        for f in _settled(ctx, key, own, wants)
        if f.outcome is Outcome.REMEDIATED
        and f.principal_arn
        and not policy.missing(document, f.principal_arn, wants[f.principal_arn], key.arn)
    ]


def _arrived(ctx: Context, table: str, key_arn: str) -> tuple[dict[str, Entry], list[str]]:
    """The key's entries once none has arrived for ``LINGER_STEP`` (or ``LINGER_MAX`` has passed
    lingering): grants still arriving are worth waiting for, grants that queued during an earlier
    write are not (nothing more is coming with them)."""
    started = time.monotonic()
    entries, malformed = pendinggrants.read(table, key_arn)
    while (quiet := _quiet_for(entries, time.time())) < LINGER_STEP and (
        left := LINGER_MAX - (time.monotonic() - started)
    ) > 0:
        ctx.sleep(min(LINGER_STEP - quiet, left))
        entries, malformed = pendinggrants.read(table, key_arn)
    return entries, malformed


def _quiet_for(entries: Mapping[str, Entry], now: float) -> float:
    """Seconds since the newest waiting entry arrived (``LINGER_STEP`` when none waits: no linger).
    An arrival stamped ahead of our clock (another instance's clock skew) counts as just now."""
    arrivals = [e.at for e in entries.values() if e.state == pendinggrants.WAITING]
    if not arrivals:
        return LINGER_STEP
    return min(LINGER_STEP, max(0.0, now - max(arrivals)))


def _recheck(ctx: Context, key: KeyInfo, document: dict[str, Any], member: Member) -> None:
    """The same checks the member's event made (``decide``), on the policy about to be written over."""
    mctx = member.ctx
    wants = {p: tuple(SPECS_BY_SID[s] for s in sids if s in SPECS_BY_SID) for p, sids in member.entry.waiter.grants}
    for principal, sids in member.entry.waiter.grants:
        if len(wants[principal]) != len(sids):  # an Sid the guard does not write: not an entry of ours
            logger.warning("a pending grant names an unknown statement; not written", extra={"principal": principal})
            count("GroupCommitRefused")
            del wants[principal]
    decisions = decide(ctx.keys, ctx.settings, key, document, wants)
    for principal, decision in decisions.items():
        specs = wants[principal]
        if decision.status is KeyStatus.GRANTED:
            member.grants[principal] = decision.missing
        elif decision.status is KeyStatus.OK:
            if member.entry.state == pendinggrants.TAKEN:  # a writer that died wrote it for this event
                note = " (by an earlier writer of the key, which stopped before it reported it)"
                member.findings.append(remediated_finding(mctx, key, principal, specs, note))
        else:
            count("GroupCommitRefused")
            logger.warning(
                "a pending grant failed its re-check under the key's lease; not written",
                extra={"key": key.arn, "principal": principal, "status": decision.status.value},
            )
            finding_type = (
                FindingType.KEY_NOT_MANAGED
                if decision.status is KeyStatus.NOT_MANAGED
                else (FindingType.KEY_ACCESS_MISSING)
            )
            outcome = Outcome.REPORTED if decision.status is KeyStatus.REPORTED else Outcome.REFUSED
            detail = (
                f"{principal} lacks {', '.join(policy.actions_of(specs))} on {key.arn}, needed for {mctx.origin}; "
                f"re-checked under the key's lease just before the write: {decision.reason}; nothing was written"
            )
            member.findings.append(mctx.finding(finding_type, outcome, key.arn, detail, principal))


def settle(
    ctx: Context, lock: Lease, key: KeyInfo, group: Group, *, attempts: Sequence[Attempt], lost: Sequence[str]
) -> None:
    """After the holder's lease: each member's entry gets the findings made for its event (a
    REMEDIATED for a grant a takeover lost is withheld: the entry says ``lost``, and its event
    is retried); the holder's own entry is removed."""
    table = ctx.settings.state_table
    outcomes: dict[str, tuple[str, bool]] = {}
    for member in group.members:
        findings = list(member.findings)
        findings += [f for a in attempts for reader, f in a.relayed if reader is member.ctx]
        gone = [p for p in member.grants if p in lost]
        kept = [f for f in findings if not (f.outcome is Outcome.REMEDIATED and f.principal_arn in gone)]
        outcomes[member.entry.entry_id] = (
            pendinggrants.bounded_findings([(f.document(), f.scope) for f in kept]),
            bool(gone),
        )
    try:
        pendinggrants.settle(table, key.arn, outcomes, holder=lock.owner)
        if group.own is not None:
            pendinggrants.remove(table, key.arn, [group.own])
    except AwsError as error:  # the waiters take the entries back once our write deadline passed
        logger.warning("could not settle the pending grants", extra={"key": key.arn, "error": str(error)})


def hand_back(ctx: Context, lock: Lease, key: KeyInfo, group: Group) -> None:
    """The holder failed before its write's outcome was known: the members' entries count as
    abandoned once any write it sent has landed, and the next holder (or waiter) takes them."""
    if not group.members:
        return
    try:
        until = time.time() + lock.in_flight_seconds
        pendinggrants.hand_back(ctx.settings.state_table, key.arn, group.taken, holder=lock.owner, until=until)
    except AwsError as error:
        logger.warning("could not hand back the pending grants", extra={"key": key.arn, "error": str(error)})
