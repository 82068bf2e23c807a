"""The local deployment as a CloudFormation stack on the moto server: what ``--stack`` reads.

``localaws.deploy`` creates the template's resources one by one (moto's CloudFormation cannot
run a SAM template), so the local world has no stack for ``clguard doctor --stack`` and
``clguard status --stack`` to read. ``deploy_stack(system)`` creates one through moto's own
CloudFormation API, named ``STACK_NAME``, holding what the operator's commands read through
CloudFormation, each resolved from template.yaml (never re-typed here):

- the template's parameters, with the values the local system was deployed with (DescribeStacks);
- each function as an ``AWS::Lambda::Function`` with its name and resolved environment, and
  its execution role (DescribeStackResource, then GetFunctionConfiguration);
- the topics, by the names the local deployment gave them (SNS CreateTopic of an existing name
  returns that topic: the stack's ``HumanTopic`` is the one the digest publishes to);
- every ``AWS::CloudWatch::Alarm`` whose condition holds, with its resolved properties
  (ListStackResources, then DescribeAlarms; ``localaws.doubles.StackAlarms`` creates them).

Queues, the state table, rules and buckets stay as ``localaws.deploy`` made them and are not
listed by the stack.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from localaws.deploy import STACK_NAME
from localaws.template import condition_holds, resources_of_type

if TYPE_CHECKING:
    from localaws.runtime import LocalSystem

__all__ = ["STACK_NAME", "deploy_stack"]

_LAMBDA_TRUST: Final = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _value(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def stack_template(system: LocalSystem) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The stack's template and parameters (see the module documentation)."""
    template = system.template
    parameters = {name: {"Type": "String"} for name in template.get("Parameters", {})}
    values = [{"ParameterKey": n, "ParameterValue": _value(system.parameters.get(n, ""))} for n in parameters]
    resources: dict[str, Any] = {}
    for logical_id, function in system.functions.items():
        role = system.deployed[f"{logical_id}Role"]
        resources[f"{logical_id}Role"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {"RoleName": role.ref, "AssumeRolePolicyDocument": _LAMBDA_TRUST},
        }
        resources[logical_id] = {
            "Type": "AWS::Lambda::Function",
            "DependsOn": f"{logical_id}Role",
            "Properties": {
                "FunctionName": function.name,
                "Role": role.attributes["Arn"],
                "Runtime": "python3.13",
                "Handler": function.handler,
                "Code": {"ZipFile": "# the local runtime runs the handler in process"},
                "Environment": {"Variables": dict(function.environment)},
            },
        }
    for logical_id in resources_of_type(template, "AWS::SNS::Topic"):
        name = system.deployed[logical_id].attributes["TopicName"]
        resources[logical_id] = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": name}}
    for logical_id, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        if "Condition" in alarm and not condition_holds(template, alarm["Condition"], system.parameters):
            continue
        resources[logical_id] = {"Type": alarm["Type"], "Properties": system.resolve(alarm["Properties"])}
    return {"Parameters": parameters, "Resources": resources}, values


def deploy_stack(system: LocalSystem) -> str:
    """Create the stack (after ``system`` deployed the template); its name."""
    template, values = stack_template(system)
    system.client("cloudformation").create_stack(
        StackName=STACK_NAME, TemplateBody=json.dumps(template), Parameters=values
    )
    return STACK_NAME
