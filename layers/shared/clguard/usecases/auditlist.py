"""One invocation's share of an audit run: each training bucket listed page by page
(ListObjectsV2) or read from its latest S3 Inventory report, fanned out to the verify queue,
resumable from a ``Cursor``."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from clguard.adapters import clients, s3, sqs
from clguard.adapters.clients import Member
from clguard.boundary import fanout, inventory
from clguard.boundary.config import EncryptionRequirement, Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import (
    AwsError,
    ConfigError,
    InvalidEvent,
    MemberUnreachable,
    Refused,
    RetryableError,
    Throttled,
)
from clguard.observability import count, logger
from clguard.reporting import securityhub
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.reporting.publisher import Publisher
from clguard.rules.encryption import Encryption
from clguard.usecases import auditrecord, bulkremediation

if TYPE_CHECKING:
    from clguard.usecases.audit import AuditConfig

CONTINUE_KIND: Final = "clguard.audit-continue"
TIME_RESERVE_MS: Final = 60_000  # stop listing when less than this is left


# --- an object's state as listed (what the audit's finding scopes name) ------------------------


def object_state(etag: str, last_modified: str) -> str:
    """A short, source-independent digest of an object's state (listing and inventory agree)."""
    stamp = _epoch(last_modified)
    return hashlib.sha256(f"{etag.strip('"')}@{stamp}".encode()).hexdigest()[:16]


def _epoch(value: str) -> int | str:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return value


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
    bulk: dict[str, Any] = field(default_factory=dict)  # the bucket's bulk re-encryption (usecases.bulkremediation)

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
            self.cursor = replace(
                self.cursor, bucket_index=self.cursor.bucket_index + 1, token=None, source="", bulk={}
            )
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
        bulk = bulkremediation.BulkRemediation(
            self.settings, self.config.bulk, self.config.reports_bucket, self.config.reports_prefix,
            self.cursor.run_id, self.publisher,
        )  # fmt: skip
        bulk.begin(bucket, self.cursor.bulk, manifest.created)
        try:
            self._inventory_rows(bucket, manifest, bulk)
        except (OutOfTime, RetryableError):
            bulk.stop(f"{self.cursor.inventory_file}-{self.cursor.inventory_row}")
            self._bulk_counted(bulk)
            raise
        except inventory.InventoryInvalid:
            bulk.collected.clear()  # the bucket is listed instead: every object goes to the verify queue
            raise
        bulk.end(lambda found: self.offer(bucket, found.key, found.state))
        self._bulk_counted(bulk)

    def _bulk_counted(self, bulk: bulkremediation.BulkRemediation) -> None:
        """Objects left to bulk jobs are counted in the run like objects the inventory settles."""
        self.settled.update(bulk.tally)
        self.cursor.listed += sum(bulk.tally.values())
        bulk.tally.clear()

    def _inventory_rows(self, bucket: str, manifest: inventory.Manifest, bulk: bulkremediation.BulkRemediation) -> None:
        settles = self.settings.encryption_requirement is EncryptionRequirement.SSE_S3_OR_KMS
        where = (self.settings.account_id, self.settings.region, bucket)
        close = securityhub.inventory_closer(self.publisher.security_hub, *where, manifest.created)
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
                close(row.key, row.last_modified)  # its open Security Hub findings, when certain
                continue
            state = object_state(row.etag, row.last_modified)
            found = bulkremediation.candidate(self.settings, row.key, state, row.encryption)
            if found is None or not bulk.take(found):
                self.offer(bucket, row.key, state)

    def _write_settled(self) -> None:
        if self.settled:
            auditrecord.add_counts(self.settings.state_table, self.cursor.run_id, self.settled)
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
