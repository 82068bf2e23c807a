"""The whole system on this machine: a moto server on loopback as AWS, deployed from template.yaml.

``LocalSystem`` is the one object a scenario (the e2e tests, ``make demo``, ``make audit``,
``localaws.replay``) drives. It is a context manager that puts together the parts, each in its
own module:

- ``localaws.isolation``: the moto server on 127.0.0.1 (in this process, so the patches of
  ``localaws.doubles`` and ``localaws.eventbridge`` hold for it), the environment that points
  every AWS client of this process at it (fake credentials, no profile, no other endpoint: nothing
  can reach a real account) and the boto3 clients (``client()``, ``member_client()``);
- ``localaws.deploy``: the template's resources on the server (queues, topics, table, buckets,
  rules on the default bus, the functions with their environments and event sources) and
  member.yaml in each member account;
- ``localaws.lambda_service``: the Lambda service (``invoke()``, ``drain()``): SQS event sources
  with Lambda-shaped batches and partial failures, asynchronous invocations with retries and the
  ``OnFailure`` record, the real handlers run with the function's environment;
- ``localaws.observed``: what happened, read back (``invocations``, ``alerts()``,
  ``human_messages()``, ``subscriber_messages()``, ``metric_totals()``, ``rules_matched()``).

On entry it enters ``localaws.doubles.aws_behaviour()`` (moto made to behave like AWS) and the
``EventBridgeTap`` (which rule matched which event), starts the server, isolates the
environment, resets moto (its state lives in this process, so entering a LocalSystem, and
``reset()``, starts from an empty account) and deploys. On exit (also on Ctrl-C or an exception)
the server is stopped and the environment restored. Run one LocalSystem at a time per process.

The names other code imports from here (``LocalSystem``, ``Invocation``, ``Alert``,
``esm_batches``, ``FAKE_CREDENTIALS``, ...) are re-exported from the modules that define them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from localaws.deploy import (
    MEMBER_TEMPLATE_PATH,
    STACK_NAME,
    Deployment,
    LocalFunction,
    SqsEventSource,
    pseudo_parameters,
    stack_parameters,
)
from localaws.doubles import AwsBehaviour, SqsSenderIds, aws_behaviour
from localaws.eventbridge import EventBridgeTap
from localaws.isolation import (
    ACCOUNT_ID,
    FAKE_CREDENTIALS,
    PARTITION,
    REGION,
    Clients,
    isolated_from_aws,
    logger_level,
    moto_server,
    reset_moto,
)
from localaws.lambda_service import (
    LAMBDA_SQS_PAYLOAD_MAX,
    DrainTimeout,
    LambdaService,
    LocalLambdaContext,
    esm_batches,
)
from localaws.observed import (
    Alert,
    Invocation,
    Routed,
    SubscriberMessage,
    TopicLog,
    key_policy,
    metric_totals,
    queue_depth,
    rules_matched,
    subscriber_messages,
)
from localaws.template import TEMPLATE_PATH, Deployed, load_template

__all__ = [
    "ACCOUNT_ID",
    "FAKE_CREDENTIALS",
    "LAMBDA_SQS_PAYLOAD_MAX",
    "MEMBER_TEMPLATE_PATH",
    "PARTITION",
    "REGION",
    "STACK_NAME",
    "Alert",
    "DrainTimeout",
    "Invocation",
    "LocalFunction",
    "LocalLambdaContext",
    "LocalSystem",
    "Routed",
    "SqsEventSource",
    "SubscriberMessage",
    "esm_batches",
]


def _event_time(value: Any) -> datetime | None:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


class LocalSystem:
    """Custom Labels Guard on a moto server on loopback (see the module documentation).

    ``parameters`` are template parameter values (``{"TrainingBuckets": "a,b", ...}``; lists are
    accepted for CommaDelimitedList); not given: the sample events' training bucket
    (``custom-labels-training``), then the template's defaults. Values are checked against the
    template's ``AllowedValues`` / ``AllowedPattern`` as CloudFormation would. ``account_id`` and
    ``region`` are those of the local account (moto's default account and us-east-1 unless a
    replayed record comes from elsewhere). ``members``: member accounts (account id -> its
    training buckets); each gets member.yaml deployed, and the central stack serves them
    (``MemberAccountIds``).
    """

    def __init__(
        self,
        parameters: Mapping[str, str | Sequence[str]] | None = None,
        *,
        account_id: str = ACCOUNT_ID,
        region: str = REGION,
        template_path: Path = TEMPLATE_PATH,
        members: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.template_path = template_path
        self.template = load_template(template_path)
        self.members: dict[str, list[str]] = {a: list(b) for a, b in (members or {}).items()}
        if self.members and account_id != ACCOUNT_ID:
            raise ValueError("member accounts run beside moto's default account only")
        self.parameters: dict[str, Any] = stack_parameters(self.template, parameters, self.members)
        self.pseudo: dict[str, Any] = pseudo_parameters(account_id, region)
        self.endpoint_url = ""
        self.tap = EventBridgeTap()
        self.behaviour: AwsBehaviour | None = None
        self._deployment = Deployment(
            self.template,
            template_path=template_path,
            parameters=self.parameters,
            pseudo=self.pseudo,
            members=self.members,
        )
        self._alert_topics = TopicLog(account_id, region, self.topic_arns)
        self._human_topics = TopicLog(account_id, region, self.human_topic_arns)
        self._lambda = LambdaService(
            self._deployment, client=self.client, senders=self._senders, alerts=self._alert_topics
        )
        self._clients: Clients | None = None  # set while running
        self._stack: contextlib.ExitStack | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:  # also Ctrl-C while starting: everything started is stopped
            self._clients, self.endpoint_url = None, ""
            raise
        return self

    def _start(self) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(logger_level("werkzeug", logging.ERROR))
            self.behaviour = stack.enter_context(aws_behaviour())
            stack.enter_context(self.tap)
            self.endpoint_url = stack.enter_context(moto_server())
            self._clients = Clients(self.endpoint_url, self.region)
            # moto's account for every request — except with member accounts, where moto takes
            # it from the credentials, as AWS does.
            pinned = None if self.members else self.account_id
            stack.enter_context(isolated_from_aws(self.endpoint_url, self.region, account_id=pinned))
            stack.callback(self._forget_clients)
            reset_moto(self.endpoint_url)  # moto's state lives in this process: start from an empty account
            self._forget_clients()
            self._deploy()
            self._stack = stack.pop_all()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._clients, self.endpoint_url = None, ""
        if stack is not None:
            stack.close()

    def reset(self) -> None:
        """A fresh account: moto's state is reset and the template deployed again; the records of
        invocations and rule matches are cleared, and the functions' caches too (a cold start)."""
        self._require_running()
        reset_moto(self.endpoint_url)
        self.invocations.clear()
        self.tap.clear()
        self._forget_clients()
        self._deploy()

    def _require_running(self) -> Clients:
        if self._clients is None:
            raise RuntimeError("the LocalSystem is not running: use it as a context manager")
        return self._clients

    def _forget_clients(self) -> None:
        if self._clients is not None:
            self._clients.forget()

    def _deploy(self) -> None:
        self._deployment.deploy(self.client, self.member_client)

    def _senders(self) -> SqsSenderIds:
        assert self.behaviour is not None
        return self.behaviour[SqsSenderIds]

    # --- clients ----------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on the local server (for setting up a scenario)."""
        return self._require_running().client(service)

    def member_client(self, account: str, service: str) -> Any:
        """A boto3 client acting in a member account (for setting up its side of a scenario)."""
        return self._require_running().member_client(account, service)

    # --- the deployment ---------------------------------------------------------------------------

    @property
    def deployed(self) -> dict[str, Deployed]:
        """Physical values of each deployed resource, by logical id."""
        return self._deployment.deployed

    @property
    def functions(self) -> dict[str, LocalFunction]:
        return self._deployment.functions

    @property
    def event_sources(self) -> list[SqsEventSource]:
        return self._deployment.event_sources

    @property
    def rules(self) -> dict[str, str]:
        """Rule logical id -> physical name (the rules on the bus)."""
        return self._deployment.rules

    @property
    def rule_targets(self) -> dict[str, list[str]]:
        """Rule logical id -> descriptions of its targets."""
        return self._deployment.rule_targets

    @property
    def standins(self) -> dict[str, str]:
        """Function logical id -> URL of the queue standing in for its asynchronous invocation."""
        return self._deployment.standins

    @property
    def alert_queues(self) -> dict[str, str]:
        """Topic logical id -> URL of the local queue subscribed to it."""
        return self._deployment.alert_queues

    @property
    def subscriptions(self) -> list[str]:
        """The template's AWS::SNS::Subscription logical ids deployed (sqs ones)."""
        return self._deployment.subscriptions

    @property
    def dead_letter_queues(self) -> list[str]:
        """Queue logical ids that receive failures (redrive, rule DLQ, OnFailure)."""
        return self._deployment.dead_letter_queues

    def resolve(self, value: Any) -> Any:
        """``value`` of the template with its intrinsic functions resolved for this deployment."""
        return self._deployment.resolve(value)

    def queue_url(self, logical_id: str) -> str:
        return self.deployed[logical_id].ref

    def topic_arns(self) -> list[str]:
        """The topics the functions publish findings to (their ALERT_TOPIC_ARN): the machines' topic."""
        return self._deployment.topics_named_by("ALERT_TOPIC_ARN")

    def human_topic_arns(self) -> list[str]:
        """The topics for people (the digest function's HUMAN_TOPIC_ARN)."""
        return self._deployment.topics_named_by("HUMAN_TOPIC_ARN")

    def function_environment(self, logical_id: str) -> dict[str, str]:
        return dict(self.functions[logical_id].environment)

    # --- events -----------------------------------------------------------------------------------

    def enable_eventbridge_notifications(self, bucket: str, *, account: str | None = None) -> None:
        """Turn on S3 → EventBridge notifications for ``bucket`` (what the template's S3 rule needs)."""
        s3 = self.client("s3") if account in (None, self.account_id) else self.member_client(account, "s3")
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )

    def put_event(self, event: Mapping[str, Any], *, account: str | None = None) -> Routed:
        """Put an EventBridge event (as CloudTrail or S3 deliver it: ``source``, ``detail-type``,
        ``detail``, ...) on the default bus with PutEvents; return the rules that matched it.
        ``account``: put it on that (member) account's bus instead, as its CloudTrail would."""
        self._require_running()
        entry: dict[str, Any] = {
            "Source": str(event["source"]),
            "DetailType": str(event["detail-type"]),
            "Detail": json.dumps(event["detail"]),
            "Resources": [str(r) for r in event.get("resources") or []],
        }
        when = _event_time(event.get("time"))
        if when is not None:
            entry["Time"] = when
        events = self.client("events") if account in (None, self.account_id) else self.member_client(account, "events")
        response = events.put_events(Entries=[entry])
        result = response["Entries"][0]
        if "EventId" not in result:
            raise ValueError(f"PutEvents refused the event: {result.get('ErrorCode')}: {result.get('ErrorMessage')}")
        matched = rules_matched(self.tap, self.rules, result["EventId"])
        return Routed(result["EventId"], entry["Source"], entry["DetailType"], matched)

    def rules_matched(self, event_id: str) -> list[str]:
        """The template rules (logical ids) that matched the event with this id."""
        return rules_matched(self.tap, self.rules, event_id)

    # --- the Lambda service -----------------------------------------------------------------------

    def invoke(
        self, function_id: str, event: dict[str, Any], *, trigger: str = "direct", events: list[Any] | None = None
    ) -> Invocation:
        """Invoke a function's handler once, as Lambda does, and record the invocation."""
        return self._lambda.invoke(function_id, event, trigger=trigger, events=events)

    def drain(self, timeout: float = 30.0) -> list[Invocation]:
        """Run the functions on whatever their queues hold until every queue is empty.

        Returns the invocations of this drain (also appended to ``invocations``). Raises
        DrainTimeout when work is still arriving after ``timeout`` seconds.
        """
        self._require_running()
        return self._lambda.drain(timeout)

    # --- reading back -----------------------------------------------------------------------------

    @property
    def invocations(self) -> list[Invocation]:
        """Every invocation since the start (or the last ``reset()``), in order."""
        return self._lambda.invocations

    def alerts(self) -> list[Alert]:
        """Every publish to the alerts topic (one per finding), in order (read from moto's SNS
        backend, which keeps the whole ``MessageStructure="json"`` message: all three renderings)."""
        return self._alert_topics.messages()

    def human_messages(self) -> list[Alert]:
        """Every publish to the human topic (digests, severe findings one by one), in order;
        ``finding`` is the message's ``default`` document."""
        return self._human_topics.messages()

    def subscriber_messages(self, *, people: bool = False) -> list[SubscriberMessage]:
        """Receive (and delete) what an SQS subscriber of the alerts topic (or, with ``people``,
        of the human topic) got since the last call."""
        sqs = self.client("sqs")
        wanted = set(self.human_topic_arns() if people else self.topic_arns())
        urls = [url for logical_id, url in self.alert_queues.items() if self.deployed[logical_id].ref in wanted]
        return subscriber_messages(sqs, urls)

    def key_policy(self, key_id: str) -> dict[str, Any]:
        """The key's ``default`` policy document."""
        return key_policy(self.client("kms"), key_id)

    def queue_depth(self, logical_id: str) -> int:
        """Messages in a template queue (visible, in flight and delayed)."""
        return queue_depth(self.client("sqs"), self.queue_url(logical_id))

    def dead_letters(self) -> dict[str, int]:
        """Messages in each dead-letter queue of the template (redrive, rule DLQ, OnFailure)."""
        return {logical_id: self.queue_depth(logical_id) for logical_id in self.dead_letter_queues}

    def metric_totals(self, function_id: str | None = None) -> Counter[str]:
        """The EMF metrics of every recorded invocation (of one function), summed by name."""
        return metric_totals(self.invocations, function_id)
