"""The key's writes under its lease (docs/architecture.md §6): the opt-in re-read, a read that shows
the guard's recent writes, one write (one principal at a time when KMS rejects the document), and
what a lease that expired mid-write lost or erased (restored)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from clguard.adapters.kms import KeyInfo
from clguard.errors import KeyUnreadable, RetryableError
from clguard.observability import count, logger
from clguard.reporting.findings import FindingType, Outcome
from clguard.reporting.unitofwork import Change
from clguard.rules import policy
from clguard.rules.arns import partition_of, partition_of_region
from clguard.rules.policy import StatementSpec
from clguard.rules.principals import refusal_reason
from clguard.state import writejournal
from clguard.state.locks import Lease
from clguard.usecases import keygroup
from clguard.usecases.keyattempt import Attempt, attempt_write
from clguard.usecases.keydecision import Context, KeyResult, KeyStatus, facts_of, publish

# A read inside the lock that lacks one of our writes of the last 30 s is read again (KMS lag).
CAUGHT_UP_WINDOW: Final = 30.0
CAUGHT_UP_DELAYS: Final = (1.0, 2.0)
_SPECS_BY_SID: Final = keygroup.SPECS_BY_SID


def grant(ctx: Context, key: KeyInfo, needed: dict[str, tuple[StatementSpec, ...]], result: KeyResult) -> None:
    """Under the key's lock: re-read, merge, write, confirm. Findings are published after the
    lock is released (the lock is held only for the KMS calls) — and published even when
    something fails after a write, so a change is never left unreported."""
    attempts: list[Attempt] = []
    lost: list[str] = []
    erased: dict[str, tuple[StatementSpec, ...]] = {}
    lock = Lease(ctx.settings.state_table, key.arn)
    with ctx.change(key.arn) as change:  # acknowledged once the writes' findings are delivered
        waited, own_entry = keygroup.wait_for_writer(ctx, change, lock, key, needed)
        if waited is not None:
            _joined(ctx, key, waited, result)
            return
        group = keygroup.Group(own=own_entry)
        try:
            with lock:
                _locked_writes(ctx, change, lock, key, needed, attempts=attempts, group=group)
            if not lock.held_to_the_end and any(a.grants for a in attempts):  # a write was made
                lost, erased = _lost_grants(ctx, key, attempts, since=lock.acquired_at)
            keygroup.settle(ctx, lock, key, group, attempts=attempts, lost=lost)
        except Exception:  # the waiters' entries go to the next holder (a runtime killed leaves them to expire)
            keygroup.hand_back(ctx, lock, key, group)
            raise
        finally:
            result.published += [f for f in group.found if publish(ctx, f)]
            result.granted += [f.principal_arn for f in group.found if f.principal_arn]
            for attempt in attempts:
                if not any(p in needed for p, _ in attempt.grants) and attempt.grants:
                    continue  # a write for waiting principals alone: their events report it
                result.granted += [p for p in attempt.granted if p in needed]
                result.status = attempt.status or (KeyStatus.GRANTED if result.granted else KeyStatus.FAILED)
                for finding in attempt.findings:
                    if finding.outcome is not Outcome.REMEDIATED or finding.principal_arn not in lost:
                        result.published += publish(ctx, finding)
            if group.found and result.status is KeyStatus.OK:
                result.status = KeyStatus.GRANTED
        if erased:
            _restore(ctx, key, erased, result)
        lost = [p for p in lost if p in needed]
        if lost:
            raise RetryableError(f"the lease on {key.arn} expired during the write and {', '.join(lost)} was lost")


def _joined(ctx: Context, key: KeyInfo, waited: keygroup.Waited, result: KeyResult) -> None:
    """Group commit: another grant wrote (or refused) ours under its lease; report what it settled."""
    for finding in waited.findings:
        result.published += publish(ctx, finding)
        if finding.outcome is Outcome.REMEDIATED and finding.principal_arn:
            result.granted.append(finding.principal_arn)
        status = _JOINED_STATUS.get((finding.finding_type, finding.outcome), KeyStatus.FAILED)
        result.status = status if result.status is KeyStatus.OK else max(result.status, status)
    if waited.retry:
        raise RetryableError(f"{waited.retry} ({key.arn}); retrying")


_JOINED_STATUS: Final = {
    (FindingType.KEY_ACCESS_MISSING, Outcome.REMEDIATED): KeyStatus.GRANTED,
    (FindingType.KEY_ACCESS_MISSING, Outcome.REFUSED): KeyStatus.REFUSED,
    (FindingType.KEY_ACCESS_MISSING, Outcome.REPORTED): KeyStatus.REPORTED,
    (FindingType.KEY_NOT_MANAGED, Outcome.REFUSED): KeyStatus.NOT_MANAGED,
}


def _locked_writes(
    ctx: Context,
    change: Change,
    lock: Lease,
    key: KeyInfo,
    needed: Mapping[str, Sequence[StatementSpec]],
    *,
    attempts: list[Attempt],
    group: keygroup.Group,
) -> None:
    """Inside the key's lease: the opt-in re-read, a read that shows our recent writes, the
    grants waiting on the key (``group``, taken just before the write), then one write of every
    principal still missing (one at a time when KMS rejects the document). Each attempt is
    appended to ``attempts`` as it is made (published by the caller, even after an error)."""
    opted_out = _opted_out(ctx, key, needed)
    if opted_out is not None:
        attempts.append(opted_out)
        return  # the key opted out since it was read: not edited
    document = _caught_up(ctx, key, ctx.keys.fresh_policy(key.arn), writing=needed)
    facts = facts_of(ctx, key, document)
    own = [(p, m) for p, specs in needed.items() if (m := policy.missing(document, p, specs, key.arn, facts=facts))]
    keygroup.gather(ctx, lock, key, document, group)
    grants, audience = group.grants(own), group.audience(ctx, own)
    if not grants:
        return  # another writer granted it meanwhile
    attempts.append(attempt_write(ctx, change, lock, key, document, grants=grants, audience=audience))
    if attempts[0].rejected and len(grants) > 1:
        # One principal KMS cannot see (deleted, or not yet propagated) must not block the
        # others: write them one at a time.
        logger.warning("KMS rejected the policy; writing one principal at a time", extra={"key": key.arn})
        attempts.clear()
        for one in grants:
            document = _not_before_ours(ctx, key, attempts)
            attempts.append(attempt_write(ctx, change, lock, key, document, grants=[one], audience=audience))


def _not_before_ours(ctx: Context, key: KeyInfo, attempts: Sequence[Attempt]) -> dict[str, Any]:
    """The policy to build the next one-at-a-time write on: a fresh read, unless it lacks a grant
    written just before under this lock (a KMS read that lags behind the write, as a read-back
    can): then the policy that write put, so the next write does not erase that grant."""
    document = ctx.keys.fresh_policy(key.arn)
    ours = next((a.written for a in reversed(attempts) if a.written is not None), None)
    done = [(p, specs) for a in attempts for p, specs in a.grants if p in a.granted]
    if ours is not None and any(not policy.is_allowed(document, p, s, key.arn) for p, specs in done for s in specs):
        logger.warning("the policy read lags behind our last write; building on that write", extra={"key": key.arn})
        return dict(ours)
    return document


def _opted_out(ctx: Context, key: KeyInfo, needed: Mapping[str, Sequence[StatementSpec]]) -> Attempt | None:
    """Inside the lock, before any write: the tags as KMS has them now. A key that lost the
    opt-in tag since it was read (possibly from the S3 path's cache) is not edited."""
    tag_key, tag_value = ctx.settings.managed_key_tag
    if ctx.keys.fresh_tags(key.arn).get(tag_key) == tag_value:
        return None
    count("Refusals", len(needed), account=ctx.settings.account_id)
    why = f"the key no longer carries the opt-in tag {tag_key}={tag_value} (re-read before the write)"
    findings = [
        ctx.finding(
            FindingType.KEY_NOT_MANAGED,
            Outcome.REFUSED,
            key.arn,
            f"{p} lacks {', '.join(policy.actions_of(specs))} on {key.arn}, needed for {ctx.origin}; {why}",
            p,
        )
        for p, specs in needed.items()
    ]
    return Attempt(grants=(), findings=findings, status=KeyStatus.NOT_MANAGED)


def _caught_up(
    ctx: Context, key: KeyInfo, document: dict[str, Any], *, writing: Mapping[str, object]
) -> dict[str, Any]:
    """The policy read inside the lock, once it shows the guard's own recent writes. KMS reads
    are eventually consistent: a read seconds after another invocation's accepted write can lack
    it, and a write built on that read would erase the grant (already reported REMEDIATED). When
    a principal the per-key journal says was written in the last ``CAUGHT_UP_WINDOW`` seconds is
    missing, the policy is read again after each of ``CAUGHT_UP_DELAYS``; still missing, it was
    removed since, and the read is used as it is. (Only writes KMS accepted count: a write that
    failed, or is still in flight past a lease, is not waited for; nor a principal this write
    adds anyway.)"""
    recent = _written_since(ctx, key.arn, since=time.time() - CAUGHT_UP_WINDOW, accepted=True)
    for delay in (*CAUGHT_UP_DELAYS, None):
        facts = facts_of(ctx, key, document)
        lagging = [
            p
            for p, specs in recent.items()
            if p not in writing and policy.missing(document, p, specs, key.arn, facts=facts)
        ]
        if not lagging or delay is None:
            return document
        logger.info("the key policy read lacks a recent write of ours; reading again", extra={"key": key.arn})
        count("StaleKeyPolicyReads")
        ctx.sleep(delay)
        document = ctx.keys.fresh_policy(key.arn)
    return document


def _written_since(
    ctx: Context, key_arn: str, since: float, *, accepted: bool = False
) -> dict[str, tuple[StatementSpec, ...]]:
    """The principals (and specs) journaled as written (``accepted``: as accepted by KMS) since ``since``."""
    written = writejournal.written_since(ctx.settings.state_table, key_arn, since, accepted=accepted)
    out = {p: tuple(_SPECS_BY_SID[sid] for sid in sids if sid in _SPECS_BY_SID) for p, sids in written.items()}
    return {p: specs for p, specs in out.items() if specs}


def _lost_grants(
    ctx: Context, key: KeyInfo, attempts: Sequence[Attempt], *, since: float
) -> tuple[list[str], dict[str, tuple[StatementSpec, ...]]]:
    """Our lease expired before we released it: another writer may have overwritten our write
    with a policy read before it, or our late write may have erased the other writer's. Re-read,
    and name (1) our grants that are no longer there and (2) every other principal written under
    the key since we took the lock that is no longer there."""
    document = ctx.keys.fresh_policy(key.arn)
    facts = facts_of(ctx, key, document)
    ours = {principal for attempt in attempts for principal, _ in attempt.grants}
    lost = [
        principal
        for attempt in attempts
        for principal, specs in attempt.grants
        if principal in attempt.granted and policy.missing(document, principal, specs, key.arn, facts=facts)
    ]
    erased = {
        principal: missing
        for principal, specs in _written_since(ctx, key.arn, since).items()
        if principal not in ours and (missing := policy.missing(document, principal, specs, key.arn, facts=facts))
    }
    return lost, erased


def _restore(ctx: Context, key: KeyInfo, erased: dict[str, tuple[StatementSpec, ...]], result: KeyResult) -> None:
    """Another writer's confirmed grant was erased by a write of ours that landed late: put it
    back (within the same guardrails), and say so."""
    allowed = {
        principal: specs
        for principal, specs in erased.items()
        if refusal_reason(
            principal,
            key_account=key.account,
            key_partition=partition_of(key.arn) or partition_of_region(ctx.settings.region),
            patterns=ctx.settings.allowed_principal_patterns,
        )
        is None
    }
    tag_key, tag_value = ctx.settings.managed_key_tag
    if not allowed:
        return
    try:
        opted_in = ctx.keys.fresh_tags(key.arn).get(tag_key) == tag_value
    except KeyUnreadable as unreadable:  # the opt-in cannot be confirmed: the key is not edited
        logger.error(
            "grants a late write erased are not restored: the key's tags cannot be read",
            extra={"key": key.arn, "principals": sorted(allowed), "error": str(unreadable)},
        )
        return
    if not opted_in:
        return
    count("GrantsRestored", len(allowed))
    logger.warning(
        "a late write of ours erased grants another writer had made; restoring them",
        extra={"key": key.arn, "principals": sorted(allowed)},
    )
    restore_ctx = Context(
        settings=ctx.settings,
        publisher=ctx.publisher,
        keys=ctx.keys,
        source_event_id=ctx.source_event_id,
        origin=f"restoring a grant a concurrent write erased ({ctx.origin})",
        scope=ctx.scope,
        sleep=ctx.sleep,
        journal=ctx.journal,
    )
    grant(restore_ctx, key, allowed, result)
