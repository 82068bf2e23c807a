"""A digest of several findings of one kind about one place: one message with the count, the first
few in full and every resource as many as fit (see ``clguard.usecases.digest``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from clguard.reporting.rendering import (
    chat_notification,
    code_span,
    key_name,
    markdown_text,
    next_steps,
    one_line,
)
from clguard.usecases.digestmessages import (
    CHAT_LISTED,
    DIGEST_KIND,
    EMAIL_BUDGET,
    FIRST_LISTED,
    HumanMessage,
    md_word,
    place,
    short_hash,
    single,
    subject_line,
    thread_id,
)

if TYPE_CHECKING:
    from clguard.usecases.digest import Item


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


@dataclass(frozen=True, slots=True)
class Group:
    """What one digest says, read once from its findings' documents: the steps below render it.

    - :func:`_where`: the place (an object's bucket and the common folder of its keys, else the
      resource) and each resource's name relative to it;
    - :func:`_email`: the head (what, where, when, what was done, what next), the first few in full,
      then every name as many as fit in :data:`EMAIL_BUDGET`;
    - :func:`_chat`: the chat notification (the first :data:`CHAT_LISTED` names);
    - :func:`_document`: the ``default`` document for machines.
    """

    key: GroupKey
    documents: Sequence[Mapping[str, Any]]
    resources: Sequence[str]  # each finding's resource as people name it
    where: str
    relative: Sequence[str]  # each resource relative to ``where``
    digest_id: str
    observed: Sequence[str]  # the findings' observation times, sorted
    steps: Sequence[str]
    done: tuple[str, str, str]  # emoji, short and long words for the outcome

    @property
    def n(self) -> int:
        return len(self.documents)


def _where(key: GroupKey, documents: Sequence[Mapping[str, Any]], resources: Sequence[str]) -> tuple[str, list[str]]:
    if not key.place.startswith("s3://"):
        return key.place, list(resources)
    keys = [str((d.get("resource") or {}).get("key", "")) for d in documents]
    folder = _common_prefix(keys)
    return f"{key.place}{folder}", [k[len(folder) :] for k in keys]


def group_of(key: GroupKey, items: Sequence[Item]) -> Group:
    documents = [item.document for item in items if item.document is not None]
    resources = [_label(d) for d in documents]
    where, relative = _where(key, documents, resources)
    finding = items[0].finding
    # The steps are written for one finding; a digest speaks of all of them.
    steps = [step.replace("this object", "these objects") for step in next_steps(finding)] if finding else []
    return Group(
        key=key,
        documents=documents,
        resources=resources,
        where=where,
        relative=relative,
        digest_id=short_hash(key, [item.record_id for item in items]),
        observed=sorted(str(d.get("observed_at", "")) for d in documents),
        steps=steps,
        done=_DONE.get(key.outcome, (":warning:", key.outcome, key.outcome)),
    )


def _email_head(group: Group) -> list[str]:
    # The group's words come from the documents read from the queue: data, escaped like the rest.
    key, n = group.key, group.n
    kind, severity, account, region = (one_line(v) for v in (key.finding_type, key.severity, key.account, key.region))
    lines = [
        f"Custom Labels Guard digest: {n:,} {kind} ({severity}), {one_line(group.done[1])}",
        "",
        f"Where: {one_line(group.where)} in account {account}, {region}",
        f"When: observed {one_line(group.observed[0])} to {one_line(group.observed[-1])}",
        f"What was done: {one_line(group.done[2])}",
    ]
    if group.steps:
        lines.append("What to do next:")
        lines.extend(f"  - {step}" for step in group.steps)
    lines += ["", f"First {min(FIRST_LISTED, n)} of {n:,}:"]
    for document in group.documents[:FIRST_LISTED]:
        lines.append(f"  - {one_line(_label(document))}: {one_line(str(document.get('detail', ''))[:2000])}")
    return lines


def _email(group: Group) -> str:
    n = group.n
    lines = [*_email_head(group), "", f"All {n:,} (relative to {one_line(group.where)}):"]
    size = sum(_cost(line) for line in lines)
    listed = 0
    for name in group.relative:
        line = f"  {one_line(name)}"
        if size + _cost(line) > EMAIL_BUDGET:
            break
        lines.append(line)
        size += _cost(line)
        listed += 1
    if listed < n:
        lines.append(
            f"  … {n - listed:,} more not listed here: the digest function's log lists them all "
            f'(CloudWatch Logs Insights: filter digest_id = "{group.digest_id}"), and each is its own '
            "message on the alerts topic."
        )
    lines += ["", f"Digest {group.digest_id}; every finding is also on the alerts topic as its own message."]
    return "\n".join(lines)


def _chat(group: Group) -> dict[str, Any]:
    key, n, where = group.key, group.n, group.where
    md_kind, md_done = md_word(key.finding_type), markdown_text(group.done[1])
    parts = [f"*{n:,} {md_kind} in {code_span(where)}, {md_done}*"]
    parts += [f"• {code_span(r)}" for r in group.relative[:CHAT_LISTED]]
    if n > CHAT_LISTED:
        parts.append(
            f"… and {n - CHAT_LISTED:,} more: full list in the e-mail digest (digest {code_span(group.digest_id)})"
        )
    parts.append(f"*First:* {markdown_text(str(group.documents[0].get('detail', '')))}")
    parts.append(
        f"*Account:* {markdown_text(key.account)} ({markdown_text(key.region)}) · "
        f"*Observed:* {markdown_text(group.observed[0])} to {markdown_text(group.observed[-1])}"
    )
    return chat_notification(
        f"{group.done[0]} {n:,} × {md_kind} ({md_word(key.severity)}): {md_done}",
        "\n".join(parts),
        steps=group.steps,
        keywords=[md_word(v)[:50] for v in (key.finding_type, key.severity, key.outcome)],
        notification_id=group.digest_id,
        metadata={
            "threadId": key.thread,
            "summary": one_line(f"{n:,} {key.finding_type} {key.outcome} in {where}")[:250],
            "eventType": one_line(key.finding_type),
            "relatedResources": [one_line(r) for r in group.resources[:5]],
        },
    )


def _document(group: Group) -> dict[str, Any]:
    key = group.key
    return {
        "schema_version": "1",
        "message_kind": DIGEST_KIND,
        "digest_id": group.digest_id,
        "finding_type": key.finding_type,
        "severity": key.severity,
        "outcome": key.outcome,
        "account": key.account,
        "region": key.region,
        "place": group.where,
        "count": group.n,
        "first": [
            {k: v for k, v in d.items() if k not in ("change", "changes")} for d in group.documents[:FIRST_LISTED]
        ],
        "observed_from": group.observed[0],
        "observed_to": group.observed[-1],
    }


def grouped(key: GroupKey, items: Sequence[Item]) -> HumanMessage:
    """Several findings of one kind about one place: one message with counts (a group of one is
    the finding alone)."""
    if len(items) == 1:
        return single(items[0])
    group = group_of(key, items)
    return HumanMessage(
        subject=subject_line(f"[{key.severity}] {group.n:,} x {key.finding_type} {key.outcome} {group.where}"),
        email=_email(group),
        chat=_chat(group),
        default=_document(group),
        attributes={
            "finding_type": key.finding_type,
            "severity": key.severity,
            "outcome": key.outcome,
            "message_kind": DIGEST_KIND,
        },
        record_ids=[item.record_id for item in items],
        digest_id=group.digest_id,
        resources=list(group.resources),
    )
