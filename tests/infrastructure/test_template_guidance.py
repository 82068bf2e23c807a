"""The template guides the person who deploys it (issue 24): a form in a sensible order, Rules that
refuse what cannot work together, one safe default, alarms that also say when things are OK and
that keep two stacks apart, a heartbeat, sample configurations that are not traps, and a version
that is the changelog's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.infrastructure.cfn_template import load_template
from tests.infrastructure.test_template_environment import accepts

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
PARAMETERS = TEMPLATE["Parameters"]
INTERFACE = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]


# --- the form ---------------------------------------------------------------------------------


def test_every_parameter_is_in_exactly_one_group_and_has_a_label() -> None:
    # Given the template's parameter groups
    grouped = [name for group in INTERFACE["ParameterGroups"] for name in group["Parameters"]]
    # Then every parameter is in exactly one group (add a new parameter to a group), and each
    # group and each parameter has a label
    assert sorted(grouped) == sorted(PARAMETERS), "each parameter in exactly one group"
    assert len(grouped) == len(set(grouped))
    assert all(group["Label"]["default"] for group in INTERFACE["ParameterGroups"])
    assert set(INTERFACE["ParameterLabels"]) == set(PARAMETERS)
    assert all(label["default"] for label in INTERFACE["ParameterLabels"].values())


def test_the_form_starts_with_what_to_guard_and_the_mode() -> None:
    groups = INTERFACE["ParameterGroups"]
    assert groups[0]["Parameters"][0] == "TrainingBuckets"
    assert groups[1]["Parameters"][0] == "RemediationMode"


# --- one safe default -------------------------------------------------------------------------


def test_the_readme_and_the_template_agree_on_report_first() -> None:
    # Given the template's default mode and the README
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # Then the template starts in report, the README says to start in report, and its parameter
    # table shows the same default
    assert PARAMETERS["RemediationMode"]["Default"] == "report"
    assert "Start with `RemediationMode=report`" in readme
    [row] = [line for line in readme.splitlines() if line.startswith("| `RemediationMode` |")]
    assert row.rstrip().endswith("| `report` |"), row


# --- Rules ------------------------------------------------------------------------------------


def _value(node: Any, values: dict[str, Any]) -> Any:
    """A rule expression's value for these parameter values (the functions Rules allow)."""
    if isinstance(node, dict) and len(node) == 1:
        [(name, argument)] = node.items()
        if name == "Ref":
            return values[argument]
        args = [_value(a, values) for a in argument] if isinstance(argument, list) else argument
        match name:
            case "Fn::Equals":
                return args[0] == args[1]
            case "Fn::Not":
                return not args[0]
            case "Fn::And":
                return all(args)
            case "Fn::Or":
                return any(args)
            case "Fn::Contains":
                return args[1] in args[0]
        raise AssertionError(f"a function Rules do not allow: {name}")
    return node


def violated(values: dict[str, Any]) -> list[str]:
    """The rules these parameter values break (defaults for the rest), as CloudFormation checks them."""
    full = {name: spec.get("Default", "") for name, spec in PARAMETERS.items()} | values
    out = []
    for name, rule in TEMPLATE["Rules"].items():
        if "RuleCondition" in rule and not _value(rule["RuleCondition"], full):
            continue
        if not all(_value(a["Assert"], full) for a in rule["Assertions"]):
            out.append(name)
    return out


KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("values", "broken"),
    [
        ({"SlackWorkspaceId": "T0123ABCD"}, ["SlackNeedsBothIds"]),
        ({"SlackChannelId": "C0123ABCD"}, ["SlackNeedsBothIds"]),
        ({"SlackWorkspaceId": "T0123ABCD", "SlackChannelId": "C0123ABCD"}, []),
        ({"EncryptionRequirement": "SSE_KMS", "RemediationMode": "enforce"}, ["EnforcedSseKmsNeedsAKey"]),
        ({"EncryptionRequirement": "SSE_KMS", "RemediationMode": "enforce", "ReencryptKmsKey": KEY}, []),
        ({"EncryptionRequirement": "SSE_KMS", "RemediationMode": "report"}, []),
        ({"OrganizationId": "o-a1b2c3d4e5"}, ["MemberRoleNeedsMembers"]),
        ({"OrganizationId": "o-a1b2c3d4e5", "MemberAccountIds": "210987654321"}, []),
        ({"MemberOrganizationalUnitId": "ou-ab12-cd34ef56"}, ["MemberUnitNeedsOrganization"]),
        ({"MemberOrganizationalUnitId": "ou-ab12-cd34ef56", "OrganizationId": "o-a1b2c3d4e5"}, []),
        ({}, []),  # the defaults deploy
    ],
)
def test_the_rules_refuse_each_bad_combination_and_only_those(values: dict[str, Any], broken: list[str]) -> None:
    assert violated(values) == broken


def test_every_rule_says_what_to_fix() -> None:
    for name, rule in TEMPLATE["Rules"].items():
        for assertion in rule["Assertions"]:
            assert len(assertion.get("AssertDescription", "")) > 40, name


# --- alarms -----------------------------------------------------------------------------------


def _alarms() -> dict[str, dict[str, Any]]:
    return {n: r for n, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


@pytest.mark.parametrize("name", sorted(_alarms()))
def test_every_alarm_also_says_when_it_is_ok(name: str) -> None:
    properties = _alarms()[name]["Properties"]
    assert properties["OKActions"] == properties["AlarmActions"]


def test_custom_metric_alarms_are_this_stacks() -> None:
    # Given the alarms on the guard's own metrics (namespace CustomLabelsGuard)
    custom = [p["Properties"] for p in _alarms().values() if p["Properties"].get("Namespace") == "CustomLabelsGuard"]
    assert custom
    # Then each is on this stack's service dimension (POWERTOOLS_SERVICE_NAME is the stack name)
    for properties in custom:
        assert properties["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]
    environment = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}


def test_the_heartbeat_fires_when_no_s3_event_is_matched_for_the_configured_hours() -> None:
    heartbeat = TEMPLATE["Resources"]["HeartbeatAlarm"]
    properties = heartbeat["Properties"]
    assert heartbeat["Condition"] == "HasHeartbeat"
    rules = {
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"] for m in properties["Metrics"] if "MetricStat" in m
    }
    assert rules == {"ObjectCreatedRule", "S3DataEventRule"}  # not the audit's fan-out
    assert properties["EvaluationPeriods"] == {"Ref": "HeartbeatHours"}
    assert (properties["ComparisonOperator"], properties["Threshold"]) == ("LessThanThreshold", 1)
    assert properties["TreatMissingData"] == "breaching"
    assert all(m["MetricStat"]["Period"] == 3600 for m in properties["Metrics"] if "MetricStat" in m)


# --- sample configurations and metadata ---------------------------------------------------------


def test_the_sample_configurations_are_not_traps() -> None:
    # Given the committed samconfig.toml
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    default_stack = config["default"]["global"]["parameters"]["stack_name"]
    for name, environment in config.items():
        if name in ("version", "default"):
            continue
        deploy = environment["deploy"]["parameters"]
        # Then no example reuses the default stack name, each asks before it deploys
        assert deploy["stack_name"] != default_stack, name
        assert environment["global"]["parameters"]["stack_name"] == deploy["stack_name"], name
        assert deploy["confirm_changeset"] is True, name
        # And each has a placeholder the template's constraints refuse: it cannot deploy as is
        overrides = dict(o.split("=", 1) for o in deploy["parameter_overrides"])
        refused = [
            p
            for p, v in overrides.items()
            if not accepts(PARAMETERS[p], v.split(",") if PARAMETERS[p]["Type"] == "CommaDelimitedList" else v)
        ]
        assert "TrainingBuckets" in refused, name


def test_the_sar_metadata_urls_are_real_or_absent() -> None:
    metadata = TEMPLATE["Metadata"]["AWS::ServerlessRepo::Application"]
    for field in ("HomePageUrl", "SourceCodeUrl"):
        assert field not in metadata or not re.search(r"github\.com/custom-labels-guard/", metadata[field]), field


def test_the_semantic_version_is_the_latest_released_changelog_heading() -> None:
    # Given CHANGELOG.md (Keep a Changelog) and the template's SAR version
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.MULTILINE)
    version = TEMPLATE["Metadata"]["AWS::ServerlessRepo::Application"]["SemanticVersion"]
    # Then the template carries the newest released version, and the changelog still has its
    # Unreleased section above it
    assert released, "no released version in CHANGELOG.md"
    assert version == released[0]
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{version}]")


def test_every_alarm_says_how_missing_data_counts() -> None:
    # Given the stack's alarms (clguard doctor passes INSUFFICIENT_DATA as "not evaluated yet")
    alarms = {
        name: resource["Properties"]
        for name, resource in TEMPLATE["Resources"].items()
        if resource["Type"] in {"AWS::CloudWatch::Alarm"}
    }
    # Then each one treats missing data explicitly, so INSUFFICIENT_DATA lasts only until its first
    # evaluation and a quiet stack never hides a broken alarm behind it
    assert alarms
    assert {name: p.get("TreatMissingData") for name, p in alarms.items() if p.get("TreatMissingData") is None} == {}
    assert {p["TreatMissingData"] for p in alarms.values()} <= {"breaching", "notBreaching"}
