"""Per-account views of the metrics (docs/architecture.md §9): the Account dimension in the EMF
output, the stack's totals unchanged, and the bound on accounts held between flushes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from clguard import observability
from clguard.observability import ACCOUNT_DIMENSION, MAX_ACCOUNTS_HELD, PER_ACCOUNT, count, metrics

CENTRAL = "123456789012"
MEMBER = "111122223333"


def blobs(out: str) -> list[dict[str, Any]]:
    """The EMF blobs powertools printed."""
    found = []
    for line in out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if isinstance(blob, dict) and "_aws" in blob:
            found.append(blob)
    return found


def series(out: str) -> Counter[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every (metric, dimensions) series the blobs file a value under, as CloudWatch reads EMF:
    each dimension set of a directive is a series of each of its metrics."""
    totals: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    for blob in blobs(out):
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dims = tuple((d, str(blob[d])) for d in dimension_set)
                for metric in directive["Metrics"]:
                    value = blob[metric["Name"]]
                    totals[(metric["Name"], dims)] += int(sum(value) if isinstance(value, list) else value)
    return totals


@pytest.fixture(autouse=True)
def _clean(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.flush_metrics()
    capsys.readouterr()


def test_a_count_naming_its_account_is_a_series_of_that_account_and_still_of_the_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given remediations in the central account and a member, and a count of no account
    count("Remediations", account=CENTRAL)
    count("Remediations", 2, account=MEMBER)
    count("Violation.OBJECT_UNENCRYPTED", 3, account=MEMBER)
    count("ObjectsChecked", 5)

    # When the invocation's metrics are flushed
    metrics.flush_metrics()
    out = series(capsys.readouterr().out)

    # Then each account has its own series, with the service dimension beside Account
    service = ("service", observability.SERVICE)
    assert out[("Remediations", (service, (ACCOUNT_DIMENSION, CENTRAL)))] == 1
    assert out[("Remediations", (service, (ACCOUNT_DIMENSION, MEMBER)))] == 2
    assert out[("Violation.OBJECT_UNENCRYPTED", (service, (ACCOUNT_DIMENSION, MEMBER)))] == 3
    # And the stack's totals (the series the alarms and graphs read) are exactly the sums
    assert out[("Remediations", (service,))] == 3
    assert out[("Violation.OBJECT_UNENCRYPTED", (service,))] == 3
    assert out[("ObjectsChecked", (service,))] == 5
    # And a count outside PER_ACCOUNT never gets the dimension
    assert not any(name == "ObjectsChecked" and len(dims) > 1 for name, dims in out)


def test_a_name_that_does_not_mean_something_per_account_keeps_the_service_dimension_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a count outside PER_ACCOUNT that names an account anyway
    assert "ObjectsChecked" not in PER_ACCOUNT
    count("ObjectsChecked", account=MEMBER)

    # When flushed
    metrics.flush_metrics()
    out = series(capsys.readouterr().out)

    # Then it is one series, the stack's: no per-account series is created for it
    assert out == Counter({("ObjectsChecked", (("service", observability.SERVICE),)): 1})


def test_accounts_held_between_flushes_are_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    # Given one more account than the tally may hold, in one invocation
    accounts = [f"{n:012d}" for n in range(MAX_ACCOUNTS_HELD + 1)]

    # When each is counted
    for account in accounts:
        count("Grants", account=account)
        assert observability._emf.accounts_held() <= MAX_ACCOUNTS_HELD

    # Then the first MAX_ACCOUNTS_HELD were flushed before the last one was held, and nothing is lost
    early = series(capsys.readouterr().out)
    assert sum(v for (name, dims), v in early.items() if name == "Grants" and len(dims) == 2) == MAX_ACCOUNTS_HELD
    metrics.flush_metrics()
    late = series(capsys.readouterr().out)
    assert late[("Grants", (("service", observability.SERVICE), (ACCOUNT_DIMENSION, accounts[-1])))] == 1
