"""The key-policy half of "a REMEDIATED alert means the access really works" and "one bad thing
fails alone" (issue 9): explicit Deny, fresh reads on the grant path, unreadable keys, escaped
text, single-object Statement."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clguard.boundary import fanout
from clguard.boundary.s3ref import S3ObjectRef
from clguard.rules import policy
from clguard.state.keydirectory import KeyDirectory
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.fixtures import key_policy
from tests.world import ACCOUNT, BUCKET, TAG, LambdaContext, World, default_key_policy

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
TRAIN = "datasets/cats/train.manifest"
TEST = "datasets/cats/test.manifest"
IMAGE = "datasets/cats/images/cat-001.jpg"
VPCE_SID = "Restrict usage to my VPC endpoint"


def grant(event: dict[str, Any]) -> dict[str, Any]:
    return grant_app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))


def verify(*events: dict[str, Any]) -> dict[str, Any]:
    return verify_app.lambda_handler(sqs_event(*events), LambdaContext())


def training_data(world: World, key: str, images: tuple[str, ...] = (IMAGE,)) -> None:
    """Manifests and images of the sample CreateProjectVersion, all under ``key``."""
    lines = "\n".join(json.dumps({"source-ref": f"s3://{BUCKET}/{i}"}) for i in images).encode()
    for image in images:
        world.put(image, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    for manifest in (TRAIN, TEST):
        world.put(manifest, lines, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)


def of_key(findings: list[dict[str, Any]], key: str) -> list[tuple[str, str]]:
    return [(f["finding_type"], f["outcome"]) for f in findings if f["kms_key_arn"] == key]


# --- explicit Deny ----------------------------------------------------------------------------


def test_grant_path_reports_a_vpc_endpoint_deny_and_writes_nothing(world: World) -> None:
    # Given the trainer's data under a managed key with the KMS guide's VPC-endpoint policy
    world.role("CustomLabelsTrainer", "/ml/")
    data_key = world.key(policy=key_policy("kms_guide_vpce_key_policy", ACCOUNT))
    copy_key = world.key()
    training_data(world, data_key)
    before = world.policy(data_key)
    # When the trainer calls CreateProjectVersion
    grant(world.training_event(kms_key=copy_key))
    # Then the data key is not edited (an Allow would not help: Rekognition's reads are denied)
    assert world.policy(data_key) == before
    # And one finding says why, naming the blocking Sid and what a person must change
    findings = world.findings()
    assert of_key(findings, data_key) == [("KEY_ACCESS_MISSING", "REFUSED")]
    denied = next(f for f in findings if f["kms_key_arn"] == data_key)
    assert denied["principal_arn"] == TRAINER
    assert VPCE_SID in denied["detail"]
    assert "must change" in denied["detail"]
    # And the other key, without a Deny, is granted as usual
    assert of_key(findings, copy_key) == [("KEY_ACCESS_MISSING", "REMEDIATED")] * 1
    assert policy.is_granted(world.policy(copy_key), TRAINER, policy.COPIED_IMAGES_USE, copy_key)


def test_an_allow_cancelled_by_a_deny_is_not_already_granted(world: World) -> None:
    # Given a key whose policy allows the trainer, and also denies it outside a VPC endpoint
    world.role("Trainer", "/ml/")
    trainer = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    document = key_policy("kms_guide_vpce_key_policy", ACCOUNT)
    document["Statement"].append(policy.TRAINING_DATA.new_statement(trainer))
    key = world.key(policy=document)
    world.put(IMAGE, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=trainer)
    # When an object under it arrives
    verify(world.object_created(IMAGE))
    # Then the guard does not stay silent as if access were granted: it reports the Deny
    findings = world.findings()
    assert of_key(findings, key) == [("KEY_ACCESS_MISSING", "REFUSED")]
    assert VPCE_SID in findings[0]["detail"]
    assert world.policy(key) == document


def test_report_mode_reports_the_deny_the_same_way(world: World) -> None:
    # Given report mode and a key with the guide's VPC-endpoint Deny
    world.env_set(REMEDIATION_MODE="report")
    world.role("Trainer", "/ml/")
    key = world.key(policy=key_policy("kms_guide_vpce_key_policy", ACCOUNT))
    world.put(IMAGE, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer")
    # When an object under it arrives
    verify(world.object_created(IMAGE))
    # Then it says what enforce mode would say: REFUSED for the Deny
    assert of_key(world.findings(), key) == [("KEY_ACCESS_MISSING", "REFUSED")]


# --- fresh reads on the grant path --------------------------------------------------------------


def test_a_new_training_call_within_the_cache_ttl_sees_a_revocation(world: World) -> None:
    # Given a training call that granted the trainer on its keys
    world.role("CustomLabelsTrainer", "/ml/")
    data_key, copy_key = world.key(), world.key()
    training_data(world, data_key)
    grant(world.training_event(kms_key=copy_key, event_id="11111111-1111-4111-8111-111111111111"))
    assert policy.is_granted(world.policy(data_key), TRAINER, policy.TRAINING_DATA, data_key)
    # And someone removed the trainer by hand a moment later (well within the 60 s key cache)
    world.kms.put_key_policy(KeyId=data_key, PolicyName="default", Policy=json.dumps(default_key_policy()))
    # When the trainer calls CreateProjectVersion again
    grant(world.training_event(kms_key=copy_key, event_id="22222222-2222-4222-8222-222222222222"))
    # Then the call is decided on a fresh read: the trainer is granted again, and it is reported
    assert policy.is_granted(world.policy(data_key), TRAINER, policy.TRAINING_DATA, data_key)
    second = [f for f in world.findings() if f["source_event_id"] == "22222222-2222-4222-8222-222222222222"]
    assert ("KEY_ACCESS_MISSING", "REMEDIATED") in of_key(second, data_key)


def test_a_training_call_does_not_edit_a_key_that_just_opted_out(world: World) -> None:
    # Given a warm container that read a managed key's tags a moment ago
    world.role("CustomLabelsTrainer", "/ml/")
    data_key, copy_key = world.key(), world.key()
    training_data(world, data_key)
    assert KeyDirectory().tags(data_key)
    # And the key's owner removed the opt-in tag since
    world.kms.untag_resource(KeyId=data_key, TagKeys=[TAG[0]])
    before = world.policy(data_key)
    # When a training call needs the key
    grant(world.training_event(kms_key=copy_key))
    # Then the key is not edited, and the refusal says it is not managed
    assert world.policy(data_key) == before
    assert of_key(world.findings(), data_key) == [("KEY_NOT_MANAGED", "REFUSED")]


def test_the_s3_path_rereads_the_tags_inside_the_lock_before_writing(world: World) -> None:
    # Given a warm container that read a managed key's tags a moment ago (the S3 path's cache)
    world.role("Trainer", "/ml/")
    key = world.key()
    world.put(IMAGE, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer")
    assert KeyDirectory().tags(key) == {TAG[0]: TAG[1]}
    # And the key's owner removed the opt-in tag since
    world.kms.untag_resource(KeyId=key, TagKeys=[TAG[0]])
    before = world.policy(key)
    # When an object under the key arrives (the cached tags still say "managed")
    verify(world.object_created(IMAGE))
    # Then the tags re-read inside the lock stop the write, and the refusal is reported
    assert world.policy(key) == before
    assert of_key(world.findings(), key) == [("KEY_NOT_MANAGED", "REFUSED")]


def test_the_s3_path_keeps_its_key_cache(world: World, calls: Boundary) -> None:
    # Given a trainer already granted on a key, and two batches of uploads under it
    world.role("Trainer", "/ml/")
    trainer = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    document = default_key_policy()
    document["Statement"].append(policy.TRAINING_DATA.new_statement(trainer))
    key = world.key(policy=document)
    world.env_set(TRAINING_PRINCIPALS=trainer)
    for n in range(2):
        world.put(f"datasets/a/{n}.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    # When both batches are verified by one warm container
    verify(world.object_created("datasets/a/0.jpg"))
    verify(world.object_created("datasets/a/1.jpg"))
    # Then the key was described once for both; its policy is read once per batch, never more:
    # a remembered "already granted" is confirmed once per unit of work, since the policy may have
    # been replaced in between (issue 20 item 12; test_key_policy_drift.py)
    assert calls.log.count("DescribeKey") == 1
    assert calls.log.count("GetKeyPolicy") == 2


# --- one unreadable key fails alone -------------------------------------------------------------


@pytest.mark.parametrize("operation", ["GetKeyPolicy", "ListResourceTags"])
def test_grant_path_an_unreadable_key_is_reported_and_the_others_are_granted(
    world: World, calls: Boundary, operation: str
) -> None:
    # Given a training call whose KmsKeyId key (handled first) the guard may not read
    world.role("CustomLabelsTrainer", "/ml/")
    data_key, copy_key = world.key(), world.key()
    training_data(world, data_key)
    calls.faults.add(operation, "AccessDeniedException", times=1)
    copy_before = world.policy(copy_key)
    # When the call is handled
    summary = grant(world.training_event(kms_key=copy_key))
    # Then the unreadable key is a finding of its own, naming the refused read
    findings = world.findings()
    assert of_key(findings, copy_key) == [("KEY_UNUSABLE", "REPORTED")]
    unreadable = next(f for f in findings if f["kms_key_arn"] == copy_key)
    assert operation in unreadable["detail"]
    assert "AccessDeniedException" in unreadable["detail"]
    assert world.policy(copy_key) == copy_before
    # And every other key of the event is still handled: the data key is granted
    assert policy.is_granted(world.policy(data_key), TRAINER, policy.TRAINING_DATA, data_key)
    assert ("KEY_ACCESS_MISSING", "REMEDIATED") in of_key(findings, data_key)
    assert summary["keys"][copy_key] == "unusable"


def test_verify_path_an_unreadable_key_fails_alone(world: World, calls: Boundary) -> None:
    # Given two uploads under two keys, and the guard may not read the first key's policy
    world.role("Trainer", "/ml/")
    trainer = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    world.env_set(TRAINING_PRINCIPALS=trainer)
    first, second = world.key(), world.key()
    world.put("datasets/a/1.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=first)
    world.put("datasets/a/2.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=second)
    calls.faults.add("GetKeyPolicy", "AccessDeniedException", times=1)
    # When both arrive in one batch
    response = verify(world.object_created("datasets/a/1.jpg"), world.object_created("datasets/a/2.jpg"))
    # Then no record fails (AccessDenied is not transient: retrying would not help)
    assert response["batchItemFailures"] == []
    # And the first key has its own finding, the second key's principal is granted
    findings = world.findings()
    assert of_key(findings, first) == [("KEY_UNUSABLE", "REPORTED")]
    assert policy.is_granted(world.policy(second), trainer, policy.TRAINING_DATA, second)


def test_a_fanout_message_goes_on_after_an_unreadable_key(world: World, calls: Boundary) -> None:
    # Given a fan-out message of a training request: images under two keys
    world.role("CustomLabelsTrainer", "/ml/")
    first, second = world.key(), world.key()
    world.put("datasets/a/1.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=first)
    world.put("datasets/a/2.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=second)
    refs = [S3ObjectRef(BUCKET, "datasets/a/1.jpg"), S3ObjectRef(BUCKET, "datasets/a/2.jpg")]
    [body] = list(fanout.messages(iter(refs), source_event_id="evt-1", origin="test", principals=[TRAINER]))
    calls.faults.add("ListResourceTags", "AccessDeniedException", times=1)
    # When the verify function handles it
    response = verify_app.lambda_handler(sqs_event(body), LambdaContext())
    # Then the message does not fail, the first key is reported and the later image's key granted
    assert response["batchItemFailures"] == []
    assert of_key(world.findings(), first) == [("KEY_UNUSABLE", "REPORTED")]
    assert policy.is_granted(world.policy(second), TRAINER, policy.TRAINING_DATA, second)


def test_a_transient_error_reading_a_key_still_retries(world: World, calls: Boundary) -> None:
    # Given throttling on every GetKeyPolicy
    world.role("Trainer", "/ml/")
    world.env_set(TRAINING_PRINCIPALS=f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer")
    key = world.key()
    world.put(IMAGE, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    calls.faults.add("GetKeyPolicy", "ThrottlingException")
    # When the upload is verified
    event = sqs_event(world.object_created(IMAGE))
    response = verify_app.lambda_handler(event, LambdaContext())
    # Then the record fails (SQS retries it) and no finding claims the key is unusable
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    assert of_key(world.findings(), key) == []


# --- escaped text and single-object statements ---------------------------------------------------


def _team_policy(value_text: str) -> str:
    """The default key policy plus a foreign statement whose condition value is ``value_text``
    (raw JSON string content, escapes included), as GetKeyPolicy would return it."""
    document = default_key_policy()
    document["Statement"].append(
        {
            "Sid": "TeamOnly",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:Encrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/team": "@VALUE@"}},
        }
    )
    return json.dumps(document).replace('"@VALUE@"', f'"{value_text}"')


@pytest.mark.parametrize(("text", "value"), [("\\u4e2d\\u6587", "中文"), ("\\ud800", "\ud800")], ids=["cjk", "lone"])
def test_a_policy_with_escaped_non_latin1_text_is_edited_and_round_trips(world: World, text: str, value: str) -> None:
    # Given a managed key whose policy holds an escaped CJK (or lone surrogate) condition value
    world.role("Trainer", "/ml/")
    trainer = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    meta = world.kms.create_key(Policy=_team_policy(text), Tags=[{"TagKey": TAG[0], "TagValue": TAG[1]}])
    key = meta["KeyMetadata"]["Arn"]
    world.put(IMAGE, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=trainer)
    # When an upload under it needs the trainer added (KMS's character rules apply: the double)
    response = verify(world.object_created(IMAGE))
    # Then the write is accepted, the trainer is granted and reported
    assert response["batchItemFailures"] == []
    assert of_key(world.findings(), key) == [("KEY_ACCESS_MISSING", "REMEDIATED")]
    stored = world.kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
    # And the condition value is unchanged (still escaped on the wire)
    assert text in stored
    team = next(s for s in json.loads(stored)["Statement"] if s.get("Sid") == "TeamOnly")
    assert team["Condition"]["StringEquals"]["aws:PrincipalTag/team"] == value
    assert policy.is_granted(json.loads(stored), trainer, policy.TRAINING_DATA, key)


def test_a_key_policy_whose_statement_is_one_object_is_handled(world: World) -> None:
    # Given a managed key whose valid policy has a single-object Statement (moto crashes on it:
    # the KeyPolicyValidation double stands in for AWS)
    world.role("Trainer", "/ml/")
    trainer = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    root = default_key_policy()["Statement"][0]
    key = world.key(policy={"Version": "2012-10-17", "Statement": root})
    assert world.kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"] == key
    world.put(IMAGE, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=trainer)
    # When an upload under it arrives
    response = verify(world.object_created(IMAGE))
    # Then the trainer is added, and the original statement is kept unchanged
    assert response["batchItemFailures"] == []
    statements = world.policy(key)["Statement"]
    assert statements[0] == root
    assert policy.is_granted(world.policy(key), trainer, policy.TRAINING_DATA, key)
    assert of_key(world.findings(), key) == [("KEY_ACCESS_MISSING", "REMEDIATED")]
