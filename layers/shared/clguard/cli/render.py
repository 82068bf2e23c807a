"""The commands' documents, for people: rich tables (rich is imported here only). Every value is
shown as text, never as rich markup (a key's reason or an object key is data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any, Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

_STYLE: Final = {
    "ready": "green",
    "guard-will-fix": "cyan",
    "unknown": "yellow",
    "blocked": "bold red",
    "pass": "green",
    "fail": "bold red",
    "skip": "dim",
}
_MARK: Final = {"pass": "✓", "fail": "✗", "skip": "–"}


def _text(value: Any, style: str = "") -> Text:
    return Text("" if value is None else str(value), style=style)


def show(command: str, document: Mapping[str, Any], out: IO[str]) -> None:
    console = Console(file=out, highlight=False, soft_wrap=False, width=max(100, Console(file=out).width))
    if command == "preflight":
        _preflight(console, document)
    elif command == "doctor":
        _doctor(console, document)
    else:  # explain: the document itself, indented (values are data: JSON, never markup)
        console.print_json(data=document)


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
            _text("\n".join(entry["needed_for"])),
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
                console.print(Text.assemble("      ", _text(line)))
    failed = sum(1 for c in document["checks"] if c["status"] == "fail")
    summary = "all checks passed" if not failed else f"{failed} check(s) failed"
    console.print(_text(summary, "green" if not failed else "bold red"))
