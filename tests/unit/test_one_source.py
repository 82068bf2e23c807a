"""One source per contract list (issue 22, item 5): each list the contract names is defined once in
the code, and every other place that names it -- code, docs, the report rows' schema -- is tied to
that one definition here. A copy that drifts (a severity added, an immediate type dropped, a chat
message built by hand, a variable read beside boundary/config.py) fails one of these tests.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from clguard.adapters import sns
from clguard.boundary.config import Settings
from clguard.reporting import asff, auditreport, pagestyle
from clguard.reporting.findings import Severity
from clguard.reporting.rendering import chat_notification
from clguard.usecases import auditrecord
from clguard.usecases.digest import IMMEDIATE_TYPES
from localaws import report

ROOT = Path(__file__).resolve().parents[2]
TREE = ("layers", "functions", "localaws", "bench")
SEVERITY_WORD = re.compile(r"\b(HIGH|MEDIUM|LOW|CRITICAL|INFORMATIONAL)\b")


def python_files() -> Iterator[Path]:
    for top in TREE:
        yield from sorted((ROOT / top).rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            found.add(id(body[0].value))
    return found


def string_literals(path: Path) -> Iterator[str]:
    """The string constants of a module that are not docstrings (words of the code, not prose)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.value


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- severities ------------------------------------------------------------------------------------


def test_every_user_of_the_severities_follows_the_one_list() -> None:
    # Given the finding severities, most severe first (reporting.findings.Severity)
    values = [severity.value for severity in Severity]
    # Then the report orders its rows by it, the page colours each one, the demo styles each one,
    # the rows' schema enumerates exactly them, and each is a label Security Hub accepts
    assert list(auditreport._SEVERITY_ORDER) == values
    assert set(pagestyle.SEVERITY_COLOURS) == set(Severity)
    assert all(f".{value}{{color:" in pagestyle.STYLE for value in values)
    assert set(report._SEVERITY_STYLE) == set(Severity)
    schema = json.loads((ROOT / "docs" / "audit-row.schema.json").read_text(encoding="utf-8"))
    assert schema["properties"]["severity"]["enum"] == values
    assert set(values) <= asff.SEVERITY_LABELS


def test_no_module_but_the_findings_spells_a_severity() -> None:
    # Given every module of the tree (its words, not its docstrings)
    # When the ones spelling a severity are listed
    spelled = {
        relative(path)
        for path in python_files()
        if any(
            SEVERITY_WORD.fullmatch(word) or re.search(r"\.(HIGH|MEDIUM|LOW)\{", word) for word in string_literals(path)
        )
    }
    # Then only the findings define them, and the ASFF module lists Security Hub's own labels
    assert spelled == {"layers/shared/clguard/reporting/findings.py", "layers/shared/clguard/reporting/asff.py"}


# --- the immediate-alert finding types -------------------------------------------------------------


def _backticked(text: str) -> set[str]:
    return set(re.findall(r"`([A-Z_]+)`", text))


def test_the_docs_name_exactly_the_immediate_types() -> None:
    # Given the digest's immediate types (never grouped; plus every FAILED outcome)
    immediate = {finding_type.value for finding_type in IMMEDIATE_TYPES}
    # When the README and the architecture say which findings arrive alone
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    said_readme = re.search(r"These arrive alone, first in their batch:(.*?)any `FAILED` outcome", readme, re.DOTALL)
    said_architecture = re.search(r"severe\s+findings \((.*?)\) alone and first", architecture, re.DOTALL)
    assert said_readme is not None
    assert said_architecture is not None
    # Then both name exactly those (the architecture adds the FAILED outcome to its list)
    assert _backticked(said_readme.group(1)) == immediate
    assert _backticked(said_architecture.group(1)) == immediate | {"FAILED"}


# --- the chat envelope -----------------------------------------------------------------------------


def test_one_builder_makes_every_chat_envelope() -> None:
    # Given every module of the tree
    # When the ones spelling the chat schema's envelope are listed
    building = {
        relative(path)
        for path in python_files()
        if any(word in {"client-markdown", "textType"} for word in string_literals(path))
    }
    # Then only reporting.rendering does (chat_notification: the finding, the digest, the audit summary)
    assert building == {"layers/shared/clguard/reporting/rendering.py"}


def test_the_chat_envelope_is_the_schema_and_escaped() -> None:
    # Given a title and a description from outside
    # When the one builder makes the envelope
    chat = chat_notification("<!channel> & title", "<https://x|click>", keywords=["K"], notification_id="i")
    # Then it is the custom notification schema, version 1.0, every string Slack-escaped
    assert chat == {
        "version": "1.0",
        "source": "custom",
        "id": "i",
        "content": {
            "textType": "client-markdown",
            "title": "&lt;!channel&gt; &amp; title",
            "description": "&lt;https://x|click&gt;",
            "keywords": ["K"],
        },
    }


def test_the_audit_summary_chat_cannot_mention_or_link(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a run whose notes carry text from outside (an AWS error message, an inventory line)
    data: dict[str, Any] = {
        "run_id": "r1",
        "mode": "enforce",
        "duration_seconds": 1,
        "buckets": [{"objects": 1}],
        "conditions_by_type": {},
        "new_alerts_by_type": {},
        "notes": ["b: could not be listed (AccessDenied: <!channel> <https://evil.example|Open the console> &)"],
        "account": "123456789012",
        "region": "us-east-1",
        "started_at": "2026-01-01T00:00:00Z",
        "objects_listed": 1,
    }
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(sns, "publish", lambda topic, **kwargs: sent.append(kwargs))
    settings = cast(Settings, SimpleNamespace(alert_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts"))
    # When its summary is published
    auditrecord.publish_summary(settings, data, {"html": "s3://r/p/index.html"})
    # Then the chat rendering shows the note's text, escaped: no mention, no forged link
    chat = json.loads(json.loads(sent[0]["message"])["https"])
    description = chat["content"]["description"]
    assert "<" not in description
    assert ">" not in description
    assert "&lt;!channel&gt;" in description
    assert "&amp;)" in description


# --- configuration enters through boundary/config.py -------------------------------------------------


def _reads_the_environment(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
        and node.attr in {"environ", "getenv"}
        for node in ast.walk(tree)
    )


def test_no_logic_module_reads_the_environment() -> None:
    # Given the clguard package (handlers pass os.environ to boundary/config.py's loaders)
    package = ROOT / "layers" / "shared" / "clguard"
    # When the modules reading os.environ are listed
    reading = {path.relative_to(package).as_posix() for path in package.rglob("*.py") if _reads_the_environment(path)}
    # Then only the operator's command (its own process) and the logger's service name do
    assert reading == {"cli/main.py", "observability.py"}
