"""Ensure principals have the key access training needs — within the guardrails (docs/architecture.md §6).

Order of checks for one key (each stops the rest and says why in a finding):
1. the key resolves, is customer managed, in this account and enabled, else KEY_UNUSABLE (also
   when KMS refuses, not transiently, to let the guard read its policy or tags: that key alone);
2. the principal is already granted (no write, no alert): allowed, and no Deny cancels it;
3. the principal is allowed (patterns, same account, no root/wildcard/service), else REFUSED;
3b. no explicit Deny of the key policy can cancel the access, else KEY_ACCESS_MISSING REFUSED
   naming the Sid(s) (nothing is written: an added Allow would not help);
4. the key carries the opt-in tag, else KEY_NOT_MANAGED;
5. report mode: KEY_ACCESS_MISSING REPORTED with what would be added;
6. enforce: under the key's lock, re-read, merge additively, check 32 KB, PutKeyPolicy (retrying
   a principal KMS does not see yet), re-read to confirm, publish KEY_ACCESS_MISSING REMEDIATED.
Guardrails come before the mode, so report mode tells exactly what enforce mode would do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import total_ordering
from typing import Any, Final

from clguard.adapters import kms
from clguard.adapters.kms import KeyInfo
from clguard.boundary.config import Settings
from clguard.errors import AwsError, KeyUnreadable, PolicyConflict, Refused, RetryableError
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome, PolicyChange
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Change
from clguard.rules import policy
from clguard.rules.arns import partition_of, partition_of_region
from clguard.rules.policy import StatementSpec
from clguard.rules.principals import refusal_reason
from clguard.state import writejournal
from clguard.state.intents import Journal
from clguard.state.keydirectory import KeyDirectory
from clguard.state.locks import Lease

MALFORMED_RETRIES: Final = 4  # KMS may not see a just-created principal yet
MALFORMED_BACKOFF: Final = 0.5
# A read inside the lock that lacks one of our writes of the last 30 s is read again (KMS lag).
CAUGHT_UP_WINDOW: Final = 30.0
CAUGHT_UP_DELAYS: Final = (1.0, 2.0)
# Seconds of lease left before each write: more than one PutKeyPolicy can take (its client makes
# one attempt with a 3 s connect and 10 s read timeout), so a write never lands after the lease.
MIN_LEASE_LEFT: Final = 20.0
_SPECS_BY_SID: Final = {s.sid: s for s in (policy.TRAINING_DATA, policy.COPIED_IMAGES_GRANT, policy.COPIED_IMAGES_USE)}


@dataclass(slots=True)
class Context:
    """Everything the key-access logic needs for one unit of work (one event, or one batch)."""

    settings: Settings
    publisher: Publisher
    keys: KeyDirectory
    source_event_id: str
    origin: str  # what asked, for the detail text: "object s3://…" or "CreateProjectVersion …"
    scope: str = ""  # finding scope for key-level conditions (see Finding.scope)
    request: str = ""  # the request (not a single object event) that asked: the findings' origin
    sleep: Callable[[float], None] = time.sleep
    journal: Journal | None = None  # write-ahead of the findings of changes (clguard.state.intents)
    # Per key: the principals a policy this container saw earlier granted and KMS's policy lacks now
    # (someone replaced the key policy since: drift). Their REMEDIATED finding says so.
    drifted: dict[str, frozenset[str]] = field(default_factory=dict)

    def change(self, resource: str) -> Change:
        """The unit of work of one change of ``resource`` (its intent, findings, acknowledgement)."""
        return Change(self.publisher, self.journal, self.source_event_id, resource)

    def finding(
        self,
        finding_type: FindingType,
        outcome: Outcome,
        key_arn: str,
        detail: str,
        principal: str | None = None,
        *,
        attempted: bool | None = None,
        change: tuple[PolicyChange, ...] = (),
    ) -> Finding:
        """A key-level finding. ``scope`` groups conditions nothing changes (refusals, reports,
        unusable keys); a change the remediator made (REMEDIATED) or tried to make and failed
        (``attempted=True``) is never grouped: every change is its own alert. ``change``: the
        statements a change edited, before and after (the finding's structured ``change``)."""
        is_change = outcome is Outcome.REMEDIATED if attempted is None else attempted
        return Finding(
            finding_type=finding_type,
            outcome=outcome,
            resource=KmsKeyResource(key_arn),
            detail=detail,
            source_event_id=self.source_event_id,
            account=self.settings.account_id,
            region=self.settings.region,
            principal_arn=principal,
            kms_key_arn=key_arn,
            scope="" if is_change else self.scope,
            change=change,
            origin=self.request,
        )


@total_ordering
class KeyStatus(Enum):
    """What happened on one key, from the least to the most telling (the order of definition).

    Several objects of one request may share a key: its training summary keeps the most telling
    status seen (``max``). The summaries' JSON carries the ``value``."""

    OK = "ok"
    REPORTED = "reported"
    REFUSED = "refused"
    DENIED = "denied"
    NOT_MANAGED = "not managed"
    FAILED = "failed"
    UNUSABLE = "unusable"
    GRANTED = "granted"

    @property
    def rank(self) -> int:
        return _KEY_STATUS_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, KeyStatus):
            return NotImplemented
        return self.rank < other.rank


_KEY_STATUS_RANK: Final[Mapping[KeyStatus, int]] = {status: rank for rank, status in enumerate(KeyStatus)}


@dataclass(slots=True)
class KeyResult:
    """What happened on one key. ``refused`` is returned, not published: the caller publishes one
    PRINCIPAL_NOT_ALLOWED per principal per event, listing every key it was refused on."""

    reference: str
    key: KeyInfo | None = None
    status: KeyStatus = KeyStatus.OK
    granted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    published: list[Finding] = field(default_factory=list)


def unusable_reason(key: KeyInfo, settings: Settings, *, must_edit: bool = True) -> str | None:
    """Why the key cannot serve training. A disabled or deleted key always matters; an AWS
    managed or other-account key only when we must edit its policy (principals to ensure)."""
    if not key.usable:
        return f"{key.arn} is {key.state}: nothing encrypted with it can be read"
    if must_edit and not key.customer_managed:
        return f"{key.arn} is an AWS managed key: its policy cannot be edited"
    if must_edit and key.account != settings.account_id:
        return f"{key.arn} belongs to account {key.account}, not this account ({settings.account_id})"
    return None


def _changes(merge: policy.Merge, specs: Sequence[StatementSpec]) -> tuple[PolicyChange, ...]:
    """The statements a grant changed, before and after (the finding's structured ``change``)."""
    return tuple(
        PolicyChange(spec.sid, merge.before.get(spec.sid), merge.after.get(spec.sid))
        for spec in specs
        if spec.sid in merge.before
    )


def usable(
    keys: KeyDirectory, settings: Settings, reference: str, *, must_edit: bool
) -> tuple[KeyInfo | None, str | None]:
    """Check 1 (read-only): the key ``reference`` names, and why it cannot serve training (None: it can)."""
    lookup = keys.lookup(reference)
    key = lookup.key
    return key, lookup.problem if key is None else unusable_reason(key, settings, must_edit=must_edit)


def ensure_access(ctx: Context, reference: str, wants: Mapping[str, Sequence[StatementSpec]]) -> KeyResult:
    """Make every principal in ``wants`` hold its specs on the key ``reference`` names."""
    result = KeyResult(reference)
    key, reason = usable(ctx.keys, ctx.settings, reference, must_edit=bool(wants))
    result.key = key
    if reason is not None:
        result.status = KeyStatus.UNUSABLE
        arn = reference if key is None else key.arn
        detail = f"{reason}; needed for {ctx.origin}"
        result.published += _publish(ctx, ctx.finding(FindingType.KEY_UNUSABLE, Outcome.REPORTED, arn, detail))
        state, gone = (None, ctx.keys.lookup(reference).not_found) if key is None else (key.state, False)
        ctx.publisher.key_unusable(
            arn, state, not_found=gone, account=ctx.settings.account_id, region=ctx.settings.region
        )
        return result
    assert key is not None
    try:
        _ensure_on(ctx, key, wants, result)
    except KeyUnreadable as unreadable:
        # This key's problem alone: reported, and the caller goes on with every other key.
        result.status = KeyStatus.UNUSABLE
        count("KeysUnreadable")
        logger.warning("key unreadable", extra={"key": key.arn, "error": str(unreadable)})
        detail = (
            f"the guard cannot read {key.arn}: {unreadable}; needed for {ctx.origin}. Whether "
            f"{', '.join(wants) or 'the training principals'} can use it is unknown and nothing was changed. "
            f"Let the guard's role call kms:{unreadable.operation} on this key (key policy or IAM)"
        )
        result.published += _publish(ctx, ctx.finding(FindingType.KEY_UNUSABLE, Outcome.REPORTED, key.arn, detail))
    return result


def _facts(ctx: Context, key: KeyInfo, document: dict[str, Any]) -> policy.RequestFacts:
    """What the policy's Denies need to know of the principals' requests (their organization)."""
    return ctx.keys.request_facts(key.arn, document, home_account=ctx.settings.home)


@dataclass(frozen=True, slots=True)
class Decision:
    """What checks 2-5 decide for one principal on one key, read-only (no write, no finding).

    ``status``: OK (already granted), REFUSED (a guardrail: ``reason``), DENIED (a Deny of the
    key policy cancels it: ``denies`` names them), NOT_MANAGED (no opt-in tag), REPORTED (report
    mode), GRANTED (enforce mode adds ``missing`` under the key's lock). ``clguard preflight``
    reads these; ``ensure_access`` acts on them."""

    status: KeyStatus
    missing: tuple[StatementSpec, ...] = ()
    reason: str | None = None
    denies: tuple[str, ...] = ()


def decide(
    keys: KeyDirectory,
    settings: Settings,
    key: KeyInfo,
    document: dict[str, Any],
    wants: Mapping[str, Sequence[StatementSpec]],
) -> dict[str, Decision]:
    """Checks 2-5 of the module docstring for each principal of ``wants`` on ``key`` (policy
    ``document``), in their order. The tags are read only when a principal gets that far."""
    facts = keys.request_facts(key.arn, document, home_account=settings.home)
    out: dict[str, Decision] = {}
    tag_key, tag_value = settings.managed_key_tag
    opted_in: bool | None = None
    for principal, specs in wants.items():
        needed = policy.missing(document, principal, specs, key.arn, facts=facts)
        if not needed:
            out[principal] = Decision(KeyStatus.OK)
            continue
        why = refusal_reason(
            principal,
            key_account=key.account,
            key_partition=partition_of(key.arn) or partition_of_region(settings.region),
            patterns=settings.allowed_principal_patterns,
        )
        if why is not None:
            out[principal] = Decision(KeyStatus.REFUSED, needed, why)
            continue
        sids = policy.blocking_denies(document, principal, specs, key.arn, facts=facts)
        if sids:
            names = ", ".join(repr(sid) for sid in sids)
            out[principal] = Decision(KeyStatus.DENIED, needed, f"denied by the key policy's {names}", tuple(sids))
            continue
        if opted_in is None:
            opted_in = keys.tags(key.arn).get(tag_key) == tag_value
        if not opted_in:
            why = f"the key does not carry the opt-in tag {tag_key}={tag_value}"
            out[principal] = Decision(KeyStatus.NOT_MANAGED, needed, why)
        elif not settings.enforce:
            out[principal] = Decision(KeyStatus.REPORTED, needed, "REMEDIATION_MODE is report: nothing is written")
        else:
            out[principal] = Decision(KeyStatus.GRANTED, needed)
    return out


def _ensure_on(
    ctx: Context, key: KeyInfo, wants: Mapping[str, Sequence[StatementSpec]], result: KeyResult
) -> KeyResult:
    """Checks 2-6 on a usable key, as named steps: the policy as KMS has it now (``_current_policy``),
    the decisions (``decide``), an earlier attempt's unreported grants (``_replay_intents``), the
    principals set aside by a guardrail or a Deny (``_set_aside``), then the key's own decision:
    not managed, report mode (``_lacking``), or the locked write (``_grant``)."""
    document = _current_policy(ctx, key, wants)
    decisions = decide(ctx.keys, ctx.settings, key, document, wants)
    statuses = {p: d.status.value for p, d in decisions.items()}
    ctx.publisher.key_decided(key.arn, statuses, account=ctx.settings.account_id, region=ctx.settings.region)
    needed = {p: d.missing for p, d in decisions.items() if d.status is not KeyStatus.OK}
    _replay_intents(ctx, key.arn, needed, result)
    if not needed:
        count("AccessAlreadyGranted", len(wants))
        return result
    for status in (KeyStatus.REFUSED, KeyStatus.DENIED):
        _set_aside(ctx, key, wants, decisions, needed=needed, result=result, status=status)
        if not needed:
            result.status = status
            return result
    # The tag and the mode are the key's: every principal left shares the decision.
    status = next(iter(decisions[p].status for p in needed))
    if status is KeyStatus.NOT_MANAGED:
        result.status = KeyStatus.NOT_MANAGED
        tag_key, tag_value = ctx.settings.managed_key_tag
        count("Refusals", len(needed), account=ctx.settings.account_id)
        why = f"but the key does not carry the opt-in tag {tag_key}={tag_value}"
        return _lacking(
            ctx, key, needed, result, finding_type=FindingType.KEY_NOT_MANAGED, outcome=Outcome.REFUSED, why=why
        )
    if status is KeyStatus.REPORTED:
        result.status = KeyStatus.REPORTED
        why = "report mode: would add it to statement(s) {sids}"
        return _lacking(
            ctx, key, needed, result, finding_type=FindingType.KEY_ACCESS_MISSING, outcome=Outcome.REPORTED, why=why
        )
    _grant(ctx, key, needed, result)
    return result


def _current_policy(ctx: Context, key: KeyInfo, wants: Mapping[str, Sequence[StatementSpec]]) -> dict[str, Any]:
    """The key policy to decide on. "Already granted" from what the container remembers is
    confirmed from KMS once per unit of work: the policy may have been replaced since
    (docs/architecture.md §6, Drift); principals a policy seen earlier granted and this one lacks
    are noted as drifted (their REMEDIATED finding says so)."""
    remembered = ctx.keys.remembered_policy(key.arn)  # before a read replaces it
    document = ctx.keys.policy(key.arn)
    facts = _facts(ctx, key, document)
    needed = {p: m for p, specs in wants.items() if (m := policy.missing(document, p, specs, key.arn, facts=facts))}
    if not needed and not ctx.keys.confirmed(key.arn):
        count("KeyPoliciesConfirmed")
        document = ctx.keys.fresh_policy(key.arn)
        facts = _facts(ctx, key, document)
        needed = {p: m for p, specs in wants.items() if (m := policy.missing(document, p, specs, key.arn, facts=facts))}
    drifted = _drifted(remembered, needed, key.arn, facts)
    if drifted:
        ctx.drifted[key.arn] = drifted
        count("KeyPolicyDrift")
        logger.warning(
            "the key policy was replaced and no longer grants what it did (drift)",
            extra={"key": key.arn, "principals": sorted(drifted)},
        )
    return document


def _set_aside(
    ctx: Context,
    key: KeyInfo,
    wants: Mapping[str, Sequence[StatementSpec]],
    decisions: Mapping[str, Decision],
    *,
    needed: dict[str, tuple[StatementSpec, ...]],
    result: KeyResult,
    status: KeyStatus,
) -> None:
    """Take the principals decided ``status`` (REFUSED: a guardrail, returned to the caller to
    publish; DENIED: a Deny of the key policy, published here) out of ``needed``."""
    for principal in [p for p in needed if decisions[p].status is status]:
        decision = decisions[principal]
        del needed[principal]
        count("Refusals", account=ctx.settings.account_id)
        if status is KeyStatus.REFUSED:
            result.refused[principal] = decision.reason or ""
        else:
            result.published += _publish(ctx, _denied_finding(ctx, key, principal, wants[principal], decision.denies))


def _lacking(
    ctx: Context,
    key: KeyInfo,
    needed: Mapping[str, Sequence[StatementSpec]],
    result: KeyResult,
    *,
    finding_type: FindingType,
    outcome: Outcome,
    why: str,
) -> KeyResult:
    """One finding per principal that lacks access, saying why nothing is written."""
    for principal, specs in needed.items():
        lacks = f"{principal} lacks {', '.join(policy.actions_of(specs))} on {key.arn}, needed for {ctx.origin}"
        detail = f"{lacks}; {why.format(sids=', '.join(s.sid for s in specs))}"
        result.published += _publish(ctx, ctx.finding(finding_type, outcome, key.arn, detail, principal))
    return result


def _drifted(
    remembered: dict[str, Any] | None,
    needed: Mapping[str, Sequence[StatementSpec]],
    key_arn: str,
    facts: policy.RequestFacts,
) -> frozenset[str]:
    """The principals lacking access now that a policy this container saw earlier granted."""
    if remembered is None:
        return frozenset()
    return frozenset(p for p, specs in needed.items() if not policy.missing(remembered, p, specs, key_arn, facts=facts))


def drift_note(principal: str, specs: Sequence[StatementSpec]) -> str:
    """What the owner of a key policy that drifted should do so that the guard and their
    infrastructure code stop undoing each other."""
    sids = ", ".join(sorted({s.sid for s in specs}))
    return (
        f". Drift: the key policy was replaced since the guard last read it (e.g. an infrastructure-as-code "
        f"redeploy) and no longer granted {principal}; the guard added it back. So that the two stop undoing "
        f"each other, add {principal} with {', '.join(policy.actions_of(specs))} to the key policy your "
        f"infrastructure code writes (as the guard's statement {sids} does)"
    )


def _denied_finding(
    ctx: Context, key: KeyInfo, principal: str, specs: Sequence[StatementSpec], sids: Sequence[str]
) -> Finding:
    """KEY_ACCESS_MISSING, REFUSED: an explicit Deny of the key policy cancels the access. The guard
    never edits or removes a statement it does not own (the add-only guardrail), and an added Allow
    would not help, so nothing is written; a person must change the Deny."""
    names = ", ".join(repr(sid) for sid in sids)
    detail = (
        f"{principal} cannot use {key.arn} for {', '.join(policy.actions_of(specs))} (needed for {ctx.origin}): "
        f"the key policy's Deny statement(s) {names} apply to the requests Rekognition makes on its behalf "
        "(through S3 or Rekognition, not through a VPC endpoint), and an explicit Deny overrides any Allow. "
        "Nothing was written: the remediator never edits a statement it does not own. To fix it, a key "
        f"administrator must change {names} so that it exempts {principal} (for example a condition "
        "that excludes aws:PrincipalArn, or aws:ViaAWSService = true / kms:ViaService of S3 and Rekognition)"
    )
    return ctx.finding(FindingType.KEY_ACCESS_MISSING, Outcome.REFUSED, key.arn, detail, principal)


def _publish(ctx: Context, finding: Finding) -> list[Finding]:
    return [finding] if ctx.publisher.publish(finding) else []


def _replay_intents(ctx: Context, key_arn: str, needed: Mapping[str, object], result: KeyResult) -> None:
    """A retry: an earlier attempt of this event wrote ahead grants on this key and died before
    reporting them. Those now in the policy are reported; the others did not happen (this
    attempt grants and reports them)."""
    with ctx.change(key_arn) as change:
        intent = change.pending()
        if intent is None:
            return
        document = ctx.keys.policy(key_arn)
        for finding in intent.findings:
            if finding.principal_arn not in needed and _in_owned_statements(document, finding):
                count("IntentsReplayed")
                logger.info("reporting a grant an earlier attempt made", extra={"principal": finding.principal_arn})
                result.published += _publish(ctx, finding)


def _in_owned_statements(document: Mapping[str, Any], finding: Finding) -> bool:
    """Whether the grant a write-ahead finding describes is in the remediator's own statements
    (granted by someone else, by hand, it is not ours to report)."""

    def names_it(sid: str) -> bool:
        statement = policy.owned_statement(document, sid)
        principal = statement.get("Principal") if statement else None
        aws = policy.as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
        return finding.principal_arn in aws

    if finding.change:  # every statement the write changed must name the principal now
        return all(names_it(c.sid) for c in finding.change)
    return any(names_it(sid) for sid in policy.OWNED_SIDS)


@dataclass(slots=True)
class _Attempt:
    """The outcome of one locked read-merge-write, as findings to publish after the lock."""

    grants: Sequence[policy.Grant] = ()
    findings: list[Finding] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)
    rejected: bool = False  # KMS kept rejecting the document (MalformedPolicyDocumentException)
    status: KeyStatus | None = None  # the key result's status when it is not granted/failed
    written: dict[str, Any] | None = None  # the policy PutKeyPolicy accepted, when it did


def _grant(ctx: Context, key: KeyInfo, needed: dict[str, tuple[StatementSpec, ...]], result: KeyResult) -> None:
    """Under the key's lock: re-read, merge, write, confirm. Findings are published after the
    lock is released (the lock is held only for the KMS calls) — and published even when
    something fails after a write, so a change is never left unreported."""
    attempts: list[_Attempt] = []
    lost: list[str] = []
    erased: dict[str, tuple[StatementSpec, ...]] = {}
    lock = Lease(ctx.settings.state_table, key.arn)
    with ctx.change(key.arn) as change:  # acknowledged once the writes' findings are delivered
        try:
            with lock:
                _locked_writes(ctx, change, lock, key, needed, attempts=attempts)
            if not lock.held_to_the_end and any(a.grants for a in attempts):  # a write was made
                lost, erased = _lost_grants(ctx, key, attempts, since=lock.acquired_at)
        finally:
            for attempt in attempts:
                result.granted += attempt.granted
                result.status = attempt.status or (KeyStatus.GRANTED if result.granted else KeyStatus.FAILED)
                for finding in attempt.findings:
                    if finding.outcome is not Outcome.REMEDIATED or finding.principal_arn not in lost:
                        result.published += _publish(ctx, finding)
        if erased:
            _restore(ctx, key, erased, result)
        if lost:
            raise RetryableError(f"the lease on {key.arn} expired during the write and {', '.join(lost)} was lost")


def _locked_writes(
    ctx: Context,
    change: Change,
    lock: Lease,
    key: KeyInfo,
    needed: Mapping[str, Sequence[StatementSpec]],
    *,
    attempts: list[_Attempt],
) -> None:
    """Inside the key's lease: the opt-in re-read, a read that shows our recent writes, then one
    write of every principal still missing (one at a time when KMS rejects the document). Each
    attempt is appended to ``attempts`` as it is made (published by the caller, even after an error)."""
    opted_out = _opted_out(ctx, key, needed)
    if opted_out is not None:
        attempts.append(opted_out)
        return  # the key opted out since it was read: not edited
    document = _caught_up(ctx, key, ctx.keys.fresh_policy(key.arn), writing=needed)
    facts = _facts(ctx, key, document)
    grants = [(p, m) for p, specs in needed.items() if (m := policy.missing(document, p, specs, key.arn, facts=facts))]
    if not grants:
        return  # another writer granted it meanwhile
    attempts.append(_attempt(ctx, change, lock, key, document, grants=grants))
    if attempts[0].rejected and len(grants) > 1:
        # One principal KMS cannot see (deleted, or not yet propagated) must not block the
        # others: write them one at a time.
        logger.warning("KMS rejected the policy; writing one principal at a time", extra={"key": key.arn})
        attempts.clear()
        for grant in grants:
            document = _not_before_ours(ctx, key, attempts)
            attempts.append(_attempt(ctx, change, lock, key, document, grants=[grant]))


def _not_before_ours(ctx: Context, key: KeyInfo, attempts: Sequence[_Attempt]) -> dict[str, Any]:
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


def _opted_out(ctx: Context, key: KeyInfo, needed: Mapping[str, Sequence[StatementSpec]]) -> _Attempt | None:
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
    return _Attempt(grants=(), findings=findings, status=KeyStatus.NOT_MANAGED)


def _note_written(ctx: Context, key_arn: str, grants: Sequence[policy.Grant], *, accepted: bool = False) -> None:
    """Before a write: journal (``state.writejournal``) which principals are being written, so a
    writer whose lease was taken over can check every principal written since it took the lock.
    After KMS accepted it (``accepted``): the same, apart, so the next writer can tell a lagging
    read from a write that never happened (``_caught_up``)."""
    writejournal.note(
        ctx.settings.state_table, key_arn, {p: [s.sid for s in specs] for p, specs in grants}, accepted=accepted
    )


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
        facts = _facts(ctx, key, document)
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
    ctx: Context, key: KeyInfo, attempts: Sequence[_Attempt], *, since: float
) -> tuple[list[str], dict[str, tuple[StatementSpec, ...]]]:
    """Our lease expired before we released it: another writer may have overwritten our write
    with a policy read before it, or our late write may have erased the other writer's. Re-read,
    and name (1) our grants that are no longer there and (2) every other principal written under
    the key since we took the lock that is no longer there."""
    document = ctx.keys.fresh_policy(key.arn)
    facts = _facts(ctx, key, document)
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
    _grant(restore_ctx, key, allowed, result)


def _journaled(
    ctx: Context,
    change: Change,
    key: KeyInfo,
    grants: Sequence[policy.Grant],
    *,
    out: _Attempt,
    reports: Sequence[Finding],
) -> bool:
    """Before the write is sent: its write-ahead intent (``reports``, the findings it will make:
    a write that lands just before we die is reported) and its entry in the per-key journal. A
    state table that refuses either (an item over 400 KB, throttling past the retries, ...)
    stops the write, and a FAILED finding per principal says why: never silence."""
    try:
        change.intend(reports)
        _note_written(ctx, key.arn, grants)
    except AwsError as error:
        out.findings += [
            ctx.finding(
                FindingType.KEY_ACCESS_MISSING,
                Outcome.FAILED,
                key.arn,
                f"not adding {p} to the policy of {key.arn} (for {ctx.origin}): the guard's state table "
                f"refused to record this write ahead ({error}); nothing was written",
                p,
                attempted=True,
            )
            for p, _ in grants
        ]
        return False
    return True


def _attempt(
    ctx: Context,
    change: Change,
    lock: Lease,
    key: KeyInfo,
    document: dict[str, Any],
    *,
    grants: Sequence[policy.Grant],
) -> _Attempt:
    out = _Attempt(grants=grants)

    def each(
        finding_type: FindingType,
        outcome: Outcome,
        detail: Callable[[str, Sequence[StatementSpec]], str],
        *,
        attempted: bool | None = None,
    ) -> None:
        out.findings += [
            ctx.finding(finding_type, outcome, key.arn, detail(p, specs), p, attempted=attempted) for p, specs in grants
        ]

    unwritable = policy.unwritable_principals(document)
    if unwritable:
        names = ", ".join(unwritable)
        each(
            FindingType.KEY_ACCESS_MISSING,
            Outcome.FAILED,
            lambda p, _: (
                f"not adding {p}: the key policy of {key.arn} names {names}, the id KMS shows for a "
                "principal that was deleted, and KMS refuses every PutKeyPolicy that contains one. "
                "Remove it from the key policy (the guard never removes what it did not add); nothing was written"
            ),
        )
        count("KeyPoliciesUnwritable")
        return out
    try:
        merge = policy.merge_grants(
            document, grants, key_account=key.account, key_arn=key.arn, facts=_facts(ctx, key, document)
        )
    except PolicyConflict as conflict:
        reason = str(conflict)
        each(FindingType.KEY_ACCESS_MISSING, Outcome.FAILED, lambda p, _: f"not adding {p}: {reason}")
        return out
    size = policy.size_in_bytes(merge.document)
    if size > policy.MAX_POLICY_BYTES:
        each(
            FindingType.KEY_POLICY_LIMIT,
            Outcome.REFUSED,
            lambda p, specs: (
                f"adding {p} ({', '.join(policy.actions_of(specs))}, for {ctx.origin}) would make "
                f"the key policy {size} bytes, over the {policy.MAX_POLICY_BYTES}-byte limit"
            ),
        )
        return out

    def remediated(note: str) -> list[Finding]:
        return [
            ctx.finding(
                FindingType.KEY_ACCESS_MISSING,
                Outcome.REMEDIATED,
                key.arn,
                f"{p} lacked {', '.join(policy.actions_of(specs))} on {key.arn}, needed for {ctx.origin}; "
                f"added it to the key policy{note}"
                + (drift_note(p, specs) if p in ctx.drifted.get(key.arn, ()) else ""),
                p,
                change=_changes(merge, specs),
            )
            for p, specs in grants
        ]

    if not _journaled(ctx, change, key, grants, out=out, reports=remediated("")):
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
            lambda p, _: f"adding {p} to the policy of {key.arn} (for {ctx.origin}) failed: {failure}",
            attempted=True,
        )
        return out
    for principal, specs in grants:
        out.granted.append(principal)
        count("Grants", account=ctx.settings.account_id)
        sids = [s.sid for s in specs]
        logger.info("granted key access", extra={"key": key.arn, "principal": principal, "sids": sids})
    out.findings += remediated(note)
    return out


def _confirmed(
    ctx: Context, key: KeyInfo, grants: Sequence[policy.Grant], *, before: dict[str, Any], written: dict[str, Any]
) -> tuple[str | None, str]:
    """After KMS accepted the write: journal it as accepted (best effort), then read it back.
    Returns (why it failed, None when it did not; the note for the REMEDIATED finding)."""
    try:
        _note_written(ctx, key.arn, grants, accepted=True)
    except AwsError as error:  # best effort: it only lets the next writer wait out a lagging read
        logger.warning("could not journal an accepted write", extra={"key": key.arn, "error": str(error)})
    try:
        confirmed = ctx.keys.fresh_policy(key.arn)
    except (AwsError, KeyUnreadable) as error:  # the write succeeded: report it, unconfirmed
        return None, f" (written; the read-back to confirm it failed: {error})"
    facts = _facts(ctx, key, confirmed)
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
