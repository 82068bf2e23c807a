"""The operator CLI's own reads (``clguard``): who is calling, a role, a deployed stack's function
environment and resources, and the state doctor and status check. Every call here reads; none is
made by the Lambda functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from clguard.adapters.clients import aws, client, error_code

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "GetCallerIdentity": (),  # needs no permission
    "GetRole": ("iam:GetRole",),
    "DescribeStackResource": ("cloudformation:DescribeStackResource",),
    "DescribeStacks": ("cloudformation:DescribeStacks",),
    "GetFunctionConfiguration": ("lambda:GetFunctionConfiguration",),
    "GetBucketNotificationConfiguration": ("s3:GetBucketNotification",),
    "DescribeTrails": ("cloudtrail:DescribeTrails",),
    "GetEventSelectors": ("cloudtrail:GetEventSelectors",),
    "GetTrailStatus": ("cloudtrail:GetTrailStatus",),
    "ListSubscriptionsByTopic": ("sns:ListSubscriptionsByTopic",),
    "DescribeAlarms": ("cloudwatch:DescribeAlarms",),
    "ListStackResources": ("cloudformation:ListStackResources",),
    "DescribeHub": ("securityhub:DescribeHub",),
}

# Which operations each command may call, by botocore service name (checked by
# tests/integration/test_operator_calls.py; the README lists the policy an operator needs).
COMMANDS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "preflight": {
        "sts": ("GetCallerIdentity",),
        "iam": ("GetRole",),
        "cloudformation": ("DescribeStackResource",),
        "lambda": ("GetFunctionConfiguration",),
        "s3": ("HeadObject", "GetObject", "GetBucketEncryption"),
        "kms": ("DescribeKey", "GetKeyPolicy", "ListResourceTags"),
        "organizations": ("DescribeOrganization",),
        "rekognition": ("DescribeProjects", "ListDatasetEntries"),
    },
    "explain": {
        "sts": ("GetCallerIdentity",),
        "iam": ("GetRole",),
        "cloudformation": ("DescribeStackResource",),
        "lambda": ("GetFunctionConfiguration",),
        "s3": ("HeadObject",),
        "kms": ("DescribeKey", "GetKeyPolicy", "ListResourceTags"),
        "organizations": ("DescribeOrganization",),
    },
    "doctor": {
        "sts": ("GetCallerIdentity",),
        "cloudformation": ("DescribeStackResource", "DescribeStacks", "ListStackResources"),
        "lambda": ("GetFunctionConfiguration",),
        "s3": ("GetBucketNotificationConfiguration",),
        "cloudtrail": ("DescribeTrails", "GetEventSelectors", "GetTrailStatus"),
        "kms": ("DescribeKey", "GetKeyPolicy", "ListResourceTags"),
        "sns": ("ListSubscriptionsByTopic",),
        "cloudwatch": ("DescribeAlarms",),
        "securityhub": ("DescribeHub",),
    },
    "status": {
        "sts": ("GetCallerIdentity",),
        "cloudformation": ("DescribeStackResource", "ListStackResources"),
        "lambda": ("GetFunctionConfiguration",),
        "dynamodb": ("GetItem",),
        "s3": ("GetObject",),
        "cloudwatch": ("DescribeAlarms",),
    },
}

GRANT_FUNCTION: Final = "GrantTrainingAccessFunction"  # the template's logical id


@aws
def caller_account() -> str:
    return str(client("sts").get_caller_identity()["Account"])


def region() -> str:
    """The region the caller's AWS configuration names (``--region``, AWS_REGION, the profile)."""
    return str(client("sts").meta.region_name)


@aws
def role_arn(name: str) -> str | None:
    """The ARN (with its path) of the role ``name``; None when there is no such role."""
    try:
        return str(client("iam").get_role(RoleName=name)["Role"]["Arn"])
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise


@aws
def stack_resource_id(stack: str, logical_id: str) -> str:
    """The physical id (name or ARN) of the stack's resource ``logical_id``."""
    resource = client("cloudformation").describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


@aws
def stack_function_environment(stack: str, logical_id: str = GRANT_FUNCTION) -> dict[str, str]:
    """The environment the stack gives its function ``logical_id`` (what the functions read)."""
    config = client("lambda").get_function_configuration(FunctionName=stack_resource_id(stack, logical_id))
    variables = (config.get("Environment") or {}).get("Variables") or {}
    return {str(k): str(v) for k, v in variables.items()}


@aws
def stack_parameters(stack: str) -> dict[str, str]:
    stacks = client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stacks[0].get("Parameters", [])} if stacks else {}


@aws
def stack_alarm_names(stack: str) -> list[str]:
    names: list[str] = []
    for page in client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack):
        names += [
            r["PhysicalResourceId"]
            for r in page.get("StackResourceSummaries", [])
            if r.get("ResourceType") == "AWS::CloudWatch::Alarm" and r.get("PhysicalResourceId")
        ]
    return names


@aws
def security_hub_enabled() -> bool:
    try:
        client("securityhub").describe_hub()
    except ClientError as error:
        if error_code(error) in ("InvalidAccessException", "ResourceNotFoundException"):
            return False
        raise
    return True


@dataclass(frozen=True, slots=True)
class Notifications:
    eventbridge: bool


@aws
def bucket_notifications(bucket: str) -> Notifications:
    config = client("s3").get_bucket_notification_configuration(Bucket=bucket)
    return Notifications(eventbridge="EventBridgeConfiguration" in config)


@dataclass(frozen=True, slots=True)
class Trail:
    arn: str
    name: str
    logging: bool
    management_events: bool  # read and write management events are recorded
    s3_data_buckets: frozenset[str]  # buckets whose write data events are recorded ("*": all)


def _selectors(arn: str) -> tuple[bool, frozenset[str]]:
    """What the trail records: management write events (bool), and the buckets of its S3 data
    events ("*": every bucket). Read from its event selectors, one small reading per kind:

    - no selector at all      CloudTrail's default: every management event, no data event
    - ``_classic_selector``   EventSelectors: IncludeManagementEvents with All/WriteOnly; the
                              ``AWS::S3::Object`` DataResources' values (``arn:aws:s3:::`` = all)
    - ``_advanced_selector``  AdvancedEventSelectors: eventCategory Management; Data on
                              ``AWS::S3::Object`` with the resources.ARN prefixes (none = all)
    """
    response = client("cloudtrail").get_event_selectors(TrailName=arn)
    classic = response.get("EventSelectors") or []
    advanced = response.get("AdvancedEventSelectors") or []
    if not classic and not advanced:
        return True, frozenset()
    readings = [*map(_classic_selector, classic), *map(_advanced_selector, advanced)]
    management = any(records for records, _ in readings)
    return management, frozenset(bucket for _, buckets in readings for bucket in buckets)


def _bucket_of(value: str) -> str:
    """The bucket an S3 object ARN (or ARN prefix) names; "*" for every bucket."""
    if value in ("arn:aws:s3", "arn:aws:s3:::"):
        return "*"
    return value.rsplit(":::", maxsplit=1)[-1].split("/", maxsplit=1)[0]


def _classic_selector(selector: Mapping[str, Any]) -> tuple[bool, set[str]]:
    management = bool(selector.get("IncludeManagementEvents", True)) and selector.get("ReadWriteType", "All") in (
        "All",
        "WriteOnly",
    )
    buckets = {
        _bucket_of(value)
        for resource in selector.get("DataResources") or []
        if resource.get("Type") == "AWS::S3::Object"
        for value in resource.get("Values") or []
    }
    return management, buckets


def _advanced_selector(selector: Mapping[str, Any]) -> tuple[bool, set[str]]:
    fields = {f.get("Field"): f for f in selector.get("FieldSelectors") or []}
    category = (fields.get("eventCategory") or {}).get("Equals") or []
    management = "Management" in category
    types = (fields.get("resources.type") or {}).get("Equals") or []
    if "Data" not in category or "AWS::S3::Object" not in types:
        return management, set()
    prefixes = (fields.get("resources.ARN") or {}).get("StartsWith") or []
    return management, {p.split(":::")[-1].split("/")[0] for p in prefixes} if prefixes else {"*"}


@aws
def trails() -> list[Trail]:
    """The trails this region sees (its own and multi-region ones), with what they record."""
    out = []
    for raw in client("cloudtrail").describe_trails(includeShadowTrails=True).get("trailList", []):
        arn = raw.get("TrailARN", "")
        status = client("cloudtrail").get_trail_status(Name=arn)
        management, buckets = _selectors(arn)
        out.append(Trail(arn, raw.get("Name", ""), bool(status.get("IsLogging")), management, buckets))
    return out


@dataclass(frozen=True, slots=True)
class Subscription:
    protocol: str
    endpoint: str
    confirmed: bool  # a subscription pending confirmation has no ARN yet


@aws
def subscriptions(topic_arn: str) -> list[Subscription]:
    out: list[Subscription] = []
    for page in client("sns").get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        out += [
            Subscription(s.get("Protocol", ""), s.get("Endpoint", ""), s.get("SubscriptionArn", "").startswith("arn:"))
            for s in page.get("Subscriptions", [])
        ]
    return out


@aws
def alarm_states(names: list[str]) -> dict[str, str]:
    """Alarm name -> state (OK, ALARM, INSUFFICIENT_DATA), metric and composite alarms."""
    out: dict[str, str] = {}
    for start in range(0, len(names), 100):
        kwargs: dict[str, Any] = {
            "AlarmNames": names[start : start + 100],
            "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
        }
        for page in client("cloudwatch").get_paginator("describe_alarms").paginate(**kwargs):
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                out[alarm["AlarmName"]] = alarm["StateValue"]
    return out
