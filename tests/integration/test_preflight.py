"""``clguard preflight`` (design §12) against moto: per-key verdicts, exit statuses, the JSON
document, read-only, and the same decision as the grant path on the same world."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from clguard.adapters import operator
from clguard.cli.main import main
from clguard.rules import policy
from functions.grant_training_access import app as grant_app
from tests.awscalls import Boundary
from tests.world import ACCOUNT, BUCKET, OUTPUT_BUCKET, LambdaContext, World

ROLE = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
PROJECT = f"arn:aws:rekognition:us-east-1:{ACCOUNT}:project/cats/1764360000000"
MANIFEST = "datasets/cats/train.manifest"
IMAGE = "datasets/cats/images/cat-001.jpg"


def run(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["preflight", "--json", *args], stdout=out, stderr=err)
    text = out.getvalue()
    return status, json.loads(text) if text else None, err.getvalue()


def base_args(*extra: str) -> list[str]:
    return ["--role", ROLE, "--project-arn", PROJECT, *extra]


@pytest.fixture
def trainer(world: World) -> World:
    world.role("CustomLabelsTrainer", "/ml/")
    return world


def manifest_under(world: World, key_arn: str, image_key_arn: str | None = None) -> None:
    image = image_key_arn or key_arn
    world.put(IMAGE, ServerSideEncryption="aws:kms", SSEKMSKeyId=image)
    line = json.dumps({"source-ref": f"s3://{BUCKET}/{IMAGE}"}).encode() + b"\n"
    world.put(MANIFEST, line, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)


def grant_for(world: World, key_arn: str | None = None) -> dict[str, Any]:
    event = world.training_event(kms_key=key_arn, issuer=ROLE)
    params = event["detail"]["requestParameters"]
    params["TestingData"] = {"AutoCreate": True}
    if key_arn is None:
        params.pop("KmsKeyId", None)
    return grant_app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))


def has_access(world: World, key_arn: str, specs: tuple[policy.StatementSpec, ...]) -> bool:
    document = world.policy(key_arn)
    return not policy.missing(document, ROLE, specs, key_arn)


def test_a_managed_key_the_role_lacks_is_guard_will_fix_and_the_grant_path_then_grants_it(trainer: World) -> None:
    # Given a manifest and its image under a managed key that does not name the trainer
    key = trainer.key()
    manifest_under(trainer, key)
    # When preflight is asked about training from that manifest
    status, document, _ = run(*base_args("--training-manifest", f"s3://{BUCKET}/{MANIFEST}"))
    # Then the key is guard-will-fix for both objects, with what is missing, and exit 0
    assert status == 0
    assert document == {
        "verdict": "guard-will-fix",
        "role": ROLE,
        "keys": [
            {
                "key_arn": key,
                "verdict": "guard-will-fix",
                "needed_for": [f"s3://{BUCKET}/{MANIFEST}", f"s3://{BUCKET}/{IMAGE}"],
                "missing_actions": ["kms:Decrypt", "kms:GenerateDataKey"],
                "reason": None,
            }
        ],
    }
    # And the grant path, on the same world, grants exactly that
    grant_event = trainer.training_event(issuer=ROLE)
    grant_event["detail"]["requestParameters"].pop("KmsKeyId")
    grant_event["detail"]["requestParameters"].pop("TestingData")
    grant_app.lambda_handler(grant_event, LambdaContext(function_name="grant-training-access"))
    assert has_access(trainer, key, (policy.TRAINING_DATA,))
    # And preflight now says ready
    status, document, _ = run(*base_args("--training-manifest", f"s3://{BUCKET}/{MANIFEST}"))
    assert (status, document["verdict"] if document else None) == (0, "ready")


def test_a_key_without_the_opt_in_tag_is_blocked_and_named(trainer: World) -> None:
    # Given the KmsKeyId key is not opted in
    key = trainer.key(managed=False)
    # When preflight is asked about it
    status, document, _ = run(*base_args("--kms-key-id", key))
    # Then it is blocked (exit 2), naming the missing tag and every action training needs on it
    assert status == 2
    assert document is not None
    [entry] = document["keys"]
    assert entry["verdict"] == "blocked"
    assert entry["needed_for"] == ["KmsKeyId"]
    assert entry["missing_actions"] == ["kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey"]
    assert "opt-in tag custom-labels-guard=managed" in entry["reason"]
    # And the grant path does not grant it either
    grant_for(trainer, key)
    assert not has_access(trainer, key, policy.AccessNeed.COPIED_IMAGES.specs)


def test_report_mode_blocks_and_says_so(trainer: World) -> None:
    # Given report mode and a managed key the trainer lacks
    trainer.env_set(REMEDIATION_MODE="report")
    key = trainer.key()
    # When preflight runs
    status, document, _ = run(*base_args("--kms-key-id", key))
    # Then the key is blocked because nothing is written in report mode
    assert status == 2
    assert document is not None
    assert "report" in document["keys"][0]["reason"]


def test_a_deny_statement_is_named_by_its_sid_or_its_index(trainer: World) -> None:
    # Given a managed key whose policy denies every principal but an admin, once with a Sid, once without
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/Admin"}},
    }
    root = {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    named = trainer.key(policy={"Version": "2012-10-17", "Statement": [root, {"Sid": "OnlyAdmins", **deny}]})
    unnamed = trainer.key(policy={"Version": "2012-10-17", "Statement": [root, deny]})
    # When preflight looks at each as the KmsKeyId
    reasons = []
    for key in (named, unnamed):
        status, document, _ = run(*base_args("--kms-key-id", key))
        assert status == 2
        assert document is not None
        reasons.append(document["keys"][0]["reason"])
    # Then the Deny is named
    assert "'OnlyAdmins'" in reasons[0]
    assert "'Statement[1]'" in reasons[1]


def test_missing_and_sse_c_objects_are_entries_without_a_key(trainer: World) -> None:
    # Given a manifest that does not exist
    status, document, _ = run(*base_args("--training-manifest", f"s3://{BUCKET}/missing.manifest"))
    # Then it is unknown (exit 3), an entry with key_arn null
    assert status == 3
    assert document is not None
    assert document["keys"] == [
        {
            "key_arn": None,
            "verdict": "unknown",
            "needed_for": [f"s3://{BUCKET}/missing.manifest"],
            "missing_actions": [],
            "reason": "the object does not exist",
        }
    ]


def test_nothing_encrypted_with_kms_is_ready_with_no_keys(trainer: World) -> None:
    # Given an SSE-S3 manifest and image, and an output bucket without a default KMS key
    trainer.put(IMAGE)
    trainer.put(MANIFEST, json.dumps({"source-ref": f"s3://{BUCKET}/{IMAGE}"}).encode())
    # When preflight runs
    status, document, _ = run(
        *base_args("--training-manifest", f"s3://{BUCKET}/{MANIFEST}", "--output", f"s3://{OUTPUT_BUCKET}/out/")
    )
    # Then it is ready with no key, exit 0
    assert (status, document) == (0, {"verdict": "ready", "role": ROLE, "keys": []})


def test_the_output_buckets_default_key_is_needed_for_output(trainer: World) -> None:
    # Given an output bucket whose default encryption is a managed key
    key = trainer.key()
    trainer.s3.put_bucket_encryption(
        Bucket=OUTPUT_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]
        },
    )
    # When preflight runs with --output
    _, document, _ = run(*base_args("--output", f"s3://{OUTPUT_BUCKET}/out/"))
    # Then the key is listed as needed for "output"
    assert document is not None
    assert [(e["key_arn"], e["needed_for"]) for e in document["keys"]] == [(key, ["output"])]


@pytest.mark.parametrize(
    "role",
    [
        f"arn:aws:iam::{ACCOUNT}:role/CustomLabelsTrainer",  # without its path
        f"arn:aws:sts::{ACCOUNT}:assumed-role/CustomLabelsTrainer/session-1",  # an STS session
    ],
)
def test_the_role_is_resolved_to_its_arn_with_path(trainer: World, role: str) -> None:
    status, document, _ = run("--role", role, "--project-arn", PROJECT, "--kms-key-id", trainer.key())
    assert status == 0
    assert document is not None
    assert document["role"] == ROLE


@pytest.mark.parametrize(
    "args",
    [
        [],  # no --role
        ["--role", "not-an-arn", "--project-arn", PROJECT],
        ["--role", f"arn:aws:iam::{ACCOUNT}:role/NoSuchRole", "--project-arn", PROJECT],
        ["--role", ROLE, "--project-arn", PROJECT, "--training-manifest", "http://x/y"],
    ],
)
def test_usage_errors_exit_1_with_nothing_on_stdout(trainer: World, args: list[str]) -> None:
    status, document, err = run(*args)
    assert (status, document) == (1, None)
    assert err.startswith("clguard")


def test_it_needs_neither_the_alerts_topic_nor_the_state_table(trainer: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an environment without ALERT_TOPIC_ARN and STATE_TABLE
    monkeypatch.delenv("ALERT_TOPIC_ARN")
    monkeypatch.delenv("STATE_TABLE")
    # When preflight runs
    status, document, _ = run(*base_args("--kms-key-id", trainer.key()))
    # Then it decides as usual
    assert (status, document["verdict"] if document else None) == (0, "guard-will-fix")


def test_preflight_writes_nothing_and_calls_only_what_it_declares(trainer: World, calls: Boundary) -> None:
    # Given a world with every kind of key use: a manifest and image under one key, the KmsKeyId
    # key, the output bucket's default key; and a project
    data_key, copy_key, out_key = trainer.key(), trainer.key(managed=False), trainer.key()
    manifest_under(trainer, data_key)
    trainer.s3.put_bucket_encryption(
        Bucket=OUTPUT_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": out_key}}]
        },
    )
    before = {k: trainer.policy(k) for k in (data_key, copy_key, out_key)}
    # When preflight runs on it
    status, _, _ = run(
        *base_args(
            "--training-manifest",
            f"s3://{BUCKET}/{MANIFEST}",
            "--kms-key-id",
            copy_key,
            "--output",
            f"s3://{OUTPUT_BUCKET}/o/",
        )
    )
    assert status == 2
    # Then every call it made is a read it declares (operator.COMMANDS), and no key policy changed
    made = set(calls.log.calls)
    declared = {(s, op) for s, ops in operator.COMMANDS["preflight"].items() for op in ops}
    assert made - declared == set()
    assert all(op.startswith(("Get", "Head", "Describe", "List")) for _, op in made), made
    assert {("kms", "GetKeyPolicy"), ("s3", "HeadObject"), ("iam", "GetRole")} <= made
    assert {k: trainer.policy(k) for k in before} == before
    # And nothing was published, queued or stored
    assert trainer.published() == []
    assert list(trainer.drain_queue()) == []
    assert trainer.ddb.scan(TableName="custom-labels-guard-state")["Count"] == 0
