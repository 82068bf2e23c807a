"""The key-policy half of "a REMEDIATED alert means the access really works" and "one bad thing
fails alone" (issue 9): explicit Deny, fresh reads on the grant path, unreadable keys, escaped
text, single-object Statement."""

from __future__ import annotations

import json
from typing import Any

from clguard import policy
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from tests.eventsamples import sqs_event
from tests.fixtures import key_policy
from tests.world import ACCOUNT, BUCKET, LambdaContext, World

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
