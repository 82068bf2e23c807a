"""Logger and Metrics, created once and imported everywhere (powertools).

No X-Ray SDK: the template turns on Lambda active tracing, which records every invocation;
the SDK's per-call subsegments cost ~200 ms of cold start (measured, see README), which does
not pay for a function whose calls are a HeadObject and a handful of KMS reads.

Per-account views (docs/architecture.md §9): a count that names the ``account`` owning the
resource is emitted in one EMF blob per account with two dimension sets, ``[service]`` and
``[service, Account]``. CloudWatch files the same value under both, so the stack's totals (what
the alarms and the dashboard's graphs read) stay exactly what they were, and each account gets
its own series. Only the names in ``PER_ACCOUNT`` take an account (one series per name and
account, at most ``len(PER_ACCOUNT)`` per account).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

# The template sets POWERTOOLS_SERVICE_NAME to the stack name: the metrics' ``service`` dimension
# then keeps two stacks in one account apart (their alarms and dashboards read their own).
SERVICE: Final = os.environ.get("POWERTOOLS_SERVICE_NAME", "").strip() or "custom-labels-guard"
NAMESPACE: Final = "CustomLabelsGuard"
ACCOUNT_DIMENSION: Final = "Account"

# The counts that mean something per account: findings published, violations by type (objects),
# remediations, grants, refusals, members that could not be reached. Every other count has the
# service dimension only.
PER_ACCOUNT: Final = frozenset(
    {
        "FindingsPublished",
        "Violation.OBJECT_UNENCRYPTED",
        "Violation.OBJECT_SSE_C",
        "Violation.OBJECT_WRONG_ENCRYPTION",
        "Violation.OBJECT_UNVERIFIABLE",
        "Remediations",
        "Grants",
        "Refusals",
        "MembersUnreachable",
    }
)
# Accounts held between flushes (one invocation); one more is flushed first, so the tally never
# holds more than this many accounts' counts (an audit invocation may touch hundreds).
MAX_ACCOUNTS_HELD: Final = 500


class _GuardEMF(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider, plus the per-account counts flushed with the invocation's."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._per_account: dict[str, Counter[str]] = {}
        self._tally_lock = threading.Lock()

    def add_for_account(self, account: str, name: str, value: int) -> None:
        with self._tally_lock:
            if account not in self._per_account and len(self._per_account) >= MAX_ACCOUNTS_HELD:
                self._flush_accounts()
            self._per_account.setdefault(account, Counter())[name] += value

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        with self._tally_lock:
            flushed = self._flush_accounts()
        if self.metric_set or not flushed or raise_on_empty_metrics:
            super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)

    def _flush_accounts(self) -> int:
        """One blob per account, dimension sets ``[service]`` and ``[service, Account]``; how many."""
        flushed = len(self._per_account)
        for account, counts in self._per_account.items():
            blob = AmazonCloudWatchEMFProvider(
                namespace=self.namespace, service=self.service, default_dimensions={"service": str(self.service)}
            )
            for name, value in counts.items():
                blob.add_metric(name=name, unit=MetricUnit.Count, value=value)
            blob.add_dimensions(**{ACCOUNT_DIMENSION: account})
            blob.flush_metrics()
        self._per_account.clear()
        return flushed

    def accounts_held(self) -> int:
        return len(self._per_account)


logger: Final = Logger(service=SERVICE)
metrics: Final = Metrics(namespace=NAMESPACE, service=SERVICE)
_emf: Final = _GuardEMF(
    metric_set=metrics.metric_set,
    dimension_set=metrics.dimension_set,
    metadata_set=metrics.metadata_set,
    default_dimensions=metrics.default_dimensions,
    namespace=NAMESPACE,
    service=SERVICE,
)
metrics.provider = _emf


def count(name: str, value: int = 1, *, account: str | None = None) -> None:
    """Add to a count metric (EMF, flushed at the end of the invocation). With ``account`` (the
    account owning the resource) and a name of ``PER_ACCOUNT``, the count is also that account's."""
    if account and name in PER_ACCOUNT:
        _emf.add_for_account(account, name, value)
    else:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
