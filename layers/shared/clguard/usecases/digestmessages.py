"""The digest's messages for people, one at a time: a finding alone, a message that is not a
finding (forwarded as received), a batch's accepted exceptions; and the Slack thread each belongs
to (see ``clguard.usecases.digest`` for the batch, ``clguard.usecases.digestgroups`` for a group)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from clguard.reporting.findings import Finding
from clguard.reporting.rendering import (
    CHAT_DESCRIPTION_MAX,
    SUBJECT_MAX,
    chat_message,
    chat_notification,
    code_span,
    email_text,
    markdown_text,
    one_line,
)
from clguard.reporting.rendering import subject as finding_subject

if TYPE_CHECKING:
    from clguard.usecases.digest import Item


DIGEST_KIND: Final = "clguard.digest"
FIRST_LISTED: Final = 3
CHAT_LISTED: Final = 10
# SNS allows 256 KiB per message; the e-mail rendering gets most of it (the default document and
# the chat notification are small and bounded).
EMAIL_BUDGET: Final = 180_000

_NOT_SUBJECT = re.compile(r"[^\x20-\x7e]")
_WORD = re.compile(r"[A-Z][A-Z_]{0,63}")  # a finding type, severity or outcome, as the contract spells them


def md_word(value: str) -> str:
    """A word of the contract as it is; anything else a document says, as untrusted text."""
    return value if _WORD.fullmatch(value) else markdown_text(value)


# --- grouping ---------------------------------------------------------------------------------


def short_hash(*parts: object) -> str:
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
        return f"clguard-request-{short_hash(document.get('source_event_id'))}"
    resource = document.get("resource") or {}
    if resource.get("type") == "s3-object":
        return f"clguard-bucket-{short_hash(resource.get('bucket'), hour)}"
    return f"clguard-resource-{short_hash(place(document), hour)}"


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


def subject_line(text: str) -> str:
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
        subject=subject_line(f"Custom Labels Guard: {kind}"),
        email="\n".join([f"Custom Labels Guard: {one_line(kind)}", "", *([provenance] if provenance else [])])
        + f"\nThe message as received:\n{shown}",
        chat=chat_notification(
            f":information_source: Custom Labels Guard: {md_word(kind)}"[:250],
            (f"*{markdown_text(provenance)}*\n" if provenance else "") + "```" + chat_text.replace("`", "'") + "```",
            keywords=[md_word(str(kind))[:50]],
        ),
        default={"schema_version": "1", "message_kind": "forwarded", "kind": kind, "body": item.body[:100_000]},
        attributes={"message_kind": str(kind)[:256]},
        record_ids=[item.record_id],
        resources=[],
    )


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
        subject=subject_line(f"[INFO] Custom Labels Guard: {title}"),
        email=email,
        chat=chat_notification(
            f":zzz: Custom Labels Guard: {title}", "\n".join(parts), keywords=["ACCEPTED_EXCEPTIONS"]
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
