"""The benchmark's cost model (bench/cost.py): dollars per million events from measured calls,
CPU time and what the template deploys."""

from __future__ import annotations

import pytest

from bench import cost
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
