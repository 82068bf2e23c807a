"""The layering rule: nothing in clguard above ``clguard/adapters/`` imports botocore or boto3.
AWS errors reach the logic as the project's own (``clguard.errors``), turned so by the adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import clguard

PACKAGE = Path(clguard.__file__).parent
FORBIDDEN = ("botocore", "boto3")


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):  # every import, also those inside functions (lazy imports)
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def logic_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "adapters" not in p.relative_to(PACKAGE).parts)


def test_the_layering_check_sees_the_logic_modules() -> None:
    # Given the package, the modules the rule applies to include the use cases that call AWS
    names = {p.name for p in logic_modules()}
    assert {"keyaccess.py", "objects.py", "training.py", "publisher.py", "audit.py"} <= names
    assert not any(p.parent.name == "adapters" for p in logic_modules())


def test_no_logic_module_imports_botocore_or_boto3() -> None:
    # Given every clguard module outside clguard/adapters/
    # When its imports are read from its syntax tree
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for path in logic_modules()
        for line, name in _imported(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if name.split(".")[0] in FORBIDDEN
    ]
    # Then none is botocore or boto3: AWS is touched (and its errors translated) in the adapters only
    assert offenders == []
