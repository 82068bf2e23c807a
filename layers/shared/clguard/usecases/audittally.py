"""The verify side of an audit run: each audit message's findings scoped by the state checked
(``AuditPublisher``), its tally and report rows (``Tally``), added to the run record."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from clguard.boundary.config import Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork
from clguard.errors import (
    KeyUnreadable,
)
from clguard.observability import count
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome
from clguard.reporting.publisher import Publisher
from clguard.state import auditrows, firstseen
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases import auditrecord

if TYPE_CHECKING:
    from clguard.usecases.objects import ObjectResult


# --- finding scopes (idempotent across runs) ----------------------------------------------------


class AuditPublisher(Publisher):
    """Publishes through the batch's publisher, with the audit's scope on each finding."""

    def __init__(self, base: Publisher, work: ObjectWork, keys: KeyDirectory) -> None:
        super().__init__(base.settings, idempotent=base.idempotent, lambda_context=base.lambda_context)
        self.base = base
        self.work = work
        self.keys = keys
        # One delivery record for the batch: what the base could not deliver is what this
        # publisher's units of work (clguard.reporting.unitofwork) must see.
        self.undelivered = base.undelivered
        self.published = base.published
        self.security_hub = base.security_hub  # findings go through the base: one batch to import

    def scope_of(self, finding: Finding) -> str:
        if finding.outcome in (Outcome.REMEDIATED, Outcome.FAILED):
            # A change (or a failed one) is an event of its own: each one is reported.
            return f"audit-run:{self.work.audit_run}"
        if isinstance(finding.resource, S3ObjectRef):
            return f"audit:{self.work.state}" if self.work.state else f"audit-run:{self.work.audit_run}"
        if isinstance(finding.resource, KmsKeyResource):
            return f"audit:{self._key_state(finding.resource.arn)}"
        return "audit"

    def _key_state(self, key_arn: str) -> str:
        lookup = self.keys.lookup(key_arn)
        if lookup.key is None or not lookup.key.usable:
            return f"unusable:{lookup.key.state if lookup.key else lookup.problem}"
        try:
            document = self.keys.policy(lookup.key.arn)
        except KeyUnreadable as unreadable:  # the condition the finding reports: scoped by it
            return f"unreadable:{unreadable.operation}:{unreadable.code}"
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]

    def publish(self, finding: Finding, *, defer: bool = True, in_progress: bool = False) -> bool:
        return self.base.publish(replace(finding, scope=self.scope_of(finding)), defer=defer, in_progress=in_progress)

    def send_queued(self) -> None:
        self.base.send_queued()  # one queue for the batch: the base's

    def when_sent(self, since: int, callback: Callable[[], None]) -> None:
        self.base.when_sent(since, callback)

    @property
    def claims(self) -> int:
        return self.base.claims  # this publisher claims through the base


# --- the verify side: one tally per audit message ---------------------------------------------------


@dataclass(slots=True)
class Tally:
    """What one verify-queue message of an audit run found (flat counter names):
    ``n|<bucket>|<encryption>|<condition or OK>`` objects, ``a|<finding type>`` new alerts,
    ``gone|<bucket>`` deleted between list and check."""

    counts: Counter[str] = field(default_factory=Counter)
    keys: set[str] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the report's rows (auditreport.row_of)
    conditions: dict[int, str] = field(default_factory=dict)  # row index -> its firstseen.condition_id

    def add(self, bucket: str, status: str, encryption: str, condition: str, final_key: str | None) -> None:
        if status == "gone":
            self.counts[f"gone|{bucket}"] += 1
            return
        if status != "checked":
            return
        self.counts[f"n|{bucket}|{encryption or 'unknown'}|{condition or 'OK'}"] += 1
        if final_key:
            self.keys.add(final_key)

    def alerts(self, findings: Sequence[Finding]) -> None:
        for finding in findings:
            self.counts[f"a|{finding.finding_type.value}"] += 1

    def report_rows(
        self, settings: Settings, work: ObjectWork, result: ObjectResult, prepare: Callable[[Finding], Finding]
    ) -> None:
        """The report's rows for one object: each finding published now, and each condition still
        open that an earlier run already reported (so published nothing now): the object's, and its
        keys' (the keys' rows are one per key in the report). ``prepare`` is the publisher's
        (``Publisher.prepared``): every row, new or rebuilt, carries the owner, the key's alias and
        the accepted exceptions' verdict exactly as a published finding does."""
        from clguard.reporting.auditreport import row_of  # noqa: PLC0415 - audit messages only

        findings = result.findings
        for finding in findings:
            self._row(row_of(prepare(finding), new=True), work)
        account = work.account or settings.account_id

        def earlier(finding_type: FindingType, outcome: Outcome, resource: S3ObjectRef | KmsKeyResource) -> None:
            finding = Finding(
                finding_type=finding_type,
                outcome=outcome,
                resource=resource,
                detail="still open: reported by an earlier run",
                source_event_id=work.source_event_id,
                account=account,
                region=settings.region,
                kms_key_arn=resource.arn if isinstance(resource, KmsKeyResource) else None,
            )
            self._row(row_of(prepare(finding), new=False), work)

        about_object = any(
            isinstance(f.resource, S3ObjectRef)
            and (f.resource.bucket, f.resource.key) == (work.ref.bucket, work.ref.key)
            for f in findings
        )
        if result.condition and not about_object:
            earlier(FindingType(result.condition), Outcome.REPORTED, work.ref)
        for key_result in result.key_results:
            still_open = _OPEN_KEY_STATUS.get(key_result.status.value)
            if still_open is None or key_result.published or key_result.key is None:
                continue
            earlier(*still_open, KmsKeyResource(key_result.key.arn))

    def _row(self, row: dict[str, Any], work: ObjectWork) -> None:
        """Add a row and name its condition (for its first-seen time): an object's includes the
        object's state as listed (a new upload is a new condition), a key's does not."""
        state = work.state if row["resource_type"] == "s3-object" else ""
        self.conditions[len(self.rows)] = firstseen.condition_id(
            row["account"], row["region"], row["finding_type"], row["resource"], row["principal_arn"], state
        )
        self.rows.append(row)

    def first_seen(self, table: str) -> None:
        """Each open or accepted row's ``since``: when its condition was first seen (by this run
        or an earlier one); a condition fixed by this run is forgotten."""
        still: dict[str, str] = {}
        fixed: list[str] = []
        for index, condition in self.conditions.items():
            row = self.rows[index]
            if row["section"] == "fixed":
                fixed.append(condition)
            else:
                still[condition] = min(still.get(condition, row["since"]), row["since"])
        first = firstseen.seen(table, still) if still else {}
        for index, condition in self.conditions.items():
            if condition in first and self.rows[index]["section"] != "fixed":
                self.rows[index]["since"] = first[condition]
        firstseen.forget(table, [c for c in fixed if c not in still])


# A key's status after the checks (usecases.keydecision.KeyStatus values) -> the open condition it is.
_OPEN_KEY_STATUS: Final[Mapping[str, tuple[FindingType, Outcome]]] = {
    "reported": (FindingType.KEY_ACCESS_MISSING, Outcome.REPORTED),
    "refused": (FindingType.KEY_ACCESS_MISSING, Outcome.REFUSED),
    "denied": (FindingType.KEY_ACCESS_MISSING, Outcome.REFUSED),
    "not managed": (FindingType.KEY_NOT_MANAGED, Outcome.REFUSED),
    "failed": (FindingType.KEY_ACCESS_MISSING, Outcome.FAILED),
    "unusable": (FindingType.KEY_UNUSABLE, Outcome.REPORTED),
}


def record_message(
    settings: Settings, run_id: str, tally: Tally, *, continued: int = 0, lambda_context: Any = None
) -> None:
    """Add one message's tally to its run (``continued``: messages it was split into when the
    invocation ran short of time); finalize the run when this was the last one."""
    counts = Counter(tally.counts)
    counts["done"] += 1
    if continued:
        counts["more"] += continued
    tally.first_seen(settings.state_table)
    parts = auditrows.save(settings.state_table, run_id, tally.rows) if tally.rows else []
    item = auditrecord.add_counts(settings.state_table, run_id, counts, keys=sorted(tally.keys), rowparts=parts)
    if parts and item is None:  # the run already names MAX_PARTS row items: counted, not listed
        counts["rows_unstored"] += len(tally.rows)
        count("AuditRowsUnstored", len(tally.rows))
        item = auditrecord.add_counts(settings.state_table, run_id, counts, keys=sorted(tally.keys))
    if item is not None and auditrecord.is_complete(item):
        auditrecord.finalize(settings, run_id, lambda_context=lambda_context)
