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

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters import sns
from clguard.errors import AwsError, ConfigError, InvalidEvent
from clguard.observability import count, logger
from clguard.reporting.findings import Finding
from clguard.reporting.rendering import (
    CHAT_DESCRIPTION_MAX,
    SUBJECT_MAX,
    chat_message,
    chat_payload,
    code_span,
    email_text,
    key_name,
    markdown_text,
    next_steps,
    one_line,
)
from clguard.reporting.rendering import subject as finding_subject

DIGEST_KIND: Final = "clguard.digest"
# Rare and severe: never grouped (plus every FAILED outcome and every message that is not a finding).
IMMEDIATE_TYPES: Final = frozenset({"PRINCIPAL_NOT_ALLOWED", "KEY_POLICY_LIMIT", "TRAINING_FAILED"})
FIRST_LISTED: Final = 3
CHAT_LISTED: Final = 10
# SNS allows 256 KiB per message; the e-mail rendering gets most of it (the default document and
# the chat notification are small and bounded).
EMAIL_BUDGET: Final = 180_000
LOG_CHUNK: Final = 500  # resources per log line (CloudWatch Logs events are at most 256 KB)

_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$")
_NOT_SUBJECT = re.compile(r"[^\x20-\x7e]")
_WORD = re.compile(r"[A-Z][A-Z_]{0,63}")  # a finding type, severity or outcome, as the contract spells them


def _md_word(value: str) -> str:
    """A word of the contract as it is; anything else a document says, as untrusted text."""
    return value if _WORD.fullmatch(value) else markdown_text(value)


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """The digest function's configuration: the topic people subscribe to."""

    human_topic_arn: str


def load_digest_settings(env: Mapping[str, str]) -> DigestSettings:
    topic = env.get("HUMAN_TOPIC_ARN", "").strip()
    if not topic:
        raise ConfigError("HUMAN_TOPIC_ARN", "is required and empty or not set")
    if not _TOPIC_ARN.fullmatch(topic):
        raise ConfigError("HUMAN_TOPIC_ARN", f"{topic!r} is not an SNS topic ARN")
    return DigestSettings(topic)


def current_digest_settings() -> DigestSettings:
    return load_digest_settings(os.environ)


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


# --- grouping ---------------------------------------------------------------------------------


def _hash(*parts: object) -> str:
    raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def place(document: Mapping[str, Any]) -> str:
    """Where a finding is, for grouping: an object's bucket, else the resource's ARN."""
    resource = document.get("resource") or {}
    if resource.get("type") == "s3-object":
        return f"s3://{resource.get('bucket')}/"
    return str(resource.get("arn") or json.dumps(resource, sort_keys=True))


def thread_id(document: Mapping[str, Any]) -> str:
    """The Slack thread: one per training request (the finding names its ``origin``), else one
    per bucket (objects) or key and hour. At most 64 printable characters."""
    hour = str(document.get("observed_at", ""))[:13]
    if document.get("origin"):
        return f"clguard-request-{_hash(document.get('source_event_id'))}"
    resource = document.get("resource") or {}
    if resource.get("type") == "s3-object":
        return f"clguard-bucket-{_hash(resource.get('bucket'), hour)}"
    return f"clguard-resource-{_hash(place(document), hour)}"


@dataclass(frozen=True, slots=True)
class GroupKey:
    finding_type: str
    outcome: str
    severity: str
    account: str
    region: str
    place: str
    thread: str


def group_key(document: Mapping[str, Any]) -> GroupKey:
    return GroupKey(
        finding_type=str(document.get("finding_type")),
        outcome=str(document.get("outcome")),
        severity=str(document.get("severity")),
        account=str(document.get("account")),
        region=str(document.get("region")),
        place=place(document),
        thread=thread_id(document),
    )


# --- output -----------------------------------------------------------------------------------


@dataclass(slots=True)
class HumanMessage:
    """One message for the human topic, and the records it accounts for."""

    subject: str
    email: str
    chat: dict[str, Any]
    default: dict[str, Any]
    attributes: dict[str, str]
    record_ids: list[str] = field(default_factory=list)
    digest_id: str = ""
    resources: list[str] = field(default_factory=list)  # every resource, for the log

    def sns_message(self) -> str:
        return json.dumps(
            {
                "default": json.dumps(self.default, ensure_ascii=False),
                "email": self.email,
                "https": json.dumps(self.chat, ensure_ascii=False),
            },
            ensure_ascii=False,
        )

    def message_attributes(self) -> dict[str, dict[str, str]]:
        return {name: {"DataType": "String", "StringValue": value} for name, value in self.attributes.items()}


def _subject(text: str) -> str:
    text = _NOT_SUBJECT.sub("?", text)
    if len(text) <= SUBJECT_MAX:
        return text
    return text[: SUBJECT_MAX - 3] + "..."


def _with_thread(chat: dict[str, Any], document: Mapping[str, Any] | None) -> dict[str, Any]:
    if document is not None:
        chat.setdefault("metadata", {})["threadId"] = thread_id(document)
    return chat


def single(item: Item) -> HumanMessage:
    """One finding (or other message) as people see it alone."""
    document, finding = item.document, item.finding
    if finding is not None and document is not None:
        return HumanMessage(
            subject=finding_subject(finding),
            email=email_text(finding),
            chat=_with_thread(chat_message(finding), document),
            default=dict(document),
            attributes={
                "finding_type": finding.finding_type.value,
                "severity": finding.severity.value,
                "outcome": finding.outcome.value,
                "message_kind": "finding",
            },
            record_ids=[item.record_id],
            resources=[finding.resource.label()],
        )
    return _other(item)


def _provenance(item: Item) -> str:
    if item.sent_by is None:
        return ""
    return (
        f"Not from the alerts topic: sent to the digest queues through the SQS API by {one_line(item.sent_by)}. "
        "It is not one of the guard's findings, whatever it says."
    )


def _other(item: Item) -> HumanMessage:
    """A message that is not a finding this code knows (the audit's summary, a finding type of a
    newer version, an unreadable body): forwarded as it is, at once."""
    kind = item.attributes.get("message_kind") or (item.document or {}).get("finding_type") or "message"
    if item.sent_by is not None:
        kind = "unverified message"
    provenance = _provenance(item)
    # Shown as received, but never able to add a line: a JSON body pretty-printed (its strings are
    # JSON-escaped; what JSON leaves raw, e.g. U+2028 or a bidi override, is escaped per line),
    # anything else on one escaped line.
    try:
        pretty = json.dumps(json.loads(item.body), indent=2, ensure_ascii=False)
        text = "\n".join(one_line(line) for line in pretty.split("\n"))
    except ValueError:
        text = one_line(item.body)
    shown = text if len(text) <= EMAIL_BUDGET else text[:EMAIL_BUDGET] + "\n… (truncated)"
    # Slack's escaping may make the text up to 5 times longer (``&`` -> ``&amp;``).
    chat_text = (
        text if len(text) <= CHAT_DESCRIPTION_MAX // 5 else text[: CHAT_DESCRIPTION_MAX // 5] + "\n… (truncated)"
    )
    return HumanMessage(
        subject=_subject(f"Custom Labels Guard: {kind}"),
        email="\n".join([f"Custom Labels Guard: {one_line(kind)}", "", *([provenance] if provenance else [])])
        + f"\nThe message as received:\n{shown}",
        chat=chat_payload(
            {
                "version": "1.0",
                "source": "custom",
                "content": {
                    "textType": "client-markdown",
                    "title": f":information_source: Custom Labels Guard: {_md_word(kind)}"[:250],
                    "description": (f"*{markdown_text(provenance)}*\n" if provenance else "")
                    + "```"
                    + chat_text.replace("`", "'")
                    + "```",
                    "keywords": [_md_word(str(kind))[:50]],
                },
            }
        ),
        default={"schema_version": "1", "message_kind": "forwarded", "kind": kind, "body": item.body[:100_000]},
        attributes={"message_kind": str(kind)[:256]},
        record_ids=[item.record_id],
        resources=[],
    )


def _label(document: Mapping[str, Any]) -> str:
    resource = document.get("resource") or {}
    if resource.get("type") == "s3-object":
        return f"s3://{resource.get('bucket')}/{resource.get('key')}"
    alias = document.get("kms_key_alias")
    if resource.get("type") == "kms-key" and isinstance(alias, str) and alias:
        return key_name(str(resource.get("arn")), alias)  # the name people know, next to the ARN
    return str(resource.get("arn") or resource)


def _common_prefix(keys: Sequence[str]) -> str:
    """The longest common folder (ending in ``/``) of the keys, or ``""``."""
    if not keys:
        return ""
    prefix = os.path.commonprefix(list(keys))  # noqa: RUF071 - by character, then cut at the last '/'
    return prefix[: prefix.rfind("/") + 1]


_DONE: Final = {
    "REMEDIATED": (":white_check_mark:", "all remediated", "Fixed automatically."),
    "REPORTED": (":memo:", "all reported", "Left as is (report only)."),
    "REFUSED": (":no_entry:", "all refused", "Not changed: a guardrail forbade the change."),
    "FAILED": (":x:", "all failed", "The remediator tried and failed."),
}


def _cost(line: str) -> int:
    """Bytes a line takes in the published message (JSON-escaped, UTF-8, with its newline)."""
    return len(json.dumps(line, ensure_ascii=False).encode()) + 2


def grouped(key: GroupKey, items: Sequence[Item]) -> HumanMessage:
    """Several findings of one kind about one place: one message with counts."""
    if len(items) == 1:
        return single(items[0])
    documents = [item.document for item in items if item.document is not None]
    first = documents[0]
    n = len(documents)
    resources = [_label(d) for d in documents]
    where = key.place
    if where.startswith("s3://"):
        bucket_prefix = where
        keys = [str((d.get("resource") or {}).get("key", "")) for d in documents]
        folder = _common_prefix(keys)
        where = f"{bucket_prefix}{folder}"
        relative = [k[len(folder) :] for k in keys]
    else:
        relative = resources
    digest_id = _hash(key, [item.record_id for item in items])
    emoji, done_short, done_long = _DONE.get(key.outcome, (":warning:", key.outcome, key.outcome))
    observed = sorted(str(d.get("observed_at", "")) for d in documents)
    finding = items[0].finding
    # The steps are written for one finding; a digest speaks of all of them.
    steps = [step.replace("this object", "these objects") for step in next_steps(finding)] if finding else []

    # The group's words come from the documents read from the queue: data, escaped like the rest.
    kind, severity, account, region = (one_line(v) for v in (key.finding_type, key.severity, key.account, key.region))
    since, until = one_line(observed[0]), one_line(observed[-1])
    lines = [
        f"Custom Labels Guard digest: {n:,} {kind} ({severity}), {one_line(done_short)}",
        "",
        f"Where: {one_line(where)} in account {account}, {region}",
        f"When: observed {since} to {until}",
        f"What was done: {one_line(done_long)}",
    ]
    if steps:
        lines.append("What to do next:")
        lines.extend(f"  - {step}" for step in steps)
    lines += ["", f"First {min(FIRST_LISTED, n)} of {n:,}:"]
    for document in documents[:FIRST_LISTED]:
        lines.append(f"  - {one_line(_label(document))}: {one_line(str(document.get('detail', ''))[:2000])}")
    lines += ["", f"All {n:,} (relative to {one_line(where)}):"]
    size = sum(_cost(line) for line in lines)
    listed = 0
    for name in relative:
        line = f"  {one_line(name)}"
        if size + _cost(line) > EMAIL_BUDGET:
            break
        lines.append(line)
        size += _cost(line)
        listed += 1
    if listed < n:
        lines.append(
            f"  … {n - listed:,} more not listed here: the digest function's log lists them all "
            f'(CloudWatch Logs Insights: filter digest_id = "{digest_id}"), and each is its own '
            "message on the alerts topic."
        )
    lines += ["", f"Digest {digest_id}; every finding is also on the alerts topic as its own message."]

    md_kind, md_done = _md_word(key.finding_type), markdown_text(done_short)
    parts = [f"*{n:,} {md_kind} in {code_span(where)}, {md_done}*"]
    parts += [f"• {code_span(r)}" for r in relative[:CHAT_LISTED]]
    if n > CHAT_LISTED:
        parts.append(f"… and {n - CHAT_LISTED:,} more: full list in the e-mail digest (digest {code_span(digest_id)})")
    parts.append(f"*First:* {markdown_text(str(first.get('detail', '')))}")
    parts.append(
        f"*Account:* {markdown_text(key.account)} ({markdown_text(key.region)}) · "
        f"*Observed:* {markdown_text(observed[0])} to {markdown_text(observed[-1])}"
    )
    description = "\n".join(parts)
    chat = chat_payload(
        {
            "version": "1.0",
            "source": "custom",
            "id": digest_id,
            "content": {
                "textType": "client-markdown",
                "title": f"{emoji} {n:,} × {md_kind} ({_md_word(key.severity)}): {md_done}",
                "description": description,
                "nextSteps": steps,
                "keywords": [_md_word(v)[:50] for v in (key.finding_type, key.severity, key.outcome)],
            },
            "metadata": {
                "threadId": key.thread,
                "summary": one_line(f"{n:,} {key.finding_type} {key.outcome} in {where}")[:250],
                "eventType": one_line(key.finding_type),
                "relatedResources": [one_line(r) for r in resources[:5]],
            },
        }
    )
    default = {
        "schema_version": "1",
        "message_kind": DIGEST_KIND,
        "digest_id": digest_id,
        "finding_type": key.finding_type,
        "severity": key.severity,
        "outcome": key.outcome,
        "account": key.account,
        "region": key.region,
        "place": where,
        "count": n,
        "first": [{k: v for k, v in d.items() if k not in ("change", "changes")} for d in documents[:FIRST_LISTED]],
        "observed_from": observed[0],
        "observed_to": observed[-1],
    }
    return HumanMessage(
        subject=_subject(f"[{key.severity}] {n:,} x {key.finding_type} {key.outcome} {where}"),
        email="\n".join(lines),
        chat=chat,
        default=default,
        attributes={
            "finding_type": key.finding_type,
            "severity": key.severity,
            "outcome": key.outcome,
            "message_kind": DIGEST_KIND,
        },
        record_ids=[item.record_id for item in items],
        digest_id=digest_id,
        resources=resources,
    )


def plan(items: Iterable[Item]) -> list[HumanMessage]:
    """The human messages for one batch: the immediate ones first (in arrival order), then one
    per group (in order of each group's first finding). Duplicate deliveries of one finding
    (same fingerprint) count once; every record is in exactly one message."""
    immediate: list[HumanMessage] = []
    muted: list[Item] = []
    groups: dict[GroupKey, list[Item]] = {}
    seen: dict[str, HumanMessage | list[Item]] = {}
    extra: dict[int, list[str]] = {}
    for item in items:
        identity = item.finding.fingerprint() if item.finding is not None else None
        if identity is not None and identity in seen:
            # the same finding delivered twice: account for the record, do not count it twice
            holder = seen[identity]
            extra.setdefault(id(holder), []).append(item.record_id)
            continue
        if item.finding is not None and item.finding.suppressed is not None:
            muted.append(item)  # an accepted exception (docs/architecture.md §5b): counted, not alerted
            if identity is not None:
                seen[identity] = muted
            continue
        if is_immediate(item):
            message = single(item)
            immediate.append(message)
            if identity is not None:
                seen[identity] = message
            continue
        assert item.document is not None
        bucket = groups.setdefault(group_key(item.document), [])
        bucket.append(item)
        if identity is not None:
            seen[identity] = bucket
    digests = [grouped(key, members) for key, members in groups.items()]
    for message in immediate:
        message.record_ids += extra.get(id(message), [])
    for (_key, members), message in zip(groups.items(), digests, strict=True):
        message.record_ids += extra.get(id(members), [])
    immediate, digests = by_account(immediate), by_account(digests)
    if not muted:
        return immediate + digests
    quiet = accepted_exceptions(muted)
    quiet.record_ids += extra.get(id(muted), [])
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


def accepted_exceptions(items: Sequence[Item]) -> HumanMessage:
    """The muted findings of a batch: one quiet message that counts them ("3 accepted exceptions"),
    by exception, so people see what is muted without being alerted by each."""
    by_exception: dict[str, list[Finding]] = {}
    for item in items:
        assert item.finding is not None
        assert item.finding.suppressed is not None
        by_exception.setdefault(item.finding.suppressed.exception_id, []).append(item.finding)
    n = len(items)
    title = f"{n} accepted exception{'s' if n != 1 else ''}"
    lines = [f"Custom Labels Guard: {title} (muted findings, no action needed)", ""]
    parts = []
    for exception_id, findings in by_exception.items():
        muted = findings[0].suppressed
        assert muted is not None
        owner = f", owner {one_line(muted.owner)}" if muted.owner else ""
        head = f"- {one_line(exception_id)} ({len(findings)}; expires {muted.expires}{owner})"
        lines.append(f"{head}: {one_line(muted.reason)}")
        lines.extend(f"    {f.finding_type.value} {one_line(f.resource.label())}" for f in findings[:FIRST_LISTED])
        parts.append(
            f"{code_span(exception_id)} ({len(findings)}, expires {muted.expires}): {markdown_text(muted.reason)}"
        )
    email = "\n".join(lines)
    email = email if len(email) <= EMAIL_BUDGET else email[:EMAIL_BUDGET] + "\n… (truncated)"
    return HumanMessage(
        subject=_subject(f"[INFO] Custom Labels Guard: {title}"),
        email=email,
        chat=chat_payload(
            {
                "version": "1.0",
                "source": "custom",
                "content": {
                    "textType": "client-markdown",
                    "title": f":zzz: Custom Labels Guard: {title}",
                    "description": "\n".join(parts),
                    "keywords": ["ACCEPTED_EXCEPTIONS"],
                },
            }
        ),
        default={
            "schema_version": "1",
            "message_kind": DIGEST_KIND,
            "kind": "accepted_exceptions",
            "count": n,
            "exceptions": {k: len(v) for k, v in by_exception.items()},
        },
        attributes={"message_kind": "accepted_exceptions", "suppressed": "true"},
        record_ids=[item.record_id for item in items],
        resources=[item.finding.resource.label() for item in items if item.finding is not None],
    )


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
