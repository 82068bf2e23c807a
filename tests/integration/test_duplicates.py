"""EventBridge and SQS deliver at least once: the same event delivered three times, interleaved
with other events, yields exactly one key-policy change and one alert per finding."""

from __future__ import annotations

import pytest

from clguard.boundary.config import load_settings
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome
from clguard.reporting.publisher import Publisher
from clguard.rules import policy
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, LambdaContext, World

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"


def test_duplicates_within_and_across_batches(world: World, calls: Boundary) -> None:
    # Given a CMK lacking the training principal, and objects: A under it, B and C unencrypted
    world.role("Trainer", "/ml/")
    key = world.key()
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    world.put("a.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.put_legacy("b.jpg")
    world.put_legacy("c.jpg")
    a, b, c = (world.object_created(k) for k in ("a.jpg", "b.jpg", "c.jpg"))

    # When A arrives three times, interleaved with B and C, in one batch and then in two more
    for batch in ([a, b, a, c, a], [c, a], [b, a, c]):
        response = app.lambda_handler(sqs_event(*batch), LambdaContext())
        assert response == {"batchItemFailures": []}

    # Then one policy write, one copy per unencrypted object, one alert per finding
    assert calls.log.count("PutKeyPolicy") == 1
    assert calls.log.count("CopyObject") == 2
    findings = sorted(
        (f["finding_type"], f["resource"].get("key") or f["resource"].get("arn")) for f in world.findings()
    )
    assert findings == [("KEY_ACCESS_MISSING", key), ("OBJECT_UNENCRYPTED", "b.jpg"), ("OBJECT_UNENCRYPTED", "c.jpg")]
    statement = world.statement(key, policy.TRAINING_DATA.sid)
    assert statement is not None
    assert statement["Principal"]["AWS"] == [TRAINER]


def test_grant_event_delivered_three_times_interleaved(world: World, calls: Boundary) -> None:
    # Given two training calls by different roles on the same key
    world.role("CustomLabelsTrainer", "/ml/")
    other = world.role("OtherTrainer", "/ml/")
    key = world.key()
    first = world.training_event(kms_key=key, event_id="first")
    second = world.training_event(kms_key=key, event_id="second", issuer=other)
    for event in (first, second):
        params = event["detail"]["requestParameters"]
        for name in ("TrainingData", "TestingData", "OutputConfig"):
            params.pop(name)

    # When the first is delivered three times, interleaved with the second
    for event in (first, second, first, second, first):
        grant_app.lambda_handler(event, LambdaContext(function_name="grant"))

    # Then each principal was written once and reported once
    assert calls.log.count("PutKeyPolicy") == 2
    remediated = [f["principal_arn"] for f in world.findings() if f["outcome"] == "REMEDIATED"]
    assert sorted(remediated) == sorted([f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer", other])


def test_the_same_finding_from_both_functions_is_published_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given one finding (a refusal of the same key), as both functions would raise it
    settings = load_settings(world.env() | {"AWS_REGION": "us-east-1"}, account_id="123456789012")
    finding = Finding(
        FindingType.KEY_NOT_MANAGED, Outcome.REFUSED, KmsKeyResource("arn:k"), "d", "evt", "123456789012", "us-east-1"
    )

    # When the grant function publishes it, then the verify function
    sent = []
    for function in ("grant-training-access", "verify-object-encryption"):
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function)
        publisher = Publisher(settings, lambda_context=LambdaContext(function_name=function))
        sent.append(publisher.publish(finding))
        publisher.flush()  # the end of that function's unit of work: what it queued is sent

    # Then only the first is published: the two functions share one idempotency record per finding
    assert sent == [True, False]
    assert len(world.published()) == 1
