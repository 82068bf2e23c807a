"""``python -m bench`` (``make bench``): run every figure, print the table, write bench/results.json,
exit 1 when a goal is missed (2 when the benchmark itself broke).

    python -m bench                      # everything (~1.5 min on 2 cores)
    python -m bench --only calls,policy  # some groups (bench/results.json is only written by full runs)
    python -m bench --profile latency    # cProfile one group, top functions on stderr
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import sys
import time
import traceback
from collections.abc import Callable

import bench  # noqa: F401 - sets the import path first
from bench.common import Figure, failed_figure, progress

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the in-process moto server's access log

GROUPS = (
    "calls",
    "c7n",
    "latency",
    "coldstart",
    "grant",
    "memory",
    "policy",
    "audit",
    "digest",
    "accounts",
    "organization",
    "inventory",
    "members",
    "report",
    "bulk",
    "group",
    "findings",
)
NUMBERS = {
    "calls": "1",
    "latency": "2",
    "coldstart": "3",
    "grant": "4",
    "memory": "5",
    "policy": "6",
    "audit": "7",
    "digest": "8",
    "accounts": "9",
    "organization": "10",
    "inventory": "11",
    "members": "12",
    "report": "13",
    "bulk": "14",
    "group": "15",
    "findings": "16",
}


def _calls() -> list[Figure]:
    from bench.calls import compliant_calls, cost_figures, trail_calls  # noqa: PLC0415

    measured = [compliant_calls(), trail_calls(sse_s3=False), trail_calls(sse_s3=True)]
    return measured + cost_figures(measured)


def _latency() -> list[Figure]:
    from bench.latency import handler_vs_head  # noqa: PLC0415

    return handler_vs_head()


def _coldstart() -> list[Figure]:
    from bench.coldstart import cold_start  # noqa: PLC0415

    return cold_start()


def _grant() -> list[Figure]:
    from bench.calls import dataset_grant_figure, first_grant_figure, grant_figure  # noqa: PLC0415

    return [grant_figure(), dataset_grant_figure(), first_grant_figure()]


def _memory() -> list[Figure]:
    from bench.memory import manifest_memory  # noqa: PLC0415

    return manifest_memory()


def _policy() -> list[Figure]:
    from bench.policysize import policy_growth  # noqa: PLC0415

    return policy_growth()


def _accounts() -> list[Figure]:
    from bench.accounts import member_overhead  # noqa: PLC0415

    return member_overhead()


def _audit() -> list[Figure]:
    from bench.audit import audit_figures  # noqa: PLC0415

    return audit_figures()


def _inventory() -> list[Figure]:
    from bench.inventory import inventory_figures  # noqa: PLC0415

    return inventory_figures()


def _member_audit() -> list[Figure]:
    from bench.member_audit import member_audit_figures  # noqa: PLC0415

    return member_audit_figures()


def _report() -> list[Figure]:
    from bench.auditpage import report_page_figures  # noqa: PLC0415

    return report_page_figures()


def _bulk() -> list[Figure]:
    from bench.bulk import bulk_figures  # noqa: PLC0415

    return bulk_figures()


def _group() -> list[Figure]:
    from bench.groupcommit import group_commit_figures  # noqa: PLC0415

    return group_commit_figures()


def _findings() -> list[Figure]:
    from bench.findings import findings_figures  # noqa: PLC0415

    return findings_figures()


def _digest() -> list[Figure]:
    from bench.digest import human_messages_per_burst  # noqa: PLC0415

    return [human_messages_per_burst()]


RUNNERS: dict[str, tuple[Callable[[], list[Figure]], str, float | None, str]] = {
    "calls": (_calls, "AWS calls per compliant object event", 1.05, "≤ 1.05"),
    "latency": (_latency, "Handler wall time per event ÷ bare HeadObject", 1.5, "≤ 1.5"),
    "coldstart": (_coldstart, "Cold import + init ÷ import boto3 + one client", 1.5, "≤ 1.5"),
    "grant": (_grant, "Grant path AWS calls, 10,000 images under 2 CMKs", 10_020.0, "≤ 10,020"),
    "memory": (_memory, "Peak memory, 250,000 ÷ 1,000 manifest lines", 1.2, "≤ 1.2"),
    "policy": (_policy, "Key-policy bytes per principal", 4.0, "≤ ARN + 4"),
    "accounts": (_accounts, "Extra AWS calls per member-account object event", 0.01, "≤ 0.01"),
    "audit": (_audit, "Audit: calls per compliant existing object", 1.002, "≤ 1.002"),
    "digest": (_digest, "Messages for people per 10,000-finding burst", 5.0, "≤ 5"),
    "inventory": (_inventory, "S3 Inventory reader rows/s ÷ bare gzip + csv", 0.5, "≥ 0.5"),
    "members": (_member_audit, "Organizations: audit of 200 member accounts", 1.01, "≤ 1.01"),
    "report": (_report, "Audit report page, 100,000 rows", 2.0, "< 2 s CPU, < 5 MB"),
    "bulk": (_bulk, "Bulk re-encryption: Lambda-side AWS calls per object", 0.01, "≤ 0.01"),
    "group": (_group, "Group commit: PutKeyPolicy calls, 20 concurrent trainers on one key", 2.0, "≤ 2"),
    "findings": (_findings, "Findings in bulk: SNS calls for a 10,000-finding burst", 1_001.0, "≤ 1,001"),
}


def run_group(name: str, profile: bool) -> list[Figure]:
    runner, title, goal, goal_text = RUNNERS[name]
    profiler = cProfile.Profile() if profile else None
    try:
        if profiler is not None:
            profiler.enable()
        return runner()
    except Exception as error:  # noqa: BLE001 - a broken figure is reported as a miss
        traceback.print_exc()
        return [failed_figure(name, title, goal, goal_text, error)]
    finally:
        if profiler is not None:
            profiler.disable()
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("cumulative")
            stats.print_stats(40)
            print(text.getvalue(), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups of: {', '.join(GROUPS)}")
    parser.add_argument("--profile", default="", help="cProfile these groups (comma-separated); stats on stderr")
    args = parser.parse_args(argv)
    chosen = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(chosen) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    profiled = {g.strip() for g in args.profile.split(",") if g.strip()}

    from bench.report import console, environment_info, table, write_json  # noqa: PLC0415

    started = time.perf_counter()
    figures: list[Figure] = []
    for group in GROUPS:
        if group not in chosen:
            continue
        if group == "c7n":
            from bench.custodian import custodian  # noqa: PLC0415

            ours = next((f.value for f in figures if f.key == "calls_per_compliant_event"), None)
            try:
                figures += custodian(ours)
            except Exception:  # noqa: BLE001 - information only
                traceback.print_exc()
            continue
        if group == "organization":  # priced from figures 1 and 7 of this run
            from bench.organization import organization_figures  # noqa: PLC0415

            try:
                rows = organization_figures(figures)
            except Exception as error:  # noqa: BLE001 - a broken figure is reported as a miss
                traceback.print_exc()
                rows = [failed_figure(group, "Monthly cost at organization scale", 0.1, "≤ 0.1", error)]
            for figure in rows:
                figure.number = NUMBERS[group]
            figures += rows
            continue
        rows = run_group(group, group in profiled)
        goals = [f for f in rows if f.passed is not None]
        for index, figure in enumerate(goals):
            figure.number = NUMBERS[group] + ("abcdefgh"[index] if len(goals) > 1 else "")
        figures += rows
    seconds = time.perf_counter() - started
    env = environment_info()
    console().print(table(figures, env, seconds))
    missed = [f.key for f in figures if f.passed is False]
    if set(chosen) == set(GROUPS):
        write_json(figures, env, seconds)
        progress(f"{len(figures)} rows in {seconds:.0f} s; results in bench/results.json")
    else:
        progress(f"{len(figures)} rows in {seconds:.0f} s; partial run: bench/results.json left as it was")
    if any(f.shown == "error" for f in figures):
        progress("a measurement failed (see above)")
        return 2
    if missed:
        progress(f"goals missed: {', '.join(missed)}")
        return 1
    progress("all goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
