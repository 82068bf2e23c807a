"""End to end with two accounts on the local system: a member account deploys member.yaml, its
S3 uploads and Rekognition training calls reach the central guard through its forwarding rules,
and the guard acts in the member through the member role; a stranger's events do nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from clguard.rules import policy
from localaws.doubles import put_legacy_unencrypted_object
from localaws.runtime import LocalSystem
from tests.eventsamples import load_event

MEMBER = "111122223333"
STRANGER = "999988887777"
MEMBER_BUCKET = "member-training-data"
STRANGER_BUCKET = "stranger-training-data"
TRAINER = f"arn:aws:iam::{MEMBER}:role/ml/Trainer"
TAG = [{"TagKey": "custom-labels-guard", "TagValue": "managed"}]


@pytest.fixture(scope="module")
def system() -> Iterator[LocalSystem]:
    members = {MEMBER: [MEMBER_BUCKET]}
    with LocalSystem(
        {"TrainingBuckets": f"custom-labels-training,{MEMBER_BUCKET},{STRANGER_BUCKET}", "RemediationMode": "enforce"},
        members=members,
    ) as local:
        yield local


def key_policy(local: LocalSystem, account: str, key: str) -> dict[str, object]:
    kms = local.member_client(account, "kms")
    value: dict[str, object] = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    return value


def test_a_member_upload_is_remediated_in_the_member(system: LocalSystem) -> None:
    # Given the member's training bucket, with EventBridge notifications on
    s3 = system.member_client(MEMBER, "s3")
    s3.create_bucket(Bucket=MEMBER_BUCKET)
    system.enable_eventbridge_notifications(MEMBER_BUCKET, account=MEMBER)

    # When a legacy unencrypted object lands in it and the local Lambda service runs
    put_legacy_unencrypted_object(s3, MEMBER_BUCKET, "images/a.jpg", b"cat")
    system.drain()

    # Then the member's forwarding rule and the central rule both carried it, the object is now
    # encrypted in the member account, and the alert carries the member's account id
    rules = [m.rule for m in system.tap.matches if m.source == "aws.s3"]
    assert any("member-ForwardObjectCreatedRule" in r for r in rules)
    assert any(r.endswith("-ObjectCreatedRule") for r in rules)
    assert s3.head_object(Bucket=MEMBER_BUCKET, Key="images/a.jpg")["ServerSideEncryption"] == "AES256"
    findings = [m.message for m in system.subscriber_messages() if m.message.get("account") == MEMBER]
    assert [(f["finding_type"], f["outcome"]) for f in findings] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]


def test_a_member_training_call_grants_its_trainer_on_its_key(system: LocalSystem) -> None:
    # Given the member's trainer role and a managed key of the member
    system.member_client(MEMBER, "iam").create_role(
        RoleName="Trainer", Path="/ml/", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    key = system.member_client(MEMBER, "kms").create_key(Tags=TAG)["KeyMetadata"]["Arn"]
    event = load_event("cloudtrail_create_project_version")
    event["detail"]["recipientAccountId"] = MEMBER
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = TRAINER
    params = event["detail"]["requestParameters"]
    params["KmsKeyId"] = key
    del params["TrainingData"], params["TestingData"], params["OutputConfig"]

    # When the member's CloudTrail puts the call on its bus and the local Lambda service runs
    system.put_event(event, account=MEMBER)
    system.drain()

    # Then the guard added the member's trainer to the member's key (through the member role)
    statement = next(
        s
        for s in key_policy(system, MEMBER, key)["Statement"]  # type: ignore[attr-defined]
        if s.get("Sid") == policy.COPIED_IMAGES_USE.sid
    )
    assert statement["Principal"]["AWS"] == [TRAINER]


def test_a_strangers_events_do_nothing(system: LocalSystem) -> None:
    # Given an account that is not a member, which forwards its events to the central bus anyway
    s3 = system.member_client(STRANGER, "s3")
    s3.create_bucket(Bucket=STRANGER_BUCKET)
    system.enable_eventbridge_notifications(STRANGER_BUCKET, account=STRANGER)
    events = system.member_client(STRANGER, "events")
    events.put_rule(Name="forward", EventPattern=json.dumps({"source": ["aws.s3"]}))
    events.put_targets(
        Rule="forward", Targets=[{"Id": "c", "Arn": f"arn:aws:events:us-east-1:{system.account_id}:event-bus/default"}]
    )
    before = len(system.invocations)

    # When an unencrypted object lands in its bucket
    put_legacy_unencrypted_object(s3, STRANGER_BUCKET, "images/s.jpg", b"x")
    system.drain()

    # Then the central bus does not admit it: no function ran, and the object is untouched
    assert len(system.invocations) == before
    assert "ServerSideEncryption" not in s3.head_object(Bucket=STRANGER_BUCKET, Key="images/s.jpg")
