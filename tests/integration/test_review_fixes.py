"""Regression tests for defects found in review: versioned buckets, alert scope, the loop guard
after a failed copy, copies racing an upload, multipart copies, AWS managed keys under SSE_KMS."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clguard import policy, training
from clguard.adapters import kms, s3
from clguard.adapters.s3 import HeadStatus, ObjectChanged
from clguard.config import load_settings
from clguard.encryption import Encryption, ObjectEncryption
from clguard.errors import Denied
from clguard.findings import Finding, FindingType, KmsKeyResource, Outcome
from clguard.locks import KeyLock
from clguard.publisher import Publisher
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import BUCKET, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"


def run(*bodies: object) -> dict[str, object]:
    return app.lambda_handler(sqs_event(*bodies), LambdaContext())  # type: ignore[arg-type]


def versioned_event(world: World, version: str) -> dict[str, object]:
    event = load_event("s3_object_created")
    event["detail"]["object"]["version-id"] = version
    return event


@pytest.fixture
def versioned(world: World) -> World:
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return world


def test_a_deleted_object_is_not_brought_back(versioned: World) -> None:
    # Given an unencrypted version, then the object deleted (a delete marker is current)
    versioned.put_legacy(KEY, b"old")
    version = versioned.head(KEY)["VersionId"]
    versioned.s3.delete_object(Bucket=BUCKET, Key=KEY)

    # When the first upload's event arrives (late, or redriven from the DLQ)
    run(versioned_event(versioned, version))

    # Then the object stays deleted and nothing is reported
    assert s3.head(BUCKET, KEY).status is HeadStatus.GONE
    assert versioned.published() == []


def test_a_newer_upload_is_not_rolled_back(versioned: World) -> None:
    # Given an unencrypted version, then a newer upload (SSE-S3) of the key
    versioned.put_legacy(KEY, b"old-unencrypted")
    old = versioned.head(KEY)["VersionId"]
    versioned.put(KEY, b"new", ServerSideEncryption="AES256")

    # When the old version's event arrives
    run(versioned_event(versioned, old))

    # Then the newer upload stays current, untouched
    assert versioned.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"new"
    assert versioned.published() == []


def test_a_second_event_for_the_same_upload_is_not_a_false_failure(versioned: World) -> None:
    # Given an unencrypted upload remediated once (its copy is a newer version)
    versioned.put_legacy(KEY)
    event = versioned_event(versioned, versioned.head(KEY)["VersionId"])
    run(event)

    # When the same upload's event comes again (CloudTrail rule, redelivery, redrive)
    run(event)

    # Then the one finding is the remediation: no "copy did not take effect"
    assert [(f["finding_type"], f["outcome"]) for f in versioned.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]


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


def test_a_copy_that_failed_is_retried_not_taken_for_a_loop(world: World, calls: Boundary) -> None:
    # Given a CopyObject that fails once with SlowDown
    world.put_legacy(KEY)
    calls.faults.add("CopyObject", "SlowDown", status=503, times=1)
    event = load_event("s3_object_created")

    # When the event is processed and then redelivered by SQS
    assert len(run(event)["batchItemFailures"]) == 1  # type: ignore[arg-type]
    assert run(event) == {"batchItemFailures": []}

    # Then the retry re-encrypts it and reports a remediation, not a loop
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]


def test_copy_does_not_overwrite_an_object_that_changed_since_it_was_inspected(world: World) -> None:
    # Given an inspected unencrypted object, then a new upload of the key
    world.put_legacy(KEY, b"old")
    inspected = s3.head(BUCKET, KEY)
    world.put(KEY, b"new", ServerSideEncryption="AES256")

    # When the remediator copies what it inspected
    with pytest.raises(ObjectChanged):
        s3.copy_in_place(BUCKET, inspected, ObjectEncryption(Encryption.SSE_S3))

    # Then the new upload is intact
    assert world.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"new"


def test_multipart_copy_keeps_content_metadata_and_tags(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an 11 MiB legacy object with metadata and tags, and a copy limit below its size
    body = bytes(range(256)) * (11 * 4096)
    world.put_legacy(KEY, body)
    world.s3.put_object_tagging(Bucket=BUCKET, Key=KEY, Tagging={"TagSet": [{"Key": "label", "Value": "cat"}]})
    h = s3.head(BUCKET, KEY)

    # When it is re-encrypted with 5 MiB parts
    monkeypatch.setattr(s3, "MIN_PART", 5 * 1024 * 1024)
    s3.copy_in_place(BUCKET, h, ObjectEncryption(Encryption.SSE_S3), copy_limit=1024 * 1024)

    # Then the content, tags and encryption are right, and the parts went through UploadPartCopy
    assert world.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == body
    assert world.s3.get_object_tagging(Bucket=BUCKET, Key=KEY)["TagSet"] == [{"Key": "label", "Value": "cat"}]
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert calls.log.count("UploadPartCopy") == 3
    assert calls.log.count("CompleteMultipartUpload") == 1


def test_aws_managed_key_is_wrong_encryption_under_sse_kms(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given SSE_KMS (customer managed keys only) and an object under an AWS managed key
    # (moto reports every key as CUSTOMER: DescribeKey's KeyManager is set to AWS for this one)
    aws_key = world.key()
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS")
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=aws_key)
    describe = kms.describe

    def as_aws_managed(reference: str) -> kms.KeyLookup:
        found = describe(reference)
        if found.key is not None and found.key.arn == aws_key:
            return dataclasses.replace(found, key=dataclasses.replace(found.key, manager="AWS"))
        return found

    monkeypatch.setattr(kms, "describe", as_aws_managed)

    run(load_event("s3_object_created"))

    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"], finding["kms_key_arn"]) == (
        "OBJECT_WRONG_ENCRYPTION",
        "REPORTED",
        aws_key,
    )
    assert "AWS managed key" in finding["detail"]


def test_in_a_versioned_bucket_the_copy_does_not_overwrite_a_newer_upload(versioned: World) -> None:
    # Given an inspected version, then a newer upload: the inspected version itself is unchanged,
    # so only the destination's If-Match can tell
    versioned.put_legacy(KEY, b"old")
    inspected = s3.head(BUCKET, KEY)
    versioned.put(KEY, b"new", ServerSideEncryption="AES256")

    with pytest.raises(ObjectChanged):
        s3.copy_in_place(BUCKET, inspected, ObjectEncryption(Encryption.SSE_S3))

    assert versioned.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"new"


TRAINER = "arn:aws:iam::123456789012:role/ml/Trainer"


def test_a_grant_whose_read_back_fails_is_still_reported(world: World, calls: Boundary, cmk_object: str) -> None:
    # Given the confirming read after the write fails (the third GetKeyPolicy: cached view,
    # re-read inside the lock, read-back)
    calls.faults.add("GetKeyPolicy", "ThrottlingException", after=2, times=1)

    # When the object's event is processed
    assert run(load_event("s3_object_created")) == {"batchItemFailures": []}

    # Then the grant is in the policy and was reported, as unconfirmed
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("KEY_ACCESS_MISSING", "REMEDIATED")
    assert "read-back to confirm it failed" in finding["detail"]


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
    run(load_event("s3_object_created"))
    [body] = [m["Body"] for m in world.drain_queue()]

    # When the outbox message is consumed
    response = run(body)

    # Then its record fails (SQS retries it, then its DLQ keeps it), and nothing was re-queued
    assert len(response["batchItemFailures"]) == 1  # type: ignore[arg-type]
    assert list(world.drain_queue()) == []


def test_the_same_finding_from_both_functions_is_published_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(world.env() | {"AWS_REGION": "us-east-1"}, account_id="123456789012")
    finding = Finding(
        FindingType.KEY_NOT_MANAGED, Outcome.REFUSED, KmsKeyResource("arn:k"), "d", "evt", "123456789012", "us-east-1"
    )
    sent = []
    for function in ("grant-training-access", "verify-object-encryption"):
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function)
        sent.append(Publisher(settings, lambda_context=LambdaContext(function_name=function)).publish(finding))
    assert sent == [True, False]
    assert len(world.published()) == 1


def test_a_grant_lost_to_an_expired_lease_is_retried_not_reported(
    world: World, cmk_object: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writer whose lease expires during its write, and a stale writer that then puts
    # back the policy it had read before (our grant is lost)
    before = world.policy(cmk_object)
    release = KeyLock.release

    def expired_release(self: KeyLock) -> None:
        world.kms.put_key_policy(KeyId=cmk_object, PolicyName="default", Policy=json.dumps(before))
        release(self)
        self.held_to_the_end = False

    monkeypatch.setattr(KeyLock, "release", expired_release)

    # When the object's event is processed
    response = run(load_event("s3_object_created"))

    # Then the record fails (to be retried) and no REMEDIATED was published for a lost grant
    assert len(response["batchItemFailures"]) == 1  # type: ignore[arg-type]
    assert world.published() == []
    # And the retry, with an honest lease, grants and reports once
    monkeypatch.setattr(KeyLock, "release", release)
    assert run(load_event("s3_object_created")) == {"batchItemFailures": []}
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("KEY_ACCESS_MISSING", "REMEDIATED")]


def test_without_update_object_encryption_in_the_sdk_the_object_is_copied(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SSE_KMS required, a re-encryption key, and an SDK without UpdateObjectEncryption
    target = world.key()
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=target)
    world.put(KEY, ServerSideEncryption="AES256")

    def unavailable(*_: object) -> None:
        raise s3.UpdateUnavailable("no such operation in this botocore")

    monkeypatch.setattr(s3, "update_encryption", unavailable)

    run(load_event("s3_object_created"))

    # Then the object was re-encrypted by copying, and the finding says so
    head = world.head(KEY)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", target)
    [finding] = world.findings()
    assert finding["outcome"] == "REMEDIATED"
    assert "(CopyObject)" in finding["detail"]


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
