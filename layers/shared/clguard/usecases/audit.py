"""The audit: the state no event announces (see docs/architecture.md, "What runs").

One run, started by the schedule (or by hand with ``{}``):

1. a run record ``audit-run#<run id>`` in STATE_TABLE (what the run covers, its tallies);
2. failed trainings (``clguard.usecases.failed_trainings``): ``TRAINING_FAILED`` findings, once per version;
3. every object of every training bucket, page by page (ListObjectsV2, or the bucket's latest
   S3 Inventory report), fanned out to the verify queue as ``clguard.verify-objects`` v2
   messages (``clguard.boundary.fanout``), which the verify function checks exactly as uploads;
   objects whose inventory ``EncryptionStatus`` settles the question are counted, not sent;
4. when the invocation runs short of time, it invokes itself asynchronously with a
   ``clguard.audit-continue`` event carrying the cursor: the next one resumes, never restarts;
5. each verify message adds its tally to the run record (one UpdateItem per message); the one
   that completes the run (or the audit function, if it lists last) writes the report
   (``clguard.reporting.auditreport``) and publishes the run's one summary message. A run that never
   completes (a message ended in VerifyDLQ) is reported, marked incomplete, by the next run.

Idempotent across runs: findings of audit checks are scoped by the state of what was checked
(an object's ETag and LastModified as listed, a key's policy), not by the run, so the next run
alerts nothing already reported, and a condition that reappears after a fix (a new object
state, another policy) is new. Changes the remediator makes are each reported (run-scoped).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from clguard.adapters import clients, dynamodb, s3, sns, sqs
from clguard.adapters.clients import Member
from clguard.boundary import fanout, inventory
from clguard.boundary.config import EncryptionRequirement, Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork
from clguard.errors import (
    AwsError,
    ConfigError,
    InvalidEvent,
    KeyUnreadable,
    MemberUnreachable,
    Refused,
    RetryableError,
    Throttled,
)
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, MemberRoleResource, Outcome
from clguard.reporting.publisher import Publisher
from clguard.rules.encryption import Encryption
from clguard.state import auditrows, firstseen
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases import accounts

if TYPE_CHECKING:
    from clguard.usecases.objects import ObjectResult

CONTINUE_KIND: Final = "clguard.audit-continue"
SUMMARY_KIND: Final = "clguard.audit-summary"
RUN_PREFIX: Final = "audit-run#"
RUN_TTL_SECONDS: Final = 30 * 24 * 3600
TIME_RESERVE_MS: Final = 60_000  # stop listing when less than this is left
MAX_TRANSIENT_ATTEMPTS: Final = 5  # continuations in a row after throttling, then the bucket is noted as partial


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """The audit's own variables: AUDIT_REPORTS (``s3://bucket/prefix``, required) and
    AUDIT_INVENTORY (``s3://destination-bucket/prefix`` of the S3 Inventory reports, optional)."""

    reports_bucket: str
    reports_prefix: str
    inventory: str | None = None


def _s3_location(name: str, value: str) -> tuple[str, str]:
    if not value.startswith("s3://") or not value[5:].split("/", 1)[0]:
        raise ConfigError(name, f"{value!r} is not an s3://bucket/prefix location")
    bucket, _, prefix = value[5:].partition("/")
    return bucket, prefix.strip("/")


def load_config(env: Mapping[str, str]) -> AuditConfig:
    raw = env.get("AUDIT_REPORTS", "").strip()
    if not raw:
        raise ConfigError("AUDIT_REPORTS", "is required and empty or not set")
    bucket, prefix = _s3_location("AUDIT_REPORTS", raw)
    inventory_location = env.get("AUDIT_INVENTORY", "").strip() or None
    if inventory_location is not None:
        _s3_location("AUDIT_INVENTORY", inventory_location)
    return AuditConfig(bucket, f"{prefix}/" if prefix else "", inventory_location)


# --- finding scopes (idempotent across runs) ----------------------------------------------------


def object_state(etag: str, last_modified: str) -> str:
    """A short, source-independent digest of an object's state (listing and inventory agree)."""
    stamp = _epoch(last_modified)
    return hashlib.sha256(f"{etag.strip('"')}@{stamp}".encode()).hexdigest()[:16]


def _epoch(value: str) -> int | str:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return value


class AuditPublisher(Publisher):
    """Publishes through the batch's publisher, with the audit's scope on each finding."""

    def __init__(self, base: Publisher, work: ObjectWork, keys: KeyDirectory) -> None:
        super().__init__(base.settings, idempotent=base.idempotent, lambda_context=base.lambda_context)
        self.base = base
        self.work = work
        self.keys = keys
        # One delivery record for the batch: what the base could not deliver is what this
        # publisher's callers (write-ahead intents, raise_if_undelivered) must see.
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


# --- the run record ------------------------------------------------------------------------------


def run_item_id(run_id: str) -> str:
    return RUN_PREFIX + run_id


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _add(
    table: str, run_id: str, counts: Mapping[str, int], *, keys: Sequence[str] = (), rowparts: Sequence[str] = ()
) -> dict[str, Any] | None:
    """ADD counters (flat attribute names), key ARNs and the ids of stored report rows
    (``clguard.state.auditrows``) to the run record; the item after it."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    parts = []
    for index, (name, value) in enumerate(sorted(counts.items())):
        names[f"#c{index}"] = name
        values[f":c{index}"] = _n(value)
        parts.append(f"#c{index} :c{index}")
    if keys:
        names["#keys"] = "keys"
        values[":keys"] = {"SS": sorted(set(keys))}
        parts.append("#keys :keys")
    if rowparts:
        names["#rowparts"] = "rowparts"
        values[":rowparts"] = {"SS": sorted(set(rowparts))}
        parts.append("#rowparts :rowparts")
    if not parts:
        return None
    if rowparts:
        # The run record names at most MAX_PARTS row items (it must stay under DynamoDB's 400 KB);
        # past that, the caller counts the rows as not stored.
        values[":maxparts"] = _n(auditrows.MAX_PARTS)
        return dynamodb.update(
            table,
            run_item_id(run_id),
            "ADD " + ", ".join(parts),
            names=names,
            values=values,
            condition="attribute_not_exists(#rowparts) OR size(#rowparts) < :maxparts",
        )
    return dynamodb.update(table, run_item_id(run_id), "ADD " + ", ".join(parts), names=names, values=values)


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain values (numbers as int)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        kind, raw = next(iter(value.items()))
        if kind == "N":
            out[name] = int(raw) if raw.lstrip("-").isdigit() else float(raw)
        elif kind == "SS":
            out[name] = sorted(raw)
        elif kind == "L":
            out[name] = [next(iter(v.values())) for v in raw]
        elif kind == "BOOL":
            out[name] = bool(raw)
        else:
            out[name] = raw
    return out


def _complete(item: Mapping[str, Any]) -> bool:
    plain = _plain(item)
    if not plain.get("listed") or plain.get("finalized"):
        return False
    return int(plain.get("done", 0)) >= int(plain.get("expected", 0)) + int(plain.get("more", 0))


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


# A key's status after the checks (usecases.keyaccess.KeyStatus values) -> the open condition it is.
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
    item = _add(settings.state_table, run_id, counts, keys=sorted(tally.keys), rowparts=parts)
    if parts and item is None:  # the run already names MAX_PARTS row items: counted, not listed
        counts["rows_unstored"] += len(tally.rows)
        count("AuditRowsUnstored", len(tally.rows))
        item = _add(settings.state_table, run_id, counts, keys=sorted(tally.keys))
    if item is not None and _complete(item):
        finalize(settings, run_id, lambda_context=lambda_context)


# --- listing -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Cursor:
    """Where a run is: resumed from exactly here by the next invocation."""

    run_id: str
    started: float
    bucket_index: int = 0
    token: str | None = None  # ListObjectsV2 continuation token
    source: str = ""  # "" (not started) | "list" | "inventory"
    inventory_file: int = 0
    inventory_row: int = 0
    messages: int = 0
    listed: int = 0
    attempt: int = 0
    bucket: str = ""  # the bucket at bucket_index (the list is re-read: found again by name)

    def to_event(self) -> dict[str, Any]:
        return {"kind": CONTINUE_KIND, "version": 1, "cursor": asdict(self)}

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Cursor:
        if event.get("version") != 1 or not isinstance(event.get("cursor"), dict):
            raise InvalidEvent(f"{CONTINUE_KIND} needs version 1 and a cursor")
        raw = event["cursor"]
        try:
            cursor = cls(**{k: raw[k] for k in raw if k in cls.__dataclass_fields__})
        except TypeError as error:
            raise InvalidEvent(f"{CONTINUE_KIND} cursor is invalid: {error}") from None
        if not isinstance(cursor.run_id, str) or not cursor.run_id:
            raise InvalidEvent(f"{CONTINUE_KIND} cursor has no run_id")
        return cursor


class OutOfTime(Exception):
    """Stop here and continue in a new invocation."""


@dataclass(slots=True)
class Lister:
    """One invocation's share of a run."""

    settings: Settings
    config: AuditConfig
    cursor: Cursor
    lambda_context: Any
    publisher: Publisher
    buckets: tuple[str, ...]
    packer: fanout.Packer | None = None
    settled: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    owners: Mapping[str, str] = field(default_factory=dict)  # a member's bucket -> that member

    def member(self, bucket: str) -> Member | None:
        """The member whose role lists ``bucket`` (None: the deployment's own bucket)."""
        account = self.owners.get(bucket)
        return None if account is None else Member(account, self.settings.member_role_arn(account))

    def time_short(self) -> bool:
        remaining = getattr(self.lambda_context, "get_remaining_time_in_millis", None)
        return remaining is not None and remaining() < TIME_RESERVE_MS

    def _packer(self, bucket: str) -> fanout.Packer:
        if self.packer is None or self.packer.bucket != bucket:
            self.flush()
            self.packer = fanout.Packer(
                source_event_id=f"audit-{self.cursor.run_id}",
                origin=f"audit run {self.cursor.run_id}",
                principals=(),
                audit_run=self.cursor.run_id,
                bucket=bucket,
                account=self.owners.get(bucket),
            )
        return self.packer

    def _send(self, body: str | None) -> None:
        if body is None:
            return
        queue = self.settings.verify_queue_url
        if queue is None:
            raise ConfigError("VERIFY_QUEUE_URL", "the audit fans out to the verify queue: it must be set")
        sqs.send(queue, body)
        self.cursor.messages += 1
        count("AuditMessages")

    def offer(self, bucket: str, key: str, state: str) -> None:
        self.cursor.listed += 1
        self._send(self._packer(bucket).add(S3ObjectRef(bucket, key), state))

    def flush(self) -> None:
        """Send what is packed: at every stop point, so the cursor and the messages agree."""
        if self.packer is not None:
            self._send(self.packer.flush())

    def run(self) -> None:
        if self.cursor.bucket and self.cursor.bucket in self.buckets:
            self.cursor.bucket_index = self.buckets.index(self.cursor.bucket)
        while self.cursor.bucket_index < len(self.buckets):
            bucket = self.buckets[self.cursor.bucket_index]
            self.cursor.bucket = bucket
            member = self.member(bucket)
            if member is not None:
                # A member's bucket is read only with that member's role (design §11); its
                # inventory, if any, is the member's own, so it is listed.
                self.cursor.source = "list"
                with clients.acting_in(member):
                    self._list(bucket)
            else:
                self._bucket(bucket)
            self.flush()
            self._write_settled()
            self.cursor = replace(self.cursor, bucket_index=self.cursor.bucket_index + 1, token=None, source="")
            self.cursor.inventory_file = self.cursor.inventory_row = self.cursor.attempt = 0

    def _bucket(self, bucket: str) -> None:
        if self.cursor.source in ("", "inventory") and self.config.inventory:
            try:
                manifest = inventory.latest_manifest(self.config.inventory, bucket)
            except inventory.InventoryMissing as missing:
                self.notes.append(f"{bucket}: {missing}; listed instead")
                logger.warning("inventory missing; listing the bucket instead", extra={"bucket": bucket})
                count("AuditInventoryMissing")
            else:
                self.cursor.source = "inventory"
                try:
                    self._inventory(bucket, manifest)
                except inventory.InventoryInvalid as invalid:
                    self._inventory_invalid(bucket, invalid)
                else:
                    return
        self.cursor.source = "list"
        self._list(bucket)

    def _inventory_invalid(self, bucket: str, invalid: inventory.InventoryInvalid) -> None:
        """A report S3 would not have written: named, and the bucket listed from its start instead
        (what the report sent before the bad line is sent again by the listing)."""
        self.notes.append(
            f"{bucket}: {invalid}; listed instead (objects read from the inventory before it are checked again)"
        )
        logger.error("inventory invalid; listing the bucket instead", extra={"bucket": bucket, "problem": str(invalid)})
        count("AuditInventoryInvalid")
        self.cursor.token = None

    def _list(self, bucket: str) -> None:
        while True:
            if self.time_short():
                raise OutOfTime
            try:
                page = s3.list_page(bucket, token=self.cursor.token, owner=self.owners.get(bucket, self.settings.home))
            except Throttled as error:
                raise RetryableError(f"listing {bucket}: {error.code}") from error
            except Refused as error:
                self._unreadable(bucket, error)
                return
            except MemberUnreachable as error:  # the member's role went away during the run
                self._unreadable(bucket, Refused(str(error), code="MemberUnreachable", message=str(error)))
                return
            except AwsError as error:  # no answer (a timeout, a dropped connection) or a bad call
                raise RetryableError(f"listing {bucket}: {error}") from error
            self.cursor.attempt = 0
            before = self._packer(bucket).room
            for item in page.objects:
                self.offer(bucket, item.key, object_state(item.etag, item.last_modified))
            used = before - self._packer(bucket).room
            if page.next_token is None:
                return
            self.cursor.token = page.next_token
            del page
            if self._packer(bucket).room < used:
                self.flush()  # the next page may not fit: send now, while no page is in memory

    def _inventory(self, bucket: str, manifest: inventory.Manifest) -> None:
        settles = self.settings.encryption_requirement is EncryptionRequirement.SSE_S3_OR_KMS
        start_file, skip = self.cursor.inventory_file, self.cursor.inventory_row
        for file_index, row_index, row in inventory.rows(manifest, start_file=start_file, skip_rows=skip):
            if file_index != self.cursor.inventory_file:
                self.cursor.inventory_file, self.cursor.inventory_row = file_index, 0
            if row_index % 1000 == 0 and self.time_short():
                self.cursor.inventory_row = row_index
                raise OutOfTime
            self.cursor.inventory_row = row_index + 1
            if settles and row.encryption == "SSE-S3":
                # Compliant under SSE_S3_OR_KMS, and no key whose access to ensure: no HeadObject.
                self.cursor.listed += 1
                self.settled[f"n|{bucket}|{Encryption.SSE_S3.value}|OK"] += 1
                continue
            self.offer(bucket, row.key, object_state(row.etag, row.last_modified))

    def _write_settled(self) -> None:
        if self.settled:
            _add(self.settings.state_table, self.cursor.run_id, self.settled)
            self.settled.clear()

    def _unreadable(self, bucket: str, error: Refused) -> None:
        problem = f"{error.code}: {error.message}".strip(": ")
        self.notes.append(f"{bucket}: could not be listed ({problem})")
        count("AuditBucketsUnreadable")
        finding = Finding(
            finding_type=FindingType.OBJECT_UNVERIFIABLE,
            outcome=Outcome.REPORTED,
            resource=S3ObjectRef(bucket, ""),
            detail=f"the audit could not list training bucket {bucket}: {problem}; none of its objects were checked",
            source_event_id=f"audit-{self.cursor.run_id}",
            account=self.owners.get(bucket, self.settings.account_id),
            region=self.settings.region,
            scope=f"audit:list:{error.code}",
        )
        self.publisher.publish(finding)


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


def _report_unreachable(settings: Settings, publisher: Publisher, run_id: str, found: Targets) -> list[str]:
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


# --- the audit function ------------------------------------------------------------------------------


def _new_run_id(event: Mapping[str, Any]) -> str:
    """A scheduled firing's run id comes from its event (a redelivery is the same run); a run
    by hand (``{}``) gets a new one."""
    event_id = event.get("id") if isinstance(event.get("id"), str) else None
    fired = event.get("time") if isinstance(event.get("time"), str) else None
    if event_id and fired:
        return f"{fired.replace(':', '-')}-{event_id[:8]}"
    return f"{datetime.now(UTC).strftime('%Y-%m-%dT%H-%M-%SZ')}-{uuid.uuid4().hex[:8]}"


def parse_input(event: Any) -> Cursor | None:
    """None: a new run (the scheduled event or ``{}``); a Cursor: a continuation."""
    if not isinstance(event, dict):
        raise InvalidEvent("the audit takes a JSON object: the scheduled event, {} or a continuation")
    if event.get("kind") == CONTINUE_KIND:
        return Cursor.from_event(event)
    if event and not (event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events"):
        raise InvalidEvent("the audit takes the scheduled event, {} or a continuation")
    return None


def _start(settings: Settings, config: AuditConfig, run_id: str, found: Targets) -> bool:
    """Create the run record; False when this run already started (a redelivered event)."""
    values = {
        ":exp": _n(int(time.time()) + RUN_TTL_SECONDS),
        ":at": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        ":started": {"N": repr(time.time())},
        ":mode": {"S": settings.remediation_mode.value},
        ":req": {"S": settings.encryption_requirement.value},
        ":buckets": {"L": [{"S": b} for b in found.buckets]},
        # the account of each bucket (the report's per-account view); the own account's by default
        ":accounts": {"S": json.dumps({b: found.owners.get(b, settings.home) for b in found.buckets})},
        ":rb": {"S": config.reports_bucket},
        ":rp": {"S": config.reports_prefix},
    }
    created = dynamodb.update(
        settings.state_table,
        run_item_id(run_id),
        "SET expiration = :exp, started_at = :at, started = :started, #mode = :mode, requirement = :req, "
        "buckets = :buckets, bucket_accounts = :accounts, reports_bucket = :rb, reports_prefix = :rp",
        names={"#mode": "mode"},
        values=values,
        condition="attribute_not_exists(id)",
    )
    return created is not None


def run(
    event: Any,
    lambda_context: Any,
    settings: Settings,
    config: AuditConfig,
    *,
    continue_with: Any = None,
    trainings: Any = None,
) -> dict[str, Any]:
    """One invocation of the audit. ``continue_with(function_arn, event)`` invokes the next one
    (default: Lambda asynchronous invocation of this function); ``trainings(settings,
    publisher, run_id)`` audits the failed trainings (default: ``clguard.usecases.failed_trainings``)."""
    cursor = parse_input(event)
    settings = accounts.with_organization(settings)  # MEMBER_OU's accounts are members too
    publisher = Publisher(settings, lambda_context=lambda_context)
    found = targets(settings)
    if cursor is None:
        run_id = _new_run_id(event)
        cursor = Cursor(run_id=run_id, started=time.time())
        # The failed trainings first (idempotent: a marker per version, fingerprinted findings,
        # write-ahead grants): a finding neither published nor deferred fails this invocation
        # before the run is recorded, so Lambda's retry of the same event does them again.
        failed = _trainings(settings, publisher, run_id, trainings, found)
        publisher.flush()
        publisher.raise_if_undelivered()
        if not _start(settings, config, run_id, found):
            logger.info("this scheduled event already started its run; nothing to do", extra={"run_id": run_id})
            return {"run_id": run_id, "status": "duplicate"}
        _close_previous(settings, run_id, lambda_context)
        dynamodb.update(
            settings.state_table,
            run_item_id(run_id),
            "SET trainings = :t",
            values={":t": {"S": json.dumps(failed)}},
        )
        _note(settings, run_id, _report_unreachable(settings, publisher, run_id, found))
        logger.info("audit started", extra={"run_id": run_id, "buckets": list(found.buckets)})
    lister = Lister(settings, config, cursor, lambda_context, publisher, found.buckets, owners=found.owners)
    try:
        lister.run()
    except AwsError:
        raise  # an AWS call no step of the listing handles failed: Lambda retries the invocation
    except (OutOfTime, RetryableError) as stop:
        publisher.flush()
        lister.flush()
        lister._write_settled()
        _note(settings, lister.cursor.run_id, lister.notes)
        return _continue(settings, lister, stop, continue_with)
    publisher.flush()
    _note(settings, lister.cursor.run_id, lister.notes)
    item = dynamodb.update(
        settings.state_table,
        run_item_id(lister.cursor.run_id),
        "SET listed = :t, expected = :e, listed_objects = :l",
        values={":t": {"BOOL": True}, ":e": _n(lister.cursor.messages), ":l": _n(lister.cursor.listed)},
    )
    summary: dict[str, Any] = {
        "run_id": lister.cursor.run_id,
        "status": "listed",
        "buckets": len(lister.buckets),
        "objects_listed": lister.cursor.listed,
        "messages": lister.cursor.messages,
    }
    if item is not None and _complete(item):
        report = finalize(settings, lister.cursor.run_id, lambda_context=lambda_context)
        if report is not None:
            summary.update(status="finished", report=report)
    return summary


LAST_RUN_ID: Final = "audit-last-run"


def _close_previous(settings: Settings, run_id: str, lambda_context: Any) -> None:
    """A run whose checks never all finished (a message in VerifyDLQ, an invocation in
    AuditDLQ) would never report: the next run reports it, marked incomplete, before starting."""
    last = dynamodb.get(settings.state_table, LAST_RUN_ID)
    dynamodb.put(settings.state_table, {"id": {"S": LAST_RUN_ID}, "run_id": {"S": run_id}})
    previous = str(last.get("run_id", {}).get("S", "")) if last else ""
    if not previous or previous == run_id:
        return
    record = dynamodb.get(settings.state_table, run_item_id(previous))
    if record is None or _plain(record).get("finalized"):
        return
    plain = _plain(record)
    done, expected = int(plain.get("done", 0)), int(plain.get("expected", 0)) + int(plain.get("more", 0))
    listing = "" if plain.get("listed") else "; its listing did not finish (see AuditDLQ)"
    note = (
        f"incomplete: {done} of {expected} messages were checked when the next run ({run_id}) started; "
        f"the others are in VerifyDLQ or still queued{listing}"
    )
    _note(settings, previous, [note])
    dynamodb.update(settings.state_table, run_item_id(previous), "SET listed = :t", values={":t": {"BOOL": True}})
    logger.warning("the previous audit run never completed; reporting it as incomplete", extra={"run_id": previous})
    count("AuditRunsIncomplete")
    finalize(settings, previous, lambda_context=lambda_context)


def _note(settings: Settings, run_id: str, notes: Sequence[str]) -> None:
    if notes:
        dynamodb.update(
            settings.state_table,
            run_item_id(run_id),
            "SET notes = list_append(if_not_exists(notes, :empty), :notes)",
            values={":empty": {"L": []}, ":notes": {"L": [{"S": n[:1000]} for n in notes]}},
        )


def _continue(settings: Settings, lister: Lister, stop: Exception, continue_with: Any) -> dict[str, Any]:
    cursor = lister.cursor
    if isinstance(stop, RetryableError):
        cursor.attempt += 1
        logger.warning("transient failure; continuing in a new invocation", extra={"error": str(stop)})
        if cursor.attempt > MAX_TRANSIENT_ATTEMPTS:
            bucket = lister.buckets[cursor.bucket_index]
            _note(settings, cursor.run_id, [f"{bucket}: partly covered, listing kept failing ({stop})"])
            cursor = replace(cursor, bucket_index=cursor.bucket_index + 1, token=None, source="", attempt=0)
            cursor.inventory_file = cursor.inventory_row = 0
    function_arn = getattr(lister.lambda_context, "invoked_function_arn", None)
    if continue_with is None:
        from clguard.adapters import lambda_  # noqa: PLC0415 - only a long run continues

        continue_with = lambda_.invoke_async
    if not function_arn:
        raise RetryableError("out of time and no function to continue in")
    continue_with(function_arn, cursor.to_event())
    count("AuditContinued")
    logger.info("audit continues in a new invocation", extra={"cursor": asdict(cursor)})
    return {"run_id": cursor.run_id, "status": "continuing", "objects_listed": cursor.listed}


def _trainings(
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


# --- the end of a run: report and summary -----------------------------------------------------------


def finalize(settings: Settings, run_id: str, *, lambda_context: Any = None) -> dict[str, str] | None:
    """Once per run (a conditional update elects the one caller): write the report, publish the
    summary. Returns the report's locations, or None when another caller finalizes."""
    settings = accounts.with_organization(settings)  # a member key of MEMBER_OU is read as the member
    item = dynamodb.update(
        settings.state_table,
        run_item_id(run_id),
        "SET finalized = :t",
        values={":t": {"BOOL": True}},
        condition="attribute_not_exists(finalized) AND listed = :t",
    )
    if item is None:
        return None
    from clguard.reporting import auditreport  # noqa: PLC0415 - only the last message of a run reports

    plain = _plain(item)
    data = auditreport.build(settings, run_id, plain)
    stored, dropped = auditrows.load(settings.state_table, list(plain.get("rowparts", [])))
    dropped += int(plain.get("rows_unstored", 0))
    rows = auditreport.ordered_rows([*stored, *auditreport.training_rows(settings, data["trainings"])])
    if dropped:
        data["rows_dropped"] = dropped
        data["notes"].append(f"{dropped} rows beyond the report's bound of {auditrows.MAX_ROWS} are counted only")
    history = auditrows.record_trend(settings.state_table, auditreport.trend_entry(data, rows))
    locations = auditreport.write(
        data, bucket=str(data["reports_bucket"]), prefix=str(data["reports_prefix"]), rows=rows, history=history
    )
    publish_summary(settings, data, locations)
    return locations


def publish_summary(settings: Settings, data: Mapping[str, Any], locations: Mapping[str, str]) -> None:
    """The run's one summary: its own message on the alerts topic, marked by the
    ``message_kind`` attribute (no ``finding_type``: finding subscribers' filters skip it)."""
    from clguard.reporting import auditreport  # noqa: PLC0415

    text = auditreport.summary_text(data, locations)
    subject = auditreport.summary_subject(data)
    document = {"message_kind": SUMMARY_KIND, "schema_version": "1", **auditreport.summary_document(data, locations)}
    chat = {
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": f":bar_chart: {subject}",
            "description": text.replace("`", "'"),
        },
    }
    message = json.dumps(
        {"default": json.dumps(document), "email": text, "https": json.dumps(chat)},
        ensure_ascii=False,
    )
    sns.publish(
        settings.alert_topic_arn,
        subject=subject,
        message=message,
        attributes={"message_kind": {"DataType": "String", "StringValue": SUMMARY_KIND}},
    )
    count("AuditSummaries")
