"""Fault injection at the AWS boundary (botocore level): throttling, 5xx, AccessDenied,
MalformedPolicyDocumentException, timeouts. For each, the event is retried (the record fails,
or the grant function raises for Lambda's async retry) or ends as a FAILED finding — never
silently dropped — and nothing is half-written."""

from __future__ import annotations

import json
import logging

import pytest
from botocore.exceptions import ClientError

from clguard.adapters import clients
from clguard.adapters.clients import CONFIG
from clguard.errors import Denied, RetryableError
from clguard.rules import policy
from clguard.usecases import training
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app
from localaws.doubles import KeyPolicyValidation
from tests.awscalls import Boundary, copies_take_no_effect
from tests.eventsamples import load_event, sqs_event
from tests.world import ACCOUNT, BUCKET, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"


def verify(*bodies: object) -> dict[str, object]:
    return app.lambda_handler(sqs_event(*bodies), LambdaContext())  # type: ignore[arg-type]


def failed_ids(response: dict[str, object]) -> int:
    return len(response["batchItemFailures"])  # type: ignore[arg-type]


@pytest.mark.parametrize("service", ["s3", "kms", "sns", "sqs", "dynamodb"])
def test_clients_use_standard_retries_with_bounded_attempts(aws: object, service: str) -> None:
    # Given the code's client for a service
    # When its configuration is read
    retries = clients.client(service).meta.config.retries

    # Then it retries in standard mode, at most 4 attempts in all, with a short connect timeout
    assert retries["mode"] == "standard"
    assert retries["total_max_attempts"] == 4  # the first attempt and at most 3 retries
    assert CONFIG.connect_timeout == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("code", "status"),
    [("SlowDown", 503), ("InternalError", 500), ("timeout", 0), ("ThrottlingException", 400)],
)
def test_transient_head_failure_fails_the_record_then_the_retry_reports_once(
    world: World, calls: Boundary, code: str, status: int
) -> None:
    # Given an unencrypted object and a HeadObject that fails transiently once
    world.put_legacy(KEY)
    calls.faults.add("HeadObject", code, status=status, times=1)
    event = load_event("s3_object_created")

    # When the event is processed
    # Then the record fails (SQS retries it) and nothing is published
    assert failed_ids(verify(event)) == 1
    assert world.published() == []
    assert "ServerSideEncryption" not in world.head(KEY)

    # And when SQS redelivers it, it is remediated and reported once
    assert failed_ids(verify(event)) == 0
    assert [f["outcome"] for f in world.findings()] == ["REMEDIATED"]


@pytest.mark.parametrize("operation", ["GetKeyPolicy", "PutKeyPolicy", "DescribeKey", "ListResourceTags", "PutItem"])
def test_transient_key_failures_fail_the_record_and_write_nothing_half(
    world: World, calls: Boundary, cmk_object: str, operation: str
) -> None:
    # Given a throttled KMS/DynamoDB call on the grant path
    before = world.policy(cmk_object)
    calls.faults.add(operation, "ThrottlingException", times=1)
    event = load_event("s3_object_created")

    # When the object's event is processed
    # Then the record fails, the policy is unchanged and nothing is published
    assert failed_ids(verify(event)) == 1
    assert world.policy(cmk_object) == before
    assert world.published() == []
    # And no lock is left behind: the retry grants and reports once
    assert failed_ids(verify(event)) == 0
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("KEY_ACCESS_MISSING", "REMEDIATED")]


def test_access_denied_on_put_key_policy_is_a_failed_finding(world: World, calls: Boundary, cmk_object: str) -> None:
    # Given an object under a managed key the training principal lacks, and PutKeyPolicy denied
    before = world.policy(cmk_object)
    calls.faults.add("PutKeyPolicy", "AccessDeniedException")

    # When the object's event is processed (the record succeeds: the failure is reported, not retried)
    assert failed_ids(verify(load_event("s3_object_created"))) == 0

    # Then the policy is unchanged, and the failure is a FAILED finding that says why
    assert world.policy(cmk_object) == before
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("KEY_ACCESS_MISSING", "FAILED")
    assert "AccessDeniedException" in finding["detail"]


def test_malformed_policy_document_is_retried_then_failed(
    world: World, calls: Boundary, cmk_object: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given KMS rejects every PutKeyPolicy as MalformedPolicyDocumentException
    monkeypatch.setattr("clguard.usecases.keyattempt.MALFORMED_BACKOFF", 0.0)
    calls.faults.add("PutKeyPolicy", "MalformedPolicyDocumentException")

    # When the object's event is processed
    verify(load_event("s3_object_created"))

    # Then the write was tried 4 times, then reported FAILED with the reason
    assert calls.log.count("PutKeyPolicy") == 4
    [finding] = world.findings()
    assert finding["outcome"] == "FAILED"
    assert "MalformedPolicyDocumentException" in finding["detail"]


def test_access_denied_describing_the_key_is_reported_as_unusable(
    world: World, calls: Boundary, cmk_object: str
) -> None:
    # Given DescribeKey is denied for the object's key
    calls.faults.add("DescribeKey", "AccessDeniedException")

    # When the object's event is processed
    assert failed_ids(verify(load_event("s3_object_created"))) == 0

    # Then the key is reported as unusable, with the reason
    [finding] = world.findings()
    assert (finding["finding_type"], finding["kms_key_arn"]) == ("KEY_UNUSABLE", cmk_object)
    assert "AccessDeniedException" in finding["detail"]


def test_publish_and_outbox_both_failing_fails_the_record(
    world: World, calls: Boundary, caplog: pytest.LogCaptureFixture
) -> None:
    # Given SNS and SQS are both down
    world.put_legacy(KEY)
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("PublishBatch", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500, times=1)
    caplog.set_level(logging.INFO)
    event = load_event("s3_object_created")

    # When the event is processed
    # Then the record fails, so SQS keeps the event (and its DLQ after the retries)
    assert failed_ids(verify(event)) == 1
    # And the copy happened, and the finding was logged at ERROR with its full document
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    [logged] = [
        r.__dict__["finding"]
        for r in caplog.records
        if r.levelno == logging.ERROR and "undelivered" in r.getMessage() and "finding" in r.__dict__
    ]
    assert (logged["finding_type"], logged["outcome"]) == ("OBJECT_UNENCRYPTED", "REMEDIATED")
    assert logged["resource"]["key"] == KEY
    assert logged["detail"].startswith("object had no server-side encryption")


def test_grant_function_raises_on_transient_errors_for_lambdas_async_retry(world: World, calls: Boundary) -> None:
    # Given a training call, and GetKeyPolicy throttled once
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    calls.faults.add("GetKeyPolicy", "ThrottlingException", times=1)
    event = world.training_event(kms_key=key)

    # When the grant function handles it
    # Then it raises (so Lambda's asynchronous retry applies) having granted nothing
    with pytest.raises((RetryableError, ClientError)):
        grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
    assert world.statement(key, policy.COPIED_IMAGES_USE.sid) is None
    # And the retry (Lambda's) succeeds
    grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
    assert world.statement(key, policy.COPIED_IMAGES_USE.sid) is not None


def test_copy_that_does_not_take_effect_is_not_copied_again(world: World, calls: Boundary) -> None:
    # Given S3 answers CopyObject with success but the object stays unencrypted
    world.put_legacy(KEY)
    head = world.head(KEY)
    copies_take_no_effect(calls, head)

    # When the upload event and then the copy's echo are processed
    verify(load_event("s3_object_created"))
    verify(load_event("s3_object_created_copy_echo"))

    # Then the second pass does not copy again: it reports that the copy did not take effect
    assert calls.log.count("CopyObject") == 1
    outcomes = [(f["finding_type"], f["outcome"]) for f in world.findings()]
    assert outcomes == [("OBJECT_UNENCRYPTED", "REMEDIATED"), ("OBJECT_UNENCRYPTED", "FAILED")]
    assert "did not take effect" in world.findings()[1]["detail"]


def test_one_bad_record_among_100_fails_only_itself(world: World) -> None:
    # Given a batch of 99 good events (each for an unencrypted legacy object) with one malformed
    # body at position 50
    events: list[dict[str, object] | str] = []
    names = [f"datasets/cats/images/cat-{n:03}.jpg" for n in range(99)]
    for name in names:
        world.put_legacy(name)
        events.append(world.object_created(name))
    events.insert(50, '{"detail-type": "Object Created", "source": "aws.s3"}')
    batch = sqs_event(*events)

    # When the batch is processed
    response = app.lambda_handler(batch, LambdaContext())

    # Then only the malformed record fails
    assert response["batchItemFailures"] == [{"itemIdentifier": batch["Records"][50]["messageId"]}]
    # And every one of the 99 others was verified and re-encrypted, none skipped
    remediated = [f["resource"]["key"] for f in world.findings() if f["outcome"] == "REMEDIATED"]
    assert sorted(remediated) == names
    assert all(world.head(name).get("ServerSideEncryption") for name in names)


def test_one_principal_kms_cannot_see_does_not_block_the_others(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two training principals, one of which KMS never sees (deleted, say)
    monkeypatch.setattr("clguard.usecases.keyattempt.MALFORMED_BACKOFF", 0.0)
    good, gone = world.role("Trainer", "/ml/"), world.role("Gone", "/ml/")
    world.behaviour[KeyPolicyValidation].not_yet_visible(gone, times=1000)
    key = world.key()
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=f"{good},{gone}")

    # When an object under the key is verified
    verify(load_event("s3_object_created"))

    # Then the visible principal is granted and the other is reported as failed
    statement = world.statement(key, policy.TRAINING_DATA.sid)
    assert statement is not None
    assert statement["Principal"]["AWS"] == [good]
    outcomes = sorted((f["principal_arn"], f["outcome"]) for f in world.findings())
    assert outcomes == sorted([(good, "REMEDIATED"), (gone, "FAILED")])


def test_a_copy_that_failed_is_retried_not_taken_for_a_loop(world: World, calls: Boundary) -> None:
    # Given a CopyObject that fails once with SlowDown
    world.put_legacy(KEY)
    calls.faults.add("CopyObject", "SlowDown", status=503, times=1)
    event = load_event("s3_object_created")

    # When the event is processed and then redelivered by SQS
    assert len(verify(event)["batchItemFailures"]) == 1  # type: ignore[arg-type]
    assert verify(event) == {"batchItemFailures": []}

    # Then the retry re-encrypts it and reports a remediation, not a loop
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]


def test_a_grant_whose_read_back_fails_is_still_reported(world: World, calls: Boundary, cmk_object: str) -> None:
    # Given the confirming read after the write fails (the third GetKeyPolicy: cached view,
    # re-read inside the lock, read-back)
    calls.faults.add("GetKeyPolicy", "ThrottlingException", after=2, times=1)

    # When the object's event is processed
    assert verify(load_event("s3_object_created")) == {"batchItemFailures": []}

    # Then the grant is in the policy and was reported, as unconfirmed
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("KEY_ACCESS_MISSING", "REMEDIATED")
    assert "read-back to confirm it failed" in finding["detail"]


def test_a_failure_fanning_images_out_is_not_blamed_on_the_manifest(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given readable manifests with more images than the inline limit, and a verify queue that
    # refuses the fan-out (a deployment error, not the manifest's)
    monkeypatch.setattr(training, "INLINE_IMAGE_LIMIT", 1)
    world.role("CustomLabelsTrainer", "/ml/")
    body = "\n".join(json.dumps({"source-ref": f"s3://{BUCKET}/img-{n}.jpg"}) for n in range(3)).encode()
    for manifest in ("datasets/cats/train.manifest", "datasets/cats/test.manifest"):
        world.put(manifest, body)
    calls.faults.add("SendMessage", "AccessDenied", status=403)

    # When the training call is handled, the error surfaces (Lambda retries, then its DLQ)
    with pytest.raises(Denied):
        grant_app.lambda_handler(world.training_event(), LambdaContext(function_name="grant"))

    # And no manifest was reported unreadable
    assert "MANIFEST_INVALID" not in [f["finding_type"] for f in world.findings()]
