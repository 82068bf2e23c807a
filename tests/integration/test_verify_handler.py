"""verify_object_encryption against moto: real S3/KMS/SNS state and the exact SNS publishes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clguard.adapters import kms, s3
from clguard.boundary import fanout
from clguard.boundary.config import Settings, load_settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.rules import policy
from clguard.usecases import verify
from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import BUCKET, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"


def run(*bodies: object, context: LambdaContext | None = None) -> dict[str, object]:
    return app.lambda_handler(sqs_event(*bodies), context or LambdaContext())  # type: ignore[arg-type]


def test_unencrypted_object_is_reencrypted_in_place_and_reported(world: World) -> None:
    # Given a legacy object with no server-side encryption, with metadata and tags
    world.put_legacy(KEY, b"cat")
    world.s3.put_object_tagging(Bucket=BUCKET, Key=KEY, Tagging={"TagSet": [{"Key": "label", "Value": "cat"}]})
    before = world.head(KEY)
    assert "ServerSideEncryption" not in before

    # When its Object Created event is processed
    response = run(load_event("s3_object_created"))

    # Then the object is SSE-S3 now, with its content and tags kept
    assert response == {"batchItemFailures": []}
    after = world.head(KEY)
    assert after["ServerSideEncryption"] == "AES256"
    assert world.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"cat"
    assert world.s3.get_object_tagging(Bucket=BUCKET, Key=KEY)["TagSet"] == [{"Key": "label", "Value": "cat"}]
    # And exactly one finding was published, as the contract says
    [published] = world.published()
    assert published.subject == f"[HIGH] OBJECT_UNENCRYPTED s3://{BUCKET}/{KEY}"
    assert published.finding == {
        "schema_version": "1",
        "finding_type": "OBJECT_UNENCRYPTED",
        "severity": "HIGH",
        "outcome": "REMEDIATED",
        "account": "123456789012",
        "region": "us-east-1",
        "resource": {"type": "s3-object", "bucket": BUCKET, "key": KEY, "version_id": None},
        "principal_arn": None,
        "kms_key_arn": None,
        "detail": "object had no server-side encryption; re-encrypted in place with SSE-S3 (CopyObject)",
        "source_event_id": load_event("s3_object_created")["id"],
        "observed_at": published.finding["observed_at"],
    }
    assert {k: v["Value"] for k, v in published.attributes.items()} == {
        "finding_type": "OBJECT_UNENCRYPTED",
        "severity": "HIGH",
        "outcome": "REMEDIATED",
        "suppressed": "false",  # always present (docs/architecture.md §5)
    }
    assert set(published.structure) == {"default", "email", "https"}
    assert published.chat["content"]["textType"] == "client-markdown"
    assert "re-encrypted in place" in published.email


def test_copy_echo_of_the_remediation_finds_the_object_compliant(world: World, calls: Boundary) -> None:
    # Given an unencrypted object remediated once
    world.put_legacy(KEY)
    run(load_event("s3_object_created"))
    etag = world.head(KEY)["ETag"]
    calls.log.clear()

    # When the CopyObject event our copy raised arrives
    response = run(load_event("s3_object_created_copy_echo"))

    # Then nothing is copied again and nothing more is published: no loop
    assert response == {"batchItemFailures": []}
    assert calls.log.by_operation() == {"HeadObject": 1}
    assert world.head(KEY)["ETag"] == etag
    assert len(world.published()) == 1


def test_same_event_delivered_again_publishes_nothing_more(world: World) -> None:
    # Given an untagged CMK whose policy lacks the training principal, and an object under it
    role = world.role("Trainer", "/ml/")
    key = world.key(managed=False)
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=role)
    event = load_event("s3_object_created")

    # When the same event is delivered three times
    for _ in range(3):
        run(event)

    # Then the refusal was published once
    assert [f["finding_type"] for f in world.findings()] == ["KEY_NOT_MANAGED"]


def test_report_mode_changes_nothing(world: World) -> None:
    # Given report mode and a legacy object with no server-side encryption
    world.env_set(REMEDIATION_MODE="report")
    world.put_legacy(KEY)

    # When its Object Created event is processed
    run(load_event("s3_object_created"))

    # Then the object is left as it is, and the finding says what enforce mode would do
    assert "ServerSideEncryption" not in world.head(KEY)
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_UNENCRYPTED", "REPORTED")
    assert "report mode: would be re-encrypted in place with SSE-S3" in finding["detail"]


def test_other_buckets_are_ignored_without_a_call(world: World, calls: Boundary) -> None:
    # Given an unencrypted object in a bucket that is not a training bucket
    world.s3.create_bucket(Bucket="unrelated-bucket")
    world.put_legacy(KEY, bucket="unrelated-bucket")

    # When its Object Created event arrives
    response = run(load_event("s3_object_created_other_bucket"))

    # Then it is acknowledged without a single AWS call, and nothing is reported
    assert response == {"batchItemFailures": []}
    assert calls.log.count() == 0
    assert world.published() == []


def test_object_deleted_before_the_check_is_skipped_silently(world: World) -> None:
    # Given an Object Created event whose object no longer exists
    # When it is processed
    response = run(load_event("s3_object_created"))  # the object does not exist

    # Then it is acknowledged and nothing is reported
    assert response == {"batchItemFailures": []}
    assert world.published() == []


def test_url_encoded_key_is_decoded_on_404(world: World) -> None:
    # Given an object whose key has a space and a plus, delivered URL-encoded
    real = "datasets/cats/images/cat 001+a.jpg"
    world.put_legacy(real)

    # When its event arrives
    event = world.object_created("datasets/cats/images/cat+001%2Ba.jpg")
    run(event)

    # Then the decoded key is the one reported and re-encrypted
    [finding] = world.findings()
    assert finding["resource"]["key"] == real
    assert world.head(real)["ServerSideEncryption"] == "AES256"


def test_cmk_object_gets_training_principals_granted_once(world: World, calls: Boundary) -> None:
    # Given a managed CMK and an object under it, and a training role with a path
    role = world.role("Trainer", "/ml/")
    key = world.key()
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=role)
    old_statements = world.policy(key)["Statement"]

    # When the object's event is processed
    run(load_event("s3_object_created"))

    # Then the role is in the remediator's statement, every old statement is unchanged
    new = world.policy(key)
    assert new["Statement"][: len(old_statements)] == old_statements
    statement = world.statement(key, policy.TRAINING_DATA.sid)
    assert statement == policy.TRAINING_DATA.new_statement(role)
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("KEY_ACCESS_MISSING", "REMEDIATED")
    assert finding["principal_arn"] == role
    assert finding["kms_key_arn"] == key
    assert finding["resource"] == {"type": "kms-key", "arn": key}
    assert "kms:Decrypt, kms:GenerateDataKey" in finding["detail"]
    # And the statement before and after is the structured change, not part of the detail
    assert finding["change"] == {"sid": policy.TRAINING_DATA.sid, "before": None, "after": statement}
    assert '"Sid"' not in finding["detail"]

    # When another object under the key arrives (new event)
    calls.log.clear()
    world.put("datasets/cats/images/cat-002.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    run(world.object_created("datasets/cats/images/cat-002.jpg"))

    # Then no write and no alert: already granted
    assert calls.log.count("PutKeyPolicy") == 0
    assert len(world.findings()) == 1


def test_untagged_key_is_refused_and_left_alone(world: World) -> None:
    # Given an object under a key without the opt-in tag, and a training principal it lacks
    role = world.role("Trainer", "/ml/")
    key = world.key(managed=False)
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=role)
    before = world.policy(key)

    # When the object's event is processed
    run(load_event("s3_object_created"))

    # Then the key policy is unchanged, and the refusal names the principal
    assert world.policy(key) == before
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"], finding["principal_arn"]) == (
        "KEY_NOT_MANAGED",
        "REFUSED",
        role,
    )


@pytest.mark.parametrize("state", ["disabled", "pending deletion"])
def test_unusable_key_is_reported(world: World, state: str) -> None:
    # Given an object under a key that is disabled or pending deletion
    key = world.key()
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    if state == "disabled":
        world.kms.disable_key(KeyId=key.split("/")[-1])  # moto wants the id here
    else:
        world.kms.schedule_key_deletion(KeyId=key.split("/")[-1], PendingWindowInDays=7)

    # When the object's event is processed
    run(load_event("s3_object_created"))

    # Then one HIGH KEY_UNUSABLE names the key
    [finding] = world.findings()
    assert (finding["finding_type"], finding["severity"], finding["kms_key_arn"]) == ("KEY_UNUSABLE", "HIGH", key)


def test_sse_s3_under_sse_kms_requirement_is_updated_in_place(world: World, calls: Boundary) -> None:
    # Given SSE_KMS is required, a re-encryption key is set, and the bucket is versioned (the
    # update can be pinned to the inspected version)
    target = world.key()
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=target)
    world.put(KEY, ServerSideEncryption="AES256")
    etag = world.head(KEY)["ETag"]

    # When an SSE-S3 object's event is processed
    run(load_event("s3_object_created"))

    # Then UpdateObjectEncryption changed it in place (no copy, same ETag)
    head = world.head(KEY)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"], head["ETag"]) == ("aws:kms", target, etag)
    assert calls.log.count("UpdateObjectEncryption") == 1
    assert calls.log.count("CopyObject") == 0
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"], finding["severity"]) == (
        "OBJECT_WRONG_ENCRYPTION",
        "REMEDIATED",
        "MEDIUM",
    )


def test_sse_kms_required_without_reencrypt_key_is_reported(world: World) -> None:
    # Given SSE_KMS required, no re-encryption key, and an SSE-S3 object
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS")
    world.put(KEY, ServerSideEncryption="AES256")

    # When its event is processed
    run(load_event("s3_object_created"))

    # Then the object is left as it is and reported (there is no key to move it to)
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_WRONG_ENCRYPTION", "REPORTED")


def test_key_outside_allowed_keys_is_moved_to_the_reencrypt_key(world: World) -> None:
    # Given allowed keys that exclude the object's key, and an allowed re-encryption key
    allowed, other = world.key(), world.key()
    world.env_set(ALLOWED_KMS_KEYS=allowed, REENCRYPT_KMS_KEY=allowed)
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=other)

    # When the object's event is processed
    run(load_event("s3_object_created"))

    # Then the object is under the re-encryption key, and the finding names the key it left
    assert world.head(KEY)["SSEKMSKeyId"] == allowed
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"], finding["kms_key_arn"]) == (
        "OBJECT_WRONG_ENCRYPTION",
        "REMEDIATED",
        other,
    )


def test_sse_c_object_is_reported(world: World) -> None:
    # Given an object encrypted with a customer-provided key (SSE-C)
    world.put(KEY, SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)

    # When its event is processed
    run(load_event("s3_object_created"))

    # Then it is reported (it cannot be re-encrypted without the key), HIGH
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"], finding["severity"]) == ("OBJECT_SSE_C", "REPORTED", "HIGH")


def test_access_denied_on_head_is_unverifiable(world: World, calls: Boundary) -> None:
    # Given an object whose HeadObject is denied (403)
    world.put(KEY)
    calls.faults.add("HeadObject", "403", status=403)

    # When its event is processed
    run(load_event("s3_object_created"))

    # Then it is reported as unverifiable
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_UNVERIFIABLE", "REPORTED")


def test_malformed_record_fails_alone(world: World) -> None:
    # Given a batch: a good event, garbage, an unknown event, a good event
    world.put_legacy(KEY)
    world.put_legacy("datasets/cats/images/cat-002.jpg")
    batch = sqs_event(
        load_event("s3_object_created"),
        "not json at all",
        {"id": "x", "detail-type": "Something Else", "source": "aws.ec2", "detail": {}},
        world.object_created("datasets/cats/images/cat-002.jpg"),
    )

    # When the batch is processed
    response = app.lambda_handler(batch, LambdaContext())

    # Then exactly the two bad records fail, and both good ones were handled and reported
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed == {batch["Records"][1]["messageId"], batch["Records"][2]["messageId"]}
    assert len(world.findings()) == 2


def test_batch_of_100_describes_each_key_and_reads_its_policy_once(world: World, calls: Boundary) -> None:
    # Given 100 objects under one CMK whose policy already grants the training principal
    role = world.role("Trainer", "/ml/")
    key = world.key()
    world.env_set(TRAINING_PRINCIPALS=role)
    events = []
    for n in range(100):
        name = f"datasets/cats/images/cat-{n:03}.jpg"
        world.put(name, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        events.append(world.object_created(name))
    document = world.policy(key)
    document["Statement"].append(policy.TRAINING_DATA.new_statement(role))
    world.kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(document))

    # When their 100 events arrive in one batch
    run(*events)

    # Then each object is inspected, the key described once and its policy read once, and
    # nothing is reported
    assert calls.log.by_operation() == {"HeadObject": 100, "DescribeKey": 1, "GetKeyPolicy": 1}
    assert world.published() == []


def test_cloudtrail_putobject_data_event_is_verified(world: World) -> None:
    # Given a legacy object and the CloudTrail PutObject data event of it
    # (a record without encryption fields: the object is inspected; see test_data_events.py)
    event = load_event("cloudtrail_s3_putobject_no_encryption_fields")
    key = event["detail"]["requestParameters"]["key"]
    world.put_legacy(key)

    # When the data event is processed
    run(event)

    # Then the object is reported as unencrypted
    [finding] = world.findings()
    assert (finding["finding_type"], finding["resource"]["key"]) == ("OBJECT_UNENCRYPTED", key)


def test_publish_failure_defers_the_finding_and_loses_nothing(world: World, calls: Boundary) -> None:
    # Given SNS rejects every publish (after botocore's own retries)
    world.put_legacy(KEY)
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("PublishBatch", "InternalError", status=500)

    # When the object is remediated
    response = run(load_event("s3_object_created"))

    # Then the record succeeded, nothing is published yet, and the finding waits in the outbox
    assert response == {"batchItemFailures": []}
    assert world.published() == []
    [message] = list(world.drain_queue())
    calls.faults.faults.clear()

    # When the outbox message is processed (twice: at-least-once delivery)
    run(message["Body"], message["Body"])

    # Then the finding is published exactly once
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_UNENCRYPTED", "REMEDIATED")


def test_versioned_bucket_says_the_old_version_keeps_its_encryption(world: World) -> None:
    # Given a versioned bucket with an unencrypted object
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    world.put_legacy(KEY)
    old_version = world.head(KEY)["VersionId"]

    # When it is re-encrypted (a copy is a new version)
    run(load_event("s3_object_created"))

    # Then the finding says the previous version keeps its old encryption
    [finding] = world.findings()
    assert f"the previous version {old_version} keeps its old encryption" in finding["detail"]


def test_fanout_message_continues_in_a_new_message_when_time_runs_short(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a fan-out message of 6 unencrypted images, and an invocation that runs short of time
    images = [f"datasets/big/img-{n}.jpg" for n in range(6)]
    for image in images:
        world.put_legacy(image)
    [body] = fanout.messages(
        [S3ObjectRef(BUCKET, i) for i in images], source_event_id="cpv-1", origin="CreateProjectVersion", principals=[]
    )

    # When the verify function handles it with time for 2 objects only
    checks = iter([False, False])
    monkeypatch.setattr(verify.BatchRun, "_time_short", lambda self: next(checks, True))
    response = app.lambda_handler(sqs_event(body), LambdaContext())

    # Then 2 were done, and the 4 others wait in a new message on the verify queue
    assert response == {"batchItemFailures": []}
    assert len(world.findings()) == 2
    [rest] = [m["Body"] for m in world.drain_queue()]
    assert [o["key"] for o in json.loads(rest)["objects"]] == images[2:]
    # And when that message is handled (with time enough), the rest is done: each image once
    monkeypatch.setattr(verify.BatchRun, "_time_short", lambda self: False)
    run(rest)
    assert sorted(f["resource"]["key"] for f in world.findings()) == sorted(images)


def test_time_check_reads_the_lambda_context(world: World) -> None:
    # When each is asked whether time is short
    # Then only the one under the reserve is short
    # Given batch runs without a context, and with contexts just under and over the time reserve
    run_ = verify.BatchRun(verify_settings(world))
    assert run_._time_short() is False  # no context: never short
    context = LambdaContext(remaining_ms=verify.TIME_RESERVE_MS - 1)
    assert verify.BatchRun(verify_settings(world), lambda_context=context)._time_short() is True
    context = LambdaContext(remaining_ms=verify.TIME_RESERVE_MS + 1)
    assert verify.BatchRun(verify_settings(world), lambda_context=context)._time_short() is False


def verify_settings(world: World) -> Settings:
    return load_settings(world.env() | {"AWS_REGION": "us-east-1"}, account_id="123456789012")


def test_a_version_id_s3_does_not_know_is_not_taken_for_sse_c(world: World) -> None:
    # Given an event naming version "null" of an object in an unversioned bucket (moto answers
    # that HEAD with 400, which is also S3's answer for an SSE-C object)
    world.put_legacy(KEY)
    event = load_event("s3_object_created")
    event["detail"]["object"]["version-id"] = "null"

    # When the event is processed
    run(event)
    # Then the current object is inspected and remediated, not reported as SSE-C
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_UNENCRYPTED", "REMEDIATED")


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

    # When the object's event is processed
    run(load_event("s3_object_created"))

    # Then it is reported as wrong encryption, naming the AWS managed key
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"], finding["kms_key_arn"]) == (
        "OBJECT_WRONG_ENCRYPTION",
        "REPORTED",
        aws_key,
    )
    assert "AWS managed key" in finding["detail"]


def test_without_update_object_encryption_in_the_sdk_the_object_is_copied(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SSE_KMS required, a re-encryption key, a versioned bucket (where the update would be
    # used), and an SDK without UpdateObjectEncryption
    target = world.key()
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=target)
    world.put(KEY, ServerSideEncryption="AES256")

    def unavailable(*_: object) -> None:
        raise s3.UpdateUnavailable("no such operation in this botocore")

    monkeypatch.setattr(s3, "update_encryption", unavailable)

    # When the object's event is processed
    run(load_event("s3_object_created"))

    # Then the object was re-encrypted by copying, and the finding says so
    head = world.head(KEY)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", target)
    [finding] = world.findings()
    assert finding["outcome"] == "REMEDIATED"
    assert "(CopyObject)" in finding["detail"]


def test_each_record_is_parsed_once_and_a_bad_one_still_fails_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch of two objects' events and one body that is not JSON, and every JSON parse of
    # a verify-queue body counted
    from clguard.boundary import events  # noqa: PLC0415

    parsed: list[object] = []
    parse_json = events.parse_json

    def counting(body: object) -> object:
        parsed.append(body)
        return parse_json(body)  # type: ignore[arg-type]

    monkeypatch.setattr(events, "parse_json", counting)
    world.put_legacy(KEY)
    world.put_legacy("datasets/cats/images/cat-002.jpg")
    batch = sqs_event(
        load_event("s3_object_created"), "not json at all", world.object_created("datasets/cats/images/cat-002.jpg")
    )

    # When the batch is processed (the prefetch reads every record, then each is handled)
    response = app.lambda_handler(batch, LambdaContext())

    # Then each body was parsed once, the bad record failed alone, and both objects were handled
    assert len(parsed) == 3
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [batch["Records"][1]["messageId"]]
    assert len(world.findings()) == 2
