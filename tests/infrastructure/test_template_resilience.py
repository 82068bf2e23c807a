"""Nothing is lost silently (docs/architecture.md §11): retries, DLQs, alarms, encryption, retention."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infrastructure.cfn_template import (
    condition_holds,
    load_template,
    resolve,
    resources_of_type,
)

FOURTEEN_DAYS = 14 * 24 * 3600


def getatt_target(value: Any, attribute: str = "Arn") -> str:
    """The logical id of ``Fn::GetAtt [X, attribute]``; fails for anything else."""
    assert isinstance(value, dict), value
    assert set(value) == {"Fn::GetAtt"}, value
    resource, got = value["Fn::GetAtt"]
    assert got == attribute, value
    return str(resource)


def queue_sources(template: dict[str, Any]) -> dict[str, str]:
    """Queues that functions consume (event source mappings): queue logical id -> function."""
    sources = {}
    for resource in resources_of_type(template, "AWS::Lambda::EventSourceMapping").values():
        properties = resource["Properties"]
        sources[getatt_target(properties["EventSourceArn"])] = properties["FunctionName"]["Ref"]
    return sources


def verify_event_source(template: dict[str, Any]) -> dict[str, Any]:
    [mapping] = [
        r["Properties"]
        for r in resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] == {"Ref": "VerifyObjectEncryptionFunction"}
    ]
    return mapping


def dead_letter_queues(template: dict[str, Any]) -> set[str]:
    """Every queue that receives failures: redrive targets, rule DLQs, OnFailure destinations."""
    dlqs = set()
    for queue in resources_of_type(template, "AWS::SQS::Queue").values():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            dlqs.add(getatt_target(redrive["deadLetterTargetArn"]))
    for rule in resources_of_type(template, "AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            dlqs.add(getatt_target(target["DeadLetterConfig"]["Arn"]))
    for function in resources_of_type(template, "AWS::Serverless::Function").values():
        on_failure = function["Properties"].get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        if on_failure:
            dlqs.add(getatt_target(on_failure["Destination"]))
    return dlqs


def rule_targets() -> list[tuple[str, dict[str, Any]]]:
    template = load_template()
    return [
        (logical_id, target)
        for logical_id, rule in resources_of_type(template, "AWS::Events::Rule").items()
        for target in rule["Properties"]["Targets"]
    ]


@pytest.mark.parametrize(("rule", "target"), rule_targets(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_rule_target_retries_and_has_a_dead_letter_queue(rule: str, target: dict[str, Any]) -> None:
    # Given a target of an EventBridge rule
    template = load_template()

    # When its delivery settings are read
    dlq = getatt_target(target["DeadLetterConfig"]["Arn"])
    retry = target["RetryPolicy"]

    # Then undeliverable events are retried for a while, then kept in an SQS queue
    assert template["Resources"][dlq]["Type"] == "AWS::SQS::Queue", rule
    assert 0 < retry["MaximumRetryAttempts"] <= 185, rule
    assert 60 <= retry["MaximumEventAgeInSeconds"] <= 86400, rule


@pytest.mark.parametrize("parameters", [{}, {"SecurityHub": "on"}])  # KeyLifecycleRule only with Security Hub
def test_rule_targets_and_dead_letter_queues_accept_eventbridge(parameters: dict[str, str]) -> None:
    # Given each queue that a rule deployed with these parameters sends to (as target or as DLQ)
    template = load_template()
    needed: dict[str, set[str]] = {}
    for rule, resource in resources_of_type(template, "AWS::Events::Rule").items():
        if "Condition" in resource and not condition_holds(template, resource["Condition"], parameters):
            continue
        for target in resource["Properties"]["Targets"]:
            queues = [getatt_target(target["DeadLetterConfig"]["Arn"])]
            if template["Resources"][getatt_target(target["Arn"])]["Type"] == "AWS::SQS::Queue":
                queues.append(getatt_target(target["Arn"]))
            for queue in queues:
                needed.setdefault(queue, set()).add(rule)

    # When the queue policies are resolved
    allowed: dict[str, set[str]] = {}
    for policy in resources_of_type(template, "AWS::SQS::QueuePolicy").values():
        document = resolve(template, policy["Properties"]["PolicyDocument"], parameters)
        for statement in document["Statement"]:
            if statement["Principal"] != {"Service": "events.amazonaws.com"}:
                continue
            resources = statement["Resource"]
            resources = [resources] if isinstance(resources, str) else resources
            arns = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
            arns = [arns] if isinstance(arns, str) else arns
            for resource in resources:
                queue = resource.removeprefix("getatt:").removesuffix(".Arn")
                allowed.setdefault(queue, set()).update(
                    arn.removeprefix("getatt:").removesuffix(".Arn") for arn in arns
                )

    # Then EventBridge may send to each of them on behalf of exactly the rules that use it
    assert needed
    assert allowed == needed


@pytest.mark.parametrize("queue", ["VerifyQueue"])
def test_source_queues_redrive_to_a_dead_letter_queue(queue: str) -> None:
    # Given a queue a function consumes
    template = load_template()
    assert queue in queue_sources(template)

    # When its redrive policy is read
    redrive = template["Resources"][queue]["Properties"]["RedrivePolicy"]
    dlq = getatt_target(redrive["deadLetterTargetArn"])

    # Then poison messages move to an SQS DLQ after a few receives
    assert template["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
    assert 1 <= redrive["maxReceiveCount"] <= 10


def test_every_consumed_queue_has_a_redrive_policy() -> None:
    # Given all queues functions consume
    template = load_template()
    sources = queue_sources(template)

    # When their properties are read
    # Then each has a redrive policy
    assert sources
    for queue in sources:
        assert "RedrivePolicy" in template["Resources"][queue]["Properties"], queue


def test_dead_letter_queues_keep_messages_longest() -> None:
    # Given the dead-letter queues and the queues that feed them
    template = load_template()
    dlqs = dead_letter_queues(template)
    queues = resources_of_type(template, "AWS::SQS::Queue")

    # When their retention periods are read
    retention = {name: queue["Properties"].get("MessageRetentionPeriod", 345600) for name, queue in queues.items()}

    # Then each DLQ keeps messages 14 days (a moved message keeps its original enqueue time),
    # and the DLQs are exactly VerifyDLQ, GrantDLQ, AuditDLQ and DigestDLQ
    assert dlqs == {"VerifyDLQ", "GrantDLQ", "AuditDLQ", "DigestDLQ"}
    for dlq in dlqs:
        assert retention[dlq] == FOURTEEN_DAYS, dlq
    for name in set(queues) - dlqs:
        assert retention[name] < FOURTEEN_DAYS, name


def test_all_queues_and_the_topic_are_encrypted() -> None:
    # Given the template's queues and topics
    template = load_template()
    queues = resources_of_type(template, "AWS::SQS::Queue")
    topics = resources_of_type(template, "AWS::SNS::Topic")

    # When their encryption settings are read
    # Then queues use SQS-managed SSE or a KMS key, and the topic a rotating customer key
    for name, queue in queues.items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or properties.get("KmsMasterKeyId"), name
    assert set(topics) == {"AlertsTopic", "HumanTopic"}
    for topic in topics.values():
        key_ref = topic["Properties"]["KmsMasterKeyId"]
        key = template["Resources"][key_ref["Ref"]]
        assert key["Type"] == "AWS::KMS::Key"
        assert key["Properties"]["EnableKeyRotation"] is True


def test_verify_queue_visibility_outlasts_a_batch() -> None:
    # Given the verify function and its queue
    template = load_template()
    function = template["Resources"]["VerifyObjectEncryptionFunction"]["Properties"]
    event = verify_event_source(template)
    queue = template["Resources"][getatt_target(event["EventSourceArn"])]["Properties"]

    # When the visibility timeout is compared with the function timeout
    needed = 6 * function["Timeout"] + event["MaximumBatchingWindowInSeconds"]

    # Then a message cannot reappear while a batch (and its retries) is still running
    assert queue["VisibilityTimeout"] >= needed


def test_verify_event_source_reports_partial_failures_with_bounded_concurrency() -> None:
    # Given the verify function's SQS event source
    template = load_template()
    properties = verify_event_source(template)

    # Then it reads the verify queue, failures are per message, batches are large, concurrency bounded
    assert getatt_target(properties["EventSourceArn"]) == "VerifyQueue"
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == 100
    assert properties["MaximumBatchingWindowInSeconds"] == 5
    assert properties["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_grant_function_failures_land_in_the_grant_dlq() -> None:
    # Given the grant function (invoked asynchronously by TrainingCallRule)
    template = load_template()
    function = template["Resources"]["GrantTrainingAccessFunction"]["Properties"]

    # When its asynchronous invocation settings are read
    config = function["EventInvokeConfig"]

    # Then errors are retried twice, then the invocation record goes to GrantDLQ
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    assert getatt_target(config["DestinationConfig"]["OnFailure"]["Destination"]) == "GrantDLQ"


def test_training_call_rule_targets_the_grant_function() -> None:
    # Given the rule for Rekognition training calls
    template = load_template()
    (target,) = template["Resources"]["TrainingCallRule"]["Properties"]["Targets"]

    # When its target is read
    # Then it invokes the grant function, with GrantDLQ for undeliverable events
    assert getatt_target(target["Arn"]) == "GrantTrainingAccessFunction"
    assert getatt_target(target["DeadLetterConfig"]["Arn"]) == "GrantDLQ"


@pytest.mark.parametrize("rule", ["ObjectCreatedRule", "S3DataEventRule"])
def test_s3_rules_feed_the_verify_queue(rule: str) -> None:
    # Given an S3 rule
    template = load_template()
    (target,) = template["Resources"][rule]["Properties"]["Targets"]

    # When its target is read
    # Then events go to VerifyQueue, with VerifyDLQ for undeliverable events
    assert getatt_target(target["Arn"]) == "VerifyQueue"
    assert getatt_target(target["DeadLetterConfig"]["Arn"]) == "VerifyDLQ"


def test_every_dead_letter_queue_raises_an_alarm_for_people() -> None:
    # Given the dead-letter queues and the alarms
    template = load_template()
    dlqs = dead_letter_queues(template)
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm").values()

    # When the queues watched by an alarm that notifies the human topic are collected
    watched = {
        getatt_target(dimension["Value"], "QueueName")
        for alarm in alarms
        if {"Ref": "HumanTopic"} in alarm["Properties"]["AlarmActions"]
        and alarm["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        for dimension in alarm["Properties"]["Dimensions"]
        if dimension["Name"] == "QueueName"
    }

    # Then every DLQ is watched
    assert dlqs <= watched


def test_every_function_has_a_log_group_with_retention() -> None:
    # Given the functions and log groups
    template = load_template()
    functions = resources_of_type(template, "AWS::Serverless::Function")
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup").values()

    # When log groups are matched to functions by name
    by_function = {
        group["Properties"]["LogGroupName"]["Fn::Sub"].removeprefix("/aws/lambda/${").rstrip("}"): (group["Properties"])
        for group in log_groups
    }

    # Then each function's default log group exists with the configured retention
    assert set(by_function) == set(functions)
    for properties in by_function.values():
        assert properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_state_table_supports_idempotency_and_leases() -> None:
    # Given the state table
    template = load_template()
    table = template["Resources"]["StateTable"]["Properties"]

    # When its schema and settings are read
    # Then it has the single "id" key, TTL on "expiration", backups and encryption
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


@pytest.mark.parametrize(
    ("overrides", "email", "slack"),
    [
        ({}, False, False),
        ({"AlertEmail": "ml@example.com"}, True, False),
        ({"SlackWorkspaceId": "T0123ABCD"}, False, False),
        ({"SlackWorkspaceId": "T0123ABCD", "SlackChannelId": "C0123456789"}, False, True),
    ],
)
def test_notification_channels_follow_the_parameters(overrides: dict[str, str], email: bool, slack: bool) -> None:
    # Given a deployment with some notification parameters set
    template = load_template()
    parameters = {"TrainingBuckets": ["b1"], **overrides}

    # When the conditions of the subscription and the Slack channel are evaluated
    # Then each channel exists only when all it needs is set
    assert template["Resources"]["AlertsEmailSubscription"]["Condition"] == "HasAlertEmail"
    assert template["Resources"]["SlackChannel"]["Condition"] == "HasSlack"
    assert condition_holds(template, "HasAlertEmail", parameters) is email
    assert condition_holds(template, "HasSlack", parameters) is slack


def test_slack_channel_is_guarded_and_subscribed_to_the_topic() -> None:
    # Given the Slack channel configuration
    properties = load_template()["Resources"]["SlackChannel"]["Properties"]

    # When its settings are read
    # Then it receives the human topic (digests), with read-only guardrails and error logging
    assert properties["SnsTopicArns"] == [{"Ref": "HumanTopic"}]
    assert properties["LoggingLevel"] == "ERROR"
    assert properties["UserRoleRequired"] is False
    for policy in properties["GuardrailPolicies"]:
        arn = policy["Fn::Sub"] if isinstance(policy, dict) else policy
        assert arn.endswith(("/ReadOnlyAccess", "/CloudWatchReadOnlyAccess")), arn


def test_checkov_skips_are_justified() -> None:
    # Given every checkov skip in the template
    template = load_template()
    skips = [
        (logical_id, skip)
        for logical_id, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]

    # When their ids and comments are read
    # Then each names a check and explains itself
    assert skips
    for logical_id, skip in skips:
        assert skip["id"].startswith("CKV_"), logical_id
        assert len(skip.get("comment", "")) >= 40, (logical_id, skip["id"])


def test_shared_layer_is_built_by_sam_for_the_runtime() -> None:
    # Given the shared layer and the functions' globals
    template = load_template()
    layer = template["Resources"]["SharedLayer"]
    function_globals = template["Globals"]["Function"]

    # When their build and runtime settings are read
    # Then SAM builds the layer for python3.13 and every function uses it on arm64
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Properties"]["ContentUri"] == "layers/shared/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert "arm64" in layer["Properties"]["CompatibleArchitectures"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    assert function_globals["Tracing"] == "Active"
