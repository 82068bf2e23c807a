"""One key, read-only: the unit of work's context, whether the key can serve training, and what
checks 2-5 decide per principal (docs/architecture.md §6). ``clguard preflight`` and ``clguard explain``
read the same decisions the grant path acts on (``usecases.keyaccess``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import total_ordering
from typing import Any, Final

from clguard.adapters.kms import KeyInfo
from clguard.boundary.config import Settings
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome, PolicyChange
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Change
from clguard.rules import policy
from clguard.rules.arns import partition_of, partition_of_region
from clguard.rules.policy import StatementSpec
from clguard.rules.principals import refusal_reason
from clguard.state.intents import Journal
from clguard.state.keydirectory import KeyDirectory


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


def usable(
    keys: KeyDirectory, settings: Settings, reference: str, *, must_edit: bool
) -> tuple[KeyInfo | None, str | None]:
    """Check 1 (read-only): the key ``reference`` names, and why it cannot serve training (None: it can)."""
    lookup = keys.lookup(reference)
    key = lookup.key
    return key, lookup.problem if key is None else unusable_reason(key, settings, must_edit=must_edit)


def facts_of(ctx: Context, key: KeyInfo, document: dict[str, Any]) -> policy.RequestFacts:
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


def publish(ctx: Context, finding: Finding) -> list[Finding]:
    return [finding] if ctx.publisher.publish(finding) else []
