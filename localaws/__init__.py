"""Custom Labels Guard on this machine: moto as AWS, the template's routing, the real handlers.

- ``localaws.doubles``: named moto patches that make moto behave like AWS where our code depends
  on it.
- ``localaws.template``: the template loader and intrinsic-function resolver (one for the project).
- ``localaws.eventbridge``: records which EventBridge rule matched which event on the moto server.
- ``localaws.runtime``: ``LocalSystem``, the whole system on a moto server on loopback.
- ``python -m localaws.demo`` (``make demo``) and ``python -m localaws.replay EVENT.json``.

The shared layer folder is put on ``sys.path`` here (after everything else, as Lambda puts
``/opt/python``), so that ``clguard`` imports the same way for the runtime as for the handlers.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = REPO_ROOT / "layers" / "shared"

if not any(Path(entry or ".").resolve() == LAYER_DIR for entry in sys.path):
    sys.path.append(str(LAYER_DIR))
