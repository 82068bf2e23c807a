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

from collections.abc import Mapping, Sequence
from typing import Any

from clguard.adapters.kms import KeyInfo
from clguard.errors import KeyUnreadable
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.rules import policy
from clguard.rules.policy import StatementSpec
from clguard.usecases.keydecision import Context, Decision, KeyResult, KeyStatus, decide, facts_of, publish, usable
from clguard.usecases.keywrite import grant


def ensure_access(ctx: Context, reference: str, wants: Mapping[str, Sequence[StatementSpec]]) -> KeyResult:
    """Make every principal in ``wants`` hold its specs on the key ``reference`` names."""
    result = KeyResult(reference)
    key, reason = usable(ctx.keys, ctx.settings, reference, must_edit=bool(wants))
    result.key = key
    if reason is not None:
        result.status = KeyStatus.UNUSABLE
        arn = reference if key is None else key.arn
        detail = f"{reason}; needed for {ctx.origin}"
        result.published += publish(ctx, ctx.finding(FindingType.KEY_UNUSABLE, Outcome.REPORTED, arn, detail))
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
        result.published += publish(ctx, ctx.finding(FindingType.KEY_UNUSABLE, Outcome.REPORTED, key.arn, detail))
    return result


def _ensure_on(
    ctx: Context, key: KeyInfo, wants: Mapping[str, Sequence[StatementSpec]], result: KeyResult
) -> KeyResult:
    """Checks 2-6 on a usable key, as named steps: the policy as KMS has it now (``_current_policy``),
    the decisions (``decide``), an earlier attempt's unreported grants (``_replay_intents``), the
    principals set aside by a guardrail or a Deny (``_set_aside``), then the key's own decision:
    not managed, report mode (``_lacking``), or the locked write (``grant``)."""
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
    grant(ctx, key, needed, result)
    return result


def _current_policy(ctx: Context, key: KeyInfo, wants: Mapping[str, Sequence[StatementSpec]]) -> dict[str, Any]:
    """The key policy to decide on. "Already granted" from what the container remembers is
    confirmed from KMS once per unit of work: the policy may have been replaced since
    (docs/architecture.md §6, Drift); principals a policy seen earlier granted and this one lacks
    are noted as drifted (their REMEDIATED finding says so)."""
    remembered = ctx.keys.remembered_policy(key.arn)  # before a read replaces it
    document = ctx.keys.policy(key.arn)
    facts = facts_of(ctx, key, document)
    needed = {p: m for p, specs in wants.items() if (m := policy.missing(document, p, specs, key.arn, facts=facts))}
    if not needed and not ctx.keys.confirmed(key.arn):
        count("KeyPoliciesConfirmed")
        document = ctx.keys.fresh_policy(key.arn)
        facts = facts_of(ctx, key, document)
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
            result.published += publish(ctx, _denied_finding(ctx, key, principal, wants[principal], decision.denies))


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
        result.published += publish(ctx, ctx.finding(finding_type, outcome, key.arn, detail, principal))
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
                result.published += publish(ctx, finding)


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
