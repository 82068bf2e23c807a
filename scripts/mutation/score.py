"""Score of a `make mutation` run (scripts/mutation.sh): killed / (all mutants - equivalent ones).

Reads mutmut's per-file result files (``*.py.meta``). A mutant listed in equivalent.txt (one name
a line, then `` # `` and why it cannot change behaviour) is left out of the score; any other
survivor fails the run, as does a score under 90%.
"""

# ruff: noqa: T201 - a command-line report

from __future__ import annotations

import json
import sys
from pathlib import Path

KILLED = {1, 3, 36, -24, 24, 152, 255, 37}  # a failing test, a pytest error, a timeout, a type error
THRESHOLD = 0.90


def main(mutants: Path, equivalent_file: Path, module: str) -> int:
    equivalent = {
        line.split("#", 1)[0].strip()
        for line in equivalent_file.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    survivors: list[str] = []
    total = killed = excluded = 0
    for meta in sorted(mutants.glob("src/clguard/rules/*.py.meta")):
        name = meta.name.removesuffix(".py.meta")
        if module and name != module:
            continue
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        m_total = m_killed = m_excluded = m_not_run = 0
        for key, code in codes.items():
            if key in equivalent:
                m_excluded += 1
                continue
            if code is None:  # not run: outside MUTANTS="..." of a partial run
                m_not_run += 1
                continue
            m_total += 1
            if code in KILLED:
                m_killed += 1
            else:
                survivors.append(f"{key} (exit code {code})")
        score = m_killed / m_total if m_total else 1.0
        not_run = f", {m_not_run} not run" if m_not_run else ""
        print(f"rules/{name}.py: {m_killed}/{m_total} killed ({score:.1%}), {m_excluded} equivalent excluded{not_run}")
        total, killed, excluded = total + m_total, killed + m_killed, excluded + m_excluded
    score = killed / total if total else 1.0
    print(f"rules/: {killed}/{total} killed ({score:.1%}), {excluded} equivalent mutants excluded")
    for survivor in survivors:
        print(f"  survived: {survivor}")
    return 0 if score >= THRESHOLD and not survivors else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))
