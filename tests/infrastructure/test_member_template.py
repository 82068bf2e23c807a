"""member.yaml: the member role is least privilege and trusts only the central functions; its rules
forward exactly the events the central rules take (docs/architecture.md §2, many accounts)."""

from __future__ import annotations

from typing import Any

import pytest

from clguard import permissions
from localaws.template import REPO_ROOT, event_matches, load_template, resolve, rule_patterns
from tests.eventsamples import load_event

MEMBER_TEMPLATE = REPO_ROOT / "member.yaml"
MEMBER = "111122223333"
CENTRAL = "123456789012"
GUARD_ROLES = [
    f"arn:aws:iam::{CENTRAL}:role/guard-VerifyObjectEncryptionFunctionRole-ABC",
    f"arn:aws:iam::{CENTRAL}:role/guard-GrantTrainingAccessFunctionRole-DEF",
]
PARAMETERS = {
    "CentralAccountId": CENTRAL,
    "GuardRoleArns": GUARD_ROLES,
    "TrainingBuckets": ["custom-labels-training"],
    "ReencryptKmsKey": f"arn:aws:kms:us-east-1:{MEMBER}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "SecurityHub": "on",
}
PSEUDO = {"AWS::AccountId": MEMBER}


def member_role(parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    template = load_template(MEMBER_TEMPLATE)
    role: dict[str, Any] = resolve(
        template, template["Resources"]["MemberRole"]["Properties"], parameters or PARAMETERS, pseudo=PSEUDO
    )
    return role


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def test_member_role_allows_exactly_what_the_code_does_in_a_member_account() -> None:
    # Given the member role with every optional statement present
    role = member_role()

    # When its allowed actions are collected
    actions = {a for s in statements(role) if s["Effect"] == "Allow" for a in s["Action"]}

    # Then they are the S3, KMS and Rekognition actions the functions declare, nothing more
    assert actions == set(permissions.member_actions())


def test_member_role_trusts_only_the_central_functions() -> None:
    # Given the member role
    trust = member_role()["AssumeRolePolicyDocument"]["Statement"]

    # Then exactly the central functions' roles may assume it, and only from the central account
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"AWS": GUARD_ROLES},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": CENTRAL}},
        }
    ]


def test_member_key_policy_edits_need_the_opt_in_tag_and_keep_the_lockout_check() -> None:
    # Given the member role's statements
    edits = [s for s in statements(member_role()) if "kms:PutKeyPolicy" in s["Action"]]

    # Then PutKeyPolicy is allowed once, on this account's keys, only with the tag and no bypass
    assert len(edits) == 1
    assert edits[0]["Resource"] == f"arn:aws:kms:us-east-1:{MEMBER}:key/*"
    assert edits[0]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/custom-labels-guard": "managed"},
        "Bool": {"kms:BypassPolicyLockoutSafetyCheck": "false"},
    }


def test_member_s3_access_is_limited_to_its_training_buckets() -> None:
    # Given the member role's S3 statements
    s3 = [s for s in statements(member_role()) if any(a.startswith("s3:") for a in s["Action"])]

    # Then they name only the training bucket and its objects
    resources = {r for s in s3 for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])}
    assert resources == {"arn:aws:s3:::custom-labels-training", "arn:aws:s3:::custom-labels-training/*"}


@pytest.mark.parametrize(
    ("sample", "rule"),
    [
        ("s3_object_created.json", "ForwardObjectCreatedRule"),
        ("cloudtrail_s3_putobject.json", "ForwardS3DataEventRule"),
        ("cloudtrail_create_project_version.json", "ForwardTrainingCallRule"),
    ],
)
def test_member_rules_forward_its_own_events_and_no_one_elses(sample: str, rule: str) -> None:
    # Given the member's forwarding rules and a sample event of the member account
    template = load_template(MEMBER_TEMPLATE)
    patterns = {
        logical_id: resolve(template, resource["Properties"]["EventPattern"], PARAMETERS, pseudo=PSEUDO)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Events::Rule"
    }
    own = {**load_event(sample), "account": MEMBER}
    stranger = {**own, "account": "999988887777"}

    # Then the rule forwards the member's event, not another account's
    assert event_matches(patterns[rule], own)
    assert not event_matches(patterns[rule], stranger)


def test_central_rules_take_member_events_only_for_member_accounts() -> None:
    # Given the central template with one member account
    central = rule_patterns(load_template(), {"MemberAccountIds": MEMBER})
    event = load_event("s3_object_created.json")

    # Then the central S3 rule takes the member's and its own events, and a stranger's not
    assert event_matches(central["ObjectCreatedRule"], {**event, "account": MEMBER})
    assert event_matches(central["ObjectCreatedRule"], event)
    assert not event_matches(central["ObjectCreatedRule"], {**event, "account": "999988887777"})


def test_member_role_grants_security_hub_only_when_on_and_only_on_its_own_hub() -> None:
    # Given the member role with SecurityHub on, and with it off
    on = statements(member_role())
    off = statements(member_role({**PARAMETERS, "SecurityHub": "off"}))
    # Then with it on, the import is granted on the member's own default product and the workflow
    # on its own hub; with it off, no Security Hub action at all
    granted = {a: s["Resource"] for s in on for a in s["Action"] if a.startswith("securityhub:")}
    assert granted == {
        "securityhub:BatchImportFindings": f"arn:aws:securityhub:us-east-1:{MEMBER}:product/{MEMBER}/default",
        "securityhub:BatchUpdateFindings": f"arn:aws:securityhub:us-east-1:{MEMBER}:hub/default",
    }
    assert not [a for s in off for a in s["Action"] if a.startswith("securityhub:")]
