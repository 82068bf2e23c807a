"""AWS CloudFormation as documented, where moto 5.2.5 differs: a stack creates its alarms.

``StackAlarms`` reproduces the CloudFormation User Guide, ``AWS::CloudWatch::Alarm``
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-cloudwatch-alarm.html),
"Return values": a stack's alarm is a CloudWatch alarm named by its ``AlarmName`` (or
``<stack>-<logical id>-<suffix>`` without one; ``Ref`` returns the name), listed by
``ListStackResources`` under its logical id. moto's CloudFormation has no model for the type: the
stack lists a resource with neither logical nor physical id and no alarm exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel

from localaws.doubles.base import Double


class StackAlarms(Double):
    """A stack's ``AWS::CloudWatch::Alarm`` creates the alarm (see the module docstring)."""

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        from moto.cloudformation import parsing  # noqa: PLC0415 - only stacks need it

        models = {**parsing.get_model_map(), _StackAlarm.cloudformation_type(): _StackAlarm}
        names = {**parsing.get_name_type_map(), _StackAlarm.cloudformation_type(): "AlarmName"}
        yield patch.object(parsing, "get_model_map", lambda: models)
        yield patch.object(parsing, "get_name_type_map", lambda: names)


class _StackAlarm(CloudFormationModel):
    """The alarm a stack created, by its name (its physical id)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> _StackAlarm:
        p = cloudformation_json.get("Properties", {})
        cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=p.get("Namespace", ""),
            metric_name=p.get("MetricName", ""),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p.get("Period", 60)),
            threshold=float(p.get("Threshold", 0)),
            statistic=p.get("Statistic", ""),
            description=p.get("AlarmDescription", ""),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in p.get("Dimensions", [])],
            alarm_actions=list(p.get("AlarmActions", [])),
            ok_actions=list(p.get("OKActions", [])),
            treat_missing_data=p.get("TreatMissingData"),
        )
        return cls(resource_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])
