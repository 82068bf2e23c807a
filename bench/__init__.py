"""``make bench``: performance figures of Custom Labels Guard, each a ratio measured side by side.

Runs against moto in this process (and, where loopback HTTP or a separate heap matters, a moto
server), prints a table, writes ``bench/results.json`` and exits non-zero when a goal is missed.
See bench/README.md for what each figure measures and how.

The import path is the one the tests use (pyproject ``pythonpath``): the layer folder (as
Lambda's /opt/python) and the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "shared"
FUNCTIONS = ROOT / "functions"

for _path in (str(LAYER), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
