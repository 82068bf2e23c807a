"""A key policy that names a deleted principal: KMS then shows the principal's unique id
(``AROA…``) instead of its ARN, and refuses every PutKeyPolicy whose policy contains one
("Policy contains a statement with one or more invalid principals";
https://repost.aws/knowledge-center/kms-policy-error-invalid-principals). The guard never
removes what it did not add, so it cannot make such a policy writable: it says so, once per
attempt, without sending a write KMS must refuse (and without the backoff retries it keeps for
principals IAM has not propagated yet)."""

from __future__ import annotations

from typing import Any

from clguard.rules import policy
from functions.grant_training_access import app
from localaws.doubles import KeyPolicyValidation
from tests.awscalls import Boundary
from tests.world import ACCOUNT, LambdaContext, World, default_key_policy

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
GONE = f"arn:aws:iam::{ACCOUNT}:role/ml/FormerDataScientist"
GONE_ID = "AROAXAMPLEDELETED1234"


def grant(event: dict[str, Any]) -> dict[str, Any]:
    return app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))


def test_a_key_policy_naming_a_deleted_principal_is_reported_and_not_written(world: World, calls: Boundary) -> None:
    # Given a managed key whose policy has a hand-written statement for a role that was then deleted
    world.role("CustomLabelsTrainer", "/ml/")
    world.role("FormerDataScientist", "/ml/")
    document = default_key_policy()
    document["Statement"].append(
        {
            "Sid": "DataScientist",
            "Effect": "Allow",
            "Principal": {"AWS": GONE},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    key = world.key(policy=document)
    KeyPolicyValidation.principal_deleted(key, GONE, GONE_ID)

    # When a training call names the key
    grant(world.training_event(kms_key=key))

    # Then no PutKeyPolicy was sent, the policy is as it was, and the finding names the deleted id
    assert calls.log.count("PutKeyPolicy") == 0
    after = world.policy(key)
    assert not policy.is_allowed(after, TRAINER, policy.COPIED_IMAGES_USE, key)
    assert any(s.get("Principal", {}).get("AWS") == GONE_ID for s in after["Statement"])
    failed = [f for f in world.findings() if (f["finding_type"], f["outcome"]) == ("KEY_ACCESS_MISSING", "FAILED")]
    assert failed
    assert all(GONE_ID in f["detail"] and "deleted" in f["detail"] for f in failed)
    assert {f["principal_arn"] for f in failed} == {TRAINER}


def test_unwritable_principals_are_the_values_kms_refuses() -> None:
    # Given a policy with an account id, a root, a role ARN, "*", a deleted role's id and a user's id
    document = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": [ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", TRAINER]}},
            {"Effect": "Allow", "Principal": "*"},
            {"Effect": "Allow", "Principal": {"AWS": "*"}},
            {"Effect": "Allow", "Principal": {"AWS": [GONE_ID, "AIDAXAMPLEDELETED5678"]}},
            {"Effect": "Allow", "Principal": {"Service": "rekognition.amazonaws.com"}},
        ]
    }
    # Then only the unique ids are unwritable, in policy order
    assert policy.unwritable_principals(document) == (GONE_ID, "AIDAXAMPLEDELETED5678")
