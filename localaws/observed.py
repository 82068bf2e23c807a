"""What happened on the local system, read back: invocations, alerts, human messages, metrics.

- ``Invocation``: one run of a handler by the local Lambda service (``localaws.lambda_service``)
  with what it returned or raised, its log output ("CloudWatch Logs") and the EMF metrics in it
  (``metrics()``; ``metric_totals()`` sums them over invocations).
- ``TopicLog``: every publish to some topics (the alerts topic, the human topic), read from moto's
  SNS backend, which keeps the whole ``MessageStructure="json"`` message: each becomes an
  ``Alert`` with its renderings (``default`` finding, ``email``, ``https`` chat notification).
- ``subscriber_messages()``: what an SQS subscriber of a topic received (the SNS envelope).
- ``Routed`` and ``rules_matched()``: an event put on the bus and the template rules it matched
  (from ``localaws.eventbridge.EventBridgeTap``).
- ``queue_depth()`` and ``key_policy()``: a queue's messages and a KMS key's policy.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from moto.sns.models import sns_backends

from localaws.eventbridge import EventBridgeTap

__all__ = [
    "Alert",
    "Invocation",
    "Routed",
    "SubscriberMessage",
    "TopicLog",
    "key_policy",
    "metric_totals",
    "parsed",
    "queue_depth",
    "rules_matched",
    "subscriber_messages",
]


def parsed(text: str) -> Any:
    """``text`` parsed as JSON, or ``text`` itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass
class Invocation:
    """One invocation of a handler by the local Lambda service."""

    function: str  # logical id
    trigger: str  # e.g. "SQS VerifyQueue" or "EventBridge (asynchronous)"
    events: list[Any]  # what was delivered: the EventBridge events (SQS bodies parsed when JSON)
    payload: dict[str, Any]  # the handler's event argument
    attempt: int = 1
    result: Any = None
    error: str | None = None
    failed_records: list[str] = field(default_factory=list)  # SQS message ids left on the queue
    duration_ms: float = 0.0
    output: str = ""  # the function's log lines and EMF metrics ("CloudWatch Logs")
    alert_ids: list[str] = field(default_factory=list)  # SNS message ids it published

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed_records

    def metrics(self) -> Counter[str]:
        """The EMF metrics the invocation emitted, summed by name."""
        totals: Counter[str] = Counter()
        for line in self.output.splitlines():
            if not line.startswith("{") or '"_aws"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
                for metric in directive.get("Metrics", []):
                    value = record.get(metric.get("Name"))
                    values = value if isinstance(value, list) else [value]
                    totals[metric["Name"]] += int(sum(v for v in values if isinstance(v, int | float)))
        return totals


def metric_totals(invocations: Iterable[Invocation], function_id: str | None = None) -> Counter[str]:
    """The EMF metrics of ``invocations`` (of one function), summed by name."""
    totals: Counter[str] = Counter()
    for invocation in invocations:
        if function_id is None or invocation.function == function_id:
            totals.update(invocation.metrics())
    return totals


@dataclass(frozen=True)
class Alert:
    """One SNS publish to the alerts topic, with the three renderings of the finding."""

    message_id: str
    topic_arn: str
    subject: str | None
    finding: dict[str, Any]  # the ``default`` document
    email: str
    chat: dict[str, Any]  # the ``https`` chat notification (Slack)
    attributes: dict[str, str]


class TopicLog:
    """Every publish to the topics ``topic_arns()`` names (asked at each read), in order."""

    def __init__(self, account_id: str, region: str, topic_arns: Callable[[], Sequence[str]]) -> None:
        self.account_id = account_id
        self.region = region
        self.topic_arns = topic_arns

    def count(self) -> int:
        """How many messages were published so far (cheap: nothing is parsed)."""
        backend = sns_backends[self.account_id][self.region]
        return sum(len(backend.topics[arn].sent_notifications) for arn in self.topic_arns() if arn in backend.topics)

    def messages(self) -> list[Alert]:
        """Every message published, with its renderings (``finding`` is its ``default`` document)."""
        backend = sns_backends[self.account_id][self.region]
        found: list[Alert] = []
        for arn in self.topic_arns():
            topic = backend.topics.get(arn)
            if topic is None:
                continue
            for message_id, message, subject, attributes, _group in list(topic.sent_notifications):
                structure = parsed(message)
                if not isinstance(structure, dict) or "default" not in structure:
                    structure = {"default": message}
                default = parsed(str(structure.get("default", "")))
                chat = parsed(str(structure.get("https", "{}")))
                found.append(
                    Alert(
                        message_id=message_id,
                        topic_arn=arn,
                        subject=subject,
                        finding=default if isinstance(default, dict) else {"message": default},
                        email=str(structure.get("email", structure.get("default", ""))),
                        chat=chat if isinstance(chat, dict) else {},
                        attributes={
                            name: str(value.get("Value", value.get("StringValue", "")))
                            for name, value in (attributes or {}).items()
                        },
                    )
                )
        return found


@dataclass(frozen=True)
class SubscriberMessage:
    """What an SQS subscriber of the alerts topic received (the SNS envelope)."""

    subject: str | None
    message: Any  # the ``default`` document, parsed when JSON
    attributes: dict[str, str]


def subscriber_messages(sqs: Any, queue_urls: Iterable[str]) -> list[SubscriberMessage]:
    """Receive (and delete) everything on the subscribed queues ``queue_urls``, in order."""
    received: list[SubscriberMessage] = []
    for url in queue_urls:
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                break
            for message in messages:
                envelope = json.loads(message["Body"])
                received.append(
                    SubscriberMessage(
                        subject=envelope.get("Subject"),
                        message=parsed(envelope.get("Message", "")),
                        attributes={
                            name: str(value.get("Value", ""))
                            for name, value in (envelope.get("MessageAttributes") or {}).items()
                        },
                    )
                )
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return received


@dataclass(frozen=True)
class Routed:
    """An event put on the bus, and the template's rules (logical ids) that matched it."""

    event_id: str
    source: str
    detail_type: str
    rules: list[str]


def rules_matched(tap: EventBridgeTap, rules: Mapping[str, str], event_id: str) -> list[str]:
    """The rules that matched the event with this id: logical ids for the template's ``rules``
    (logical id -> physical name), physical names for others (a member account's)."""
    by_name = {name: logical_id for logical_id, name in rules.items()}
    return [by_name.get(name, name) for name in tap.rules_for(event_id)]


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Messages in a queue (visible, in flight and delayed)."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return sum(int(attributes["Attributes"].get(name, 0)) for name in names)


def key_policy(kms: Any, key_id: str) -> dict[str, Any]:
    """The key's ``default`` policy document."""
    text = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    document: dict[str, Any] = json.loads(text)
    return document
