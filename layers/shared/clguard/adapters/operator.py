"""The operator CLI's own reads (``clguard``): who is calling, a role, a deployed stack's function
environment and resources, and the state doctor and status check. Every call here reads; none is
made by the Lambda functions."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
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


# How each advanced field-selector operator admits a value (CloudTrail API reference,
# AdvancedFieldSelector). An operator this does not know admits nothing (conservative).
_OPERATORS: Final[Mapping[str, Callable[[str, tuple[str, ...]], bool]]] = {
    "Equals": lambda value, values: value in values,
    "NotEquals": lambda value, values: value not in values,
    "StartsWith": lambda value, values: any(value.startswith(v) for v in values),
    "NotStartsWith": lambda value, values: not any(value.startswith(v) for v in values),
    "EndsWith": lambda value, values: any(value.endswith(v) for v in values),
    "NotEndsWith": lambda value, values: not any(value.endswith(v) for v in values),
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One operator of a selector on one field, as the selector says it."""

    field: str
    operator: str
    values: tuple[str, ...]

    def admits(self, value: str) -> bool:
        test = _OPERATORS.get(self.operator)
        return test is not None and test(value, self.values)

    def __str__(self) -> str:
        values = json.dumps(list(self.values))
        if self.field == "ExcludeManagementEventSources":  # a classic selector's setting, said as it is set
            return f"{self.field} {values}"
        return f"{self.field} {self.operator} {values}"


@dataclass(frozen=True, slots=True)
class ManagementSelector:
    """One event selector's management write events: none (``refuses`` says why), or those of
    every event source its ``sources`` conditions all admit."""

    label: str  # where the operator finds it: EventSelectors[0], AdvancedEventSelectors[1] "its name"
    refuses: str = ""  # why it records no management write event at all ("" when it records some)
    sources: tuple[Condition, ...] = ()  # on the event source; every one must admit it

    def excludes(self, source: str) -> str:
        """Why the selector does not record ``source``'s management write events ("" when it does)."""
        if self.refuses:
            return self.refuses
        return "; ".join(str(c) for c in self.sources if not c.admits(source))


_DEFAULT: Final = ManagementSelector("no event selector (CloudTrail's default: every management event)")


@dataclass(frozen=True, slots=True)
class Trail:
    arn: str
    name: str
    logging: bool
    management: tuple[ManagementSelector, ...]  # its selectors of management events (none: records none)
    s3_data_buckets: frozenset[str]  # buckets whose write data events are recorded ("*": all)

    def records_writes_from(self, source: str) -> bool:
        """Whether the trail records every management write event of ``source`` (an event source,
        ``rekognition.amazonaws.com``): CloudTrail records an event that any selector matches."""
        return any(not s.excludes(source) for s in self.management)

    def excluding(self, source: str) -> str:
        """Why the trail does not record ``source``'s management write events: each selector's reason."""
        if not self.management:
            return "no selector records management events"
        return "; ".join(f"{s.label}: {s.excludes(source)}" for s in self.management if s.excludes(source))


def read_event_selectors(response: Mapping[str, Any]) -> tuple[tuple[ManagementSelector, ...], frozenset[str]]:
    """What a trail records, from its GetEventSelectors answer: its selectors of management events,
    and the buckets of its S3 data events ("*": every bucket). One small reading per kind:

    - no selector at all      CloudTrail's default: every management event, no data event
    - ``_classic_selector``   EventSelectors: IncludeManagementEvents, ReadWriteType,
                              ExcludeManagementEventSources; the ``AWS::S3::Object`` DataResources'
                              values (``arn:aws:s3:::`` = all)
    - ``_advanced_selector``  AdvancedEventSelectors: eventCategory Management with its readOnly and
                              eventSource conditions; Data on ``AWS::S3::Object`` with the
                              resources.ARN prefixes (none = all)
    """
    classic = response.get("EventSelectors") or []
    advanced = response.get("AdvancedEventSelectors") or []
    if not classic and not advanced:
        return (_DEFAULT,), frozenset()
    readings = [
        *(_classic_selector(i, s) for i, s in enumerate(classic)),
        *(_advanced_selector(i, s) for i, s in enumerate(advanced)),
    ]
    management = tuple(m for m, _ in readings if m is not None)
    return management, frozenset(bucket for _, buckets in readings for bucket in buckets)


def _bucket_of(value: str) -> str:
    """The bucket an S3 object ARN (or ARN prefix) names; "*" for every bucket."""
    if value in ("arn:aws:s3", "arn:aws:s3:::"):
        return "*"
    return value.rsplit(":::", maxsplit=1)[-1].split("/", maxsplit=1)[0]


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else (str(value),)


def _classic_selector(index: int, selector: Mapping[str, Any]) -> tuple[ManagementSelector | None, set[str]]:
    label = f"EventSelectors[{index}]"
    kind = selector.get("ReadWriteType", "All")
    management: ManagementSelector | None = None
    if selector.get("IncludeManagementEvents", True) is not True:
        management = ManagementSelector(label, "IncludeManagementEvents false")
    elif kind not in ("All", "WriteOnly"):  # ReadOnly, or a value this does not know (conservative)
        management = ManagementSelector(label, f"ReadWriteType {kind} (no write event)")
    else:
        excluded = _strings(selector.get("ExcludeManagementEventSources") or [])
        sources = (Condition("ExcludeManagementEventSources", "NotEquals", excluded),) if excluded else ()
        management = ManagementSelector(label, sources=sources)
    buckets = {
        _bucket_of(value)
        for resource in selector.get("DataResources") or []
        if resource.get("Type") == "AWS::S3::Object"
        for value in resource.get("Values") or []
    }
    return management, buckets


def _conditions(field: Mapping[str, Any]) -> tuple[Condition, ...]:
    """A field selector's operators, each a condition. Every one must hold: read as AND, the
    conservative reading (it never says a selector records more than it does). A field selector
    with no operator is read as admitting nothing (conservative too)."""
    name = str(field.get("Field", ""))
    found = tuple(Condition(name, op, _strings(field[op])) for op in _OPERATORS if field.get(op) is not None)
    return found or (Condition(name, "(no operator)", ()),)


def _advanced_selector(index: int, selector: Mapping[str, Any]) -> tuple[ManagementSelector | None, set[str]]:
    name = selector.get("Name")
    label = f"AdvancedEventSelectors[{index}]" + (f" {json.dumps(str(name))}" if name else "")
    fields = [f for f in selector.get("FieldSelectors") or [] if isinstance(f, Mapping)]
    conditions = [c for f in fields for c in _conditions(f)]
    by_field = {f.get("Field"): f for f in fields}
    category = [c for c in conditions if c.field == "eventCategory"]
    management: ManagementSelector | None = None
    if category and all(c.admits("Management") for c in category):
        # A management write event is one whose readOnly is "false" (CreateProjectVersion,
        # ScheduleKeyDeletion and DisableKey are writes). A field other than eventCategory, readOnly
        # and eventSource (eventName, userIdentity.arn ... on an event data store's selector) keeps
        # only some of a source's writes: conservative, the selector is read as recording none.
        refused = [c for c in conditions if c.field == "readOnly" and not c.admits("false")]
        refused += [c for c in conditions if c.field not in ("eventCategory", "readOnly", "eventSource")]
        refuses = "; ".join(f"{c}{' (read events only)' if c.field == 'readOnly' else ''}" for c in refused)
        sources = tuple(c for c in conditions if c.field == "eventSource")
        management = ManagementSelector(label, refuses, () if refuses else sources)
    values = _strings((by_field.get("eventCategory") or {}).get("Equals") or [])
    types = _strings((by_field.get("resources.type") or {}).get("Equals") or [])
    if "Data" not in values or "AWS::S3::Object" not in types:
        return management, set()
    prefixes = (by_field.get("resources.ARN") or {}).get("StartsWith") or []
    return management, {p.split(":::")[-1].split("/")[0] for p in prefixes} if prefixes else {"*"}


@aws
def trails() -> list[Trail]:
    """The trails this region sees (its own and multi-region ones), with what they record."""
    out = []
    for raw in client("cloudtrail").describe_trails(includeShadowTrails=True).get("trailList", []):
        arn = raw.get("TrailARN", "")
        status = client("cloudtrail").get_trail_status(Name=arn)
        management, buckets = read_event_selectors(client("cloudtrail").get_event_selectors(TrailName=arn))
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
