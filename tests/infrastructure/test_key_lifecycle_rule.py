"""The key lifecycle rule (docs/architecture.md §5a): KMS ScheduleKeyDeletion and DisableKey
CloudTrail events of the accounts the guard serves reach the grant function, which closes the
key's Security Hub findings; only with Security Hub on, and a member stack forwards its own."""

from __future__ import annotations

from typing import Any

import pytest

from clguard.boundary.events import KEY_STATE_EVENTS
from localaws.template import REPO_ROOT, condition_holds, event_matches, load_template, resolve, rule_patterns
from tests.eventsamples import load_event

RULE = "KeyLifecycleRule"
SAMPLES = ("cloudtrail_kms_schedule_key_deletion", "cloudtrail_kms_disable_key")
MEMBER = "111122223333"
STRANGER = "999988887777"
ON = {"SecurityHub": "on"}


def _pattern(parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return rule_patterns(load_template(), {**ON, **(parameters or {})})[RULE]


@pytest.mark.parametrize(
    ("template_file", "rule"), [("template.yaml", RULE), ("member.yaml", "ForwardKeyLifecycleRule")]
)
def test_every_template_routes_exactly_the_kms_calls_the_grant_function_handles(template_file: str, rule: str) -> None:
    # Given the template's rule for KMS key lifecycle calls
    pattern = load_template(REPO_ROOT / template_file)["Resources"][rule]["Properties"]["EventPattern"]
    # Then it takes CloudTrail records of KMS, exactly the calls the boundary parses
    assert pattern["source"] == ["aws.kms"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    assert pattern["detail"]["eventSource"] == ["kms.amazonaws.com"]
    assert set(pattern["detail"]["eventName"]) == set(KEY_STATE_EVENTS) == {"ScheduleKeyDeletion", "DisableKey"}


@pytest.mark.parametrize("name", SAMPLES)
def test_the_rule_takes_its_own_and_its_members_key_events_and_no_strangers(name: str) -> None:
    # Given the central rule with one member account
    pattern = _pattern({"MemberAccountIds": MEMBER})
    event = load_event(name)
    # Then the own account's and the member's events match, a stranger's not
    assert event_matches(pattern, event)
    assert event_matches(pattern, {**event, "account": MEMBER})
    assert not event_matches(pattern, {**event, "account": STRANGER})


@pytest.mark.parametrize("call", ["CancelKeyDeletion", "EnableKey", "DeleteKey", "PutKeyPolicy", "Decrypt"])
def test_a_key_back_in_use_and_every_other_kms_call_are_not_routed(call: str) -> None:
    # Given a KMS record of another call (a key enabled again is decided afresh by the next event
    # or audit that meets it: docs/architecture.md §5a)
    event = load_event("cloudtrail_kms_disable_key")
    event["detail"]["eventName"] = call
    # Then the rule does not take it
    assert not event_matches(_pattern(), event)
    # nor a DisableKey recorded by another source
    assert not event_matches(_pattern(), {**load_event("cloudtrail_kms_disable_key"), "source": "aws.sagemaker"})


@pytest.mark.parametrize(
    ("template_file", "resources"),
    [
        ("template.yaml", ("KeyLifecycleRule", "KeyLifecycleRulePermission")),
        ("member.yaml", ("ForwardKeyLifecycleRule",)),
    ],
)
def test_the_rule_exists_only_with_security_hub_on(template_file: str, resources: tuple[str, ...]) -> None:
    # Given the template with SecurityHub on and off
    template = load_template(REPO_ROOT / template_file)
    extra = {"CentralAccountId": "123456789012", "GuardRoleArns": ["arn:aws:iam::123456789012:role/r"]}
    parameters = extra if template_file == "member.yaml" else {}
    for resource in resources:
        condition = template["Resources"][resource]["Condition"]
        # Then it is deployed only when there are Security Hub findings to close
        assert condition_holds(template, condition, {**parameters, "SecurityHub": "on"})
        assert not condition_holds(template, condition, {**parameters, "SecurityHub": "off"})


def test_the_rule_invokes_the_grant_function_with_retries_and_its_dead_letter_queue() -> None:
    # Given the rule's target and the grant DLQ's policy
    template = load_template()
    [target] = template["Resources"][RULE]["Properties"]["Targets"]
    policy = template["Resources"]["GrantDLQPolicy"]["Properties"]["PolicyDocument"]
    # Then it targets the grant function, retries, and dead-letters to GrantDLQ
    assert target["Arn"] == {"Fn::GetAtt": ["GrantTrainingAccessFunction", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["GrantDLQ", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    # and the DLQ admits the rule (its Allow, and its Deny's exception) only when the rule exists
    on = resolve(template, policy, ON)
    off = resolve(template, policy, {"SecurityHub": "off"})
    rule_arn = f"getatt:{RULE}.Arn"
    assert [rule_arn in str(s["Condition"]) for s in on["Statement"]] == [True, True]
    assert [rule_arn in str(s["Condition"]) for s in off["Statement"]] == [False, False]


@pytest.mark.parametrize("name", SAMPLES)
def test_a_member_forwards_its_own_key_events_and_no_one_elses(name: str) -> None:
    # Given the member stack's forwarding rule
    template = load_template(REPO_ROOT / "member.yaml")
    pattern = resolve(
        template,
        template["Resources"]["ForwardKeyLifecycleRule"]["Properties"]["EventPattern"],
        {
            "CentralAccountId": "123456789012",
            "GuardRoleArns": ["arn:aws:iam::123456789012:role/r"],
            "SecurityHub": "on",
        },
        pseudo={"AWS::AccountId": MEMBER},
    )
    own = {**load_event(name), "account": MEMBER}
    # Then it forwards the member's own KMS events, not another account's
    assert event_matches(pattern, own)
    assert not event_matches(pattern, {**own, "account": STRANGER})
