"""The functions' IAM permissions are least privilege (docs/architecture.md §11)."""

from __future__ import annotations

from typing import Any

import pytest

from clguard import permissions
from tests.infrastructure.cfn_template import (
    function_policy_actions,
    function_policy_statements,
    load_template,
    resolve,
    resources_of_type,
)

VERIFY = "VerifyObjectEncryptionFunction"
GRANT = "GrantTrainingAccessFunction"
AUDIT = "AuditFunction"
FUNCTIONS = (VERIFY, GRANT)

S3_OBJECT_ACTIONS = {
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:UpdateObjectEncryption",
    "s3:GetObjectAcl",
    "s3:GetObjectVersionAcl",
    "s3:PutObjectAcl",
}
# GetBucketTagging: the owner of an object finding (OWNER_TAG_KEY), on the training buckets only.
S3_BUCKET_ACTIONS = {"s3:GetEncryptionConfiguration", "s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketTagging"}
KMS_READ_ACTIONS = {"kms:DescribeKey", "kms:ListResourceTags", "kms:GetKeyPolicy"}
KMS_VIA_S3_ACTIONS = {"kms:Decrypt", "kms:ReEncryptFrom"}
KMS_REENCRYPT_KEY_ACTIONS = {"kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptTo", "kms:Decrypt"}
# docs/architecture.md §5, §5a, §5b: owner tags, key aliases, the exceptions document (GetObject is
# already granted), Security Hub (under HasSecurityHub).
FINDINGS_PLANE_ACTIONS = {
    "s3:GetBucketTagging",
    "kms:ListAliases",
    "ssm:GetParameter",
    "securityhub:BatchImportFindings",
    "securityhub:BatchUpdateFindings",
}
COMMON_ACTIONS = (
    S3_OBJECT_ACTIONS
    | KMS_READ_ACTIONS
    | {"kms:PutKeyPolicy"}
    | KMS_VIA_S3_ACTIONS
    | KMS_REENCRYPT_KEY_ACTIONS
    | {"sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"}
    | {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    | {"dynamodb:BatchGetItem"}  # the open Security Hub findings of a batch's compliant objects
    | {"sqs:SendMessage"}
    | {"sts:AssumeRole"}
    | {"organizations:DescribeOrganization"}
    | {"organizations:ListAccountsForParent", "organizations:ListChildren"}  # MEMBER_OU (HasMemberOu)
    | FINDINGS_PLANE_ACTIONS
)
SQS_POLLER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
}
REKOGNITION_DATASET_ACTIONS = {"rekognition:DescribeProjects", "rekognition:ListDatasetEntries"}
EXPECTED_ACTIONS = {
    VERIFY: COMMON_ACTIONS | {"s3:ListBucket", "s3:ListBucketVersions"} | SQS_POLLER_ACTIONS,
    GRANT: COMMON_ACTIONS | S3_BUCKET_ACTIONS | REKOGNITION_DATASET_ACTIONS,
    AUDIT: {
        "s3:ListBucket",
        "s3:GetInventoryConfiguration",
        "organizations:DescribeOrganization",
        "organizations:ListAccountsForParent",
        "organizations:ListChildren",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "kms:DescribeKey",
        "kms:ListResourceTags",
        "kms:GetKeyPolicy",
        "kms:PutKeyPolicy",
        "rekognition:DescribeProjects",
        "rekognition:DescribeProjectVersions",
        "sns:Publish",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchGetItem",
        "sqs:SendMessage",
        "lambda:InvokeFunction",
        "sts:AssumeRole",  # member accounts: their declarations read and buckets listed as them
        # bulk re-encryption: one S3 Batch Operations job per manifest, with its own role
        "s3:CreateJob",
        "s3:DescribeJob",
        "iam:PassRole",
    }
    | FINDINGS_PLANE_ACTIONS,
}
ACCOUNT_PROJECTS = "arn:aws:rekognition:us-east-1:123456789012:project/*"
# IAM actions that support no resource-level permissions (Resource must be "*"), each alone in
# its statement. DescribeProjects only describes the caller's own account's projects.
# Actions without resource-level permissions (Service Authorization Reference): only "*" names them.
NO_RESOURCE_LEVEL_ACTIONS = {
    "rekognition:DescribeProjects",
    "organizations:DescribeOrganization",
    "organizations:ListAccountsForParent",
    "organizations:ListChildren",
    "kms:ListAliases",
    "s3:CreateJob",  # conditioned on the job's operation (s3:RequestJobOperation) instead
}

ACCOUNT_KEYS = "arn:aws:kms:us-east-1:123456789012:key/*"
REENCRYPT_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKETS = ["custom-labels-training", "second.training-bucket"]
# Parameters under which every optional statement exists.
FULL = {"TrainingBuckets": BUCKETS, "ReencryptKmsKey": REENCRYPT_KEY}


def actions_of(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def resources_of(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return [resource] if isinstance(resource, str) else list(resource)


def statements_granting(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [statement for statement in statements if action in actions_of(statement)]


@pytest.mark.parametrize("function", [*FUNCTIONS, AUDIT])
def test_function_policy_actions_are_the_declared_lists(function: str) -> None:
    # Given a function of the template
    template = load_template()

    # When the actions of its inline policies are collected (conditional statements included)
    actions = function_policy_actions(template, function)

    # Then they are exactly the documented lists
    assert actions == EXPECTED_ACTIONS[function]


@pytest.mark.parametrize(
    ("function", "folder"),
    [
        (VERIFY, "verify_object_encryption"),
        (GRANT, "grant_training_access"),
        (AUDIT, "audit"),
        ("DigestFunction", "digest"),
    ],
)
def test_function_policy_grants_exactly_what_the_code_declares(function: str, folder: str) -> None:
    # Given the IAM actions the code declares (each adapter's operations, per function)
    declared = permissions.actions(folder)

    # When the template's policy for that function is read
    granted = function_policy_actions(load_template(), function)

    # Then the role grants exactly those: nothing missing, nothing extra
    assert granted - declared == set(), "granted but never used by the code"
    assert declared - granted == set(), "used by the code but not granted"


@pytest.mark.parametrize("function", [*FUNCTIONS, AUDIT])
def test_no_wildcard_actions_or_resources(function: str) -> None:
    # Given the function's statements with every optional statement present
    statements = function_policy_statements(load_template(), function, FULL)

    # When their actions and resources are inspected
    # Then nothing is granted by wildcard action, on every resource, or by exclusion
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        for action in actions_of(statement):
            assert "*" not in action, action
        if actions_of(statement) <= NO_RESOURCE_LEVEL_ACTIONS:
            continue
        assert "*" not in resources_of(statement), statement.get("Sid")


@pytest.mark.parametrize("function", [*FUNCTIONS, AUDIT])
@pytest.mark.parametrize("tag_value", ["managed", "opted-in"])
def test_put_key_policy_only_on_keys_with_the_opt_in_tag(function: str, tag_value: str) -> None:
    # Given a deployment whose opt-in tag is custom-labels-guard=<tag_value>
    parameters = {**FULL, "ManagedKeyTag": f"custom-labels-guard={tag_value}"}
    statements = function_policy_statements(load_template(), function, parameters)

    # When the statements that allow kms:PutKeyPolicy are found
    granting = statements_granting(statements, "kms:PutKeyPolicy")

    # Then there is one, for PutKeyPolicy only, conditioned on exactly that tag
    assert len(granting) == 1
    (statement,) = granting
    assert actions_of(statement) == {"kms:PutKeyPolicy"}
    assert resources_of(statement) == [ACCOUNT_KEYS]
    assert statement["Condition"] == {
        "StringEquals": {"aws:ResourceTag/custom-labels-guard": tag_value},
        "Bool": {"kms:BypassPolicyLockoutSafetyCheck": "false"},
    }


def test_the_tag_key_of_the_condition_is_the_one_the_parameter_allows() -> None:
    # Given the ManagedKeyTag parameter, whose key the template must fix
    spec = load_template()["Parameters"]["ManagedKeyTag"]

    # When its default and pattern are read
    tag_key = spec["Default"].split("=")[0]

    # Then the key is the one in the IAM condition, and the pattern allows no other key
    assert tag_key == "custom-labels-guard"
    assert spec["AllowedPattern"].startswith(f"^{tag_key}=")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_s3_access_only_to_the_training_buckets(function: str) -> None:
    # Given a deployment with two training buckets
    statements = function_policy_statements(load_template(), function, FULL)

    # When the statements with S3 actions are inspected
    s3_statements = [
        statement
        for statement in statements
        if any(action.startswith("s3:") for action in actions_of(statement)) and statement.get("Sid") != "AuditReports"
    ]
    reports = [statement for statement in statements if statement.get("Sid") == "AuditReports"]

    # Then object actions name only the buckets' objects, and bucket actions only the buckets;
    # the audit's report (written by the message that completes a run) only under the reports prefix
    assert [(actions_of(s), resources_of(s)) for s in reports] in (
        [],
        [({"s3:PutObject"}, ["getatt:ReportsBucket.Arn/audit-reports/*"])],
    )
    assert s3_statements
    for statement in s3_statements:
        actions = actions_of(statement)
        if actions <= S3_OBJECT_ACTIONS:
            assert resources_of(statement) == [f"arn:aws:s3:::{bucket}/*" for bucket in BUCKETS]
        else:
            assert actions <= S3_BUCKET_ACTIONS, actions
            assert resources_of(statement) == [f"arn:aws:s3:::{bucket}" for bucket in BUCKETS]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_single_bucket_deployment_names_that_bucket_only(function: str) -> None:
    # Given a deployment with one training bucket
    statements = function_policy_statements(load_template(), function, {"TrainingBuckets": ["custom-labels-training"]})

    # When the S3 object statement is read
    (statement,) = statements_granting(statements, "s3:GetObject")

    # Then it names exactly that bucket's objects
    assert resources_of(statement) == ["arn:aws:s3:::custom-labels-training/*"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_findings_go_only_to_the_alerts_topic(function: str) -> None:
    # Given the function's statements
    statements = function_policy_statements(load_template(), function, FULL)

    # When the SNS and topic-key statements are found
    sns = [s for s in statements if any(a.startswith("sns:") for a in actions_of(s))]
    alerts_key = [s for s in statements if "getatt:AlertsKey.Arn" in resources_of(s)]

    # Then it may publish to AlertsTopic only, using the topic's key for that only
    assert len(sns) == 1
    assert actions_of(sns[0]) == {"sns:Publish"}
    assert resources_of(sns[0]) == ["ref:AlertsTopic"]
    assert len(alerts_key) == 1
    assert actions_of(alerts_key[0]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert resources_of(alerts_key[0]) == ["getatt:AlertsKey.Arn"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_kms_access_is_scoped(function: str) -> None:
    # Given the function's statements with the re-encryption key set
    statements = function_policy_statements(load_template(), function, FULL)

    # When the statements on the account's keys are inspected
    on_all_keys = [s for s in statements if resources_of(s) == [ACCOUNT_KEYS]]
    unconditioned = [s for s in on_all_keys if "Condition" not in s]
    via_s3 = [s for s in on_all_keys if actions_of(s) & KMS_VIA_S3_ACTIONS]

    # Then only reading is unconditioned, and decrypting works through S3 only
    assert [actions_of(s) for s in unconditioned] == [KMS_READ_ACTIONS]
    assert len(via_s3) == 1
    assert actions_of(via_s3[0]) == KMS_VIA_S3_ACTIONS
    assert via_s3[0]["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    for statement in statements:
        if actions_of(statement) == {"kms:ListAliases"}:  # no resource-level permissions: reads names only
            assert resources_of(statement) == ["*"]
            continue
        if any(action.startswith("kms:") for action in actions_of(statement)):
            assert resources_of(statement)[0] in {
                ACCOUNT_KEYS,
                REENCRYPT_KEY,
                "getatt:AlertsKey.Arn",
            }


@pytest.mark.parametrize("function", FUNCTIONS)
def test_reencryption_key_statement_follows_the_parameter(function: str) -> None:
    # Given deployments with and without a re-encryption key
    template = load_template()
    with_key = function_policy_statements(template, function, FULL)
    without_key = function_policy_statements(template, function, {"TrainingBuckets": BUCKETS, "ReencryptKmsKey": ""})

    # When the statements allowing kms:Encrypt are found
    granting_with = statements_granting(with_key, "kms:Encrypt")
    granting_without = statements_granting(without_key, "kms:Encrypt")

    # Then encrypting is allowed on that one key, and only when it is set
    assert len(granting_with) == 1
    assert actions_of(granting_with[0]) == KMS_REENCRYPT_KEY_ACTIONS
    assert resources_of(granting_with[0]) == [REENCRYPT_KEY]
    assert granting_without == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_state_table_and_queue_access_is_scoped(function: str) -> None:
    # Given the function's statements
    statements = function_policy_statements(load_template(), function, FULL)

    # When the DynamoDB and SQS statements are found
    dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in actions_of(s))]
    sqs = [s for s in statements if any(a.startswith("sqs:") for a in actions_of(s))]

    # Then they name the state table and the verify queue only (the verify function also polls it)
    assert [resources_of(s) for s in dynamodb] == [["getatt:StateTable.Arn"]]
    assert all(resources_of(s) == ["getatt:VerifyQueue.Arn"] for s in sqs)
    expected = [{"sqs:SendMessage"}, SQS_POLLER_ACTIONS] if function == VERIFY else [{"sqs:SendMessage"}]
    assert {frozenset(actions_of(s)) for s in sqs} == {frozenset(e) for e in expected}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_rekognition_access_is_read_only_and_scoped_to_the_account_projects(function: str) -> None:
    # Given the function's statements
    statements = function_policy_statements(load_template(), function, FULL)

    # When the Rekognition statements are found
    rekognition = [s for s in statements if any(a.startswith("rekognition:") for a in actions_of(s))]
    by_action = {frozenset(actions_of(s)): resources_of(s) for s in rekognition}

    # Then only the grant function reads datasets: entries of the account's projects only, and
    # DescribeProjects (no resource-level permissions) alone in its statement
    if function == VERIFY:
        assert rekognition == []
        return
    assert by_action == {
        frozenset({"rekognition:DescribeProjects"}): ["*"],
        frozenset({"rekognition:ListDatasetEntries"}): [ACCOUNT_PROJECTS],
    }


def test_function_policy_actions_refuses_what_it_cannot_see() -> None:
    # Given a function that also uses a managed policy
    template = load_template()
    template["Resources"][VERIFY]["Properties"]["Policies"].append("AmazonS3FullAccess")

    # When its actions are collected
    # Then the helper refuses rather than under-reporting
    with pytest.raises(ValueError, match="only inline policy documents"):
        function_policy_actions(template, VERIFY)


# --------------------------------------------------------------------------------------------
# Resource policies and the other roles
# --------------------------------------------------------------------------------------------
def test_queue_policies_only_let_the_rules_send() -> None:
    # Given the template's queue policies
    template = load_template()
    policies = resources_of_type(template, "AWS::SQS::QueuePolicy")

    # When their statements are resolved
    # Then only EventBridge may send, on behalf of this stack's rules, and SNS, on behalf of the
    # alerts topic (to the digest queues)
    assert policies
    senders = {"events.amazonaws.com": "AWS::Events::Rule", "sns.amazonaws.com": "AWS::SNS::Topic"}
    for logical_id, policy in policies.items():
        document = resolve(template, policy["Properties"]["PolicyDocument"])
        for statement in document["Statement"]:
            if statement["Effect"] == "Deny":
                continue  # see test_only_the_guard_may_send_to_the_verify_queue
            assert statement["Effect"] == "Allow", logical_id
            service = statement["Principal"]["Service"]
            assert service in senders, logical_id
            assert statement["Action"] == "sqs:SendMessage", logical_id
            source_arns = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
            source_arns = [source_arns] if isinstance(source_arns, str) else source_arns
            for arn in source_arns:
                source = arn.removeprefix("getatt:").removesuffix(".Arn").removeprefix("ref:")
                assert template["Resources"][source]["Type"] == senders[service], logical_id


def test_only_the_alerts_topic_may_send_to_the_digest_queue() -> None:
    # Given the digest queues' policy (what reaches people must come from the alerts topic)
    template = load_template()
    document = resolve(template, template["Resources"]["DigestQueuesPolicy"]["Properties"]["PolicyDocument"])

    # When its Deny statement is read
    [deny] = [s for s in document["Statement"] if s["Effect"] == "Deny"]

    # Then every sender but the alerts topic is denied SendMessage on the digest queue
    assert deny["Principal"] == "*"
    assert deny["Action"] == "sqs:SendMessage"
    assert deny["Resource"] == "getatt:DigestQueue.Arn"
    assert deny["Condition"] == {"ArnNotEquals": {"aws:SourceArn": "ref:AlertsTopic"}}
    # And the subscription is raw, with the DLQ for deliveries SNS cannot make
    subscription = template["Resources"]["AlertsDigestSubscription"]["Properties"]
    assert subscription["RawMessageDelivery"] is True
    assert subscription["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DigestDLQ", "Arn"]}}


def test_alerts_key_policy_has_no_wildcard_principal() -> None:
    # Given the alerts key policy
    template = load_template()
    policy = resolve(template, template["Resources"]["AlertsKey"]["Properties"]["KeyPolicy"])

    # When its principals are listed
    principals = [statement["Principal"] for statement in policy["Statement"]]

    # Then the account (IAM delegation) and CloudWatch alarms of this account are the only ones
    assert principals == [
        {"AWS": "arn:aws:iam::123456789012:root"},
        {"Service": "cloudwatch.amazonaws.com"},
    ]
    assert policy["Statement"][1]["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_chatbot_role_can_only_read_cloudwatch() -> None:
    # Given the Slack channel role
    template = load_template()
    role = template["Resources"]["ChatbotRole"]

    # When its trust and permissions are read
    statements = [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]

    # Then only the chat service assumes it, it only reads CloudWatch, and exists only for Slack
    assert role["Condition"] == "HasSlack"
    assert [statement["Principal"] for statement in trust] == [{"Service": "chatbot.amazonaws.com"}]
    for statement in statements:
        for action in actions_of(statement):
            service, _, name = action.partition(":")
            assert service == "cloudwatch"
            assert name.startswith(("Describe", "Get", "List")), action


def test_rule_invocation_permission_is_bound_to_the_rule() -> None:
    # Given the Lambda permissions of the template
    template = load_template()
    permissions = resources_of_type(template, "AWS::Lambda::Permission")

    # When they are resolved
    # Then each lets EventBridge invoke only from one rule of this stack and account
    assert permissions
    for logical_id, permission in permissions.items():
        properties = resolve(template, permission["Properties"])
        assert properties["Principal"] == "events.amazonaws.com", logical_id
        assert properties["SourceArn"].startswith("getatt:"), logical_id
        rule = properties["SourceArn"].removeprefix("getatt:").removesuffix(".Arn")
        assert template["Resources"][rule]["Type"] == "AWS::Events::Rule", logical_id
        assert properties["SourceAccount"] == "123456789012", logical_id


def test_output_buckets_add_only_reading_their_default_encryption() -> None:
    # Given a deployment that names two output buckets
    parameters = {**FULL, "OutputBuckets": "ml-output,ml-output-2"}

    # When the grant function's statements are resolved, and the verify function's
    grant = function_policy_statements(load_template(), GRANT, parameters)
    verify = function_policy_statements(load_template(), VERIFY, parameters)
    on_outputs = [s for s in grant if any("ml-output" in r for r in resources_of(s))]

    # Then the grant function may only read their encryption configuration; the verify function nothing
    assert [actions_of(s) for s in on_outputs] == [{"s3:GetEncryptionConfiguration"}]
    assert resources_of(on_outputs[0]) == ["arn:aws:s3:::ml-output", "arn:aws:s3:::ml-output-2"]
    assert not [s for s in verify if any("ml-output" in r for r in resources_of(s))]
    # And without output buckets the statement is not there
    assert not [
        s for s in function_policy_statements(load_template(), GRANT, FULL) if s.get("Sid") == "OutputBucketEncryption"
    ]


@pytest.mark.parametrize("senders", ["", "arn:aws:iam::123456789012:role/ops/Redriver"])
def test_only_the_guard_may_send_to_the_verify_queue(senders: str) -> None:
    # Given the verify queue's policy (fan-out messages name principals to grant)
    template = load_template()
    parameters = {**FULL, "QueueSenderArns": senders}
    policy = resources_of_type(template, "AWS::SQS::QueuePolicy")["VerifyQueuesPolicy"]
    document = resolve(template, policy["Properties"]["PolicyDocument"], parameters)

    # When its Deny statement is read
    [deny] = [s for s in document["Statement"] if s.get("Sid") == "OnlyTheGuardSends"]

    # Then every sender is denied unless it is one of the functions' roles (or a listed operator)
    # or one of the S3 rules
    assert (deny["Principal"], deny["Action"], deny["Resource"]) == ("*", "sqs:SendMessage", "getatt:VerifyQueue.Arn")
    not_equals = deny["Condition"]["ArnNotEquals"]
    expected = [
        "getatt:VerifyObjectEncryptionFunctionRole.Arn",
        "getatt:GrantTrainingAccessFunctionRole.Arn",
        "getatt:AuditFunctionRole.Arn",
    ]
    assert not_equals["aws:PrincipalArn"] == expected + ([senders] if senders else [])
    assert not_equals["aws:SourceArn"] == ["getatt:ObjectCreatedRule.Arn", "getatt:S3DataEventRule.Arn"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_member_roles_are_assumable_only_in_member_accounts(function: str) -> None:
    # Given the template, once for a single-account deployment and once with two member accounts
    template = load_template()
    alone = function_policy_statements(template, function, {"TrainingBuckets": BUCKETS})
    members = "111122223333,444455556666"
    central = function_policy_statements(
        template, function, {"TrainingBuckets": BUCKETS, "MemberAccountIds": members, "MemberRoleName": "GuardMember"}
    )

    # When the statements granting sts:AssumeRole are read
    assume_alone = statements_granting(alone, "sts:AssumeRole")
    assume_central = statements_granting(central, "sts:AssumeRole")

    # Then a single-account deployment may assume nothing, and a central one only the member role
    # name, only in the member accounts
    assert assume_alone == []
    assert len(assume_central) == 1
    assert resources_of(assume_central[0]) == ["arn:aws:iam::*:role/GuardMember"]
    assert assume_central[0]["Condition"] == {"StringEquals": {"aws:ResourceAccount": ["111122223333", "444455556666"]}}


@pytest.mark.parametrize("function", [*FUNCTIONS, AUDIT])
def test_an_ou_s_member_roles_are_assumable_only_under_that_ou_and_listing_it_only_with_it(function: str) -> None:
    # Given the template with members as an OU of the organization, and without
    template = load_template()
    ou = {"MemberOrganizationalUnitId": "ou-ab12-cd34ef56", "OrganizationId": "o-a1b2c3d4e5"}
    with_ou = function_policy_statements(template, function, {**FULL, **ou, "MemberRoleName": "GuardMember"})
    without = function_policy_statements(template, function, {**FULL, "MemberAccountIds": "111122223333"})

    # When the statements granting sts:AssumeRole and the OU listing are read
    assume = statements_granting(with_ou, "sts:AssumeRole")
    listing = statements_granting(with_ou, "organizations:ListAccountsForParent")

    # Then the member role name may be assumed only in accounts whose organization path runs
    # through that OU of that organization (the OU and every OU below it)
    assert len(assume) == 1
    assert resources_of(assume[0]) == ["arn:aws:iam::*:role/GuardMember"]
    assert assume[0]["Condition"] == {
        "ForAnyValue:StringLike": {"aws:ResourceOrgPaths": "o-a1b2c3d4e5/*/ou-ab12-cd34ef56/*"}
    }
    # And the listing (read-only) is granted only with the OU
    assert [actions_of(s) for s in listing] == [{"organizations:ListAccountsForParent", "organizations:ListChildren"}]
    assert statements_granting(without, "organizations:ListAccountsForParent") == []
    assert statements_granting(without, "organizations:ListChildren") == []


def queue_policy_statement(sid: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    template = load_template()
    for policy in resources_of_type(template, "AWS::SQS::QueuePolicy").values():
        document = resolve(template, policy["Properties"]["PolicyDocument"], parameters or FULL)
        for statement in document["Statement"]:
            if statement.get("Sid") == sid:
                found: dict[str, Any] = statement
                return found
    raise AssertionError(f"no queue policy statement {sid}")


def test_nobody_but_the_s3_rules_may_send_to_the_verify_dlq() -> None:
    # Given the verify DLQ (operators redrive it into the verify queue)
    # When its Deny statement is read
    deny = queue_policy_statement("OnlyTheS3RulesSendToTheDLQ")

    # Then every SendMessage is denied unless it is a delivery of one of the S3 rules (a role
    # has no aws:SourceArn, so every role is denied)
    assert (deny["Effect"], deny["Principal"], deny["Action"], deny["Resource"]) == (
        "Deny",
        "*",
        "sqs:SendMessage",
        "getatt:VerifyDLQ.Arn",
    )
    assert deny["Condition"] == {
        "ArnNotEquals": {"aws:SourceArn": ["getatt:ObjectCreatedRule.Arn", "getatt:S3DataEventRule.Arn"]}
    }


def test_only_the_grant_function_and_its_rule_may_send_to_the_grant_dlq() -> None:
    # Given the grant DLQ (its invocation records are replayed by operators)
    # When its Deny statement is read
    deny = queue_policy_statement("OnlyTheGrantFunctionAndItsRuleSend")

    # Then senders other than the grant function's role (Lambda's OnFailure destination) and
    # TrainingCallRule (its DeadLetterConfig) are denied
    assert (deny["Effect"], deny["Principal"], deny["Action"], deny["Resource"]) == (
        "Deny",
        "*",
        "sqs:SendMessage",
        "getatt:GrantDLQ.Arn",
    )
    assert deny["Condition"] == {
        "ArnNotEquals": {
            "aws:PrincipalArn": ["getatt:GrantTrainingAccessFunctionRole.Arn"],
            "aws:SourceArn": ["getatt:TrainingCallRule.Arn"],
        }
    }


def test_nobody_but_the_alerts_topic_may_send_to_the_digest_dlq() -> None:
    # Given the digest DLQ (operators redrive it into the digest queue, whose messages people read
    # as the guard's findings)
    # When its Deny statement is read
    deny = queue_policy_statement("OnlyTheAlertsTopicSendsToTheDLQ")

    # Then every SendMessage is denied unless it is the alerts topic's delivery (its subscription's
    # redrive policy); a role has no aws:SourceArn, so every role is denied, the operators' too
    assert (deny["Effect"], deny["Principal"], deny["Action"], deny["Resource"]) == (
        "Deny",
        "*",
        "sqs:SendMessage",
        "getatt:DigestDLQ.Arn",
    )
    assert deny["Condition"] == {"ArnNotEquals": {"aws:SourceArn": "ref:AlertsTopic"}}
    # And no other statement of any queue policy covers the DLQ with another sender
    template = load_template()
    for logical_id, queue_policy in resources_of_type(template, "AWS::SQS::QueuePolicy").items():
        queues = resolve(template, queue_policy["Properties"]["Queues"])
        if "ref:DigestDLQ" in queues:
            assert queues == ["ref:DigestDLQ"], logical_id
            document = resolve(template, queue_policy["Properties"]["PolicyDocument"])
            allows = [st for st in document["Statement"] if st["Effect"] == "Allow"]
            assert [a["Condition"] for a in allows] == [{"ArnEquals": {"aws:SourceArn": "ref:AlertsTopic"}}]


def test_only_the_functions_and_the_alarms_may_publish_findings() -> None:
    # Given the alerts topic's policy
    template = load_template()
    policy = template["Resources"]["AlertsTopicPolicy"]
    document = resolve(template, policy["Properties"]["PolicyDocument"], FULL)
    assert resolve(template, policy["Properties"]["Topics"]) == ["ref:AlertsTopic"]
    statements = {s["Sid"]: s for s in document["Statement"]}
    alarms = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"

    # When its statements are read
    allow, deny = statements["CloudWatchAlarmsPublish"], statements["OnlyTheGuardPublishes"]

    # Then this account's alarms may publish, and every other publisher is denied unless it is
    # one of the two functions' roles
    assert set(statements) == {"CloudWatchAlarmsPublish", "OnlyTheGuardPublishes"}
    assert (allow["Effect"], allow["Principal"], allow["Action"]) == (
        "Allow",
        {"Service": "cloudwatch.amazonaws.com"},
        "sns:Publish",
    )
    assert allow["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": alarms},
    }
    assert (deny["Effect"], deny["Principal"], deny["Action"], deny["Resource"]) == (
        "Deny",
        "*",
        "sns:Publish",
        "ref:AlertsTopic",
    )
    assert deny["Condition"] == {
        "ArnNotEquals": {
            "aws:PrincipalArn": [
                "getatt:VerifyObjectEncryptionFunctionRole.Arn",
                "getatt:GrantTrainingAccessFunctionRole.Arn",
                "getatt:AuditFunctionRole.Arn",
            ]
        },
        "ArnNotLike": {"aws:SourceArn": alarms},
    }


@pytest.mark.parametrize("rule", ["ObjectCreatedRule", "S3DataEventRule", "TrainingCallRule"])
def test_rules_take_only_the_guarded_accounts_events(rule: str) -> None:
    # Given a rule of the template / When its pattern is resolved
    template = load_template()
    pattern = resolve(template, template["Resources"][rule]["Properties"]["EventPattern"], FULL)

    # Then it matches events of this account only (the S3 rules' member branch, with no members,
    # names only the empty account id, which no event has)
    branches = pattern.get("$or", [pattern])
    accounts = {account for branch in branches for account in branch.get("account", pattern.get("account", []))}
    assert accounts - {""} == {"123456789012"}
    assert all("account" in branch for branch in branches) or "account" in pattern


AUDIT_FULL = {**FULL, "InventoryLocation": "inventory-bucket/inv", "AuditReportsLocation": "reports-bucket/r"}


def test_audit_reads_only_the_training_buckets_the_inventory_and_writes_only_reports() -> None:
    # Given the audit function's statements with an inventory and a reports location named
    statements = function_policy_statements(load_template(), AUDIT, AUDIT_FULL)

    # When the S3 statements' resources are collected per action
    s3_resources: dict[str, set[str]] = {}
    for statement in statements:
        for action in actions_of(statement):
            if action.startswith("s3:"):
                s3_resources.setdefault(action, set()).update(resources_of(statement))

    # Then it lists the training buckets and the inventory bucket, reads training objects and
    # inventory reports, and writes only under the reports location
    assert s3_resources["s3:ListBucket"] == {f"arn:aws:s3:::{b}" for b in BUCKETS} | {"arn:aws:s3:::inventory-bucket"}
    assert s3_resources["s3:GetObject"] == {f"arn:aws:s3:::{b}/*" for b in BUCKETS} | {
        "arn:aws:s3:::inventory-bucket/inv/*",
        "arn:aws:s3:::reports-bucket/r/bulk-reencryption/*",  # bulk re-encryption's own objects read back
    }
    assert s3_resources["s3:PutObject"] == {"arn:aws:s3:::reports-bucket/r/*"}


def test_audit_may_invoke_only_itself_and_read_only_projects() -> None:
    # Given the audit function's statements
    statements = function_policy_statements(load_template(), AUDIT, AUDIT_FULL)

    # When the Lambda and Rekognition statements are read
    [invoke] = statements_granting(statements, "lambda:InvokeFunction")
    [describe] = statements_granting(statements, "rekognition:DescribeProjectVersions")

    # Then it may invoke only its own function (by its fixed name) and describe only projects
    assert resources_of(invoke) == ["arn:aws:lambda:us-east-1:123456789012:function:custom-labels-guard-audit"]
    assert resources_of(describe) == ["arn:aws:rekognition:us-east-1:123456789012:project/*"]
    name = load_template()["Resources"][AUDIT]["Properties"]["FunctionName"]
    assert name == {"Fn::Sub": "${AWS::StackName}-audit"}


def test_only_the_digest_and_the_alarms_may_publish_to_people() -> None:
    # Given the human topic's policy (e-mail and Slack read it)
    template = load_template()
    policy = template["Resources"]["HumanTopicPolicy"]
    document = resolve(template, policy["Properties"]["PolicyDocument"], FULL)
    statements = {s["Sid"]: s for s in document["Statement"]}

    # When its Deny statement is read
    deny = statements["OnlyTheDigestPublishes"]

    # Then every publisher but the digest function's role and this account's alarms is denied
    assert resolve(template, policy["Properties"]["Topics"]) == ["ref:HumanTopic"]
    assert (deny["Effect"], deny["Principal"], deny["Action"], deny["Resource"]) == (
        "Deny",
        "*",
        "sns:Publish",
        "ref:HumanTopic",
    )
    assert deny["Condition"]["ArnNotEquals"] == {"aws:PrincipalArn": ["getatt:DigestFunctionRole.Arn"]}
