"""Which buckets an audit run covers, in which account (the deployment's own and each member's),
the members it cannot reach, and the failed trainings of each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clguard.adapters import clients, s3
from clguard.boundary.config import Settings
from clguard.boundary.declaration import PARAMETER_NAME
from clguard.errors import (
    AwsError,
    MemberUnreachable,
    Refused,
    RetryableError,
)
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, MemberRoleResource, Outcome
from clguard.reporting.publisher import Publisher
from clguard.usecases import accounts

# --- which buckets, in which account -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefusedClaim:
    """A member's declaration names a bucket that S3 says is another account's (``holder``)."""

    account: str
    bucket: str
    holder: str


@dataclass(frozen=True, slots=True)
class Targets:
    """The buckets one run lists (sorted, the same in every invocation), the member owning each
    member bucket, the members that could not be reached (account, what is missing), the
    claims of members refused because another account owns the bucket, and the members with a
    claim S3 could not settle in this run (no owner confirmed among the accounts naming a bucket)."""

    buckets: tuple[str, ...]
    owners: Mapping[str, str]
    unreachable: tuple[tuple[str, str], ...] = ()
    refused: tuple[RefusedClaim, ...] = ()
    unsettled: frozenset[str] = frozenset()


def targets(settings: Settings) -> Targets:
    """Each member's buckets as it declares them (read through its role, cached per container);
    the deployment's own are TRAINING_BUCKETS less those. A member that cannot be reached (role
    missing, denied, throttled) is left out alone: it never blocks or delays the others.

    A declaration is the member's own word, and bucket names are global: a bucket named by more
    than one account (two members' declarations, or one and TRAINING_BUCKETS) is audited as the
    account S3 says owns it (``_holder``), and the other members' claims are refused, never
    honoured (docs/architecture.md §2, the organization boundary)."""
    claims: dict[str, list[str]] = {}
    unreachable: list[tuple[str, str]] = []
    for account in sorted(settings.member_accounts):
        try:
            declared = accounts.declared(settings, account)
        except (MemberUnreachable, RetryableError, AwsError) as error:
            unreachable.append((account, str(error)))
            continue
        if accounts.declaration_problem(account):
            unreachable.append((account, accounts.declaration_problem(account)))
        for bucket in declared.training_buckets if declared is not None else ():
            claims.setdefault(bucket, []).append(account)
    owners: dict[str, str] = {}
    refused: list[RefusedClaim] = []
    unsettled: set[str] = set()
    for bucket, members in sorted(claims.items()):
        candidates = members + ([settings.home] if bucket in settings.training_buckets else [])
        holder = _holder(settings, bucket, candidates) if len(candidates) > 1 else None
        refused += [RefusedClaim(m, bucket, holder) for m in members if holder is not None and m != holder]
        if holder is None and len(candidates) > 1:
            unsettled.update(members)
        if holder is None:
            owners[bucket] = members[0]  # listed with its ExpectedBucketOwner: S3 refuses it if not its
        elif holder != settings.home:
            owners[bucket] = holder
    buckets = sorted(settings.training_buckets | set(owners))
    return Targets(tuple(buckets), owners, tuple(unreachable), tuple(refused), frozenset(unsettled))


def _holder(settings: Settings, bucket: str, candidates: list[str]) -> str | None:
    """Which of the accounts that name ``bucket`` owns it, as S3 answers: the first whose own
    listing of one key with ``ExpectedBucketOwner`` set to itself succeeds (S3 refuses any other
    account's with 403). None when none can tell (each refused, its role unreachable, or S3 did
    not answer): the first member then keeps the bucket, listed as itself, which S3 refuses if it is
    not its own (a note in the report), so nothing of another account is ever acted on."""
    for account in candidates:
        member = None if account == settings.home else clients.Member(account, settings.member_role_arn(account))
        try:
            with clients.acting_in(member):
                s3.list_page(bucket, owner=account, max_keys=1)
        except (Refused, MemberUnreachable):
            continue
        except (AwsError, RetryableError) as error:  # throttled, no answer: this one cannot tell now
            logger.warning(
                "bucket owner not confirmed", extra={"bucket": bucket, "account": account, "error": str(error)}
            )
            continue
        return account
    return None


def report_refused_claims(settings: Settings, publisher: Publisher, run_id: str, found: Targets) -> list[str]:
    """Once per run, each member whose declaration claims a bucket of another account: one
    MEMBER_UNREACHABLE finding, REFUSED (the guardrail: a member's role never acts on a bucket
    that is not its account's), naming the member, the buckets and their owners (its
    ``claimed_buckets``: in Security Hub, a condition of its own); a report note per claim."""
    notes: list[str] = []
    by_member: dict[str, list[RefusedClaim]] = {}
    for claim in found.refused:
        by_member.setdefault(claim.account, []).append(claim)
        notes.append(
            f"member account {claim.account}: its declaration names bucket {claim.bucket}, which is account "
            f"{claim.holder}'s; audited as {claim.holder}'s, the claim refused"
        )
    for account, claims in sorted(by_member.items()):
        named = "; ".join(f"{c.bucket} (owned by account {c.holder})" for c in claims)
        logger.warning("member claims refused", extra={"account": account, "buckets": [c.bucket for c in claims]})
        detail = (
            f"member account {account}'s declaration ({PARAMETER_NAME}) names buckets that S3 says "
            f"another account owns: {named[:700]}. The claim is refused: each is audited as its owner's "
            f"account, never through the role of {account}"
        )
        claimed = tuple(sorted({c.bucket for c in claims}))
        publisher.publish(_member_finding(settings, run_id, account, Outcome.REFUSED, detail, claimed=claimed))
    return notes


def close_settled(settings: Settings, publisher: Publisher, found: Targets) -> None:
    """Once per run, each member whose declaration it read: what Security Hub holds open about the
    member and no longer is (docs/architecture.md §5a) is closed at the flush: its finding that it
    cannot be acted in; and, unless S3 could not settle one of its claims now, its refused-claim
    findings other than this run's (a member that stopped claiming a bucket, or owns it now).
    A member it could not read keeps both: its claims are unknown."""
    unreachable = {account for account, _ in found.unreachable}
    refused: dict[str, set[str]] = {}
    for claim in found.refused:
        refused.setdefault(claim.account, set()).add(claim.bucket)
    for account in sorted(settings.member_accounts - unreachable):
        claimed = None if account in found.unsettled else sorted(refused.get(account, ()))
        publisher.member_reached(account, settings.member_role_arn(account), claimed, region=settings.region)


def report_unreachable(settings: Settings, publisher: Publisher, run_id: str, found: Targets) -> list[str]:
    """One finding per run for each member that cannot be reached, naming it and what is missing."""
    notes = []
    for account, problem in found.unreachable:
        notes.append(f"member account {account}: not covered, its role could not be used ({problem[:300]})")
        count("MembersUnreachable", account=account)
        detail = (
            f"the audit could not act in member account {account} through its role "
            f"{settings.member_role_arn(account)}: {problem[:500]}; none of its buckets and keys were checked"
        )
        publisher.publish(_member_finding(settings, run_id, account, Outcome.REPORTED, detail))
    return notes


def _member_finding(
    settings: Settings, run_id: str, account: str, outcome: Outcome, detail: str, *, claimed: tuple[str, ...] = ()
) -> Finding:
    """A MEMBER_UNREACHABLE finding of this run about ``account``'s role (and, for a refused claim,
    the buckets it claims: ``claimed``)."""
    return Finding(
        finding_type=FindingType.MEMBER_UNREACHABLE,
        outcome=outcome,
        resource=MemberRoleResource(settings.member_role_arn(account)),
        detail=detail,
        source_event_id=f"audit-{run_id}",
        account=account,
        region=settings.region,
        scope=f"audit-run:{run_id}",
        claimed_buckets=claimed,
    )


def all_failed_trainings(
    settings: Settings, publisher: Publisher, run_id: str, audit_trainings: Any, found: Targets
) -> list[dict[str, Any]]:
    """The deployment's own failed trainings, then each reachable member's, read and diagnosed
    through that member's role with its settings (findings name the member). A member whose role
    fails here is left out alone, named in the report (its MEMBER_UNREACHABLE is once per run)."""
    if audit_trainings is None:
        from clguard.usecases import failed_trainings  # noqa: PLC0415

        audit_trainings = failed_trainings.audit
    out: list[dict[str, Any]] = list(audit_trainings(settings, publisher, run_id))
    unreachable = {account for account, _ in found.unreachable}
    for account in sorted(settings.member_accounts - unreachable):
        try:
            member_settings = accounts.settings_for(settings, account)
            if member_settings is None:
                continue
            with clients.acting_in(accounts.member_of(member_settings)):
                out += audit_trainings(member_settings, publisher, run_id)
        except (MemberUnreachable, RetryableError, AwsError) as error:
            logger.warning("member trainings not audited", extra={"account": account, "error": str(error)})
            count("MembersUnreachable", account=account)
            out.append(
                {
                    "arn": "",
                    "status_message": str(error)[:500],
                    "diagnosis": f"member account {account}: trainings could not be audited through its role",
                    "fixed": False,
                }
            )
    return out
