"""``python -m localaws.exceptions_check FILE [--findings FINDINGS]`` (``make exceptions-check``):
check an accepted-exceptions document (docs/architecture.md §5b) before it is deployed.

It validates the document exactly as the functions do (same rules, same messages) and, given
current findings (a JSON list of finding documents, an object with a ``findings`` list such as the
audit's JSON report, or JSON Lines such as the SNS ``default`` messages a subscriber kept), lists
which of them it would mute, and which an expired exception no longer mutes.

Exit status: 0 valid, 2 invalid, 1 usage error (a file that cannot be read).
The operator CLI (``clguard``) can call :func:`main` as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import localaws  # noqa: F401 - puts the layer on sys.path
from clguard.reporting.exceptions import check


def finding_documents(text: str) -> list[Mapping[str, Any]]:
    """The finding documents of a JSON list, an object with ``findings``, or JSON Lines."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(value, Mapping):
        value = value.get("findings", [value])
    if not isinstance(value, list):
        raise TypeError("expected a list of finding documents, an object with findings, or JSON Lines")
    return [v for v in value if isinstance(v, Mapping)]


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="exceptions-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("document", type=Path, help="the accepted-exceptions document (JSON or YAML)")
    parser.add_argument("--findings", type=Path, help="current findings to judge with it")
    parser.add_argument("--today", help="judge expiry on this day (YYYY-MM-DD; default: today, UTC)")
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        return 1
    try:
        raw = args.document.read_bytes()
        documents = finding_documents(args.findings.read_text()) if args.findings else []
    except (OSError, ValueError, TypeError) as error:
        print(f"cannot read: {error}", file=out)
        return 1
    report = check(raw, documents, today=args.today)
    if report.problem:
        print(f"INVALID {args.document}: {report.problem}", file=out)
        print("Deployed like this, it would mute nothing and raise one EXCEPTIONS_INVALID finding.", file=out)
        return 2
    print(f"valid: {args.document}", file=out)
    if args.findings:
        print(f"{len(report.muted)} of {len(documents)} findings would be muted:", file=out)
        for exception_id, finding in report.muted:
            print(f"  {exception_id}: {finding.finding_type.value} {finding.resource.label()!r}", file=out)
        for exception_id, finding in report.expired:
            print(
                f"  expired {exception_id}: {finding.finding_type.value} {finding.resource.label()!r} alerts", file=out
            )
        if report.unreadable:
            print(f"  ({report.unreadable} entries were not finding documents)", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
