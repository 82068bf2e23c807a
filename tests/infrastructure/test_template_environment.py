"""The functions' configuration (docs/architecture.md §4) comes from the template's Parameters."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infrastructure.cfn_template import (
    PSEUDO_PARAMETERS,
    load_template,
    resolve,
    resources_of_type,
)

# docs/architecture.md §4, the configuration contract.
DESIGN_VARIABLES = {
    "ALERT_TOPIC_ARN",
    "TRAINING_BUCKETS",
    "ENCRYPTION_REQUIREMENT",
    "ALLOWED_KMS_KEYS",
    "REMEDIATION_MODE",
    "REENCRYPT_KMS_KEY",
    "TRAINING_PRINCIPALS",
    "ALLOWED_PRINCIPAL_PATTERNS",
    "MANAGED_KEY_TAG",
    "STATE_TABLE",
    "MEMBER_ACCOUNTS",
    "MEMBER_ROLE_NAME",
    "MEMBER_OU",
    "SECURITY_HUB",
    "EXCEPTIONS",
    "OWNER_TAG_KEY",
}
OTHER_VARIABLES = {
    "VERIFY_QUEUE_URL",
    "GUARD_ROLE_IDS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}

# Where each variable's value comes from: a Parameter, or a resource of the given type.
SOURCES: dict[str, tuple[str, str] | None] = {
    "ALERT_TOPIC_ARN": ("resource", "AWS::SNS::Topic"),
    "STATE_TABLE": ("resource", "AWS::DynamoDB::Table"),
    "VERIFY_QUEUE_URL": ("resource", "AWS::SQS::Queue"),
    "TRAINING_BUCKETS": ("parameter", "TrainingBuckets"),
    "ENCRYPTION_REQUIREMENT": ("parameter", "EncryptionRequirement"),
    "ALLOWED_KMS_KEYS": ("parameter", "AllowedKmsKeys"),
    "REMEDIATION_MODE": ("parameter", "RemediationMode"),
    "REENCRYPT_KMS_KEY": ("parameter", "ReencryptKmsKey"),
    "TRAINING_PRINCIPALS": ("parameter", "TrainingPrincipals"),
    "ALLOWED_PRINCIPAL_PATTERNS": ("parameter", "AllowedPrincipalPatterns"),
    "MANAGED_KEY_TAG": ("parameter", "ManagedKeyTag"),
    "MEMBER_ACCOUNTS": ("parameter", "MemberAccountIds"),
    "MEMBER_ROLE_NAME": ("parameter", "MemberRoleName"),
    "MEMBER_OU": ("parameter", "MemberOrganizationalUnitId"),
    "SECURITY_HUB": ("parameter", "SecurityHub"),
    "EXCEPTIONS": ("parameter", "Exceptions"),
    "OWNER_TAG_KEY": ("parameter", "OwnerTagKey"),
    "POWERTOOLS_LOG_LEVEL": ("parameter", "LogLevel"),
    "POWERTOOLS_SERVICE_NAME": None,
    "POWERTOOLS_METRICS_NAMESPACE": None,
}

FUNCTIONS = ("VerifyObjectEncryptionFunction", "GrantTrainingAccessFunction", "AuditFunction", "DigestFunction")


def global_environment(template: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = template["Globals"]["Function"]["Environment"]["Variables"]
    return variables


def referenced_names(node: Any) -> set[str]:
    """Names of parameters and resources a value refers to (Ref, GetAtt, Sub variables)."""
    names: set[str] = set()
    if isinstance(node, list):
        for item in node:
            names |= referenced_names(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                names.add(value)
            elif key == "Fn::GetAtt":
                names.add(value[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                local = set() if isinstance(value, str) else set(value[1])
                found = {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
                names |= found - local
                if not isinstance(value, str):
                    names |= referenced_names(value[1])
            elif key == "Fn::If":
                names |= referenced_names(value[1:])
            else:
                names |= referenced_names(value)
    return names - set(PSEUDO_PARAMETERS) - {"AWS::NoValue"}


def test_globals_environment_is_exactly_the_contract() -> None:
    # Given the template
    template = load_template()

    # When the environment every function receives is read
    variables = set(global_environment(template))

    # Then it holds the docs/architecture.md §4 variables plus the queue URL and the Powertools settings, nothing else
    assert variables == DESIGN_VARIABLES | OTHER_VARIABLES


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_do_not_override_the_shared_environment(function: str) -> None:
    # Given a function of the template
    properties = load_template()["Resources"][function]["Properties"]

    # When its own Environment is read (SAM merges it over Globals)
    own = properties.get("Environment", {}).get("Variables", {})

    # Then it redefines none of the shared variables
    assert set(own) & (DESIGN_VARIABLES | OTHER_VARIABLES) == set()


@pytest.mark.parametrize("variable", sorted(SOURCES))
def test_each_variable_comes_from_its_parameter_or_resource(variable: str) -> None:
    # Given the template and the variable's value expression
    template = load_template()
    names = referenced_names(global_environment(template)[variable])

    # When its source is looked up
    source = SOURCES[variable]

    # Then the value refers to exactly that parameter, or to one resource of the right type
    if source is None:
        assert names == set()
    elif source[0] == "parameter":
        assert names == {source[1]}
        assert source[1] in template["Parameters"]
    else:
        assert len(names) == 1
        (resource,) = names
        assert template["Resources"][resource]["Type"] == source[1]


def test_environment_resolves_to_the_documented_defaults() -> None:
    # Given a deployment with two training buckets and every other parameter at its default
    template = load_template()
    buckets = ["custom-labels-training", "second-training-bucket"]

    # When the environment is resolved
    env = resolve(template, global_environment(template), {"TrainingBuckets": buckets})

    # Then each variable has its docs/architecture.md §4 default; the principal patterns are left to the code, whose
    # default follows the account acted on (this one, or a member's)
    assert env == {
        "ALERT_TOPIC_ARN": "ref:AlertsTopic",
        "TRAINING_BUCKETS": "custom-labels-training,second-training-bucket",
        "ENCRYPTION_REQUIREMENT": "SSE_S3_OR_KMS",
        "ALLOWED_KMS_KEYS": "",
        # the template starts in report (README, "Deploy"); the variable's own default is enforce
        "REMEDIATION_MODE": "report",
        "REENCRYPT_KMS_KEY": "",
        "TRAINING_PRINCIPALS": "",
        "ALLOWED_PRINCIPAL_PATTERNS": "",
        "MANAGED_KEY_TAG": "custom-labels-guard=managed",
        "MEMBER_ACCOUNTS": "",
        "MEMBER_ROLE_NAME": "CustomLabelsGuardMember",
        "MEMBER_OU": "",
        "SECURITY_HUB": "off",
        "EXCEPTIONS": "",
        "OWNER_TAG_KEY": "owner",
        "STATE_TABLE": "ref:StateTable",
        "VERIFY_QUEUE_URL": "ref:VerifyQueue",
        "GUARD_ROLE_IDS": (
            "getatt:VerifyObjectEncryptionFunctionRole.RoleId,getatt:GrantTrainingAccessFunctionRole.RoleId,"
            "getatt:AuditFunctionRole.RoleId"
        ),
        "POWERTOOLS_SERVICE_NAME": "custom-labels-guard",  # the stack's name (the local stack here)
        "POWERTOOLS_METRICS_NAMESPACE": "CustomLabelsGuard",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def test_explicit_principal_patterns_pass_through() -> None:
    # Given a deployment that sets the principal patterns
    template = load_template()
    patterns = "arn:aws:iam::123456789012:role/ml/*,arn:aws:iam::123456789012:role/aws-reserved/*"
    parameters = {"TrainingBuckets": ["b1"], "AllowedPrincipalPatterns": patterns}

    # When the environment is resolved
    env = resolve(template, global_environment(template), parameters)

    # Then the value is used as given
    assert env["ALLOWED_PRINCIPAL_PATTERNS"] == patterns


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------
DESIGN_DEFAULTS = {
    "EncryptionRequirement": "SSE_S3_OR_KMS",
    "AllowedKmsKeys": "",
    "OutputBuckets": "",
    "QueueSenderArns": "",
    # The one safe default the README and the template agree on: report first (issue 24). The
    # variable REMEDIATION_MODE keeps its contract default, enforce (docs/architecture.md §4).
    "RemediationMode": "report",
    "ReencryptKmsKey": "",
    "TrainingPrincipals": "",
    "AllowedPrincipalPatterns": "",
    "ManagedKeyTag": "custom-labels-guard=managed",
    "AlertEmail": "",
    "SlackWorkspaceId": "",
    "SlackChannelId": "",
    "LogLevel": "INFO",
    "LogRetentionDays": 90,
    "MemberAccountIds": "",
    "MemberRoleName": "CustomLabelsGuardMember",
    "MemberOrganizationalUnitId": "",
    "SecurityHub": "off",
    "Exceptions": "",
    "OwnerTagKey": "owner",
    "OrganizationId": "",
    "AuditSchedule": "rate(1 day)",
    "AuditReportsLocation": "",
    "InventoryLocation": "",
    "BulkReencryptThreshold": "10000",  # BULK_REENCRYPT_THRESHOLD (docs/architecture.md §4)
    "DigestWindowSeconds": 60,
    "HeartbeatHours": 0,
}

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# (parameter, value, accepted?) — CloudFormation matches AllowedPattern against the whole value
# (each item, for a CommaDelimitedList).
PATTERN_CASES = [
    ("AuditSchedule", "rate(1 day)", True),
    ("AuditSchedule", "cron(0 3 * * ? *)", True),
    ("AuditSchedule", "", True),
    ("AuditSchedule", "daily", False),
    ("AuditReportsLocation", "my-reports/audit", True),
    ("AuditReportsLocation", "s3://my-reports/audit", False),
    ("InventoryLocation", "inventory-dest/inv", True),
    ("InventoryLocation", "inventory-dest/inv/", False),
    ("TrainingBuckets", "custom-labels-training", True),
    ("TrainingBuckets", "data.v2-bucket", True),
    ("TrainingBuckets", "Custom_Labels", True),  # a legacy us-east-1 bucket
    ("TrainingBuckets", "custom labels", False),
    ("TrainingBuckets", "b" * 256, False),
    ("TrainingBuckets", "", False),
    ("MemberAccountIds", "", True),
    ("MemberAccountIds", "111122223333,444455556666", True),
    ("MemberAccountIds", "111122223333, 444455556666", False),
    ("MemberAccountIds", "11112222333", False),
    ("MemberRoleName", "CustomLabelsGuardMember", True),
    ("MemberRoleName", "path/Role", False),
    ("OrganizationId", "o-a1b2c3d4e5", True),
    ("MemberOrganizationalUnitId", "ou-ab12-cd34ef56", True),
    ("MemberOrganizationalUnitId", "r-ab12", False),
    ("MemberOrganizationalUnitId", "ou-ab12-cd34ef56,ou-ab12-11111111", False),
    ("OrganizationId", "r-a1b2", False),
    ("AllowedKmsKeys", KEY_ARN, True),
    ("AllowedKmsKeys", f"{KEY_ARN},{KEY_ARN.replace('1234abcd', 'abcd1234')}", True),
    ("AllowedKmsKeys", "alias/custom-labels-training", False),
    ("ReencryptKmsKey", KEY_ARN, True),
    ("ReencryptKmsKey", "1234abcd-12ab-34cd-56ef-1234567890ab", False),
    ("ReencryptKmsKey", "arn:aws:kms:us-east-1:123456789012:alias/custom-labels", False),
    ("TrainingPrincipals", "arn:aws:iam::123456789012:role/ml/CustomLabelsTrainer", True),
    (
        "TrainingPrincipals",
        "arn:aws:iam::123456789012:role/a, arn:aws:iam::123456789012:user/ml-engineer",
        True,
    ),
    ("TrainingPrincipals", "arn:aws:iam::123456789012:root", False),
    ("TrainingPrincipals", "*", False),
    ("AllowedPrincipalPatterns", "arn:aws:iam::123456789012:role/ml/*", True),
    ("AllowedPrincipalPatterns", "*", False),
    ("ManagedKeyTag", "custom-labels-guard=opted-in", True),
    ("ManagedKeyTag", "owner=ml", False),
    ("ManagedKeyTag", "custom-labels-guard=a=b", False),
    ("ManagedKeyTag", "custom-labels-guard= managed", False),
    ("ManagedKeyTag", "custom-labels-guard=managed ", False),
    ("ManagedKeyTag", "custom-labels-guard=\tmanaged", False),
    ("ManagedKeyTag", "custom-labels-guard=m", True),
    ("ManagedKeyTag", "custom-labels-guard=opted in", True),
    ("AlertEmail", "ml-platform@example.com", True),
    ("AlertEmail", "not-an-address", False),
    ("SlackWorkspaceId", "T0123ABCD", True),
    ("SlackWorkspaceId", "t0123abcd", False),
    ("SlackChannelId", "C0123456789", True),
    ("SlackChannelId", "#ml-alerts", False),
]


def accepts(spec: dict[str, Any], value: Any) -> bool:
    if "AllowedValues" in spec and value not in spec["AllowedValues"]:
        return False
    pattern = spec.get("AllowedPattern")
    return pattern is None or re.fullmatch(pattern, str(value)) is not None


def test_training_buckets_is_a_required_list() -> None:
    # Given the TrainingBuckets parameter
    spec = load_template()["Parameters"]["TrainingBuckets"]

    # When its type and default are read
    # Then it is a comma-delimited list that every deployment must set
    assert spec["Type"] == "CommaDelimitedList"
    assert "Default" not in spec


def test_parameter_defaults_are_the_design_defaults() -> None:
    # Given the template's parameters
    parameters = load_template()["Parameters"]

    # When their defaults are read
    defaults = {name: spec["Default"] for name, spec in parameters.items() if "Default" in spec}

    # Then they are the documented defaults (docs/architecture.md §4), and each default passes its own constraints
    assert defaults == DESIGN_DEFAULTS
    for name, default in defaults.items():
        assert accepts(parameters[name], default), name


def test_every_parameter_is_described_and_constrained() -> None:
    # Given the template's parameters
    parameters = load_template()["Parameters"]

    # When each is inspected
    # Then each has a description and an AllowedValues or AllowedPattern
    for name, spec in parameters.items():
        assert spec.get("Description"), name
        assert "AllowedValues" in spec or "AllowedPattern" in spec, name


@pytest.mark.parametrize(("parameter", "value", "accepted"), PATTERN_CASES)
def test_parameter_constraints(parameter: str, value: str, accepted: bool) -> None:
    # Given a parameter's constraints
    spec = load_template()["Parameters"][parameter]

    # When a value is checked against them
    # Then valid values pass and invalid ones are refused at deploy time
    assert accepts(spec, value) is accepted


def test_enumerated_parameters_match_the_contract() -> None:
    # Given the enumerated parameters
    parameters = load_template()["Parameters"]

    # When their allowed values are read
    # Then they are the values docs/architecture.md §4 defines
    assert set(parameters["EncryptionRequirement"]["AllowedValues"]) == {"SSE_S3_OR_KMS", "SSE_KMS"}
    assert set(parameters["RemediationMode"]["AllowedValues"]) == {"enforce", "report"}


def test_every_function_gets_the_shared_environment() -> None:
    # Given the template's functions
    template = load_template()
    functions = resources_of_type(template, "AWS::Serverless::Function")

    # When compared with the functions this module knows
    # Then there is no function that this environment contract does not cover
    assert set(functions) == set(FUNCTIONS)


def test_guard_role_ids_are_the_roles_of_the_functions_that_send_guard_messages() -> None:
    # Given the template
    template = load_template()

    # When GUARD_ROLE_IDS is resolved
    value = resolve(template, global_environment(template)["GUARD_ROLE_IDS"])

    # Then it lists the RoleIds of exactly the (SAM-generated) roles of the functions that send the
    # guard's own messages: verify (continuations, outbox), grant (fan-out), audit (listing pages)
    senders = ("VerifyObjectEncryptionFunction", "GrantTrainingAccessFunction", "AuditFunction")
    assert value == ",".join(f"getatt:{function}Role.RoleId" for function in senders)
