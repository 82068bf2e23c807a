"""Logger and Metrics, created once and imported everywhere (powertools).

No X-Ray SDK: the template turns on Lambda active tracing, which records every invocation;
the SDK's per-call subsegments cost ~200 ms of cold start (measured, see README), which does
not pay for a function whose calls are a HeadObject and a handful of KMS reads.
"""

from __future__ import annotations

import os
from typing import Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

# The template sets POWERTOOLS_SERVICE_NAME to the stack name: the metrics' ``service`` dimension
# then keeps two stacks in one account apart (their alarms and dashboards read their own).
SERVICE: Final = os.environ.get("POWERTOOLS_SERVICE_NAME", "").strip() or "custom-labels-guard"
NAMESPACE: Final = "CustomLabelsGuard"

logger: Final = Logger(service=SERVICE)
metrics: Final = Metrics(namespace=NAMESPACE, service=SERVICE)


def count(name: str, value: int = 1) -> None:
    """Add to a count metric (EMF, flushed at the end of the invocation)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
