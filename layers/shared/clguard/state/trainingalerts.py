"""Which failed training versions were alerted (``TRAINING_FAILED`` once per version).

One small item per failed version, written after its finding was delivered::

    {"id": "training-failed#<project version ARN>", "run": "<the audit run that alerted it>",
     "expiration": <epoch: written + TTL_SECONDS>}

Bound: one item per project version that failed training for an access reason, kept
TTL_SECONDS (180 days). It is read only while its version is inside the audit's look-back
(``usecases.failed_trainings.LOOK_BACK_SECONDS``, 30 days from the end of the training): a
version is alerted after its training ended, so its item outlives the window in which a run could
meet the version again, and a version older than the look-back is never read, so an expired item
never makes a later run alert twice (``tests/integration/test_bounded_state.py``).
"""

from __future__ import annotations

import time
from typing import Final

from clguard.adapters import dynamodb

PREFIX: Final = "training-failed#"
TTL_SECONDS: Final = 180 * 24 * 3600


def alerted(table: str, version_arn: str) -> bool:
    return dynamodb.get(table, PREFIX + version_arn) is not None


def mark_alerted(table: str, version_arn: str, run_id: str, *, now: float | None = None) -> None:
    """Raises the adapter's errors."""
    expiration = int(time.time() if now is None else now) + TTL_SECONDS
    dynamodb.put(table, {"id": {"S": PREFIX + version_arn}, "run": {"S": run_id}, "expiration": {"N": str(expiration)}})
