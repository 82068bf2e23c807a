"""Which buckets an audit run covers, in which account (the deployment's own and each member's),
the members it cannot reach, and the failed trainings of each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clguard.adapters import clients
from clguard.boundary.config import Settings
from clguard.errors import (
    AwsError,
    MemberUnreachable,
    RetryableError,
)
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, MemberRoleResource, Outcome
from clguard.reporting.publisher import Publisher
from clguard.usecases import accounts

# --- which buckets, in which account -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Targets:
    """The buckets one run lists (sorted, the same in every invocation), the member owning each
    member bucket, and the members that could not be reached (account, what is missing)."""

    buckets: tuple[str, ...]
    owners: Mapping[str, str]
    unreachable: tuple[tuple[str, str], ...] = ()


def targets(settings: Settings) -> Targets:
    """Each member's buckets as it declares them (read through its role, cached per container);
    the deployment's own are TRAINING_BUCKETS less those. A member that cannot be reached (role
    missing, denied, throttled) is left out alone: it never blocks or delays the others."""
    owners: dict[str, str] = {}
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
            owners.setdefault(bucket, account)
    buckets = sorted(settings.training_buckets | set(owners))
    return Targets(tuple(buckets), owners, tuple(unreachable))


def report_unreachable(settings: Settings, publisher: Publisher, run_id: str, found: Targets) -> list[str]:
    """One finding per run for each member that cannot be reached, naming it and what is missing."""
    notes = []
    for account, problem in found.unreachable:
        notes.append(f"member account {account}: not covered, its role could not be used ({problem[:300]})")
        count("MembersUnreachable", account=account)
        publisher.publish(
            Finding(
                finding_type=FindingType.MEMBER_UNREACHABLE,
                outcome=Outcome.REPORTED,
                resource=MemberRoleResource(settings.member_role_arn(account)),
                detail=(
                    f"the audit could not act in member account {account} through its role "
                    f"{settings.member_role_arn(account)}: {problem[:500]}; none of its buckets and keys were checked"
                ),
                source_event_id=f"audit-{run_id}",
                account=account,
                region=settings.region,
                scope=f"audit-run:{run_id}",
            )
        )
    return notes


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
