"""``python -m localaws.replay EVENT.json [--param Key=Value ...]`` (``make replay EVENT=...``).

Puts your event through the template's EventBridge rules on a fresh ``LocalSystem`` and runs
the handlers on what the rules match, then prints which rule matched (or that none did, so no
handler would run in AWS either), the handler invocations and the findings.

The file may hold:

- an EventBridge event as CloudTrail or S3 deliver it (``source``, ``detail-type``, ``detail``);
- a bare CloudTrail record (``eventSource``, ``eventName``, ...), wrapped as EventBridge does
  (``source`` ``aws.<service>``, ``detail-type`` ``AWS API Call via CloudTrail``, ...);
- a CloudTrail log file (``{"Records": [...]}``) or a JSON list of either: each is put in turn.

The local account and region are the event's, so the caller is resolved as it would be in your
account. The keys, buckets and objects a real record names do not exist locally: the handlers
report them (an unusable key, objects gone), which shows what would be checked. Pass the
deployment's parameters with ``--param`` (e.g. ``--param TrainingBuckets=my-bucket``), or the
S3 rules only take the sample bucket ``custom-labels-training``.

Exit status: 0, also when no rule matched; 2 when the file is not JSON (or the arguments are wrong).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from localaws.report import invocation_table, print_alerts
from localaws.runtime import ACCOUNT_ID, REGION, DrainTimeout, LocalSystem

_DETAIL_TYPES: Final = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
    "AwsConsoleAction": "AWS Console Action via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
}
_ACCOUNT: Final = re.compile(r"^\d{12}$")
_REGION: Final = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


def is_eventbridge_event(value: Any) -> bool:
    return isinstance(value, Mapping) and {"source", "detail-type", "detail"} <= value.keys()


def is_cloudtrail_record(value: Any) -> bool:
    return isinstance(value, Mapping) and "eventSource" in value and "eventName" in value


def wrap_cloudtrail_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudTrail record as EventBridge delivers it (``detail`` is the record)."""
    service = str(record["eventSource"]).split(".", 1)[0]
    return {
        "version": "0",
        "id": str(record.get("eventID") or ""),
        "detail-type": _DETAIL_TYPES.get(str(record.get("eventType")), _DETAIL_TYPES["AwsApiCall"]),
        "source": f"aws.{service}",
        "account": str(record.get("recipientAccountId") or ""),
        "time": str(record.get("eventTime") or ""),
        "region": str(record.get("awsRegion") or ""),
        "resources": [],
        "detail": dict(record),
    }


def events_of(document: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The EventBridge events a file holds, and what in it is neither kind (described)."""
    items = document.get("Records") if isinstance(document, Mapping) and "Records" in document else document
    items = items if isinstance(items, list) else [items]
    events: list[dict[str, Any]] = []
    skipped: list[str] = []
    for index, item in enumerate(items):
        if is_eventbridge_event(item):
            events.append(dict(item))
        elif is_cloudtrail_record(item):
            events.append(wrap_cloudtrail_record(item))
        else:
            keys = ", ".join(list(item)[:6]) if isinstance(item, Mapping) else type(item).__name__
            skipped.append(f"item {index}: neither an EventBridge event nor a CloudTrail record ({keys})")
    return events, skipped


def _parameters(pairs: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {pair!r} is not Key=Value")
        values[name.strip()] = value.strip()
    return values


def _origin(events: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The account and region the events come from (else the local defaults)."""
    for event in events:
        account, region = str(event.get("account") or ""), str(event.get("region") or "")
        if _ACCOUNT.match(account):
            return account, region if _REGION.match(region) else REGION
    return ACCOUNT_ID, REGION


def _finding_table(findings: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Findings", title_justify="left", show_lines=True)
    for column in ("type", "severity", "outcome", "resource", "principal", "detail"):
        table.add_column(column, overflow="fold", ratio=3 if column == "detail" else None)
    for finding in findings:
        resource = finding.get("resource") or {}
        where = resource.get("arn") or f"s3://{resource.get('bucket')}/{resource.get('key')}"
        table.add_row(
            str(finding.get("finding_type")),
            str(finding.get("severity")),
            str(finding.get("outcome")),
            str(where),
            str(finding.get("principal_arn") or "-"),
            str(finding.get("detail")),
        )
    return table


def replay(console: Console, events: Sequence[dict[str, Any]], parameters: Mapping[str, str], args: Any) -> None:
    """Three sections: how each event routed (``_print_routing``), what each handler did
    (``_print_handlers``), what was published (``_print_findings``)."""
    account, region = _origin(events)
    with LocalSystem(parameters, account_id=account, region=region) as system:
        console.print(Text(f"Local AWS on {system.endpoint_url}, account {account}, {region}", style="bold"))
        for rule, targets in system.rule_targets.items():
            console.print(Text(f"  {rule} → {', '.join(targets)}"))
        console.print(
            Text(
                "This local world is empty: only what the stack creates exists here (no bucket, object, key or "
                "role of yours). A finding that an object or key was not found (e.g. KEY_UNUSABLE, 'not found') "
                "means this world lacks it, not your account; see make demo for a world with data.",
                style="dim",
            )
        )
        _print_routing(console, system, events)
        try:
            invocations = system.drain(timeout=60)
        except DrainTimeout as timeout:
            console.print(Text(f"the handlers did not finish: {timeout}", style="bold red"))
            invocations = system.invocations
        console.print(Rule("Handlers"))
        if not invocations:
            console.print("No handler ran.")
            return
        _print_handlers(console, invocations, args)
        _print_findings(console, system, args)


def _print_routing(console: Console, system: LocalSystem, events: Sequence[dict[str, Any]]) -> None:
    console.print(Rule("Routing"))
    for event in events:
        routed = system.put_event(event)
        what = f"{routed.source} / {routed.detail_type}"
        detail = event.get("detail")
        if isinstance(detail, Mapping) and detail.get("eventName"):
            what += f" / {detail['eventName']}"
        if routed.rules:
            console.print(Text.assemble("matched ", (", ".join(routed.rules), "bold green"), f": {what}"))
            continue
        console.print(Text.assemble(("no rule matched", "bold yellow"), f": {what}: no handler would run"))
        if routed.source == "aws.s3":
            buckets = ",".join(system.parameters["TrainingBuckets"])
            console.print(f"  (TrainingBuckets={buckets}; pass --param TrainingBuckets=<bucket> to route it)")


def _print_handlers(console: Console, invocations: Sequence[Any], args: Any) -> None:
    console.print(invocation_table(invocations))
    for invocation in invocations:
        if invocation.function.startswith("Grant") and isinstance(invocation.result, Mapping):
            summary = json.dumps(invocation.result, indent=2)
            console.print(Text(f"{invocation.function} returned:", style="bold"))
            console.print(Syntax(summary, "json", theme="ansi_dark", word_wrap=True))
        if args.logs:
            console.print(Text(f"{invocation.function} log output:", style="bold"))
            console.print(Text(invocation.output.rstrip() or "(none)"))


def _print_findings(console: Console, system: LocalSystem, args: Any) -> None:
    alerts = system.alerts()
    console.print(Rule(f"Findings ({len(alerts)})"))
    if alerts:
        console.print(_finding_table([a.finding for a in alerts]))
        if args.messages:
            print_alerts(console, alerts)
    else:
        console.print("No finding was published.")
    dead = {name: count for name, count in system.dead_letters().items() if count}
    if dead:
        console.print(Text(f"Dead-letter queues: {dead}", style="bold red"))


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localaws.replay",
        description="Route an event through the template's rules on a local moto server and run the handlers.",
    )
    parser.add_argument("event", type=Path, help="JSON file: an EventBridge event, a CloudTrail record or log file")
    parser.add_argument(
        "--param", action="append", default=[], metavar="Key=Value", help="template parameter value (repeatable)"
    )
    parser.add_argument("--logs", action="store_true", help="print the functions' log output")
    parser.add_argument("--messages", action="store_true", help="print each alert as the e-mail and Slack show it")
    args = parser.parse_args(argv)
    console = console or Console(width=None if sys.stdout.isatty() else 110)
    try:
        document = json.loads(args.event.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        console.print(Text(f"{args.event}: not a JSON file: {error}", style="bold red"))
        return 2
    try:
        parameters = _parameters(args.param)
    except ValueError as error:
        parser.error(str(error))
    events, skipped = events_of(document)
    for problem in skipped:
        console.print(Text(f"skipped {problem}: no rule could match it", style="yellow"))
    if not events:
        console.print("Nothing to route.")
        return 0
    try:
        replay(console, events, parameters, args)
    except ValueError as error:  # invalid parameter values, or PutEvents refused the event
        console.print(Text(str(error), style="bold red"))
        return 2
    except KeyboardInterrupt:
        console.print(Text("interrupted: the local server was stopped", style="yellow"))
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
