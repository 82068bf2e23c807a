"""One read-merge-write of a key policy under the key's lease (docs/architecture.md §6): the
write-ahead intent and journal entry, the merge within the guardrails (32 KB, unwritable principals),
PutKeyPolicy (retrying MalformedPolicyDocumentException), the read-back. Findings are returned, not published."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters import kms
from clguard.adapters.kms import KeyInfo
from clguard.errors import AwsError, KeyUnreadable, PolicyConflict, Refused, RetryableError
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, Outcome, PolicyChange
from clguard.reporting.unitofwork import Change
from clguard.rules import policy
from clguard.rules.policy import StatementSpec
from clguard.state import writejournal
from clguard.state.locks import Lease
from clguard.usecases.keydecision import Context, KeyStatus, drift_note, facts_of

MALFORMED_RETRIES: Final = 4  # KMS may not see a just-created principal yet
MALFORMED_BACKOFF: Final = 0.5
# Seconds of lease left before each write: more than one PutKeyPolicy can take (its client makes
# one attempt with a 3 s connect and 10 s read timeout), so a write never lands after the lease.
MIN_LEASE_LEFT: Final = 20.0


def changes(merge: policy.Merge, specs: Sequence[StatementSpec]) -> tuple[PolicyChange, ...]:
    """The statements a grant changed, before and after (the finding's structured ``change``)."""
    return tuple(
        PolicyChange(spec.sid, merge.before.get(spec.sid), merge.after.get(spec.sid))
        for spec in specs
        if spec.sid in merge.before
    )


@dataclass(slots=True)
class Attempt:
    """The outcome of one locked read-merge-write, as findings to publish after the lock."""

    grants: Sequence[policy.Grant] = ()
    findings: list[Finding] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)
    rejected: bool = False  # KMS kept rejecting the document (MalformedPolicyDocumentException)
    status: KeyStatus | None = None  # the key result's status when it is not granted/failed
    written: dict[str, Any] | None = None  # the policy PutKeyPolicy accepted, when it did
    # Group commit: the findings made for waiting events (their contexts), settled in their entries.
    relayed: list[tuple[Context, Finding]] = field(default_factory=list)

    def add(self, holder: Context, reader: Context, finding: Finding) -> None:
        """A finding for the holder's event (published by it) or for a waiting event (relayed)."""
        if reader is holder:
            self.findings.append(finding)
        else:
            self.relayed.append((reader, finding))


def note_written(ctx: Context, key_arn: str, grants: Sequence[policy.Grant], *, accepted: bool = False) -> None:
    """Before a write: journal (``state.writejournal``) which principals are being written, so a
    writer whose lease was taken over can check every principal written since it took the lock.
    After KMS accepted it (``accepted``): the same, apart, so the next writer can tell a lagging
    read from a write that never happened (``_caught_up``)."""
    writejournal.note(
        ctx.settings.state_table, key_arn, {p: [s.sid for s in specs] for p, specs in grants}, accepted=accepted
    )


def _journaled(
    ctx: Context,
    change: Change,
    key: KeyInfo,
    grants: Sequence[policy.Grant],
    *,
    out: Attempt,
    reports: Sequence[Finding],
    readers: Callable[[str], Sequence[Context]],
) -> bool:
    """Before the write is sent: its write-ahead intent (``reports``, the findings it will make:
    a write that lands just before we die is reported) and its entry in the per-key journal. A
    state table that refuses either (an item over 400 KB, throttling past the retries, ...)
    stops the write, and a FAILED finding per principal says why: never silence."""
    try:
        change.intend(reports)
        note_written(ctx, key.arn, grants)
    except AwsError as error:
        for p, _ in grants:
            for c in readers(p):
                detail = (
                    f"not adding {p} to the policy of {key.arn} (for {c.origin}): the guard's state table "
                    f"refused to record this write ahead ({error}); nothing was written"
                )
                out.add(
                    ctx,
                    c,
                    c.finding(FindingType.KEY_ACCESS_MISSING, Outcome.FAILED, key.arn, detail, p, attempted=True),
                )
        return False
    return True


def attempt_write(
    ctx: Context,
    change: Change,
    lock: Lease,
    key: KeyInfo,
    document: dict[str, Any],
    *,
    grants: Sequence[policy.Grant],
    audience: Mapping[str, Sequence[Context]] | None = None,
) -> Attempt:
    """``audience``: whose findings each principal's outcome becomes (group commit: the waiting
    events' contexts beside, or instead of, the holder's ``ctx``); by default ``ctx`` alone. Only
    ``ctx``'s are written ahead here: a waiting event wrote its own intent before it enqueued."""
    out = Attempt(grants=grants)

    def readers(principal: str) -> Sequence[Context]:
        return (ctx,) if audience is None else audience.get(principal, (ctx,))

    def each(
        finding_type: FindingType,
        outcome: Outcome,
        detail: Callable[[Context, str, Sequence[StatementSpec]], str],
        *,
        attempted: bool | None = None,
    ) -> None:
        for p, specs in grants:
            for c in readers(p):
                out.add(ctx, c, c.finding(finding_type, outcome, key.arn, detail(c, p, specs), p, attempted=attempted))

    unwritable = policy.unwritable_principals(document)
    if unwritable:
        names = ", ".join(unwritable)
        each(
            FindingType.KEY_ACCESS_MISSING,
            Outcome.FAILED,
            lambda _c, p, _s: (
                f"not adding {p}: the key policy of {key.arn} names {names}, the id KMS shows for a "
                "principal that was deleted, and KMS refuses every PutKeyPolicy that contains one. "
                "Remove it from the key policy (the guard never removes what it did not add); nothing was written"
            ),
        )
        count("KeyPoliciesUnwritable")
        return out
    try:
        merge = policy.merge_grants(
            document, grants, key_account=key.account, key_arn=key.arn, facts=facts_of(ctx, key, document)
        )
    except PolicyConflict as conflict:
        reason = str(conflict)
        each(FindingType.KEY_ACCESS_MISSING, Outcome.FAILED, lambda _c, p, _s: f"not adding {p}: {reason}")
        return out
    size = policy.size_in_bytes(merge.document)
    if size > policy.MAX_POLICY_BYTES:
        each(
            FindingType.KEY_POLICY_LIMIT,
            Outcome.REFUSED,
            lambda c, p, specs: (
                f"adding {p} ({', '.join(policy.actions_of(specs))}, for {c.origin}) would make "
                f"the key policy {size} bytes, over the {policy.MAX_POLICY_BYTES}-byte limit"
            ),
        )
        return out

    def remediated(note: str) -> list[tuple[Context, Finding]]:
        return [
            (c, remediated_finding(c, key, p, specs, note, change=changes(merge, specs)))
            for p, specs in grants
            for c in readers(p)
        ]

    if not _journaled(
        ctx, change, key, grants, out=out, reports=[f for c, f in remediated("") if c is ctx], readers=readers
    ):
        return out
    failure, out.rejected = _write(ctx, lock, key.arn, merge.document)
    note = ""
    if failure is None:
        out.written = merge.document
        failure, note = _confirmed(ctx, key, grants, before=document, written=merge.document)
    if failure is not None:
        each(
            FindingType.KEY_ACCESS_MISSING,
            Outcome.FAILED,
            lambda c, p, _s: f"adding {p} to the policy of {key.arn} (for {c.origin}) failed: {failure}",
            attempted=True,
        )
        return out
    for principal, specs in grants:
        out.granted.append(principal)
        count("Grants", account=ctx.settings.account_id)
        sids = [s.sid for s in specs]
        logger.info("granted key access", extra={"key": key.arn, "principal": principal, "sids": sids})
    for reader, finding in remediated(note):
        out.add(ctx, reader, finding)
    return out


def remediated_finding(
    ctx: Context,
    key: KeyInfo,
    principal: str,
    specs: Sequence[StatementSpec],
    note: str = "",
    *,
    change: tuple[PolicyChange, ...] = (),
) -> Finding:
    """KEY_ACCESS_MISSING, REMEDIATED: ``principal`` was added to the key policy for ``ctx``'s event."""
    return ctx.finding(
        FindingType.KEY_ACCESS_MISSING,
        Outcome.REMEDIATED,
        key.arn,
        f"{principal} lacked {', '.join(policy.actions_of(specs))} on {key.arn}, needed for {ctx.origin}; "
        f"added it to the key policy{note}"
        + (drift_note(principal, specs) if principal in ctx.drifted.get(key.arn, ()) else ""),
        principal,
        change=change,
    )


def _confirmed(
    ctx: Context, key: KeyInfo, grants: Sequence[policy.Grant], *, before: dict[str, Any], written: dict[str, Any]
) -> tuple[str | None, str]:
    """After KMS accepted the write: journal it as accepted (best effort), then read it back.
    Returns (why it failed, None when it did not; the note for the REMEDIATED finding)."""
    try:
        note_written(ctx, key.arn, grants, accepted=True)
    except AwsError as error:  # best effort: it only lets the next writer wait out a lagging read
        logger.warning("could not journal an accepted write", extra={"key": key.arn, "error": str(error)})
    try:
        confirmed = ctx.keys.fresh_policy(key.arn)
    except (AwsError, KeyUnreadable) as error:  # the write succeeded: report it, unconfirmed
        return None, f" (written; the read-back to confirm it failed: {error})"
    facts = facts_of(ctx, key, confirmed)
    unconfirmed = [p for p, specs in grants if policy.missing(confirmed, p, specs, key.arn, facts=facts)]
    if unconfirmed and confirmed == before:
        # KMS is eventually consistent: a read just after an accepted write can still show the
        # policy from before it. Another writer's policy would differ from it.
        ctx.keys.remember_policy(key.arn, dict(written))
        return None, " (written; the read-back still showed the policy from before the write: KMS reads lag)"
    if unconfirmed:
        return f"the policy read back after the write lacks {', '.join(unconfirmed)}", ""
    return None, ""


def _write(ctx: Context, lock: Lease, key_arn: str, document: Mapping[str, Any]) -> tuple[str | None, bool]:
    """PutKeyPolicy, retrying MalformedPolicyDocumentException (a principal KMS cannot see yet).
    Returns (None, False) on success, else (why it failed, whether KMS rejected the document).
    Transient errors raise."""
    text = policy.serialize(document)
    delay = MALFORMED_BACKOFF
    for attempt in range(1, MALFORMED_RETRIES + 1):
        if lock.remaining() < MIN_LEASE_LEFT:
            raise RetryableError(f"lease on {key_arn} too short to write safely")
        try:
            kms.put_policy(key_arn, text, send_by=lock.send_deadline())
        except Refused as error:
            code = error.code
            if code == "MalformedPolicyDocumentException" and attempt < MALFORMED_RETRIES:
                logger.warning(
                    "KMS rejected the policy; retrying",
                    extra={"key": key_arn, "attempt": attempt, "error": str(error)},
                )
                ctx.sleep(delay)
                delay *= 2
                continue
            message = error.message
            failure = f"PutKeyPolicy failed after {attempt} attempt(s): {code}: {message}"
            return failure, code == "MalformedPolicyDocumentException"
        ctx.keys.remember_policy(key_arn, dict(document))
        return None, False
    return "PutKeyPolicy failed", False  # pragma: no cover - the loop always returns
