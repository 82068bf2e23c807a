"""The table (rich) and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import ROOT
from bench.common import Figure

RESULTS = ROOT / "bench" / "results.json"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def environment_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "boto3": _version("boto3"),
        "botocore": _version("botocore"),
        "moto": _version("moto"),
        "aws-lambda-powertools": _version("aws-lambda-powertools"),
    }


def table(figures: list[Figure], env: dict[str, Any], seconds: float) -> Table:
    out = Table(title="Custom Labels Guard — make bench (ratios measured side by side in this run)", show_lines=True)
    out.add_column("#", justify="right", style="bold")
    out.add_column("Figure", ratio=3)
    out.add_column("Measured", justify="right", style="bold", no_wrap=True)
    out.add_column("Goal", justify="right", no_wrap=True)
    out.add_column("Result", justify="center", no_wrap=True)
    out.add_column("Absolute numbers / how", ratio=4, style="dim")
    for figure in figures:
        result = {True: "[green]PASS[/]", False: "[red bold]FAIL[/]", None: "info"}[figure.passed]
        out.add_row(figure.number, figure.title, figure.shown, figure.goal_text or "—", result, figure.detail)
    out.add_row(
        "",
        "Environment",
        f"{env['cpus_usable']} CPU",
        "—",
        "info",
        f"Python {env['python']} ({env['implementation']}), {env['platform']}, {env['cpu_count']} CPUs "
        f"({env['cpus_usable']} usable); boto3 {env['boto3']}, moto {env['moto']}, powertools "
        f"{env['aws-lambda-powertools']}; run took {seconds:.0f} s",
    )
    return out


def write_json(figures: list[Figure], env: dict[str, Any], seconds: float, path: Path = RESULTS) -> dict[str, Any]:
    goals = [f for f in figures if f.passed is not None]
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "make bench (.venv/bin/python -m bench)",
        "duration_seconds": round(seconds, 1),
        "environment": env,
        "all_goals_met": all(f.passed for f in goals),
        "goals_missed": [f.key for f in goals if not f.passed],
        "figures": [f.as_json() for f in goals],
        "information": [f.as_json() for f in figures if f.passed is None],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return document


def console() -> Console:
    width = Console().width
    return Console(width=max(width, 180) if not sys.stdout.isatty() else width)
