"""The operator's command is installed and reachable, and stays off the functions' import path."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


def test_the_console_script_resolves_to_the_command() -> None:
    # Given pyproject.toml's console script
    target = PYPROJECT["project"]["scripts"]["clguard"]
    module, _, name = target.partition(":")
    # Then it names a callable that exists, in a package the build finds in the layer folder
    assert callable(getattr(importlib.import_module(module), name))
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"] == ["layers/shared"]
    assert (ROOT / "layers" / "shared" / module.replace(".", "/")).with_suffix(".py").is_file()


def test_the_readme_set_up_installs_the_project() -> None:
    # Given the Makefile's venv step (what the README's set-up runs)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    # Then it installs the project itself, without its dependencies (they are pinned apart)
    assert "pip install $(PIP_FLAGS) --no-deps -e ." in makefile


def test_python_m_clguard_runs_and_a_usage_error_exits_1() -> None:
    # When the command runs as python -m clguard
    helped = _python("", "-m", "clguard", "--help")
    wrong = _python("", "-m", "clguard", "preflight")
    # Then --help works, and a usage error exits 1 (not argparse's 2, which means "blocked")
    assert helped.returncode == 0, helped.stderr
    assert "preflight" in helped.stdout
    assert wrong.returncode == 1
    assert "--role" in wrong.stderr


@pytest.mark.parametrize("function", ["verify_object_encryption", "grant_training_access", "audit", "digest"])
def test_the_functions_never_import_the_command_or_rich(function: str) -> None:
    code = (
        f"import sys; import functions.{function}.app; "
        "bad = sorted(m for m in sys.modules if m == 'rich' or m.startswith(('rich.', 'clguard.cli'))); print(bad)"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
