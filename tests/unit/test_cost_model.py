"""The benchmark's cost model (bench/cost.py): dollars per million events from measured calls,
CPU time and what the template deploys."""

from __future__ import annotations

import pytest

from bench import cost
from bench.common import Figure
from bench.organization import organization_figures
from localaws.template import load_template


def test_the_deployment_is_read_from_the_template() -> None:
    # Given the template
    template = load_template()

    # When the verify function's deployment is read
    deployment = cost.verify_deployment()

    # Then memory, architecture and batch size are the template's
    memory = template["Resources"]["VerifyObjectEncryptionFunction"]["Properties"].get(
        "MemorySize", template["Globals"]["Function"]["MemorySize"]
    )
    assert deployment.memory_mb == memory
    assert deployment.architecture == template["Globals"]["Function"]["Architectures"][0] == "arm64"
    assert deployment.batch_size == template["Resources"]["VerifyQueueEventSource"]["Properties"]["BatchSize"]


def test_one_head_object_per_event_costs_what_the_list_prices_say() -> None:
    # Given one HeadObject and 0.02 KMS calls per event, 1 ms of CPU, 1024 MB, batches of 100
    deployment = cost.Deployment(memory_mb=1024, architecture="arm64", batch_size=100)
    calls = {("s3", "HeadObject"): 1.0, ("kms", "DescribeKey"): 0.01, ("kms", "GetKeyPolicy"): 0.01}

    # When the cost per million events is computed
    price = cost.per_million(calls, 0.001, deployment)

    # Then each component is the list price times the measured quantity
    assert price.aws_calls == pytest.approx(0.40 + 0.02 * 3.0)  # $0.0004/1k GET class; $0.03/10k KMS
    assert price.lambda_requests == pytest.approx(0.20 / 100)  # $0.20/M invocations, 100 events each
    assert price.lambda_duration == pytest.approx(0.0000133334 * 1.0 * 0.001 * 1e6)  # 1 GB × 1 ms × 1M
    assert price.sqs_delivery == pytest.approx(0.40 * 1.2)  # send + receive/10 + delete/10
    assert price.total == pytest.approx(price.aws_calls + price.lambda_requests + price.lambda_duration + 0.48)


def test_writes_are_priced_as_the_put_class_and_x86_is_refused() -> None:
    # Given a copy per event (a remediation)
    deployment = cost.Deployment(memory_mb=512, architecture="arm64", batch_size=10)

    # When it is priced / Then at the PUT, COPY, POST, LIST class
    assert cost.per_million({("s3", "CopyObject"): 1.0}, 0.0, deployment).aws_calls == pytest.approx(5.0)
    # And a deployment the model has no prices for is refused, not priced wrongly
    with pytest.raises(ValueError, match="arm64"):
        cost.per_million({}, 0.0, cost.Deployment(512, "x86_64", 10))


def test_an_organization_month_prices_inventory_events_and_forwarding_from_the_list_prices() -> None:
    # Given 1 billion existing objects, 10 million new ones across 200 accounts, and measured per-million costs
    def month(audit_usd_per_million: float, *, from_inventory: bool) -> cost.OrganizationMonth:
        return cost.organization_month(
            existing=1_000_000_000,
            new=10_000_000,
            accounts=200,
            audit_usd_per_million=audit_usd_per_million,
            event_usd_per_million=0.96,
            from_inventory=from_inventory,
        )

    # When the month is priced with the audit from S3 Inventory, and with a HeadObject per existing object
    guard, heads = month(0.003, from_inventory=True), month(0.42, from_inventory=False)

    # Then the inventory is paid per object listed ($0.0025/M) plus a month of its gzip reports in S3 Standard
    assert guard.inventory == pytest.approx(2.5 + 1e9 * 40 / 1e9 * 0.023)
    assert heads.inventory == 0.0
    # And the audit, the events and the cross-account forwarding ($1.00/M) scale with the objects
    assert guard.audit == pytest.approx(3.0)
    assert heads.audit == pytest.approx(420.0)
    assert guard.events == heads.events == pytest.approx(9.6)
    assert guard.forwarding == heads.forwarding == pytest.approx(10.0)
    assert guard.total == pytest.approx(3.0 + guard.inventory + 9.6 + 10.0)
    # And the inventory path is an order of magnitude cheaper than a HeadObject per object
    assert guard.total / heads.total < 0.1


def test_the_organization_figure_refuses_to_price_without_the_figures_it_is_priced_from() -> None:
    # Given a run that measured no audit
    only_events = [Figure("cost_per_million_compliant_event", "1a cost", 0.96, "$0.96")]

    # When / Then figure 10 says what it lacks instead of inventing a number
    with pytest.raises(ValueError, match="audit_cost_per_million_objects_inventory"):
        organization_figures(only_events)
