"""A key behind an organization's identity perimeter still gets its training principals.

The AWS data perimeter examples deny kms:* on a key to every principal outside the organization
(``StringNotEqualsIfExists aws:PrincipalOrgID <org>`` with ``BoolIfExists
aws:PrincipalIsAWSService false``; github.com/aws-samples/data-perimeter-policy-examples). A
request Rekognition or S3 makes for a role of the key's own account carries that account's
organization id (aws:PrincipalOrgID: "the identifier of the organization ... to which the
requesting principal belongs", IAM global condition context keys,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html), so the
Deny does not apply to it and an added Allow works. The guard treats aws:PrincipalOrgID as
unknown ("in doubt, the Deny applies") and refuses: the training then fails for key access,
with a finding that blames a Deny that does not apply.

The guard learns the account's organization (organizations:DescribeOrganization, once per warm
container, only for a key policy whose Deny names an organization key) and evaluates the Deny
with it; an account in no organization carries no aws:PrincipalOrgID (the Deny applies), and an
organization it cannot read stays unknown (the Deny is taken to apply: fail safe)."""

from __future__ import annotations

from typing import Any

import boto3

from clguard.rules import policy
from functions.grant_training_access import app
from tests.awscalls import Boundary
from tests.fixtures import key_policy
from tests.world import ACCOUNT, REGION, LambdaContext, World

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"


def new_organization() -> str:
    """The test account's organization, created (it is then in one, as DescribeOrganization says)."""
    organization = boto3.client("organizations", region_name=REGION).create_organization(FeatureSet="ALL")
    return str(organization["Organization"]["Id"])


def grant(event: dict[str, Any]) -> dict[str, Any]:
    return app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))


def test_a_key_behind_the_organization_s_identity_perimeter_is_granted(world: World) -> None:
    # Given an account in an organization, the training role, and a managed KmsKeyId key whose
    # policy denies kms:* to principals outside that organization
    org_id = new_organization()
    document = key_policy("identity_perimeter_key_policy", ACCOUNT)
    document["Statement"][1]["Condition"]["StringNotEqualsIfExists"]["aws:PrincipalOrgID"] = org_id
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key(policy=document)

    # When the role's CreateProjectVersion is handled
    grant(world.training_event(kms_key=key))

    # Then the role was granted (the perimeter does not apply to it), and no refusal was reported
    assert policy.is_allowed(world.policy(key), TRAINER, policy.COPIED_IMAGES_USE, key)
    assert ("KEY_ACCESS_MISSING", "REFUSED") not in {(f["finding_type"], f["outcome"]) for f in world.findings()}


def perimeter_key(world: World, org_id: str) -> str:
    document = key_policy("identity_perimeter_key_policy", ACCOUNT)
    document["Statement"][1]["Condition"]["StringNotEqualsIfExists"]["aws:PrincipalOrgID"] = org_id
    return world.key(policy=document)


def refusals(world: World) -> list[dict[str, Any]]:
    return [f for f in world.findings() if (f["finding_type"], f["outcome"]) == ("KEY_ACCESS_MISSING", "REFUSED")]


def test_an_account_in_no_organization_is_outside_the_perimeter(world: World) -> None:
    # Given an account in no organization, and a key whose policy denies kms:* outside o-other
    world.role("CustomLabelsTrainer", "/ml/")
    key = perimeter_key(world, "o-other1234")

    # When the role's CreateProjectVersion is handled
    grant(world.training_event(kms_key=key))

    # Then nothing is granted (its requests carry no aws:PrincipalOrgID: the Deny applies), and
    # the refusal names the Deny
    assert not policy.is_allowed(world.policy(key), TRAINER, policy.COPIED_IMAGES_USE, key)
    assert refusals(world)
    assert all("EnforceIdentityPerimeter" in f["detail"] for f in refusals(world))


def test_an_organization_the_guard_cannot_read_is_unknown_and_the_deny_taken_to_apply(
    world: World, calls: Boundary
) -> None:
    # Given an account in an organization, but DescribeOrganization is denied to the guard
    org_id = new_organization()
    world.role("CustomLabelsTrainer", "/ml/")
    key = perimeter_key(world, org_id)
    calls.faults.add("DescribeOrganization", "AccessDeniedException", status=400)

    # When the role's CreateProjectVersion is handled
    grant(world.training_event(kms_key=key))

    # Then nothing is written and the Deny is reported (fail safe), not a crash
    assert not policy.is_allowed(world.policy(key), TRAINER, policy.COPIED_IMAGES_USE, key)
    assert refusals(world)


def test_a_key_policy_without_an_organization_deny_never_asks_for_the_organization(
    world: World, calls: Boundary
) -> None:
    # Given a managed key with the default key policy
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()

    # When the role's CreateProjectVersion is handled
    grant(world.training_event(kms_key=key))

    # Then the role is granted and DescribeOrganization was never called
    assert policy.is_allowed(world.policy(key), TRAINER, policy.COPIED_IMAGES_USE, key)
    assert calls.log.count("DescribeOrganization") == 0


def test_the_organization_is_read_once_per_container(world: World, calls: Boundary) -> None:
    # Given an organization and two perimeter keys
    org_id = new_organization()
    world.role("CustomLabelsTrainer", "/ml/")
    first, second = perimeter_key(world, org_id), perimeter_key(world, org_id)

    # When two training calls name them
    grant(world.training_event(kms_key=first))
    grant(world.training_event(kms_key=second))

    # Then both are granted, and the organization was read once
    assert all(policy.is_allowed(world.policy(k), TRAINER, policy.COPIED_IMAGES_USE, k) for k in (first, second))
    assert calls.log.count("DescribeOrganization") == 1


def test_a_refused_organization_read_is_not_repeated_for_every_call(world: World, calls: Boundary) -> None:
    # Given an organization the guard may not read (an SCP denies DescribeOrganization), and a perimeter key
    org_id = new_organization()
    world.role("CustomLabelsTrainer", "/ml/")
    key = perimeter_key(world, org_id)
    calls.faults.add("DescribeOrganization", "AccessDeniedException", status=400)

    # When three training calls name the key within a minute
    for _ in range(3):
        grant(world.training_event(kms_key=key))

    # Then the organization was asked for once, and each call reported the Deny
    assert calls.log.count("DescribeOrganization") == 1
    assert len({f["source_event_id"] for f in refusals(world)}) >= 1
