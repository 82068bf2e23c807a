"""The commands' documents, for people: rich tables (rich is imported here only). Every value is
shown as text, never as rich markup (a key's reason or an object key is data), and through the
findings' plain-text escaping (``rendering.one_line``: control, invisible and bidirectional
characters as visible escapes), since rich passes ESC through; explain prints ASCII-only JSON,
whose escaping shows control and bidirectional characters as ``\\u001b``, ``\\u202e``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import IO, Any, Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clguard.reporting.rendering import one_line

_STYLE: Final = {
    "ready": "green",
    "guard-will-fix": "cyan",
    "unknown": "yellow",
    "blocked": "bold red",
    "pass": "green",
    "fail": "bold red",
    "skip": "dim",
    "healthy": "green",
    "attention": "bold red",
}
_MARK: Final = {"pass": "✓", "fail": "✗", "skip": "–"}


def _text(value: Any, style: str = "") -> Text:
    """Any value as one escaped line (``_line``): a reason, a note or an object key is data."""
    return _line(value, style)


def _lines(values: Any, style: str = "") -> Text:
    """Several values, one escaped line each (an object key cannot add a line of its own)."""
    return Text("\n".join(one_line(str(v)) for v in values), style=style)


def show(command: str, document: Mapping[str, Any], out: IO[str]) -> None:
    console = Console(file=out, highlight=False, soft_wrap=False, width=max(100, Console(file=out).width))
    if command == "preflight":
        _preflight(console, document)
    elif command == "doctor":
        _doctor(console, document)
    elif command == "status":
        _status(console, document)
    else:  # explain: the document itself, indented (values are data: JSON, never markup), ASCII
        # only, so a bidirectional override or an invisible character in a key is shown as \uXXXX
        console.print_json(data=document, ensure_ascii=True)


def _preflight(console: Console, document: Mapping[str, Any]) -> None:
    verdict = document["verdict"]
    console.print(
        Text.assemble("Preflight for ", _text(document["role"], "bold"), ": ", _text(verdict, _STYLE[verdict]))
    )
    if not document["keys"]:
        console.print("No KMS key is needed (everything is SSE-S3): training can read its data.")
    table = Table(show_lines=True)
    for column in ("verdict", "key", "needed for", "missing", "why"):
        table.add_column(column, overflow="fold")  # an ARN or a URL is shown whole, never cut
    for entry in document["keys"]:
        table.add_row(
            _text(entry["verdict"], _STYLE[entry["verdict"]]),
            _text(entry["key_arn"] or "(no key)"),
            _lines(entry["needed_for"]),
            _text(", ".join(entry["missing_actions"])),
            _text(entry["reason"] or ""),
        )
    if document["keys"]:
        console.print(table)
    for note in document.get("notes", []):
        console.print(Text.assemble("note: ", _text(note)))


def _doctor(console: Console, document: Mapping[str, Any]) -> None:
    for check in document["checks"]:
        status = check["status"]
        console.print(Text.assemble(_text(_MARK[status], _STYLE[status]), " ", _text(check["title"])))
        if check.get("detail"):
            console.print(Text.assemble("    ", _text(check["detail"], "dim")))
        if status == "fail" and check.get("fix"):
            console.print(Text("    fix:", style="bold"))
            for line in str(check["fix"]).splitlines():
                # A fix is copied into a shell: its line-continuation backslashes stay as they are.
                console.print(Text.assemble("      ", Text(one_line(line).replace("\\\\", "\\"))))
    failed = sum(1 for c in document["checks"] if c["status"] == "fail")
    summary = "all checks passed" if not failed else f"{failed} check(s) failed"
    console.print(_text(summary, "green" if not failed else "bold red"))


def _line(value: Any, style: str = "") -> Text:
    """A value read from AWS (an owner tag, an object key, a note) as one line, escaped."""
    return Text(one_line("" if value is None else str(value)), style=style)


_SECTIONS: Final = (
    ("audit", "last audit"),
    ("findings", "open findings"),
    ("key_policy_changes", "key-policy changes"),
)


def _status(console: Console, document: Mapping[str, Any]) -> None:
    """The verdict, then each section's summary line and its details (``_STATUS_DETAILS``)."""
    verdict = document["verdict"]
    console.print(Text.assemble("Custom Labels Guard: ", _line(verdict, _STYLE[verdict])))
    for name, title in (*_SECTIONS, ("alarms", "alarms")):
        section = document[name]
        state = section["state"]
        console.print(Text.assemble(_line(f"{title}: ", "bold"), _line(section["summary"], _STYLE[state])))
        details = _STATUS_DETAILS.get(name)
        if details is not None:
            details(console, section)


def _audit_details(console: Console, section: Mapping[str, Any]) -> None:
    for label in ("run_id", "started_at", "report"):
        if section.get(label):
            console.print(Text.assemble("    ", _line(f"{label}: {section[label]}")))
    for note in section.get("notes", []):
        console.print(Text.assemble("    note: ", _line(note)))


def _findings_details(console: Console, section: Mapping[str, Any]) -> None:
    if not section.get("open"):
        return
    table = Table(show_header=True)
    for column in ("by", "value", "open"):
        table.add_column(column, overflow="fold")
    for by in ("type", "severity", "owner", "account"):
        for value, count in section.get(f"by_{by}", {}).items():
            table.add_row(_line(by), _line(value), _line(count))
    console.print(table)


def _changes_details(console: Console, section: Mapping[str, Any]) -> None:
    if not section.get("listed"):
        return
    table = Table(show_header=True)
    for column in ("since", "key", "principal", "account"):
        table.add_column(column, overflow="fold")
    for change in section["listed"]:
        key = change["kms_key_arn"] + (f" ({change['kms_key_alias']})" if change["kms_key_alias"] else "")
        table.add_row(_line(change["since"]), _line(key), _line(change["principal_arn"]), _line(change["account"]))
    console.print(table)


def _alarms_details(console: Console, section: Mapping[str, Any]) -> None:
    for alarm, alarm_state in section.get("states", {}).items():
        style = "bold red" if alarm_state == "ALARM" else "green" if alarm_state == "OK" else "yellow"
        console.print(Text.assemble("    ", _line(alarm_state, style), " ", _line(alarm)))


_STATUS_DETAILS: Final[dict[str, Callable[[Console, Mapping[str, Any]], None]]] = {
    "audit": _audit_details,
    "findings": _findings_details,
    "key_policy_changes": _changes_details,
    "alarms": _alarms_details,
}
