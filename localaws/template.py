"""Read template.yaml the way CloudFormation does: the one template loader of the project.

Used by the local runtime (``localaws.deploy`` deploys the template's queues, table, topic and
EventBridge rules onto a moto server) and by the infrastructure tests.

- ``load_template()``: the template as plain data, short-form tags (``!Ref``, ``!Sub``, ...) turned
  into their long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``).
- ``resolve(template, value, parameters, deployed=...)``: evaluates the intrinsic functions the
  template uses, for given parameter values. Without ``deployed``, resources have no physical
  values: ``Ref X`` becomes ``"ref:X"`` and ``Fn::GetAtt X.Attr`` becomes ``"getatt:X.Attr"``
  (also inside ``Fn::Sub``). With ``deployed`` (logical id -> ``Deployed``), they resolve to the
  physical values of a deployment, and naming a resource that was not deployed is an error.
- ``parameter_values()`` / ``check_parameters()``: parameter values as CloudFormation sees them,
  and the template's ``AllowedValues`` / ``AllowedPattern`` constraints.
- ``rule_patterns()`` and ``event_matches()``: the EventBridge rules and a matcher for the pattern
  syntax they use (checked against moto's EventBridge in test_template_event_rules.py).
- ``function_policy_actions()`` / ``function_policy_statements()``: what a function's inline
  ``Policies`` grant.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

PSEUDO_PARAMETERS: dict[str, Any] = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "custom-labels-guard",
    "AWS::StackId": (
        "arn:aws:cloudformation:us-east-1:123456789012:stack/custom-labels-guard/1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
    ),
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": [],
}

# Parameter values the infrastructure tests and the local runtime deploy with unless told
# otherwise: the sample events' training bucket, everything else at its default.
TEST_PARAMETERS: dict[str, Any] = {"TrainingBuckets": ["custom-labels-training"]}


class _NoValue:
    """``Ref AWS::NoValue``: removes the enclosing list item or mapping entry."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


@dataclass(frozen=True)
class Deployed:
    """Physical values of one deployed resource: what ``Ref`` returns and its ``Fn::GetAtt``
    attributes."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """SafeLoader with CloudFormation's short-form tags and without timestamp conversion."""


# CloudFormation keeps "2012-10-17" a string; PyYAML would make it a date.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"bad node for !{tag_suffix}")
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)  # type: ignore[no-untyped-call]


@cache
def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict):
        raise TypeError(f"{path} is not a CloudFormation template")
    return document


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """A fresh copy of the parsed template (short-form tags in long form)."""
    return copy.deepcopy(_load(path))


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, Any]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


# --------------------------------------------------------------------------------------------
# Intrinsic functions
# --------------------------------------------------------------------------------------------
def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parameter values as CloudFormation would see them: defaults, then ``overrides``.

    CommaDelimitedList values become lists (a str override is split on commas).
    """
    values: dict[str, Any] = {}
    overrides = dict(overrides or {})
    for name, spec in template.get("Parameters", {}).items():
        if name in overrides:
            value = overrides.pop(name)
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise KeyError(f"parameter {name} has no default: pass a value")
        if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
            value = [item.strip() for item in value.split(",")]
        values[name] = value
    if overrides:
        raise KeyError(f"unknown parameters: {sorted(overrides)}")
    return values


def check_parameters(template: Mapping[str, Any], values: Mapping[str, Any]) -> list[str]:
    """What CloudFormation would reject in these parameter values (``AllowedValues``,
    ``AllowedPattern``, each item of a CommaDelimitedList), one message per problem."""
    problems: list[str] = []
    for name, spec in template.get("Parameters", {}).items():
        if name not in values:
            continue
        value = values[name]
        items = value if isinstance(value, list) else [value]
        allowed = spec.get("AllowedValues")
        pattern = spec.get("AllowedPattern")
        for item in items:
            text = str(item)
            if allowed is not None and text not in [str(a) for a in allowed]:
                problems.append(f"{name}: {text!r} is not one of {', '.join(str(a) for a in allowed)}")
            elif pattern is not None and re.fullmatch(pattern, text) is None:
                reason = spec.get("ConstraintDescription") or f"must match {pattern}"
                problems.append(f"{name}: {text!r}: {reason}")
    return problems


class _Resolver:
    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        *,
        deployed: Mapping[str, Deployed] | None = None,
        pseudo: Mapping[str, Any] | None = None,
    ) -> None:
        self.template = template
        self.parameters = parameter_values(template, {**TEST_PARAMETERS, **parameters})
        self.deployed = deployed
        self.pseudo = {**PSEUDO_PARAMETERS, **(pseudo or {})}
        self._conditions: dict[str, bool] = {}

    def _deployed(self, name: str) -> Deployed:
        assert self.deployed is not None
        found = self.deployed.get(name)
        if found is None:
            raise KeyError(f"resource {name!r} is not deployed here")
        return found

    def getatt(self, resource: str, attribute: str) -> Any:
        if self.deployed is None:
            return f"getatt:{resource}.{attribute}"
        found = self._deployed(resource)
        if attribute not in found.attributes:
            raise KeyError(f"resource {resource!r} has no attribute {attribute!r} here")
        return found.attributes[attribute]

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self.truth(self.template["Conditions"][name])
        return self._conditions[name]

    def truth(self, node: Any) -> bool:
        if isinstance(node, Mapping) and len(node) == 1:
            (function, argument), *_ = node.items()
            if function == "Condition":
                return self.condition(argument)
            if function == "Fn::Equals":
                left, right = (self.value(item) for item in argument)
                return bool(left == right)
            if function == "Fn::Not":
                return not self.truth(argument[0])
            if function == "Fn::And":
                return all(self.truth(item) for item in argument)
            if function == "Fn::Or":
                return any(self.truth(item) for item in argument)
        raise NotImplementedError(f"condition function not supported: {node!r}")

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template["Resources"]:
            return f"ref:{name}" if self.deployed is None else self._deployed(name).ref
        raise KeyError(f"Ref to unknown name {name!r}")

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                resource, attribute = name.split(".", 1)
                return str(self.getatt(resource, attribute))
            value = self.ref(name)
            if not isinstance(value, str):
                raise TypeError(f"Fn::Sub variable {name} is not a string: {value!r}")
            return value

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def value(self, node: Any) -> Any:
        """``node`` with every intrinsic function evaluated (``_INTRINSICS``: one method each);
        ``AWS::NoValue`` items and properties dropped."""
        if isinstance(node, list):
            items = [self.value(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, Mapping):
            return node
        if len(node) == 1:
            (key, argument), *_ = node.items()
            if key in _INTRINSICS:
                return _INTRINSICS[key](self, argument)
            if key.startswith("Fn::"):
                raise NotImplementedError(f"intrinsic function not supported: {key}")
        resolved = {key: self.value(item) for key, item in node.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _getatt(self, argument: Any) -> Any:
        resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        return self.getatt(resource, attribute)

    def _sub(self, argument: Any) -> Any:
        if isinstance(argument, str):
            return self.sub(argument, {})
        text, variables = argument
        return self.sub(text, {k: self.value(v) for k, v in variables.items()})

    def _join(self, argument: Any) -> Any:
        delimiter, items = argument
        return delimiter.join(str(item) for item in self.value(items))

    def _split(self, argument: Any) -> Any:
        delimiter, text = argument
        return str(self.value(text)).split(delimiter)

    def _select(self, argument: Any) -> Any:
        index, items = argument
        return self.value(items)[int(self.value(index))]

    def _if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.value(when_true if self.condition(name) else when_false)


# The intrinsic functions the local world evaluates (CloudFormation's own names).
_INTRINSICS: Final[dict[str, Callable[[_Resolver, Any], Any]]] = {
    "Ref": _Resolver.ref,
    "Fn::GetAtt": _Resolver._getatt,
    "Fn::Sub": _Resolver._sub,
    "Fn::Join": _Resolver._join,
    "Fn::Split": _Resolver._split,
    "Fn::Select": _Resolver._select,
    "Fn::If": _Resolver._if,
}


def resolve(
    template: Mapping[str, Any],
    value: Any,
    parameters: Mapping[str, Any] | None = None,
    *,
    deployed: Mapping[str, Deployed] | None = None,
    pseudo: Mapping[str, Any] | None = None,
) -> Any:
    """``value`` with its intrinsic functions evaluated for these parameter overrides.

    Parameters not given take TEST_PARAMETERS, then their defaults. ``deployed`` gives the
    physical values of resources (else ``ref:X`` / ``getatt:X.Attr`` placeholders); ``pseudo``
    overrides PSEUDO_PARAMETERS.
    """
    return _Resolver(template, parameters or {}, deployed=deployed, pseudo=pseudo).value(value)


def condition_holds(template: Mapping[str, Any], name: str, parameters: Mapping[str, Any] | None = None) -> bool:
    return _Resolver(template, parameters or {}).condition(name)


# --------------------------------------------------------------------------------------------
# EventBridge
# --------------------------------------------------------------------------------------------
def rule_patterns(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """EventPattern of every AWS::Events::Rule, resolved (Ref TrainingBuckets -> bucket list).
    Schedule rules (a ScheduleExpression, no pattern) match no event and are left out."""
    patterns = {}
    for logical_id, rule in resources_of_type(template, "AWS::Events::Rule").items():
        if "EventPattern" not in rule["Properties"]:
            continue
        pattern = resolve(template, rule["Properties"]["EventPattern"], parameters)
        if not isinstance(pattern, dict):
            raise TypeError(f"{logical_id}: EventPattern must be an object in this template")
        patterns[logical_id] = pattern
    return patterns


_MISSING = object()


def event_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether an EventBridge pattern matches an event.

    Supports what EventBridge patterns commonly use: nested objects, lists of exact values
    (strings, numbers, booleans, null; a list-valued event field matches if any element does),
    and the ``prefix``, ``suffix``, ``anything-but``, ``exists``, ``equals-ignore-case`` and
    ``wildcard`` filters, and ``$or`` (a list of patterns, one of which must match besides the
    other fields). Anything else raises NotImplementedError rather than guessing.
    """
    for key, expected in pattern.items():
        if key == "$or":
            if not isinstance(expected, list) or not all(isinstance(p, Mapping) for p in expected):
                raise TypeError(f"$or must be a list of patterns: {expected!r}")
            if not any(event_matches(p, event) for p in expected):
                return False
            continue
        actual = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            if not isinstance(actual, Mapping) or not event_matches(expected, actual):
                return False
        elif isinstance(expected, list):
            if not _field_matches(expected, actual):
                return False
        else:
            raise TypeError(f"pattern value of {key!r} must be an object or a list: {expected!r}")
    return True


def _field_matches(filters: list[Any], actual: Any) -> bool:
    values = actual if isinstance(actual, list) else [actual]
    return any(_filter_matches(item, value) for item in filters for value in values) or (
        actual is _MISSING and any(item == {"exists": False} for item in filters)
    )


def _same_scalar(expected: Any, actual: Any) -> bool:
    """JSON equality: 1 matches 1.0, but not true or "1"."""
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(actual, numbers):
        if isinstance(expected, bool) or isinstance(actual, bool):
            return expected is actual
        return bool(expected == actual)
    return type(expected) is type(actual) and bool(expected == actual)


def _filter_matches(item: Any, value: Any) -> bool:
    if not isinstance(item, Mapping):
        return value is not _MISSING and _same_scalar(item, value)
    if len(item) != 1:
        raise NotImplementedError(f"content filter with several keys: {item!r}")
    (name, argument), *_ = item.items()
    if name == "exists":
        return bool(argument) == (value is not _MISSING)
    if value is _MISSING:
        return False
    text_checks: dict[str, Callable[[str, Any], bool]] = {
        "prefix": lambda text, arg: text.startswith(arg),
        "suffix": lambda text, arg: text.endswith(arg),
        "equals-ignore-case": lambda text, arg: text.casefold() == arg.casefold(),
        "wildcard": lambda text, arg: (
            re.fullmatch(".*".join(re.escape(part) for part in arg.split("*")), text, re.DOTALL) is not None
        ),
    }
    if name in text_checks:
        return isinstance(value, str) and text_checks[name](value, argument)
    if name == "anything-but":
        if isinstance(argument, Mapping):
            return not _filter_matches(argument, value)
        excluded = argument if isinstance(argument, list) else [argument]
        return value not in excluded
    raise NotImplementedError(f"content filter not supported: {name}")


# --------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------
def _inline_policy_documents(template: Mapping[str, Any], logical_id: str) -> list[Any]:
    resource = template["Resources"][logical_id]
    if resource["Type"] != "AWS::Serverless::Function":
        raise TypeError(f"{logical_id} is not an AWS::Serverless::Function")
    documents = []
    for entry in resource["Properties"].get("Policies", []):
        if not (isinstance(entry, Mapping) and "Statement" in entry):
            # A managed policy ARN or a SAM policy template would grant actions this helper
            # cannot see: refuse rather than under-report.
            raise ValueError(f"{logical_id}: only inline policy documents are supported: {entry!r}")
        documents.append(entry)
    return documents


def _raw_statements(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every statement a Statement list can produce, both branches of Fn::If included."""
    if isinstance(node, list):
        for item in node:
            yield from _raw_statements(item)
    elif isinstance(node, Mapping) and set(node) == {"Fn::If"}:
        _, when_true, when_false = node["Fn::If"]
        yield from _raw_statements(when_true)
        yield from _raw_statements(when_false)
    elif isinstance(node, Mapping) and set(node) == {"Ref"}:
        if node["Ref"] != "AWS::NoValue":
            raise ValueError(f"unexpected Ref in a Statement list: {node!r}")
    elif isinstance(node, Mapping):
        yield node
    else:
        raise ValueError(f"not a policy statement: {node!r}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_policy_actions(template: Mapping[str, Any], logical_id: str) -> set[str]:
    """Every IAM action the function's inline ``Policies`` can grant (Fn::If branches included).

    SAM adds more on its own (basic execution, X-Ray, SQS polling, the OnFailure destination);
    those are not part of the function's declared needs and are not included.
    """
    actions: set[str] = set()
    for document in _inline_policy_documents(template, logical_id):
        for statement in _raw_statements(document["Statement"]):
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement:
                raise ValueError(f"{logical_id}: NotAction statements are not allowed")
            actions.update(_as_list(statement["Action"]))
    return actions


def function_policy_statements(
    template: Mapping[str, Any], logical_id: str, parameters: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The function's inline policy statements, resolved for these parameter overrides."""
    statements: list[dict[str, Any]] = []
    for document in _inline_policy_documents(template, logical_id):
        resolved = resolve(template, document["Statement"], parameters)
        statements.extend(_as_list(resolved))
    return statements
