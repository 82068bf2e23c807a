"""Deploying template.yaml (and member.yaml, in member accounts) onto the local moto server.

Everything is read from the templates, never re-typed here. ``Deployment.deploy()`` creates, in
the local account:

- every ``AWS::SQS::Queue`` with its properties (redrive to its DLQ included, set once all
  queues exist), ``AWS::SNS::Topic``, ``AWS::DynamoDB::Table`` (with its TTL) and
  ``AWS::S3::Bucket`` (if its condition holds);
- each ``AWS::Serverless::Function`` as a ``LocalFunction`` (handler, timeout, memory, its
  environment resolved from ``Globals.Function.Environment`` and its own ``Environment``, its
  ``EventInvokeConfig``), its SAM-generated role (ARN and unique ``RoleId``), and its SQS event
  sources (SAM ``Type: SQS`` events and ``AWS::Lambda::EventSourceMapping``) as
  ``SqsEventSource``;
- one SQS queue subscribed to each topic (to read alerts back as a subscriber would) and the
  template's own SQS subscriptions (the digest queue); e-mail and HTTPS ones are not deployed;
- every ``AWS::Events::Rule`` with its resolved ``EventPattern`` on moto's default bus and its
  targets: a target that is a function becomes an SQS queue standing in for that function's
  asynchronous invocation (``standins``, run by ``localaws.lambda_service``); schedule rules stay
  off the bus; the bus policies (``AWS::Events::EventBusPolicy``) whose condition holds;
- for each member account: member.yaml's role (trusting the central functions' roles) and its
  rules forwarding events to the local account's bus.

The topic's KMS key, IAM roles of the local account, log groups, alarms and the chat channel are
not deployed (moto does not enforce IAM, and alerts are read from the topic instead of delivered).
``stack_parameters()`` and ``pseudo_parameters()`` give the values the templates are resolved with.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from localaws.isolation import PARTITION
from localaws.template import (
    REPO_ROOT,
    TEST_PARAMETERS,
    Deployed,
    check_parameters,
    condition_holds,
    load_template,
    parameter_values,
    resolve,
    resources_of_type,
)

__all__ = [
    "MEMBER_TEMPLATE_PATH",
    "STACK_NAME",
    "ClientFor",
    "Deployment",
    "LocalFunction",
    "MemberClientFor",
    "SqsEventSource",
    "pseudo_parameters",
    "stack_parameters",
]

MEMBER_TEMPLATE_PATH: Final = REPO_ROOT / "member.yaml"
STACK_NAME: Final = "custom-labels-guard"

# A boto3 client for a service of the local account / of a member account.
ClientFor = Callable[[str], Any]
MemberClientFor = Callable[[str, str], Any]

# CloudFormation queue properties that are SQS queue attributes of the same name.
_QUEUE_ATTRIBUTES: Final = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "ContentBasedDeduplication",
)
_TARGET_FIELDS: Final = (
    "Id",
    "Input",
    "InputPath",
    "InputTransformer",
    "RetryPolicy",
    "DeadLetterConfig",
    "SqsParameters",
)
_LAMBDA_DEFAULT_ASYNC_RETRIES: Final = 2


@dataclass(frozen=True)
class SqsEventSource:
    """A function's ``Type: SQS`` event source (SAM ``Events``)."""

    function: str  # logical id
    queue: str  # logical id
    batch_size: int
    report_batch_item_failures: bool
    batching_window_s: int = 0  # MaximumBatchingWindowInSeconds: gather up to batch_size


@dataclass(frozen=True)
class LocalFunction:
    """An ``AWS::Serverless::Function`` of the template, as the local Lambda runs it."""

    logical_id: str
    code_uri: Path
    handler: str  # "app.lambda_handler"
    timeout_s: int
    memory_mb: int
    environment: Mapping[str, str]
    max_retry_attempts: int  # asynchronous invocations (EventInvokeConfig)
    on_failure: str | None  # destination ARN of failed asynchronous invocations
    arn: str

    @property
    def name(self) -> str:
        return f"{STACK_NAME}-{self.logical_id}"


def stack_parameters(
    template: Mapping[str, Any],
    parameters: Mapping[str, str | Sequence[str]] | None,
    members: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """The template's parameter values: ``parameters`` (lists accepted for CommaDelimitedList),
    else the sample events' training bucket, else the defaults; with member accounts,
    ``MemberAccountIds`` names them unless given. Raises ValueError for values the template's
    ``AllowedValues`` / ``AllowedPattern`` refuse, as CloudFormation would."""
    overrides = {name: list(v) if not isinstance(v, str) else v for name, v in (parameters or {}).items()}
    if members:
        overrides.setdefault("MemberAccountIds", ",".join(members))
    values: dict[str, Any] = parameter_values(template, {**TEST_PARAMETERS, **overrides})
    problems = check_parameters(template, values)
    if problems:
        raise ValueError("invalid template parameters: " + "; ".join(problems))
    return values


def pseudo_parameters(account_id: str, region: str) -> dict[str, Any]:
    """CloudFormation's pseudo parameters for the local stack."""
    return {
        "AWS::Partition": PARTITION,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::StackName": STACK_NAME,
        "AWS::StackId": f"arn:{PARTITION}:cloudformation:{region}:{account_id}:stack/{STACK_NAME}/local",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
    }


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _role_id(role_name: str) -> str:
    """A stable IAM-style unique role id ("AROA" + 17 characters) for a local role."""
    digest = base64.b32encode(hashlib.sha256(role_name.encode()).digest()).decode()
    return "AROA" + digest[:17]


class Deployment:
    """The template deployed on the local server: what was created, by logical id.

    Empty until ``deploy()``; each ``deploy()`` starts over (on a freshly reset server).
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        template_path: Path,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        members: Mapping[str, Sequence[str]],
    ) -> None:
        self.template = template
        self.template_path = template_path
        self.parameters = parameters
        self.pseudo = pseudo
        self.account_id = str(pseudo["AWS::AccountId"])
        self.region = str(pseudo["AWS::Region"])
        self.members = members
        self.deployed: dict[str, Deployed] = {}
        self.functions: dict[str, LocalFunction] = {}
        self.event_sources: list[SqsEventSource] = []
        self.rules: dict[str, str] = {}  # rule logical id -> physical name
        self.rule_targets: dict[str, list[str]] = {}  # rule logical id -> target descriptions
        self.standins: dict[str, str] = {}  # function logical id -> stand-in queue URL
        self.alert_queues: dict[str, str] = {}  # topic logical id -> subscribed queue URL
        self.subscriptions: list[str] = []  # AWS::SNS::Subscription logical ids deployed (sqs)
        self.dead_letter_queues: list[str] = []  # queue logical ids that receive failures

    # --- names ------------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``value`` of the template with its intrinsic functions resolved for this deployment."""
        return resolve(self.template, value, self.parameters, deployed=self.deployed, pseudo=self.pseudo)

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{PARTITION}:{service}:{self.region}:{self.account_id}:{resource}"

    def queue_by_arn(self, arn: str) -> str:
        """The logical id of the template's queue with this ARN."""
        for logical_id, deployed in self.deployed.items():
            if deployed.attributes.get("Arn") == arn and "QueueUrl" in deployed.attributes:
                return logical_id
        raise KeyError(f"no queue of the template has the ARN {arn}")

    def topics_named_by(self, variable: str) -> list[str]:
        """The ARNs of the template's topics that some function's ``variable`` names."""
        named = {f.environment.get(variable) for f in self.functions.values()}
        return [
            self.deployed[t].ref
            for t in resources_of_type(self.template, "AWS::SNS::Topic")
            if self.deployed[t].ref in named
        ]

    def _describe_arn(self, arn: str) -> str:
        for logical_id, deployed in self.deployed.items():
            if deployed.attributes.get("Arn") == arn or deployed.ref == arn:
                return logical_id
        return arn

    # --- deploying --------------------------------------------------------------------------------

    def deploy(self, client: ClientFor, member_client: MemberClientFor) -> None:
        """Create the template's resources (and each member account's) on the local server."""
        self.deployed = {}
        sqs, sns, ddb, events = (client(s) for s in ("sqs", "sns", "dynamodb", "events"))
        queues = resources_of_type(self.template, "AWS::SQS::Queue")
        for logical_id in queues:
            name = f"{STACK_NAME}-{logical_id}"
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = self.arn("sqs", name)
            self.deployed[logical_id] = Deployed(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
        for logical_id in resources_of_type(self.template, "AWS::SNS::Topic"):
            arn = sns.create_topic(Name=f"{STACK_NAME}-{logical_id}")["TopicArn"]
            self.deployed[logical_id] = Deployed(arn, {"TopicArn": arn, "TopicName": arn.rsplit(":", 1)[1]})
        for logical_id, resource in resources_of_type(self.template, "AWS::DynamoDB::Table").items():
            self._deploy_table(ddb, logical_id, resource)
        self._deploy_buckets(client("s3"))
        self._name_functions()
        self._name_roles()
        for logical_id in resources_of_type(self.template, "AWS::Events::Rule"):
            name = f"{STACK_NAME}-{logical_id}"
            self.deployed[logical_id] = Deployed(name, {"Arn": self.arn("events", f"rule/{name}")})
        self._set_queue_attributes(sqs, queues)
        self._deploy_functions()
        self._subscribe_alert_queues(sqs, sns)
        self._deploy_subscriptions(sns)
        self._deploy_rules(sqs, events)
        self._deploy_bus_policies(events)
        self.dead_letter_queues = self._find_dead_letter_queues()
        for account, buckets in self.members.items():
            self._deploy_member(member_client, account, buckets)

    def _deploy_buckets(self, s3: Any) -> None:
        """Buckets the stack creates (the audit's reports bucket, when AuditReportsLocation is empty)."""
        for logical_id, resource in resources_of_type(self.template, "AWS::S3::Bucket").items():
            if "Condition" in resource and not condition_holds(self.template, resource["Condition"], self.parameters):
                continue
            name = f"{STACK_NAME}-{logical_id}".lower()
            s3.create_bucket(Bucket=name)
            self.deployed[logical_id] = Deployed(name, {"Arn": f"arn:aws:s3:::{name}"})

    def _name_roles(self) -> None:
        """Roles the template declares (the bulk re-encryption job's): their ARN, for the functions' environment."""
        for logical_id, resource in resources_of_type(self.template, "AWS::IAM::Role").items():
            if "Condition" in resource and not condition_holds(self.template, resource["Condition"], self.parameters):
                continue
            role = f"{STACK_NAME}-{logical_id}"
            self.deployed[logical_id] = Deployed(role, {"Arn": f"arn:{PARTITION}:iam::{self.account_id}:role/{role}"})

    def _name_functions(self) -> None:
        """Each function's name and ARN, and its execution role SAM generates ("<Function>Role")."""
        for logical_id in resources_of_type(self.template, "AWS::Serverless::Function"):
            name = f"{STACK_NAME}-{logical_id}"
            arn = self.arn("lambda", f"function:{name}")
            self.deployed[logical_id] = Deployed(name, {"Arn": arn})
            role = f"{STACK_NAME}-{logical_id}Role"
            self.deployed[f"{logical_id}Role"] = Deployed(
                role, {"Arn": f"arn:{PARTITION}:iam::{self.account_id}:role/{role}", "RoleId": _role_id(role)}
            )

    def _set_queue_attributes(self, sqs: Any, queues: Mapping[str, Any]) -> None:
        """Queue properties may name other queues (RedrivePolicy): set once all queues exist."""
        for logical_id, resource in queues.items():
            properties = self.resolve(resource.get("Properties", {}))
            attributes = {name: _as_str(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties}
            if "RedrivePolicy" in properties:
                attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
            if attributes:
                sqs.set_queue_attributes(QueueUrl=self.deployed[logical_id].ref, Attributes=attributes)

    def _deploy_table(self, ddb: Any, logical_id: str, resource: Mapping[str, Any]) -> None:
        properties = self.resolve(resource.get("Properties", {}))
        name = properties.get("TableName") or f"{STACK_NAME}-{logical_id}"
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        if "ProvisionedThroughput" in properties:
            request["ProvisionedThroughput"] = {k: int(v) for k, v in properties["ProvisionedThroughput"].items()}
        for index in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if index in properties:
                request[index] = properties[index]
        arn = ddb.create_table(**request)["TableDescription"]["TableArn"]
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            ddb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        self.deployed[logical_id] = Deployed(name, {"Arn": arn})

    def _deploy_functions(self) -> None:
        globals_ = self.template.get("Globals", {}).get("Function", {})
        self.functions = {}
        self.event_sources = []
        for logical_id, resource in resources_of_type(self.template, "AWS::Serverless::Function").items():
            properties = resource.get("Properties", {})
            variables = {
                **globals_.get("Environment", {}).get("Variables", {}),
                **properties.get("Environment", {}).get("Variables", {}),
            }
            environment = {name: _as_str(value) for name, value in self.resolve(variables).items()}
            invoke_config = self.resolve(properties.get("EventInvokeConfig", {}))
            on_failure = invoke_config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            self.functions[logical_id] = LocalFunction(
                logical_id=logical_id,
                code_uri=(
                    self.template_path.parent / str(properties.get("CodeUri", globals_.get("CodeUri", ".")))
                ).resolve(),
                handler=str(properties.get("Handler", globals_.get("Handler"))),
                timeout_s=int(self.resolve(properties.get("Timeout", globals_.get("Timeout", 3)))),
                memory_mb=int(self.resolve(properties.get("MemorySize", globals_.get("MemorySize", 128)))),
                environment=environment,
                max_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", _LAMBDA_DEFAULT_ASYNC_RETRIES)),
                on_failure=str(on_failure) if on_failure else None,
                arn=self.deployed[logical_id].attributes["Arn"],
            )
            for event in properties.get("Events", {}).values():
                if event.get("Type") != "SQS":
                    continue  # other event sources are not run locally
                self._add_sqs_source(logical_id, self.resolve(event.get("Properties", {})), "Queue")
        for mapping in resources_of_type(self.template, "AWS::Lambda::EventSourceMapping").values():
            properties = mapping.get("Properties", {})
            function = properties.get("FunctionName", {})
            if isinstance(function, dict) and function.get("Ref") in self.functions:
                self._add_sqs_source(str(function["Ref"]), self.resolve(properties), "EventSourceArn")

    def _add_sqs_source(self, function: str, source: dict[str, Any], arn_field: str) -> None:
        """An SQS event source (SAM ``Type: SQS`` event or AWS::Lambda::EventSourceMapping)."""
        self.event_sources.append(
            SqsEventSource(
                function=function,
                queue=self.queue_by_arn(str(source[arn_field])),
                batch_size=int(source.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in source.get("FunctionResponseTypes", []),
                batching_window_s=int(source.get("MaximumBatchingWindowInSeconds", 0)),
            )
        )

    def _subscribe_alert_queues(self, sqs: Any, sns: Any) -> None:
        self.alert_queues = {}
        for logical_id in resources_of_type(self.template, "AWS::SNS::Topic"):
            name = f"{STACK_NAME}-{logical_id}-local-subscriber"
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            sns.subscribe(TopicArn=self.deployed[logical_id].ref, Protocol="sqs", Endpoint=self.arn("sqs", name))
            self.alert_queues[logical_id] = url

    def _deploy_subscriptions(self, sns: Any) -> None:
        """The template's SQS subscriptions of its topics (the digest queue), with their
        attributes (raw delivery, redrive). E-mail and HTTPS subscriptions are not deployed."""
        self.subscriptions = []
        for logical_id, resource in resources_of_type(self.template, "AWS::SNS::Subscription").items():
            if "Condition" in resource and not condition_holds(self.template, resource["Condition"], self.parameters):
                continue
            properties = self.resolve(resource.get("Properties", {}))
            if properties.get("Protocol") != "sqs":
                continue
            attributes = {}
            if "RawMessageDelivery" in properties:
                attributes["RawMessageDelivery"] = _as_str(properties["RawMessageDelivery"])
            if "FilterPolicy" in properties:
                attributes["FilterPolicy"] = json.dumps(properties["FilterPolicy"])
            if "RedrivePolicy" in properties:
                attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
            sns.subscribe(
                TopicArn=str(properties["TopicArn"]),
                Protocol="sqs",
                Endpoint=str(properties["Endpoint"]),
                Attributes=attributes,
            )
            self.subscriptions.append(logical_id)

    def _standin(self, sqs: Any, function: str) -> str:
        """The queue standing in for ``function``'s asynchronous invocations; returns its ARN."""
        name = f"{STACK_NAME}-{function}-async-invoke"
        if function not in self.standins:
            self.standins[function] = sqs.create_queue(QueueName=name)["QueueUrl"]
        return self.arn("sqs", name)

    def _function_target(self, node: Any) -> str | None:
        """The function a rule target's ``Arn`` names (``!GetAtt F.Arn`` or ``!Ref F``), if any."""
        name: Any = None
        if isinstance(node, Mapping) and "Fn::GetAtt" in node:
            argument = node["Fn::GetAtt"]
            name = argument[0] if isinstance(argument, list) else str(argument).split(".", 1)[0]
        elif isinstance(node, Mapping) and "Ref" in node:
            name = node["Ref"]
        return name if isinstance(name, str) and name in self.functions else None

    def _deploy_rules(self, sqs: Any, events: Any) -> None:
        self.rules, self.rule_targets, self.standins = {}, {}, {}
        for logical_id, resource in resources_of_type(self.template, "AWS::Events::Rule").items():
            if "Condition" in resource and not condition_holds(self.template, resource["Condition"], self.parameters):
                continue  # e.g. KeyLifecycleRule without Security Hub
            properties = resource.get("Properties", {})
            name = self.deployed[logical_id].ref
            if "EventPattern" not in properties:
                # A schedule rule: on moto's bus a rule without a pattern would match every event.
                # Locally the schedule is "make audit" (which invokes the target by hand).
                self.rule_targets[logical_id] = [
                    f"{self._function_target(t['Arn'])} (on schedule)" for t in properties.get("Targets", [])
                ]
                continue
            rule: dict[str, Any] = {"Name": name, "State": str(self.resolve(properties.get("State", "ENABLED")))}
            if "EventPattern" in properties:
                rule["EventPattern"] = json.dumps(self.resolve(properties["EventPattern"]))
            if "ScheduleExpression" in properties:
                rule["ScheduleExpression"] = str(self.resolve(properties["ScheduleExpression"]))
            if "Description" in properties:
                rule["Description"] = str(self.resolve(properties["Description"]))
            events.put_rule(**rule)
            self.rules[logical_id] = name
            targets, described = [], []
            for target in properties.get("Targets", []):
                function = self._function_target(target["Arn"])
                entry = {k: self.resolve(target[k]) for k in _TARGET_FIELDS if k in target}
                if function is not None:
                    entry["Arn"] = self._standin(sqs, function)
                    described.append(f"{function} (asynchronous invoke)")
                else:
                    entry["Arn"] = str(self.resolve(target["Arn"]))
                    described.append(self._describe_arn(entry["Arn"]))
                targets.append(entry)
            if targets:
                events.put_targets(Rule=name, Targets=targets)
            self.rule_targets[logical_id] = described

    def _deploy_bus_policies(self, events: Any) -> None:
        """The template's AWS::Events::EventBusPolicy statements (those whose Condition holds)."""
        for logical_id, resource in resources_of_type(self.template, "AWS::Events::EventBusPolicy").items():
            condition = resource.get("Condition")
            if condition and not condition_holds(self.template, str(condition), self.parameters):
                continue
            properties = self.resolve(resource["Properties"])
            statement = {"Sid": properties["StatementId"], **properties["Statement"]}
            events.put_permission(
                EventBusName="default", Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
            )
            self.deployed[logical_id] = Deployed(str(properties["StatementId"]), {})

    def _find_dead_letter_queues(self) -> list[str]:
        arns: list[str] = []
        for resource in resources_of_type(self.template, "AWS::SQS::Queue").values():
            redrive = self.resolve(resource.get("Properties", {}).get("RedrivePolicy", {}))
            if "deadLetterTargetArn" in redrive:
                arns.append(str(redrive["deadLetterTargetArn"]))
        for resource in resources_of_type(self.template, "AWS::Events::Rule").values():
            for target in resource.get("Properties", {}).get("Targets", []):
                if "DeadLetterConfig" in target:
                    arns.append(str(self.resolve(target["DeadLetterConfig"]["Arn"])))
        arns += [f.on_failure for f in self.functions.values() if f.on_failure]
        return list(dict.fromkeys(self.queue_by_arn(arn) for arn in arns))

    # --- member accounts --------------------------------------------------------------------------

    def _deploy_member(self, member_client: MemberClientFor, account: str, buckets: Sequence[str]) -> None:
        """What member.yaml deploys in a member account: its role (trusting the central
        functions' roles) and the rules forwarding its events to this account's bus."""
        template = load_template(MEMBER_TEMPLATE_PATH)
        parameters = {
            "CentralAccountId": self.account_id,
            "GuardRoleArns": [self.arn("iam", f"role/{STACK_NAME}-{f}Role") for f in self.functions],
            "TrainingBuckets": list(buckets),
            "MemberRoleName": str(self.parameters.get("MemberRoleName", "CustomLabelsGuardMember")),
            "ReencryptKmsKey": "",
            "TrainingPrincipals": [""],
        }
        pseudo = {**self.pseudo, "AWS::AccountId": account}

        def value(node: Any) -> Any:
            return resolve(template, node, parameters, pseudo=pseudo)

        iam, events = member_client(account, "iam"), member_client(account, "events")
        role = value(template["Resources"]["MemberRole"]["Properties"])
        iam.create_role(
            RoleName=role["RoleName"], AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"])
        )
        for policy in role.get("Policies", []):
            iam.put_role_policy(
                RoleName=role["RoleName"],
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )
        # The member's declaration of itself (its buckets; no re-encryption key or trainers of its own
        # unless given), which the central functions read through the member role.
        declaration = value(template["Resources"]["MemberDeclaration"]["Properties"])
        member_client(account, "ssm").put_parameter(
            Name=declaration["Name"], Value=declaration["Value"], Type=declaration["Type"], Overwrite=True
        )
        for logical_id, resource in resources_of_type(template, "AWS::Events::Rule").items():
            properties = value(resource["Properties"])
            name = f"{STACK_NAME}-member-{logical_id}"
            events.put_rule(Name=name, EventPattern=json.dumps(properties["EventPattern"]), State=properties["State"])
            events.put_targets(
                Rule=name, Targets=[{"Id": t["Id"], "Arn": t["Arn"]} for t in properties.get("Targets", [])]
            )
