"""Which failed training versions were alerted (``TRAINING_FAILED`` once per version).

One small item per failed version, written after its finding was delivered::

    {"id": "training-failed#<project version ARN>", "run": "<the audit run that alerted it>"}

Bound: one item per project version that failed training for an access reason (a version fails
once; its item is what keeps the next runs from alerting it again, so it has no TTL).
"""

from __future__ import annotations

from typing import Final

from clguard.adapters import dynamodb

PREFIX: Final = "training-failed#"


def alerted(table: str, version_arn: str) -> bool:
    return dynamodb.get(table, PREFIX + version_arn) is not None


def mark_alerted(table: str, version_arn: str, run_id: str) -> None:
    """Raises the adapter's errors."""
    dynamodb.put(table, {"id": {"S": PREFIX + version_arn}, "run": {"S": run_id}})
