"""The layering rules of docs/architecture.md §2, read from every module's syntax tree:

- nothing in clguard above ``clguard/adapters/`` imports botocore or boto3 (AWS errors reach the
  logic as the project's own, ``clguard.errors``, turned so by the adapters);
- ``clguard/rules/`` imports nothing that does I/O (no adapters, state, reporting, use cases,
  telemetry): the decisions are pure;
- nothing but the use cases themselves imports ``clguard.usecases`` (the handlers call them).
"""

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


def clguard_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """The clguard modules a tree imports, as dotted names below clguard (``from clguard.rules import
    policy`` is ``rules.policy``; ``from clguard.errors import X`` is ``errors``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "clguard":
                continue
            if len(parts) == 1:
                found += [(node.lineno, alias.name) for alias in node.names]
            elif len(parts) == 2 and parts[1] in ROLE_PACKAGES:
                found += [(node.lineno, f"{parts[1]}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, ".".join(parts[1:])))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.removeprefix("clguard.")) for a in node.names if a.name.startswith("clguard.")
            ]
    return found


ROLE_PACKAGES = ("adapters", "boundary", "cli", "reporting", "rules", "state", "usecases")
# What the pure rules may not import: everything that does I/O, and the layers above them.
NOT_FROM_RULES = ("adapters", "state", "reporting", "usecases", "observability", "permissions")


def modules_in(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """Each import of a module below one of the ``forbidden`` names, as ``file:line imports name``."""
    return [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for path in paths
        for line, name in clguard_imports(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if name.split(".")[0] in forbidden
    ]


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


def test_the_role_packages_are_the_tree() -> None:
    # Given the package, each role is a folder and the module map's headings name them
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(ROLE_PACKAGES)
    # And the rules check sees the pure modules
    assert {p.name for p in modules_in("rules")} >= {"policy.py", "encryption.py", "principals.py", "arns.py"}


def test_rules_import_nothing_that_does_io() -> None:
    # Given every module of clguard/rules/
    # When its clguard imports are read
    # Then none is an adapter, state, reporting, a use case or telemetry
    assert violations(modules_in("rules"), NOT_FROM_RULES) == []


def test_only_use_cases_import_use_cases() -> None:
    # Given every clguard module outside clguard/usecases/ (and the operator's command, which
    # sits on top like the handlers)
    top = ("usecases", "cli")
    outside = [p for p in PACKAGE.rglob("*.py") if not set(top) & set(p.relative_to(PACKAGE).parts)]
    # Then none imports a use case: they sit on top, called by the handlers only
    assert violations(outside, ("usecases",)) == []


def test_nothing_but_python_m_clguard_imports_the_command() -> None:
    # Given every clguard module outside clguard/cli/, but __main__ (python -m clguard)
    outside = [
        p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"
    ]
    # Then none imports the operator's command: the functions never load it (nor rich)
    assert violations(outside, ("cli",)) == []


def test_the_import_check_reports_a_forbidden_import(tmp_path: Path) -> None:
    # Given a rule module that imports an adapter and one that imports an error
    bad = tmp_path / "bad.py"
    bad.write_text("from clguard.adapters import s3\nfrom clguard.errors import InvalidEvent\n", encoding="utf-8")
    # When the check reads it (relative names are taken from the package)
    found = [name for _, name in clguard_imports(ast.parse(bad.read_text(encoding="utf-8")))]
    # Then both imports are seen, and only the adapter is forbidden
    assert found == ["adapters.s3", "errors"]
    assert [name.split(".")[0] for name in found if name.split(".")[0] in NOT_FROM_RULES] == ["adapters"]


# The dynamodb adapter's functions that write the state table (reads are everyone's).
STATE_WRITES = frozenset(
    {"put", "add_to_set", "remove_from_set", "delete", "put_if", "put_if_returning_old", "delete_if", "update"}
)


def state_writes(tree: ast.AST) -> list[tuple[int, str]]:
    """The calls ``dynamodb.<write>(...)`` in a tree (the adapter imported as ``dynamodb``)."""
    return [
        (node.lineno, node.func.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "dynamodb"
        and node.func.attr in STATE_WRITES
    ]


def test_only_state_modules_write_the_state_table() -> None:
    # Given every clguard module outside clguard/state/ and clguard/adapters/
    outside = [p for p in PACKAGE.rglob("*.py") if not {"state", "adapters"} & set(p.relative_to(PACKAGE).parts)]
    # When its calls of the dynamodb adapter's write functions are read
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} calls dynamodb.{name}"
        for path in outside
        for line, name in state_writes(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    ]
    # Then there are none: each kind of STATE_TABLE record has one module under state/ (its key
    # scheme, TTL and bound in one place, docs/architecture.md §12)
    assert offenders == []


def test_the_state_write_check_sees_a_raw_write() -> None:
    # Given a use case that puts a raw item, and one that only reads
    tree = ast.parse(
        "from clguard.adapters import dynamodb\n"
        "dynamodb.put('t', {'id': {'S': 'remediated#x'}})\n"
        "dynamodb.get('t', 'x')\n"
    )
    # Then the write is seen, the read is not
    assert state_writes(tree) == [(2, "put")]
