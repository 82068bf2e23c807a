"""grant_training_access against moto: the caller gets exactly the key access training needs."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest

from clguard.rules import policy
from clguard.usecases import training
from functions.grant_training_access import app
from functions.verify_object_encryption import app as verify_app
from localaws.doubles import KeyPolicyValidation
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, BUCKET, OUTPUT_BUCKET, LambdaContext, World

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
TRAIN = "datasets/cats/train.manifest"
TEST = "datasets/cats/test.manifest"
COPIED = (policy.COPIED_IMAGES_GRANT.sid, policy.COPIED_IMAGES_USE.sid)


def grant(event: dict[str, Any]) -> dict[str, Any]:
    return app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))


@dataclass
class Scenario:
    world: World
    data_key: str  # manifests and images
    copy_key: str  # KmsKeyId
    output_key: str  # output bucket default encryption
    images: list[str]

    def manifest_lines(self) -> bytes:
        return "\n".join(json.dumps({"source-ref": f"s3://{BUCKET}/{i}", "cat": 1}) for i in self.images).encode()


@pytest.fixture
def scenario(world: World) -> Scenario:
    """The training role, three managed CMKs, two manifests and their images, all under CMKs."""
    world.role("CustomLabelsTrainer", "/ml/")
    data_key, copy_key, output_key = world.key(), world.key(), world.key()
    images = [f"datasets/cats/images/cat-{n:03}.jpg" for n in range(5)]
    for image in images:
        world.put(image, ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key)
    s = Scenario(world, data_key, copy_key, output_key, images)
    for manifest in (TRAIN, TEST):
        world.put(manifest, s.manifest_lines(), ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key)
    world.s3.put_bucket_encryption(
        Bucket=OUTPUT_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": output_key}}]
        },
    )
    return s


def principals(world: World, key: str, sid: str) -> list[str]:
    statement = world.statement(key, sid)
    return [] if statement is None else policy.as_list(statement["Principal"]["AWS"])


def test_assumed_role_with_path_gets_exactly_the_access_training_needs(scenario: Scenario) -> None:
    # Given the training role (path /ml/), three managed CMKs (data, KmsKeyId, output bucket) it lacks
    w = scenario.world
    before = {k: w.policy(k) for k in (scenario.data_key, scenario.copy_key, scenario.output_key)}

    # When the role's CreateProjectVersion is handled
    summary = grant(w.training_event(kms_key=scenario.copy_key))

    # Then the role ARN *with its path* is in the copied-images statements of KmsKeyId ...
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_GRANT.sid) == [TRAINER]
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_USE.sid) == [TRAINER]
    statement = w.statement(scenario.copy_key, policy.COPIED_IMAGES_GRANT.sid)
    assert statement is not None
    assert statement["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    # ... and in the training-data statement of the data key and the output bucket's key
    assert principals(w, scenario.data_key, policy.TRAINING_DATA.sid) == [TRAINER]
    assert principals(w, scenario.output_key, policy.TRAINING_DATA.sid) == [TRAINER]
    # And every statement that was there is still there, unchanged
    for key, old in before.items():
        assert w.policy(key)["Statement"][: len(old["Statement"])] == old["Statement"]
    # And one KEY_ACCESS_MISSING REMEDIATED per key, naming the principal and the project
    findings = w.findings()
    assert sorted((f["finding_type"], f["outcome"], f["kms_key_arn"]) for f in findings) == sorted(
        ("KEY_ACCESS_MISSING", "REMEDIATED", k) for k in (scenario.copy_key, scenario.data_key, scenario.output_key)
    )
    assert all(f["principal_arn"] == TRAINER for f in findings)
    assert all("project/cats" in f["detail"] and "version cats-v1" in f["detail"] for f in findings)
    assert summary["status"] == "processed"
    assert summary["objects_checked"] == 2 + len(scenario.images)


def test_redelivered_event_changes_nothing_and_publishes_nothing(scenario: Scenario, calls: Boundary) -> None:
    # Given a training call already handled once
    event = scenario.world.training_event(kms_key=scenario.copy_key)
    grant(event)
    count = len(scenario.world.published())

    # When the same event is delivered twice more
    calls.log.clear()
    grant(event)
    grant(event)

    # Then no key policy is written again and nothing more is published
    assert calls.log.count("PutKeyPolicy") == 0
    assert len(scenario.world.published()) == count


def test_sso_role_is_granted_with_its_reserved_path(scenario: Scenario) -> None:
    # Given a training call by an IAM Identity Center role (under /aws-reserved/sso.amazonaws.com/)
    w = scenario.world
    event = w.training_event("cloudtrail_create_project_version_sso", kms_key=scenario.copy_key)
    role = event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
    w.role(role.rsplit("/", 1)[1], "/aws-reserved/sso.amazonaws.com/us-east-1/")

    # When it is handled
    grant(event)

    # Then the role is granted by its ARN with the reserved path
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_USE.sid) == [role]
    assert "/aws-reserved/sso.amazonaws.com/us-east-1/" in role


def test_iam_user_is_refused_by_default_patterns_and_granted_when_allowed(scenario: Scenario) -> None:
    # Given a training call by an IAM user (the default patterns allow roles only)
    w = scenario.world
    event = w.training_event("cloudtrail_create_project_version_iam_user", kms_key=scenario.copy_key)
    user = event["detail"]["userIdentity"]["arn"]
    w.user(user.rsplit("/", 1)[1])

    # When it is handled
    grant(event)

    # Then it is refused, the refusal names every key, and no key names the user
    [refusal] = w.findings()
    assert (refusal["finding_type"], refusal["outcome"], refusal["principal_arn"]) == (
        "PRINCIPAL_NOT_ALLOWED",
        "REFUSED",
        user,
    )
    for key in (scenario.copy_key, scenario.data_key, scenario.output_key):
        assert key in refusal["detail"]
        assert w.statement(key, policy.TRAINING_DATA.sid) is None

    # When the patterns allow the user, and the user calls again
    # Then the user is granted
    w.env_set(ALLOWED_PRINCIPAL_PATTERNS=f"arn:aws:iam::{ACCOUNT}:role/*,arn:aws:iam::{ACCOUNT}:user/ml-*")
    grant(w.training_event("cloudtrail_create_project_version_iam_user", kms_key=scenario.copy_key, event_id="again"))
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_USE.sid) == [user]


@pytest.mark.parametrize(
    "sample", ["cloudtrail_create_project_version_root", "cloudtrail_create_project_version_other_account"]
)
def test_root_and_other_account_callers_are_refused_once(scenario: Scenario, sample: str) -> None:
    # Given a training call by the account root, or by a caller in another account
    w = scenario.world
    before = {k: w.policy(k) for k in (scenario.data_key, scenario.copy_key, scenario.output_key)}

    # When it is handled
    grant(w.training_event(sample, kms_key=scenario.copy_key))

    # Then no key policy changes, and one HIGH refusal names the caller
    assert {k: w.policy(k) for k in before} == before
    [refusal] = w.findings()
    assert (refusal["finding_type"], refusal["severity"], refusal["outcome"]) == (
        "PRINCIPAL_NOT_ALLOWED",
        "HIGH",
        "REFUSED",
    )
    assert refusal["principal_arn"]


def test_lowercamelcase_parameters_are_read_like_pascalcase(scenario: Scenario) -> None:
    # Given a training call whose request parameters are lowerCamelCase
    # When it is handled
    w = scenario.world
    grant(w.training_event("cloudtrail_create_project_version_lowercamel", kms_key=scenario.copy_key))

    # Then the keys are granted as for PascalCase parameters
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_USE.sid) == [TRAINER]
    assert principals(w, scenario.data_key, policy.TRAINING_DATA.sid) == [TRAINER]


def test_alias_kms_key_id_is_resolved_to_its_key(scenario: Scenario) -> None:
    # Given a training call whose KmsKeyId is an alias of a managed key
    w = scenario.world
    event = w.training_event("cloudtrail_create_project_version_alias_key")
    alias = event["detail"]["requestParameters"]["KmsKeyId"]
    w.kms.create_alias(AliasName=alias, TargetKeyId=scenario.copy_key.split("/")[-1])

    # When it is handled
    grant(event)

    # Then the key the alias names is granted
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_USE.sid) == [TRAINER]


def test_refused_call_grants_nothing(scenario: Scenario) -> None:
    # Given a training call that AWS refused (ValidationException)
    # When it is handled
    w = scenario.world
    summary = grant(w.training_event("cloudtrail_create_project_version_error", kms_key=scenario.copy_key))

    # Then it is ignored: nothing granted, nothing published
    assert summary["status"] == "ignored"
    assert "ValidationException" in summary["reason"]
    assert w.statement(scenario.copy_key, policy.COPIED_IMAGES_USE.sid) is None
    assert w.published() == []


def test_access_denied_on_a_kms_action_is_granted_so_the_retry_succeeds(scenario: Scenario) -> None:
    # Given a training call that failed with AccessDenied on kms:CreateGrant
    # When it is handled
    w = scenario.world
    summary = grant(w.training_event("cloudtrail_create_project_version_access_denied_kms", kms_key=scenario.copy_key))

    # Then the grant is made, so the caller's retry succeeds
    assert summary["status"] == "processed"
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_GRANT.sid) == [TRAINER]


def test_create_dataset_grants_the_manifest_key(scenario: Scenario) -> None:
    # Given a CreateDataset call whose manifest is under the data key
    w = scenario.world
    event = w.training_event("cloudtrail_create_dataset")
    source = event["detail"]["requestParameters"]["DatasetSource"]["GroundTruthManifest"]["S3Object"]
    w.put(
        source["Name"],
        scenario.manifest_lines(),
        bucket=source["Bucket"],
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=scenario.data_key,
    )

    # When it is handled
    grant(event)

    # Then the caller is granted on the manifest's key
    assert principals(w, scenario.data_key, policy.TRAINING_DATA.sid) == [TRAINER]


def test_copy_project_version_grants_its_kms_key(scenario: Scenario) -> None:
    # Given a CopyProjectVersion call with a KmsKeyId
    # When it is handled
    w = scenario.world
    grant(w.training_event("cloudtrail_copy_project_version", kms_key=scenario.copy_key))

    # Then the caller is granted the copied-images access on that key
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_USE.sid) == [TRAINER]


def test_update_dataset_entries_checks_the_inline_ground_truth(scenario: Scenario) -> None:
    # Given an UpdateDatasetEntries call whose inline ground truth names images under the data key
    w = scenario.world
    event = w.training_event("cloudtrail_update_dataset_entries")
    lines = scenario.manifest_lines()
    event["detail"]["requestParameters"]["Changes"]["GroundTruth"] = base64.b64encode(lines).decode()

    # When it is handled
    grant(event)

    # Then the caller is granted on the images' key
    assert principals(w, scenario.data_key, policy.TRAINING_DATA.sid) == [TRAINER]


def test_report_mode_reports_what_it_would_grant(scenario: Scenario) -> None:
    # Given report mode, and the training role (path /ml/), three managed CMKs (data, KmsKeyId, output bucket) it lacks
    w = scenario.world
    w.env_set(REMEDIATION_MODE="report")

    # When the training call is handled
    grant(w.training_event(kms_key=scenario.copy_key))

    # Then nothing is granted, and one REPORTED finding per key says what would be
    assert w.statement(scenario.copy_key, policy.COPIED_IMAGES_USE.sid) is None
    findings = w.findings()
    assert {(f["finding_type"], f["outcome"]) for f in findings} == {("KEY_ACCESS_MISSING", "REPORTED")}
    assert len(findings) == 3


def test_untagged_key_is_not_managed(scenario: Scenario) -> None:
    # Given a training call whose KmsKeyId is a key without the opt-in tag
    w = scenario.world
    untagged = w.key(managed=False)
    before = w.policy(untagged)

    # When it is handled
    summary = grant(w.training_event(kms_key=untagged))

    # Then that key is left alone and refused; the managed keys are still granted
    assert w.policy(untagged) == before
    assert summary["keys"][untagged] == "not managed"
    assert summary["keys"][scenario.data_key] == "granted"
    assert ("KEY_NOT_MANAGED", "REFUSED", untagged) in {
        (f["finding_type"], f["outcome"], f["kms_key_arn"]) for f in w.findings()
    }


def test_policy_near_the_size_limit_is_refused(scenario: Scenario) -> None:
    # Given a key policy 100 bytes under the limit: room for no new statement
    w = scenario.world
    document = w.policy(scenario.copy_key)
    pad: dict[str, Any] = {"StringEquals": {"aws:PrincipalTag/x": ""}}
    document["Statement"].append(
        {
            "Sid": "Padding",
            "Effect": "Allow",  # (a Deny on an unknown key would block the grant itself)
            "Principal": {"AWS": "*"},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": pad,
        }
    )
    pad["StringEquals"]["aws:PrincipalTag/x"] = "y" * (policy.MAX_POLICY_BYTES - policy.size_in_bytes(document) - 100)
    text = policy.serialize(document)
    assert len(text.encode()) == policy.MAX_POLICY_BYTES - 100
    w.kms.put_key_policy(KeyId=scenario.copy_key, PolicyName="default", Policy=text)

    # When the training call is handled
    grant(w.training_event(kms_key=scenario.copy_key))

    # Then the policy is unchanged and the grant refused as KEY_POLICY_LIMIT
    assert w.policy(scenario.copy_key) == json.loads(text)
    limits = [f for f in w.findings() if f["finding_type"] == "KEY_POLICY_LIMIT"]
    assert [(f["outcome"], f["kms_key_arn"], f["principal_arn"]) for f in limits] == [
        ("REFUSED", scenario.copy_key, TRAINER)
    ]


def test_principal_not_yet_visible_to_kms_is_retried(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given KMS rejects the principal twice as not yet visible (a new role propagating)
    w = scenario.world
    monkeypatch.setattr("clguard.usecases.keyattempt.MALFORMED_BACKOFF", 0.0)
    w.behaviour[KeyPolicyValidation].not_yet_visible(TRAINER, times=2)

    # When the training call is handled
    grant(w.training_event(kms_key=scenario.copy_key))

    # Then the write is retried until it takes
    assert principals(w, scenario.copy_key, policy.COPIED_IMAGES_USE.sid) == [TRAINER]


def test_principal_never_visible_ends_as_failed(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given KMS never accepts the principal (MalformedPolicyDocumentException each time)
    w = scenario.world
    monkeypatch.setattr("clguard.usecases.keyattempt.MALFORMED_BACKOFF", 0.0)
    w.behaviour[KeyPolicyValidation].not_yet_visible(TRAINER, times=100)

    # When the training call is handled
    grant(w.training_event(kms_key=scenario.copy_key))

    # Then each key's grant ends as a FAILED finding that says why, and nothing is written
    failed = [f for f in w.findings() if f["outcome"] == "FAILED"]
    assert {f["finding_type"] for f in failed} == {"KEY_ACCESS_MISSING"}
    assert {f["kms_key_arn"] for f in failed} == {scenario.copy_key, scenario.data_key, scenario.output_key}
    assert all("MalformedPolicyDocumentException" in f["detail"] for f in failed)
    assert w.statement(scenario.copy_key, policy.COPIED_IMAGES_USE.sid) is None


def test_large_manifest_fans_image_checks_out_to_the_verify_queue(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a manifest with more images than the inline limit, images under their own key
    w = scenario.world
    monkeypatch.setattr(training, "INLINE_IMAGE_LIMIT", 3)
    image_key = w.key()
    images = [f"datasets/big/img-{n}.jpg" for n in range(20)]
    for image in images:
        w.put(image, ServerSideEncryption="aws:kms", SSEKMSKeyId=image_key)
    lines = "\n".join(json.dumps({"source-ref": f"s3://{BUCKET}/{i}"}) for i in images).encode()
    for manifest in (TRAIN, TEST):
        w.put(manifest, lines, ServerSideEncryption="aws:kms", SSEKMSKeyId=scenario.data_key)

    summary = grant(w.training_event(kms_key=scenario.copy_key))

    # Then the images were not checked inline but queued, carrying the principal to ensure
    assert summary["fanout_messages"] >= 2
    assert w.statement(image_key, policy.TRAINING_DATA.sid) is None
    bodies = [m["Body"] for m in w.drain_queue()]
    assert all(json.loads(b)["principals"] == [TRAINER] for b in bodies)
    # When the verify function consumes them, the principal is granted on the images' key
    response = verify_app.lambda_handler(sqs_event(*bodies), LambdaContext())
    assert response == {"batchItemFailures": []}
    assert principals(w, image_key, policy.TRAINING_DATA.sid) == [TRAINER]
