"""The digest stage: findings for people, grouped (machines keep one message per finding).

The alerts topic carries every finding as its own message (the contract, for machines and
filters). Its SQS subscription ``DigestQueue`` (raw message delivery: each body is the finding
document, the SNS message attributes become SQS message attributes) is read by the digest
function in batches gathered over a batching window. Per batch:

- **at once, one by one**: the rare and severe findings (:data:`IMMEDIATE_TYPES`, any ``FAILED``
  outcome) and every message that is not a finding (the audit's summary, anything unreadable),
  published first, each rendered as the finding itself is;
- **grouped**: the other findings with the same finding type, outcome and place (the bucket of an
  object, the key, the project version) and the same thread become one message with the count,
  the first :data:`FIRST_LISTED` findings in full and every resource in a compact list (as many
  as fit in the e-mail; the digest function's log holds them all under the message's
  ``digest_id``). A group of one is rendered as the finding itself.

Nothing is lost: every record of the batch is counted in exactly one human message, and a record
whose message could not be published fails (SQS retries it, then ``DigestDLQ``) while the records
of the messages that were sent succeed.

Slack threads (``metadata.threadId`` of the chat notification schema): everything about one
training request (findings carrying ``origin``, the request that asked for the check) shares the
request's thread; plain uploads share one thread per bucket and hour (one bucket's burst), key
findings one per key and hour. ``content.keywords`` are the finding type, severity and outcome.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters import sns
from clguard.boundary.config import DigestSettings
from clguard.errors import AwsError, InvalidEvent
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType
from clguard.usecases.digestgroups import GroupKey, group_key, grouped
from clguard.usecases.digestmessages import DIGEST_KIND, HumanMessage, accepted_exceptions, single

# Rare and severe: never grouped (plus every FAILED outcome and every message that is not a finding).
# The one list: README.md and docs/architecture.md name it, tests/unit/test_one_source.py ties them to it.
IMMEDIATE_TYPES: Final = frozenset(
    {FindingType.PRINCIPAL_NOT_ALLOWED, FindingType.KEY_POLICY_LIMIT, FindingType.TRAINING_FAILED}
)
LOG_CHUNK: Final = 500  # resources per log line (CloudWatch Logs events are at most 256 KB)

# --- input ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One record of the digest queue: a finding document, or any other message."""

    record_id: str
    body: str
    attributes: Mapping[str, str]
    document: Mapping[str, Any] | None  # the finding document, when the body is one
    finding: Finding | None  # the same, rebuilt (None for a finding type this code does not know)
    sent_by: str | None = None  # the principal that sent it through the SQS API (never the alerts topic)


def _attributes(record: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (record.get("messageAttributes") or {}).items():
        if isinstance(value, Mapping) and isinstance(value.get("stringValue"), str):
            out[str(name)] = value["stringValue"]
    return out


# SQS SenderId of a message a principal sent through the SQS API: a role session
# ("<RoleId>:<session name>", AROA...) or an account's root (its 12 digits). The alerts topic's
# deliveries carry the SNS service's own id, never a role session of an account.
_PRINCIPAL_SENDER = re.compile(r"^(AROA[A-Z0-9]{8,128}:.+|[0-9]{12})$")


def sent_by_a_principal(record: Mapping[str, Any]) -> str | None:
    """The SenderId of a record that a principal of an account sent (or planted in DigestDLQ and had
    redriven), else None. Such a message is not the alerts topic's: people see it as received,
    marked unverified, never as one of the guard's findings (docs/architecture.md §8)."""
    sender = (record.get("attributes") or {}).get("SenderId")
    return sender if isinstance(sender, str) and _PRINCIPAL_SENDER.fullmatch(sender) else None


def parse_record(record: Mapping[str, Any]) -> Item:
    """Never raises: a body that is not a finding document is still a message for people."""
    body = record.get("body")
    body = body if isinstance(body, str) else json.dumps(body)
    record_id = str(record.get("messageId", ""))
    attributes = _attributes(record)
    sender = sent_by_a_principal(record)
    if sender is not None:
        return Item(record_id, body, attributes, None, None, sent_by=sender)
    try:
        parsed = json.loads(body)
    except ValueError:
        return Item(record_id, body, attributes, None, None)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("finding_type"), str):
        return Item(record_id, body, attributes, None, None)
    finding: Finding | None
    try:
        finding = Finding.from_document(parsed)
    except (InvalidEvent, KeyError, ValueError, TypeError, AttributeError):
        finding = None
    if not isinstance(parsed.get("resource"), dict) or not _well_typed(parsed):
        return Item(record_id, body, attributes, None, None)  # forwarded as it is, never dropped
    return Item(record_id, body, attributes, parsed, finding)


_TEXT_FIELDS: Final = ("principal_arn", "kms_key_arn", "detail", "account", "region", "source_event_id", "observed_at")


def _well_typed(document: Mapping[str, Any]) -> bool:
    """The document's text fields are strings (or null where the contract allows): a document
    that breaks this cannot be rendered as a finding, so it travels as a plain message."""
    return all(document.get(name) is None or isinstance(document.get(name), str) for name in _TEXT_FIELDS)


def is_immediate(item: Item) -> bool:
    document = item.document
    if document is None:
        return True
    return document.get("finding_type") in IMMEDIATE_TYPES or document.get("outcome") == "FAILED"


@dataclass(slots=True)
class _Sorted:
    """One batch's records sorted into where each goes: an immediate message, the muted ones, a
    group; ``extra``: the records of a finding delivered again, by the holder of its first."""

    immediate: list[HumanMessage] = field(default_factory=list)
    muted: list[Item] = field(default_factory=list)
    groups: dict[GroupKey, list[Item]] = field(default_factory=dict)
    seen: dict[str, HumanMessage | list[Item]] = field(default_factory=dict)
    extra: dict[int, list[str]] = field(default_factory=dict)

    def add(self, item: Item) -> None:
        identity = item.finding.fingerprint() if item.finding is not None else None
        if identity is not None and identity in self.seen:
            # the same finding delivered twice: account for the record, do not count it twice
            self.extra.setdefault(id(self.seen[identity]), []).append(item.record_id)
            return
        holder: HumanMessage | list[Item]
        if item.finding is not None and item.finding.suppressed is not None:
            self.muted.append(item)  # an accepted exception (docs/architecture.md §5b): counted, not alerted
            holder = self.muted
        elif is_immediate(item):
            holder = single(item)
            self.immediate.append(holder)
        else:
            assert item.document is not None
            holder = self.groups.setdefault(group_key(item.document), [])
            holder.append(item)
        if identity is not None:
            self.seen[identity] = holder

    def extra_of(self, holder: HumanMessage | list[Item]) -> list[str]:
        return self.extra.get(id(holder), [])


def plan(items: Iterable[Item]) -> list[HumanMessage]:
    """The human messages for one batch: the immediate ones first (in arrival order), then one
    per group (in order of each group's first finding). Duplicate deliveries of one finding
    (same fingerprint) count once; every record is in exactly one message."""
    batch = _Sorted()
    for item in items:
        batch.add(item)
    digests = [grouped(key, members) for key, members in batch.groups.items()]
    for message in batch.immediate:
        message.record_ids += batch.extra_of(message)
    for members, message in zip(batch.groups.values(), digests, strict=True):
        message.record_ids += batch.extra_of(members)
    immediate, digests = by_account(batch.immediate), by_account(digests)
    if not batch.muted:
        return immediate + digests
    quiet = accepted_exceptions(batch.muted)
    quiet.record_ids += batch.extra_of(batch.muted)
    return [*immediate, *digests, quiet]


_ACCOUNT_ID: Final = re.compile(r"[0-9]{12}")


def by_account(messages: list[HumanMessage]) -> list[HumanMessage]:
    """Per-account views (issue 21): each message about one account's findings carries the message
    attribute ``account`` (a team subscribes to its account's messages with an SNS filter policy
    on the human topic), and when a batch's messages come from several accounts they are grouped
    account by account (stable: within an account, the order of each group's first finding)."""
    accounts: list[str] = []
    for message in messages:
        account = message.default.get("account")
        if isinstance(account, str) and _ACCOUNT_ID.fullmatch(account):
            message.attributes["account"] = account
        accounts.append(message.attributes.get("account", ""))
    if len(set(accounts)) < 2:
        return messages
    first_seen = {account: n for n, account in reversed(list(enumerate(accounts)))}
    order = sorted(range(len(messages)), key=lambda n: (first_seen[accounts[n]], n))
    return [messages[n] for n in order]


def findings_counted(messages: Iterable[HumanMessage]) -> int:
    """How many distinct findings the messages account for (a digest counts each of its own)."""
    total = 0
    for message in messages:
        total += int(message.default.get("count", 1)) if message.default.get("message_kind") == DIGEST_KIND else 1
    return total


# --- the batch --------------------------------------------------------------------------------


def handle_batch(event: Mapping[str, Any], settings: DigestSettings) -> dict[str, Any]:
    """Publish one batch's human messages; fail exactly the records of messages not published."""
    records = [r for r in event.get("Records") or [] if isinstance(r, Mapping)]
    items = [parse_record(r) for r in records]
    for item in items:
        if item.sent_by is not None:
            count("UntrustedMessages")
            logger.warning(
                "a digest-queue message sent through the SQS API by a principal, not delivered by the "
                "alerts topic: forwarded to people marked unverified, never as a finding",
                extra={"message_id": item.record_id, "sender_id": item.sent_by, "body_prefix": item.body[:500]},
            )
    messages = plan(items)
    failed: list[str] = []
    for message in messages:
        try:
            sns.publish(
                settings.human_topic_arn,
                subject=message.subject,
                message=message.sns_message(),
                attributes=message.message_attributes(),
            )
        except AwsError:
            count("DigestPublishFailures")
            logger.exception(
                "a human message could not be published; its records fail and are retried",
                extra={"subject": message.subject, "records": len(message.record_ids)},
            )
            failed += message.record_ids
            continue
        findings = findings_counted([message])
        count("HumanMessages")
        count("DigestedFindings", findings)
        if message.digest_id:
            count("DigestMessages")
            for start in range(0, len(message.resources), LOG_CHUNK):
                logger.info(
                    "digest resources",
                    extra={
                        "digest_id": message.digest_id,
                        "finding_type": message.attributes.get("finding_type"),
                        "outcome": message.attributes.get("outcome"),
                        "resources": message.resources[start : start + LOG_CHUNK],
                    },
                )
        else:
            count("ImmediateMessages")
    logger.info("digest batch", extra={"records": len(records), "human_messages": len(messages) - len(set(failed))})
    return {"batchItemFailures": [{"itemIdentifier": record_id} for record_id in dict.fromkeys(failed)]}
