"""Rendering what happened on a LocalSystem with rich: invocations, alerts, key policy changes.

Alerts are shown as their two human renderings: the ``email`` text (as an e-mail subscriber
reads it) and the ``https`` chat notification as Slack shows it (Amazon Q Developer in chat
applications renders ``title``, ``description`` and ``nextSteps`` of the custom notification
schema; ``client-markdown`` is Slack's mrkdwn: ``*bold*``, ``_italic_``, ``~strike~``,
`` `code` `` and ``:emoji:`` short codes).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from localaws.observed import Alert, Invocation

__all__ = [
    "PolicyChange",
    "alert_panels",
    "invocation_table",
    "policy_changes",
    "policy_diff",
    "print_alerts",
    "print_policy_change",
    "slack_text",
]

_EMOJI: Final = {
    ":rotating_light:": "🚨",
    ":warning:": "⚠️",
    ":white_check_mark:": "✅",
    ":memo:": "📝",
    ":no_entry:": "⛔",
    ":x:": "❌",
    ":lock:": "🔒",
    ":key:": "🔑",
}
# Slack applies *bold*, _italic_ and ~strike~ only at word boundaries (``OBJECT_UNENCRYPTED`` stays
# as it is); code spans and emoji short codes come first.
_MRKDWN: Final = re.compile(
    r"`([^`\n]+)`"
    r"|(:[a-z0-9_+-]+:)"
    r"|(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])"
    r"|(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])"
    r"|(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])"
)
_SEVERITY_STYLE: Final = {"HIGH": "bold red", "MEDIUM": "bold yellow"}


def slack_text(markdown: str) -> Text:
    """Slack mrkdwn as rich Text (code, bold, italic, strike-through, emoji short codes)."""
    text = Text()
    position = 0
    for match in _MRKDWN.finditer(markdown):
        text.append(markdown[position : match.start()])
        code, emoji, bold, italic, strike = match.groups()
        if code is not None:
            text.append(code, style="bold magenta")
        elif emoji is not None:
            text.append(_EMOJI.get(emoji, emoji))
        elif bold is not None:
            text.append(bold, style="bold")
        elif italic is not None:
            text.append(italic, style="italic")
        else:
            text.append(strike, style="strike")
        position = match.end()
    text.append(markdown[position:])
    return text


def _slack_message(chat: Mapping[str, Any]) -> Group:
    content = chat.get("content") or {}
    parts: list[Any] = [
        Text.assemble(("AWS  ", "dim"), slack_text(str(content.get("title", "")))),
        slack_text(str(content.get("description", ""))),
    ]
    steps = content.get("nextSteps") or []
    if steps:
        parts.append(Text("Next Steps", style="bold"))
        parts.extend(Text.assemble("  • ", slack_text(str(step))) for step in steps)
    return Group(*parts)


def alert_panels(alert: Alert, index: int | None = None) -> list[Panel]:
    """The e-mail and the Slack message of one alert."""
    finding = alert.finding
    severity = str(finding.get("severity", ""))
    number = f"#{index} " if index is not None else ""
    email = Panel(
        Group(
            Text.assemble(("Subject: ", "bold"), (alert.subject or "(none)", _SEVERITY_STYLE.get(severity, ""))),
            Text(""),
            Text(alert.email),
        ),
        title=Text.assemble(number, ("E-mail", "bold")),
        title_align="left",
        border_style="blue",
    )
    slack = Panel(
        _slack_message(alert.chat),
        title=Text.assemble(number, ("Slack", "bold"), "  #ml-alerts"),
        title_align="left",
        border_style="magenta",
    )
    return [email, slack]


def print_alerts(console: Console, alerts: Sequence[Alert]) -> None:
    for index, alert in enumerate(alerts, 1):
        for panel in alert_panels(alert, index):
            console.print(panel)


def _describe_event(event: Any) -> str:
    """One line per event a handler received: a message of ours, an S3 notification, a CloudTrail
    call, or its source and type."""
    if not isinstance(event, Mapping):
        return str(event)[:80]
    raw = event.get("detail")
    detail: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    if event.get("kind"):
        return f"{event['kind']} message"
    if event.get("finding_type"):  # the alerts topic's raw message: a finding document (digest)
        resource = event.get("resource") or {}
        where = resource.get("arn") or f"s3://{resource.get('bucket')}/{resource.get('key')}"
        return f"{event['finding_type']} {event.get('outcome')} {where}"
    if event.get("message_kind"):  # the audit's summary, on the alerts topic
        return f"{event['message_kind']} message"
    if event.get("detail-type") == "Object Created":
        bucket = (detail.get("bucket") or {}).get("name")
        key = (detail.get("object") or {}).get("key")
        return f"Object Created s3://{bucket}/{key}"
    if "eventName" in detail:
        return f"{detail['eventName']} by {_caller(detail)}"
    return f"{event.get('source')} {event.get('detail-type')}"


def _caller(detail: Mapping[str, Any]) -> str:
    """A CloudTrail record's caller: the role a session was issued by, else its ARN or type."""
    identity = detail.get("userIdentity") or {}
    issuer = ((identity.get("sessionContext") or {}).get("sessionIssuer") or {}).get("arn")
    return str(issuer or identity.get("arn") or identity.get("type") or "?")


def _summarise_result(invocation: Invocation) -> str:
    if invocation.error:
        return f"error: {invocation.error}"
    if invocation.failed_records:
        return f"{len(invocation.failed_records)} record(s) failed"
    result = invocation.result
    if isinstance(result, Mapping) and "status" in result:
        keys = result.get("keys") or {}
        states = ", ".join(f"{state}" for state in keys.values())
        return f"{result['status']}; {result.get('objects_checked', 0)} objects; keys: {states or '-'}"
    if isinstance(result, Mapping) and "batchItemFailures" in result:
        return "ok (no failed records)"
    return "ok"


def invocation_table(invocations: Iterable[Invocation], title: str = "Handler invocations") -> Table:
    table = Table(title=title, title_justify="left", show_lines=True, expand=True)
    table.add_column("#", justify="right")
    table.add_column("function", no_wrap=True)
    table.add_column("trigger", overflow="fold", ratio=2, min_width=14)
    table.add_column("events delivered", overflow="fold", ratio=4)
    table.add_column("result", overflow="fold", ratio=2)
    table.add_column("alerts", justify="right")
    for number, invocation in enumerate(invocations, 1):
        described = [_describe_event(e) for e in invocation.events]
        shown = "\n".join(described[:4]) + (f"\n… and {len(described) - 4} more" if len(described) > 4 else "")
        function = invocation.function.removesuffix("Function")
        attempt = f" (attempt {invocation.attempt})" if invocation.attempt > 1 else ""
        table.add_row(
            str(number),
            function,
            invocation.trigger + attempt,
            shown,
            _summarise_result(invocation),
            str(len(invocation.alert_ids)),
        )
    return table


# --- key policies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyChange:
    """A principal that a statement of the new policy allows and the old one did not."""

    sid: str
    principal: str
    actions: tuple[str, ...]
    condition: str
    new_statement: bool


def _principals(statement: Mapping[str, Any] | None) -> set[str]:
    if not statement:
        return set()
    principal = statement.get("Principal")
    if principal == "*":
        return {"*"}
    if not isinstance(principal, Mapping):
        return set()
    found: set[str] = set()
    for values in principal.values():
        found.update([values] if isinstance(values, str) else list(values or []))
    return found


def policy_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[PolicyChange]:
    """Principals added to the policy, per statement (matched by ``Sid``)."""
    old = {str(s.get("Sid", "")): s for s in before.get("Statement", []) if isinstance(s, Mapping)}
    changes: list[PolicyChange] = []
    for statement in after.get("Statement", []):
        if not isinstance(statement, Mapping):
            continue
        sid = str(statement.get("Sid", ""))
        previous = old.get(sid)
        actions = statement.get("Action", [])
        action_list = tuple([actions] if isinstance(actions, str) else actions)
        condition = json.dumps(statement["Condition"], separators=(",", ":")) if "Condition" in statement else ""
        for principal in sorted(_principals(statement) - _principals(previous)):
            changes.append(PolicyChange(sid, principal, action_list, condition, previous is None))
    return changes


def policy_diff(before: Mapping[str, Any], after: Mapping[str, Any], name: str) -> str:
    """A unified diff of the two policies, both pretty-printed the same way."""
    old = json.dumps(before, indent=2).splitlines()
    new = json.dumps(after, indent=2).splitlines()
    return "\n".join(
        difflib.unified_diff(old, new, fromfile=f"{name} (before)", tofile=f"{name} (after)", n=2, lineterm="")
    )


def print_policy_change(console: Console, name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    changes = policy_changes(before, after)
    if not changes and before == after:
        console.print(Text.assemble(("  unchanged  ", "green"), name))
        return
    table = Table(title=f"{name}: principals added", title_justify="left")
    table.add_column("statement (Sid)", overflow="fold")
    table.add_column("principal", overflow="fold")
    table.add_column("actions", overflow="fold")
    table.add_column("condition", overflow="fold")
    for change in changes:
        sid = change.sid + (" (new statement)" if change.new_statement else "")
        table.add_row(sid, change.principal, "\n".join(change.actions), change.condition or "-")
    console.print(table)
    console.print(Syntax(policy_diff(before, after, name), "diff", theme="ansi_dark", word_wrap=True))
