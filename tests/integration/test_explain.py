"""``clguard explain``: one object or key, what the guard knows and would do, with the deciding
statements; read-only."""

from __future__ import annotations

import io
import json
from typing import Any

from clguard.adapters import operator
from clguard.cli.main import main
from tests.awscalls import Boundary
from tests.world import ACCOUNT, BUCKET, World

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"


def explain(*args: str) -> tuple[int, dict[str, Any] | None]:
    out = io.StringIO()
    status = main(["explain", "--json", *args], stdout=out, stderr=io.StringIO())
    return status, json.loads(out.getvalue()) if out.getvalue() else None


def test_an_object_under_a_key_the_trainer_lacks_is_explained_with_the_deciding_statements(
    world: World, calls: Boundary
) -> None:
    # Given a training principal, and an object under a managed key whose policy denies it
    world.role("Trainer", "/ml/")
    deny = {
        "Sid": "NoTrainers",
        "Effect": "Deny",
        "Principal": {"AWS": TRAINER},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    root = {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    key = world.key(policy={"Version": "2012-10-17", "Statement": [root, deny]})
    world.put("a.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    # When it is explained
    status, document = explain(f"s3://{BUCKET}/a.jpg")
    # Then it is compliant, and the key part names the Deny that decides the trainer's access
    assert status == 0
    assert document is not None
    assert document["verdict"] == "compliant"
    [trainer] = document["key"]["principals"]
    assert trainer["decision"] == "denied"
    assert trainer["statements"] == [deny]
    assert "'NoTrainers'" in trainer["reason"]
    # And it only read, what it declares
    declared = {(s, op) for s, ops in operator.COMMANDS["explain"].items() for op in ops}
    assert set(calls.log.calls) - declared == set()


def test_an_unencrypted_object_says_what_enforce_would_do(world: World) -> None:
    # Given a legacy unencrypted object in report mode
    world.put_legacy("old.jpg")
    world.env_set(REMEDIATION_MODE="report")
    # When it is explained
    _, document = explain(f"s3://{BUCKET}/old.jpg")
    # Then the finding and the remediation enforce mode would make are named
    assert document is not None
    assert document["verdict"].startswith("OBJECT_UNENCRYPTED")
    assert "would be (in enforce mode) re-encrypted in place with SSE-S3" in document["verdict"]


def test_what_is_neither_an_object_nor_a_key_is_a_usage_error(world: World) -> None:
    # (a finding is explained by its resource: the guard keeps no store of findings)
    assert explain("OBJECT_UNENCRYPTED-3f4a5b6c") == (1, None)


def test_a_key_id_that_does_not_resolve_is_unusable(world: World) -> None:
    _, document = explain("b4c5d6e7-f8a9-4b0c-9d2e-3f4a5b6c7d84")
    assert document is not None
    assert document["verdict"].startswith("unusable")
