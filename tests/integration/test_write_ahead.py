"""Write-ahead: a change that lands just before the runtime dies (timeout, out of memory) is
reported by the retry. The death is a BaseException raised right after (or before) the AWS call,
which no ``except Exception`` catches, as a killed runtime runs no handler at all."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from clguard.rules import policy
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import ACCOUNT, BUCKET, TABLE, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"


class Killed(BaseException):
    """The runtime was killed (Lambda timeout, out of memory)."""


def kill_after(calls: Boundary, operation: str) -> None:
    """The runtime dies right after ``operation`` succeeded (its effect is in place)."""
    fired: list[bool] = []

    def die(**_: Any) -> None:
        if not fired:
            fired.append(True)
            raise Killed(operation)

    service = {"CopyObject": "s3", "UpdateObjectEncryption": "s3", "PutKeyPolicy": "kms"}[operation]
    calls.session.events.register(f"after-call.{service}.{operation}", die)


def kill_before(calls: Boundary, operation: str) -> None:
    """The runtime dies right before ``operation`` is made (no effect)."""
    fired: list[bool] = []

    def die(**_: Any) -> None:
        if not fired:
            fired.append(True)
            raise Killed(operation)

    calls.session.events.register(f"before-call.s3.{operation}", die)


def verify(event: dict[str, Any], *, receive_count: int = 1) -> dict[str, Any]:
    return app.lambda_handler(sqs_event(event, receive_count=receive_count), LambdaContext())


def intents(world: World) -> list[dict[str, Any]]:
    items = world.ddb.scan(TableName=TABLE)["Items"]
    return [i for i in items if i["id"]["S"].startswith("intent#")]


def test_a_copy_that_lands_just_before_the_runtime_dies_is_reported_by_the_retry(world: World, calls: Boundary) -> None:
    # Given an unencrypted object, and a runtime that dies right after its CopyObject succeeded
    world.put_legacy(KEY)
    kill_after(calls, "CopyObject")
    event = load_event("s3_object_created")
    with pytest.raises(Killed):
        verify(event)
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert world.published() == []
    # (the intent is durable, and expires)
    [intent] = intents(world)
    assert int(intent["expiration"]["N"]) > time.time() + 24 * 3600

    # When SQS redelivers the record
    assert verify(event, receive_count=2) == {"batchItemFailures": []}

    # Then the change is reported, once, without a second copy, and the intent is gone
    assert calls.log.count("CopyObject") == 1
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_UNENCRYPTED", "REMEDIATED")
    assert finding["resource"]["key"] == KEY
    assert intents(world) == []


def test_an_encryption_update_that_lands_just_before_the_runtime_dies_is_reported_by_the_retry(
    world: World, calls: Boundary
) -> None:
    # Given SSE_KMS is required, an SSE-S3 object in a versioned bucket (where the update can be
    # pinned to the inspected version), and a runtime that dies right after UpdateObjectEncryption
    # succeeded
    target = world.key()
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=target)
    world.put(KEY, ServerSideEncryption="AES256")
    kill_after(calls, "UpdateObjectEncryption")
    event = load_event("s3_object_created")
    with pytest.raises(Killed):
        verify(event)
    assert world.head(KEY)["SSEKMSKeyId"] == target

    # When SQS redelivers the record
    verify(event, receive_count=2)

    # Then the change is reported once
    assert calls.log.count("UpdateObjectEncryption") == 1
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_WRONG_ENCRYPTION", "REMEDIATED")]


def test_a_change_that_did_not_happen_is_dropped_and_made_by_the_retry(world: World, calls: Boundary) -> None:
    # Given the runtime dies after writing the intent, before the CopyObject
    world.put_legacy(KEY)
    kill_before(calls, "CopyObject")
    event = load_event("s3_object_created")
    with pytest.raises(Killed):
        verify(event)
    assert "ServerSideEncryption" not in world.head(KEY)

    # When SQS redelivers the record
    verify(event, receive_count=2)

    # Then the retry copies and reports its own change: one finding, not two
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]
    assert intents(world) == []


def test_a_grant_that_lands_just_before_the_runtime_dies_is_reported_by_the_retry(
    world: World, calls: Boundary, cmk_object: str
) -> None:
    # Given an object under a key lacking the trainer, and a runtime that dies right after
    # PutKeyPolicy succeeded
    kill_after(calls, "PutKeyPolicy")
    event = load_event("s3_object_created")
    with pytest.raises(Killed):
        verify(event)
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    assert world.published() == []
    # And the journal keeps each changed statement once (``changes``; ``change`` repeats its first)
    [pending] = intents(world)
    [entry] = json.loads(pending["findings"]["S"])
    assert "changes" in entry["document"]
    assert "change" not in entry["document"]

    # When SQS redelivers the record (a new container: nothing cached)
    from clguard.state.keydirectory import clear_cache  # noqa: PLC0415

    clear_cache()
    assert verify(event, receive_count=2) == {"batchItemFailures": []}

    # Then the grant is reported once, and not written again
    assert calls.log.count("PutKeyPolicy") == 1
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"], finding["principal_arn"]) == (
        "KEY_ACCESS_MISSING",
        "REMEDIATED",
        TRAINER,
    )
    # And the replayed finding has the contract's ``change`` again
    assert finding["change"] == finding["changes"][0]
    assert intents(world) == []


def test_the_grant_function_reports_a_grant_that_landed_before_it_died(world: World, calls: Boundary) -> None:
    # Given a training call naming a managed key, and a runtime that dies right after PutKeyPolicy
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    event = world.training_event(kms_key=key)
    for name in ("TrainingData", "TestingData", "OutputConfig"):
        event["detail"]["requestParameters"].pop(name)
    kill_after(calls, "PutKeyPolicy")
    with pytest.raises(Killed):
        grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
    assert world.published() == []

    # When Lambda retries the event
    from clguard.state.keydirectory import clear_cache  # noqa: PLC0415

    clear_cache()
    grant_app.lambda_handler(event, LambdaContext(function_name="grant"))

    # Then the grant is reported (the project's missing datasets are a finding of their own)
    grants = [(f["finding_type"], f["outcome"]) for f in world.findings() if f["finding_type"] == "KEY_ACCESS_MISSING"]
    assert grants == [("KEY_ACCESS_MISSING", "REMEDIATED")]
    assert calls.log.count("PutKeyPolicy") == 1


def test_first_delivery_of_a_compliant_object_costs_no_state_table_call(world: World, calls: Boundary) -> None:
    # Given a compliant (SSE-S3) object
    world.put(KEY)

    # When its event is delivered the first time, then redelivered
    verify(load_event("s3_object_created"))
    first = calls.log.by_operation()
    calls.log.clear()
    verify(load_event("s3_object_created"), receive_count=2)

    # Then the first delivery made only its HeadObject; only a redelivery looks for intents
    assert first == {"HeadObject": 1}
    assert calls.log.count("GetItem") == 1


def test_a_grant_made_by_hand_after_a_failed_write_is_not_reported_as_ours(world: World, calls: Boundary) -> None:
    # Given an object under a managed key whose first grant attempt fails (a 5xx) after its intent
    world.role("Trainer", "/ml/")
    key = world.key()
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    calls.faults.add("PutKeyPolicy", "InternalError", status=500, times=1)
    verify(load_event("s3_object_created"))
    assert world.statement(key, policy.TRAINING_DATA.sid) is None
    # And a key administrator then grants the trainer by hand, in a statement of their own
    document = world.policy(key)
    document["Statement"].append(
        {
            "Sid": "AdminGrant",
            "Effect": "Allow",
            "Principal": {"AWS": TRAINER},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
        }
    )
    world.kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(document))
    from clguard.state.keydirectory import clear_cache  # noqa: PLC0415

    clear_cache()

    # When SQS redelivers the record
    verify(load_event("s3_object_created"), receive_count=2)

    # Then no REMEDIATED grant is reported: the guard's own statement never got the trainer
    assert world.statement(key, policy.TRAINING_DATA.sid) is None
    assert [f for f in world.findings() if f["outcome"] == "REMEDIATED"] == []


def test_a_compliant_reupload_after_a_failed_copy_is_not_reported_as_our_remediation(
    world: World, calls: Boundary
) -> None:
    # Given a legacy unencrypted object whose re-encryption copy fails (5xx) after its intent
    world.put_legacy(KEY)
    calls.faults.add("CopyObject", "InternalError", status=500, times=8)
    verify(load_event("s3_object_created"))
    calls.faults.faults.clear()
    # And the owner re-uploads the object (S3 encrypts every new upload with SSE-S3)
    world.put(KEY, b"new content")
    copies = calls.log.count("CopyObject")

    # When SQS redelivers the first event
    verify(load_event("s3_object_created"), receive_count=2)

    # Then nothing is copied and no remediation the guard did not make is reported
    assert calls.log.count("CopyObject") == copies
    assert [f for f in world.findings() if f["outcome"] == "REMEDIATED"] == []
