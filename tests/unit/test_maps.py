"""The maps in the code stay true: the module map of ``clguard`` and of ``localaws``, and the table
of doubles in ``localaws.doubles`` (its modules, one per AWS service), name exactly what is there.

Each check compares two sets and names what is on one side only, so a module added without its
map line (or a line left behind by a removed module) fails with the name to add or remove. The
``*_reports_*`` tests prove each check fails when a name is removed from its map.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

import clguard
import localaws
from localaws import doubles
from localaws.doubles import Double, every_double

# A map entry is a bullet whose first word is a module name in double backticks, then what it does:
#   - ``events``          Every event shape we accept ...
#   - ``localaws.demo``: ``python -m localaws.demo`` ...
_MAP_ENTRY = re.compile(r"^- ``(?P<name>[\w.]+)``:?\s+(?P<what>\S.*)$", re.MULTILINE)
# A row of the doubles' table starts at column 0 with a class name, then the moto gap it covers.
_TABLE_RULE = re.compile(r"^=+\s+=+$", re.MULTILINE)
_TABLE_ROW = re.compile(r"^(?P<name>[A-Z]\w*)\s{2,}(?P<gap>\S.*)$", re.MULTILINE)


def map_entries(doc: str, *, prefix: str = "") -> dict[str, str]:
    """The module map of a package docstring: module name (without ``prefix``) -> what it does."""
    return {
        match["name"].removeprefix(prefix): match["what"]
        for match in _MAP_ENTRY.finditer(doc)
        if match["name"].startswith(prefix)
    }


def package_modules(package: ModuleType) -> set[str]:
    """Every module and subpackage of ``package``, named relative to it (``adapters.s3``)."""
    prefix = f"{package.__name__}."
    return {info.name.removeprefix(prefix) for info in pkgutil.walk_packages(package.__path__, prefix)}


def double_table(doc: str) -> dict[str, str]:
    """The table of ``localaws.doubles``' docstring (below its header row): double -> moto gap."""
    rules = list(_TABLE_RULE.finditer(doc))
    assert len(rules) == 3, "the table is a header row and a body between three ==== rules"
    body = doc[rules[1].end() : rules[2].start()]
    return {match["name"]: match["gap"] for match in _TABLE_ROW.finditer(body)}


def double_classes(module: ModuleType, all_doubles: tuple[type[Double], ...]) -> set[str]:
    """The doubles: every ``Double`` subclass the module (or a module of the package, one per AWS
    service) defines, and every one in ALL_DOUBLES."""
    modules = [module]
    if hasattr(module, "__path__"):
        prefix = f"{module.__name__}."
        modules += [importlib.import_module(info.name) for info in pkgutil.walk_packages(module.__path__, prefix)]
    defined = {
        cls
        for each in modules
        for _, cls in inspect.getmembers(each, inspect.isclass)
        if issubclass(cls, Double) and cls is not Double and cls.__module__ == each.__name__
    }
    return {cls.__name__ for cls in defined | set(all_doubles)}


def differences(mapped: set[str], actual: set[str]) -> dict[str, set[str]]:
    """What a map lacks and what it names that does not exist; empty when the map is true."""
    found = {"missing from the map": actual - mapped, "in the map, not in the code": mapped - actual}
    return {problem: names for problem, names in found.items() if names}


def newly_missing(mapped: set[str], reduced: set[str], actual: set[str]) -> set[str]:
    """What the check reports missing for the ``reduced`` map and not for the ``mapped`` one."""
    problem = "missing from the map"
    return differences(reduced, actual).get(problem, set()) - differences(mapped, actual).get(problem, set())


def _without_line(doc: str, name: str) -> str:
    """``doc`` with the (first) line that starts with ``name`` as a map entry or a table row removed."""
    pattern = re.compile(rf"^(- ``{re.escape(name)}``|{re.escape(name)}\s).*\n", re.MULTILINE)
    removed, count = pattern.subn("", doc, count=1)
    assert count == 1, name
    return removed


CLGUARD_DOC = clguard.__doc__ or ""
LOCALAWS_DOC = localaws.__doc__ or ""
DOUBLES_DOC = doubles.__doc__ or ""
ALL_DOUBLES = every_double()  # the doubles aws_behaviour() enters (localaws.doubles.s3control included)


# --- clguard's module map ---------------------------------------------------------------------


def test_clguard_map_names_every_module_of_the_package() -> None:
    # Given every module of the clguard package (adapters included) and clguard's module map
    modules = package_modules(clguard)
    entries = map_entries(CLGUARD_DOC)
    # Then each module has one map line, and each map line names a module
    assert differences(set(entries), modules) == {}
    assert {"boundary.events", "adapters", "adapters.s3"} <= modules  # the walk reaches the subpackages


def test_clguard_map_says_what_each_module_does_once() -> None:
    # Given clguard's module map
    names = [match["name"] for match in _MAP_ENTRY.finditer(CLGUARD_DOC)]
    # Then no module is listed twice, and every line says what its module does
    assert len(names) == len(set(names))
    assert all(len(what.split()) >= 3 for what in map_entries(CLGUARD_DOC).values())


@pytest.mark.parametrize("name", sorted(map_entries(CLGUARD_DOC)))
def test_clguard_map_check_reports_a_removed_module(name: str) -> None:
    # Given clguard's module map with the line of one module removed
    doc = _without_line(CLGUARD_DOC, name)
    # When it is compared with the package
    found = newly_missing(set(map_entries(CLGUARD_DOC)), set(map_entries(doc)), package_modules(clguard))
    # Then the check names exactly that module as missing
    assert found == {name}


# --- localaws's module map --------------------------------------------------------------------


def test_localaws_map_names_every_module_of_the_package() -> None:
    # Given every module of the localaws package and localaws's module map
    modules = package_modules(localaws)
    entries = map_entries(LOCALAWS_DOC, prefix="localaws.")
    # Then each module has one map line, and each map line names a module
    assert differences(set(entries), modules) == {}
    assert all(len(what.split()) >= 3 for what in entries.values())


@pytest.mark.parametrize("name", sorted(map_entries(LOCALAWS_DOC, prefix="localaws.")))
def test_localaws_map_check_reports_a_removed_module(name: str) -> None:
    # Given localaws's module map with the line of one module removed
    doc = _without_line(LOCALAWS_DOC, f"localaws.{name}")
    # When it is compared with the package
    entries = map_entries(LOCALAWS_DOC, prefix="localaws.")
    found = newly_missing(set(entries), set(map_entries(doc, prefix="localaws.")), package_modules(localaws))
    # Then the check names exactly that module as missing
    assert found == {name}


# --- the doubles' table -----------------------------------------------------------------------


def test_doubles_table_has_a_row_for_every_double_and_only_for_doubles() -> None:
    # Given the doubles localaws.doubles defines and exports, and the table of its docstring
    classes = double_classes(doubles, ALL_DOUBLES)
    table = double_table(DOUBLES_DOC)
    # Then each double is a row of the table, and each row is a double
    assert differences(set(table), classes) == {}
    # And aws_behaviour() enters every double the module defines
    assert {cls.__name__ for cls in ALL_DOUBLES} == classes


@pytest.mark.parametrize("name", sorted(double_table(DOUBLES_DOC)))
def test_doubles_table_check_reports_a_removed_row(name: str) -> None:
    # Given the table of doubles with the row of one double removed
    doc = _without_line(DOUBLES_DOC, name)
    # When it is compared with the doubles
    found = newly_missing(set(double_table(DOUBLES_DOC)), set(double_table(doc)), double_classes(doubles, ALL_DOUBLES))
    # Then the check names exactly that double as missing
    assert found == {name}


def test_doubles_table_check_reports_a_double_without_a_row() -> None:
    # Given a new double the table does not list (defined in a module like localaws.doubles)
    module = ModuleType("localaws_doubles_with_one_more")

    class ClockSkew(Double):
        """A stand-in double, only for this test."""

    ClockSkew.__module__ = module.__name__
    module.ClockSkew = ClockSkew  # type: ignore[attr-defined]
    # When its doubles are compared with the table of localaws.doubles
    table = set(double_table(DOUBLES_DOC))
    found = differences(table, double_classes(module, ALL_DOUBLES))
    # Then the check names the double that has no row
    assert "ClockSkew" in found["missing from the map"]


def test_double_classes_sees_a_double_defined_in_a_service_module_of_the_package() -> None:
    # Given the doubles package (one module per AWS service), without its ALL_DOUBLES
    # When its doubles are collected
    classes = double_classes(doubles, ())
    # Then the doubles defined in the service modules are found, not only the re-exported names
    assert {"KeyPolicyValidation", "SqsSenderIds", "UpdateObjectEncryption"} <= classes
    assert {cls.__name__ for cls in ALL_DOUBLES} == classes


# --- the README's doubles table ---------------------------------------------------------------

_README_DOUBLE_ROW = re.compile(r"^\| `(?P<name>[A-Z]\w*)` \| (?P<gap>[^|]+?) \|$", re.MULTILINE)


def readme_doubles(text: str) -> set[str]:
    """The doubles the README's "where moto differs" table names (rows ``| `Name` | gap |``)."""
    section = text.split("## Testing with moto", 1)[1].split("\n## ", 1)[0]
    return {match["name"] for match in _README_DOUBLE_ROW.finditer(section)}


def test_readme_doubles_table_names_every_double() -> None:
    # Given the README's table of where moto differs from AWS
    from localaws.template import REPO_ROOT  # noqa: PLC0415

    names = readme_doubles((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    # Then it names exactly the doubles the code has
    assert differences(names, double_classes(doubles, ALL_DOUBLES)) == {}
    # And the check sees a removed row
    assert "SqsSenderIds" not in readme_doubles("## Testing with moto\n| `KeyPolicyValidation` | x |\n## Next\n")
