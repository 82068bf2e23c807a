"""End to end: the guard's own fan-out messages carry the SenderId SQS gives a Lambda function's
role session, and the verify function accepts them; the same kind of message sent by anyone
else fails into VerifyDLQ and grants nothing."""

from __future__ import annotations

import json
from typing import Any

from clguard.boundary import fanout
from clguard.boundary.s3ref import S3ObjectRef
from localaws.runtime import LocalSystem
from tests.eventsamples import load_event

BUCKET = "custom-labels-training"
TRAINER = "arn:aws:iam::123456789012:role/ml/CustomLabelsTrainer"
IMAGES = 1_001  # one more than the grant function checks inline: the checks are fanned out


def managed_key_with_an_image(system: LocalSystem) -> str:
    s3, kms, iam = system.client("s3"), system.client("kms"), system.client("iam")
    s3.create_bucket(Bucket=BUCKET)
    service = {"Service": "rekognition.amazonaws.com"}
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": service, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName="CustomLabelsTrainer", Path="/ml/", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_role(RoleName="Attacker", AssumeRolePolicyDocument=json.dumps(trust))
    key: str = kms.create_key(Tags=[{"TagKey": "custom-labels-guard", "TagValue": "managed"}])["KeyMetadata"]["Arn"]
    s3.put_object(Bucket=BUCKET, Key="images/0000.jpg", Body=b"cat", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    return key


def key_principals(system: LocalSystem, key: str) -> str:
    return str(system.client("kms").get_key_policy(KeyId=key, PolicyName="default")["Policy"])


def fanout_events(system: LocalSystem) -> list[dict[str, Any]]:
    return [
        event
        for invocation in system.invocations
        if invocation.function == "VerifyObjectEncryptionFunction"
        for event in invocation.events
        if isinstance(event, dict) and event.get("kind") == "clguard.verify-objects"
    ]


def test_the_grant_functions_fanout_is_accepted_by_the_verify_function(system: LocalSystem) -> None:
    # Given a managed key with one image under it, and a training manifest of 1,001 images
    key = managed_key_with_an_image(system)
    lines = [json.dumps({"source-ref": f"s3://{BUCKET}/images/{n:04}.jpg"}) for n in range(IMAGES)]
    system.client("s3").put_object(Bucket=BUCKET, Key="datasets/cats/train.manifest", Body="\n".join(lines).encode())
    system.client("s3").put_object(Bucket=BUCKET, Key="datasets/cats/test.manifest", Body=lines[0].encode())
    event = load_event("cloudtrail_create_project_version")
    params = event["detail"]["requestParameters"]
    params.pop("KmsKeyId"), params.pop("OutputConfig")

    # When CreateProjectVersion is routed to the grant function and the local Lambda service runs
    system.put_event(event)
    system.drain(timeout=120)

    # Then the verify function received the fan-out (sent with the grant function's role
    # session as SenderId), processed it and granted the trainer on the image's key
    assert fanout_events(system)
    assert system.dead_letters() == {"VerifyDLQ": 0, "GrantDLQ": 0, "AuditDLQ": 0, "DigestDLQ": 0}
    assert TRAINER in key_principals(system, key)


def test_a_fanout_message_sent_by_anyone_else_grants_nothing(system: LocalSystem) -> None:
    # Given a managed key with an image, and a fan-out message naming another role, sent to
    # VerifyQueue by a principal of the account (not one of the functions)
    key = managed_key_with_an_image(system)
    [body] = fanout.messages(
        [S3ObjectRef(BUCKET, "images/0000.jpg")],
        source_event_id="forged",
        origin="forged",
        principals=["arn:aws:iam::123456789012:role/Attacker"],
    )
    system.client("sqs").send_message(QueueUrl=system.queue_url("VerifyQueue"), MessageBody=body)

    # When the local Lambda service runs
    invocations = system.drain()

    # Then the record failed each time it was received, moved to VerifyDLQ, and the key policy
    # names nobody new
    assert invocations
    assert all(len(i.failed_records) == 1 for i in invocations)
    assert system.dead_letters() == {"VerifyDLQ": 1, "GrantDLQ": 0, "AuditDLQ": 0, "DigestDLQ": 0}
    assert "Attacker" not in key_principals(system, key)
