"""Every finding is delivered (SNS, or the findings outbox) or loudly logged, and every change the
remediator makes is its own alert. Faults are injected at the botocore level (tests.awscalls)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from clguard.errors import RetryableError
from clguard.rules import policy
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import ACCOUNT, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"


def run(*bodies: Any, context: LambdaContext | None = None, receive_count: int = 1) -> dict[str, Any]:
    return app.lambda_handler(sqs_event(*bodies, receive_count=receive_count), context or LambdaContext())


def emitted_metric(out: str, name: str) -> float:
    """The sum of an EMF metric in the captured stdout (powertools prints one blob per flush)."""
    total = 0.0
    for line in out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if isinstance(blob, dict) and "_aws" in blob and name in blob:
            value = blob[name]
            total += sum(value) if isinstance(value, list) else value
    return total


def undelivered_logs(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The finding documents of the ERROR lines that say a finding was not delivered."""
    return [
        record.__dict__["finding"]
        for record in caplog.records
        if record.levelno == logging.ERROR and "finding" in record.__dict__ and "undelivered" in record.getMessage()
    ]


# --- item: the outbox consumer meets a stuck idempotency record ---------------------------------


def test_outbox_publishes_a_finding_whose_idempotency_record_was_left_in_progress(
    world: World, calls: Boundary
) -> None:
    # Given an unencrypted object; SNS fails every attempt of the first publish, and the
    # idempotency record's cleanup (DeleteItem) fails too: the record stays INPROGRESS (the
    # first DeleteItem, the release of the object's remediation lease, goes through)
    world.put_legacy(KEY)
    calls.faults.add("Publish", "InternalError", status=500, times=4)
    calls.faults.add("PublishBatch", "InternalError", status=500, times=4)
    calls.faults.add("DeleteItem", "InternalError", status=500, times=4, after=1)

    # When the event is processed, the finding goes to the outbox
    assert run(load_event("s3_object_created")) == {"batchItemFailures": []}
    assert world.published() == []
    [message] = list(world.drain_queue())

    # And when the outbox message is consumed (SNS healthy again)
    calls.faults.faults.clear()
    assert run(message["Body"]) == {"batchItemFailures": []}

    # Then the finding is published (not dropped as "being published elsewhere")
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]
    # And a redelivered outbox message publishes nothing more
    run(message["Body"], receive_count=2)
    assert len(world.findings()) == 1


# --- item: SNS and the outbox both failing, two findings of one write ---------------------------


def test_with_sns_and_the_outbox_down_every_finding_of_one_write_is_logged_and_counted(
    world: World,
    calls: Boundary,
    cmk_object: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two training principals missing on the object's key, and SNS and SQS both down
    other = world.role("Trainer2", "/ml/")
    world.env_set(TRAINING_PRINCIPALS=f"{TRAINER},{other}")
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("PublishBatch", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    caplog.set_level(logging.INFO)

    # When the object's event is processed (one write grants both)
    response = run(load_event("s3_object_created"))

    # Then both principals were granted in one write
    assert calls.log.count("PutKeyPolicy") == 1
    statement = world.statement(cmk_object, policy.TRAINING_DATA.sid)
    assert statement is not None
    assert sorted(policy.as_list(statement["Principal"]["AWS"])) == sorted([TRAINER, other])
    # And each finding has an ERROR line with its full document, none is skipped
    logged = undelivered_logs(caplog)
    assert sorted(d["principal_arn"] for d in logged) == sorted([TRAINER, other])
    assert all(d["outcome"] == "REMEDIATED" and d["kms_key_arn"] == cmk_object for d in logged)
    assert all(set(d) >= {"finding_type", "resource", "detail", "source_event_id"} for d in logged)
    # And the FindingsUndelivered metric counts both
    assert emitted_metric(capsys.readouterr().out, "FindingsUndelivered") == 2
    # And the record fails, so SQS redelivers it
    assert len(response["batchItemFailures"]) == 1

    # When SQS redelivers it with SNS healthy again (a new container)
    calls.faults.faults.clear()
    from clguard.state.keydirectory import clear_cache  # noqa: PLC0415

    clear_cache()
    assert run(load_event("s3_object_created"), receive_count=2) == {"batchItemFailures": []}

    # Then both findings are published from the write-ahead intent, and nothing is written again
    assert calls.log.count("PutKeyPolicy") == 1
    published = sorted((f["principal_arn"], f["outcome"]) for f in world.findings())
    assert published == sorted([(TRAINER, "REMEDIATED"), (other, "REMEDIATED")])


# --- item: every change is its own alert --------------------------------------------------------


def test_a_second_grant_within_the_hour_is_alerted_again(world: World, cmk_object: str) -> None:
    # Given an upload whose key lacked the trainer: granted and alerted
    run(world.object_created(KEY, event_id="upload-1"))
    assert [f["outcome"] for f in world.findings()] == ["REMEDIATED"]

    # When someone removes the trainer from the key policy, and the next upload arrives (same hour)
    document = world.policy(cmk_object)
    document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != policy.TRAINING_DATA.sid]
    world.kms.put_key_policy(KeyId=cmk_object, PolicyName="default", Policy=json.dumps(document))
    world.put("datasets/cats/images/cat-002.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=cmk_object)
    from clguard.state.keydirectory import clear_cache  # noqa: PLC0415 - a new container's view

    clear_cache()
    run(world.object_created("datasets/cats/images/cat-002.jpg", event_id="upload-2"))

    # Then the trainer is granted again, and that change is its own alert
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [
        ("KEY_ACCESS_MISSING", "REMEDIATED"),
        ("KEY_ACCESS_MISSING", "REMEDIATED"),
    ]


def test_each_failed_write_within_the_hour_is_alerted(world: World, calls: Boundary, cmk_object: str) -> None:
    # Given PutKeyPolicy is denied, and two uploads under the key in the same hour
    calls.faults.add("PutKeyPolicy", "AccessDeniedException")
    world.put("datasets/cats/images/cat-002.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=cmk_object)

    # When both events arrive
    run(world.object_created(KEY, event_id="upload-1"))
    run(world.object_created("datasets/cats/images/cat-002.jpg", event_id="upload-2"))

    # Then each attempted change that failed is its own alert
    assert calls.log.count("PutKeyPolicy") == 2
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("KEY_ACCESS_MISSING", "FAILED")] * 2


def test_conditions_nothing_changes_stay_once_per_key_and_hour(world: World) -> None:
    # Given two uploads under a key without the opt-in tag (a refusal: nothing changes)
    world.role("Trainer", "/ml/")
    key = world.key(managed=False)
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    for name in ("a.jpg", "b.jpg"):
        world.put(name, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)

    # When both events arrive
    run(world.object_created("a.jpg"), world.object_created("b.jpg"))

    # Then one KEY_NOT_MANAGED: the window still groups conditions nothing changes
    assert [f["finding_type"] for f in world.findings()] == ["KEY_NOT_MANAGED"]


# --- item: plain S3 events stop starting new work when time runs short --------------------------


def test_plain_s3_events_are_not_started_when_the_invocation_is_short_of_time(world: World, calls: Boundary) -> None:
    # Given three unencrypted uploads in one batch, and an invocation that runs short of time
    # once the first object has been copied
    names = [f"datasets/cats/images/cat-{n}.jpg" for n in range(3)]
    for name in names:
        world.put_legacy(name)
    batch = sqs_event(*(world.object_created(name) for name in names))
    context = LambdaContext()

    def time_runs_short(**_: Any) -> None:
        context.remaining_ms = 5_000

    calls.session.events.register("after-call.s3.CopyObject", time_runs_short)

    # When the batch is handled
    response = app.lambda_handler(batch, context)

    # Then the first is remediated; the two not started fail (SQS redelivers them), untouched
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == [r["messageId"] for r in batch["Records"][1:]]
    assert "ServerSideEncryption" in world.head(names[0])
    assert all("ServerSideEncryption" not in world.head(name) for name in names[1:])
    assert [f["resource"]["key"] for f in world.findings()] == names[:1]


def test_the_grant_function_fails_for_a_retry_when_a_finding_is_undelivered(
    world: World, calls: Boundary, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a training call whose grant is made while SNS and the outbox are both down
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    event = world.training_event(kms_key=key)
    for name in ("TrainingData", "TestingData", "OutputConfig"):
        event["detail"]["requestParameters"].pop(name)
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("PublishBatch", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    caplog.set_level(logging.INFO)

    # When the grant function handles it, it fails (Lambda retries it, then the GrantDLQ keeps it)
    with pytest.raises(RetryableError):
        grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
    # (the project has no datasets in this world: its MANIFEST_INVALID is undelivered too)
    assert [d["outcome"] for d in undelivered_logs(caplog) if d["finding_type"] == "KEY_ACCESS_MISSING"] == [
        "REMEDIATED"
    ]

    # And Lambda's retry, with SNS healthy, publishes the finding of the grant already made
    calls.faults.faults.clear()
    grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
    assert calls.log.count("PutKeyPolicy") == 1
    grants = [(f["finding_type"], f["outcome"]) for f in world.findings() if f["finding_type"] == "KEY_ACCESS_MISSING"]
    assert grants == [("KEY_ACCESS_MISSING", "REMEDIATED")]


# --- the findings outbox and the once-per-key-and-hour window -----------------------------------


def test_key_level_conditions_from_uploads_are_reported_once_per_key_and_hour(world: World) -> None:
    # Given five uploads under a disabled key
    key = world.key()
    events = []
    for n in range(5):
        name = f"datasets/cats/images/cat-{n}.jpg"
        world.put(name, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        events.append(world.object_created(name))
    world.kms.disable_key(KeyId=key.split("/")[-1])

    # When their events arrive, in two batches
    run(*events[:2])
    run(*events[2:])

    # Then one KEY_UNUSABLE, not five
    assert [f["finding_type"] for f in world.findings()] == ["KEY_UNUSABLE"]


def test_idempotency_store_failure_defers_the_finding_instead_of_losing_it(world: World, calls: Boundary) -> None:
    # Given DynamoDB refuses writes once the object's lease is taken and the change written ahead
    # (without either, no change would be made at all; see test_object_safety, test_write_ahead)
    world.put_legacy(KEY)
    calls.faults.add("PutItem", "ProvisionedThroughputExceededException", times=10, after=2)

    # When the event is processed: the copy happens, the finding cannot be recorded
    assert run(load_event("s3_object_created")) == {"batchItemFailures": []}
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert world.published() == []

    # Then it waits in the outbox, and is published once from there
    calls.faults.faults.clear()
    bodies = [m["Body"] for m in world.drain_queue()]
    assert len(bodies) == 1
    run(*bodies)
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]


def test_the_outbox_consumer_fails_its_record_instead_of_requeueing_forever(world: World, calls: Boundary) -> None:
    # Given a finding waiting in the outbox, and SNS still failing
    world.put_legacy(KEY)
    calls.faults.add("Publish", "KMSAccessDeniedException", status=400)
    calls.faults.add("PublishBatch", "KMSAccessDeniedException", status=400)
    run(load_event("s3_object_created"))
    [body] = [m["Body"] for m in world.drain_queue()]

    # When the outbox message is consumed
    response = run(body)

    # Then its record fails (SQS retries it, then its DLQ keeps it), and nothing was re-queued
    assert len(response["batchItemFailures"]) == 1
    assert list(world.drain_queue()) == []
