"""Custom Labels Guard on this machine: moto as AWS, the template's routing, the real handlers.

- ``localaws.doubles``: named moto patches that make moto behave like AWS where our code depends
  on it.
- ``localaws.template``: the template loader and intrinsic-function resolver (one for the project).
- ``localaws.eventbridge``: records which EventBridge rule matched which event on the moto server.
- ``localaws.runtime``: ``LocalSystem``, the whole system on a moto server on loopback: the facade
  a scenario drives, which puts together the four parts below (and re-exports their names).
- ``localaws.isolation``: the moto server, the environment that keeps every AWS client of this
  process on it (fake credentials, no profile or other endpoint), the boto3 clients.
- ``localaws.deploy``: template.yaml's resources on the server, member.yaml in member accounts.
- ``localaws.lambda_service``: the Lambda service: invocations of the real handlers, SQS event
  sources, asynchronous invocations with retries and on-failure records.
- ``localaws.observed``: what happened, read back: invocations, alerts, messages for people,
  metrics, the rules an event matched.
- ``localaws.report``: renders invocations, alerts and key policy changes with rich.
- ``python -m localaws.demo`` (``make demo``), ``python -m localaws.audit`` (``make audit``) and
  ``python -m localaws.replay EVENT.json``.

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
