"""A training call AWS refused with an *explicit* deny of a kms: action grants nothing.

docs/architecture.md §7 grants on a refused call only because "the caller, if allowed, lacked key
access": an implicit deny ("because no resource-based policy allows the kms:CreateGrant action")
that a key-policy statement fixes. AWS words an explicit deny differently: "When a policy
explicitly denies access because the policy contains a Deny statement, then AWS includes the
phrase `with an explicit deny in a type policy`" (IAM User Guide, troubleshooting access denied
error messages, https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
An explicit deny overrides every allow, so a key-policy grant cannot make the retry succeed: it
would only widen the key policy for a principal the organization (SCP), its own IAM policies,
its permissions boundary or the key's own Deny refuse, and report REMEDIATED for access that
does not work."""

from __future__ import annotations

from typing import Any

import pytest

from clguard.rules import policy
from functions.grant_training_access import app
from tests.world import ACCOUNT, LambdaContext, World

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"


def grant(event: dict[str, Any]) -> dict[str, Any]:
    return app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))


def test_a_kms_action_refused_by_an_explicit_deny_in_a_service_control_policy_grants_nothing(world: World) -> None:
    # Given the training role and a managed KmsKeyId key it lacks, and its CreateProjectVersion
    # refused "with an explicit deny in a service control policy" on kms:CreateGrant
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    before = world.policy(key)
    event = world.training_event("cloudtrail_create_project_version_access_denied_kms_scp", kms_key=key)

    # When it is handled
    summary = grant(event)

    # Then it is ignored, saying why: the key policy is unchanged and no change is reported
    assert summary["status"] == "ignored"
    assert "explicit deny" in summary["reason"]
    assert world.policy(key) == before
    assert not policy.is_allowed(world.policy(key), TRAINER, policy.COPIED_IMAGES_USE, key)
    assert world.published() == []


CEILINGS = ["service control policy", "resource control policy", "permissions boundary", "session policy"]


@pytest.mark.parametrize("ceiling", CEILINGS)
def test_a_kms_action_no_limiting_policy_allows_grants_nothing(world: World, ceiling: str) -> None:
    # Given the training call refused "because no <SCP / RCP / boundary / session policy> allows"
    # kms:CreateGrant: those policies only limit, so no key-policy grant can lift the refusal
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    before = world.policy(key)
    event = world.training_event("cloudtrail_create_project_version_access_denied_kms", kms_key=key)
    detail = event["detail"]
    detail["errorMessage"] = detail["errorMessage"].replace("no resource-based policy allows", f"no {ceiling} allows")

    # When it is handled
    summary = grant(event)

    # Then nothing is granted, and the summary says which policy refused
    assert summary["status"] == "ignored"
    assert ceiling in summary["reason"]
    assert world.policy(key) == before


@pytest.mark.parametrize("kind", ["resource-based policy", "identity-based policy"])
def test_a_kms_action_no_granting_policy_allows_is_granted(world: World, kind: str) -> None:
    # Given the training call refused "because no <resource-based / identity-based> policy allows"
    # kms:CreateGrant: a key-policy statement is exactly what allows it
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    event = world.training_event("cloudtrail_create_project_version_access_denied_kms", kms_key=key)
    detail = event["detail"]
    detail["errorMessage"] = detail["errorMessage"].replace("no resource-based policy allows", f"no {kind} allows")

    # When it is handled
    grant(event)

    # Then the caller is granted, so that the retry succeeds
    assert policy.is_allowed(world.policy(key), TRAINER, policy.COPIED_IMAGES_GRANT, key)
