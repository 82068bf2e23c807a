"""The whole system on this machine: a moto server on loopback as AWS, deployed from template.yaml.

``LocalSystem`` is a context manager. On entry it

1. enters ``localaws.doubles.aws_behaviour()`` (moto made to behave like AWS) and the
   ``EventBridgeTap`` (which rule matched which event), then starts
   ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port, in this process, so the
   patches hold for the server;
2. points every AWS client of this process at it: fake credentials, ``us-east-1``,
   ``AWS_ENDPOINT_URL``; the user's AWS profile, config files and service-specific endpoint
   variables are hidden, so nothing can reach a real account; ``clguard``'s client cache is reset;
3. deploys what the template declares that the handlers use, read from ``template.yaml`` (never
   re-typed here): every ``AWS::SQS::Queue`` with its properties (redrive to its DLQ included),
   ``AWS::SNS::Topic``, ``AWS::DynamoDB::Table``, ``AWS::S3::Bucket`` (if its condition holds);
   every ``AWS::Events::Rule`` with its resolved ``EventPattern`` on moto's default bus and its
   targets (a rule target that is a function becomes an SQS queue standing in for that function's
   asynchronous invocation; schedule rules stay off the bus); plus one SQS queue subscribed to
   each topic, to read alerts back as a subscriber would;
4. resolves each function's environment from ``Globals.Function.Environment`` and its own
   ``Environment``, with the parameter values and the local resources' physical names.

``drain()`` is the Lambda service: it receives from each function's SQS event source and invokes the
handler with Lambda-shaped batches (partial batch failures stay on the queue, so the template's
redrive applies), and receives from each stand-in queue and invokes the handler with the single
EventBridge event, retried and then sent to the ``OnFailure`` destination as the function's
``EventInvokeConfig`` says. Handlers are imported by file path (both modules are named ``app``),
with the layer folder on ``sys.path``. Each invocation is recorded, with the function's log
output (its "CloudWatch Logs", EMF metrics included) and the alerts it published.

On exit (also on Ctrl-C or an exception) the server is stopped and the environment restored.

moto keeps its state in this process, so entering a LocalSystem (and ``reset()``) starts from an
empty account; run one LocalSystem at a time per process.

Local differences from AWS, on purpose: queue visibility timeouts are skipped (a failed message
is visible again at once; the receive count and the redrive still apply); Lambda's retry delays
are skipped; batching windows are not waited out: a source with a window gets everything
available (up to BatchSize and the 6 MB payload), and sources with longer windows are polled
only once those with shorter ones are idle (so the digest of a burst sees the whole burst); the
template's SQS subscriptions of its topics are deployed (the digest queue), e-mail and HTTPS
ones are not; the topic's KMS key, IAM
roles, log groups, alarms and the chat channel are not deployed (moto does not enforce IAM, and
alerts are read from the topic instead of delivered).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import importlib.util
import io
import json
import logging
import os
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer
from moto.sns.models import sns_backends

from clguard.adapters import clients
from clguard.keydirectory import clear_cache
from clguard.observability import logger as function_logger
from localaws.doubles import AwsBehaviour, SqsSenderIds, aws_behaviour
from localaws.eventbridge import EventBridgeTap
from localaws.template import (
    REPO_ROOT,
    TEMPLATE_PATH,
    TEST_PARAMETERS,
    Deployed,
    check_parameters,
    condition_holds,
    load_template,
    parameter_values,
    resolve,
    resources_of_type,
)

MEMBER_TEMPLATE_PATH: Final = REPO_ROOT / "member.yaml"

__all__ = [
    "ACCOUNT_ID",
    "LAMBDA_SQS_PAYLOAD_MAX",
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

ACCOUNT_ID: Final = "123456789012"  # moto's default account
REGION: Final = "us-east-1"
STACK_NAME: Final = "custom-labels-guard"
PARTITION: Final = "aws"

# Fake credentials for moto (shared with the tests and the benchmark).
FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}
_FAKE_CREDENTIALS: Final = FAKE_CREDENTIALS
# Anything that could send a client elsewhere than the local server.
_HIDDEN_VARIABLES: Final = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CA_BUNDLE", "AWS_USE_FIPS_ENDPOINT")
_HIDDEN_PREFIXES: Final = ("AWS_ENDPOINT_URL_",)
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
_SQS_RECORD_ATTRIBUTES: Final = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)
_LAMBDA_DEFAULT_ASYNC_RETRIES: Final = 2
_SQS_RECEIVE_MAX: Final = 10
# Lambda's invocation payload limit, which also bounds what an SQS event source gathers.
LAMBDA_SQS_PAYLOAD_MAX: Final = 6 * 1024 * 1024


def esm_batches(
    records: Sequence[Mapping[str, Any]], *, batch_size: int, max_bytes: int = LAMBDA_SQS_PAYLOAD_MAX
) -> list[list[Mapping[str, Any]]]:
    """Split SQS records into the batches an event source mapping delivers: at most
    ``batch_size`` records and ``max_bytes`` of event payload (``{"Records": [...]}``) each."""
    batches: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    size = len(b'{"Records": []}')
    for record in records:
        cost = len(json.dumps(record).encode()) + 2
        if current and (len(current) >= batch_size or size + cost > max_bytes):
            batches.append(current)
            current, size = [], len(b'{"Records": []}')
        current.append(record)
        size += cost
    if current:
        batches.append(current)
    return batches


class DrainTimeout(TimeoutError):
    """The queues were not empty when ``drain()``'s time was up."""


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


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


@dataclass
class LocalLambdaContext:
    """The Lambda context object: the attributes the handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline: float  # time.monotonic() at which the function times out
    function_version: str = "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


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


@dataclass(frozen=True)
class SubscriberMessage:
    """What an SQS subscriber of the alerts topic received (the SNS envelope)."""

    subject: str | None
    message: Any  # the ``default`` document, parsed when JSON
    attributes: dict[str, str]


@dataclass(frozen=True)
class Routed:
    """An event put on the bus, and the template's rules (logical ids) that matched it."""

    event_id: str
    source: str
    detail_type: str
    rules: list[str]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _environment(set_: Mapping[str, str], unset: Sequence[str] = ()) -> Iterator[None]:
    """Set and unset variables of ``os.environ``; restore the previous values on exit."""
    touched = {*set_, *unset}
    previous = {name: os.environ.get(name) for name in touched}
    try:
        for name in unset:
            os.environ.pop(name, None)
        os.environ.update(set_)
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    target = logging.getLogger(name)
    previous = target.level
    target.setLevel(level)
    try:
        yield
    finally:
        target.setLevel(previous)


@contextlib.contextmanager
def _function_output() -> Iterator[io.StringIO]:
    """Capture what a function writes: Powertools log lines, EMF metrics (stdout) and warnings."""
    buffer = io.StringIO()
    handler = function_logger.registered_handler
    stream_handler = handler if isinstance(handler, logging.StreamHandler) else None
    previous = stream_handler.setStream(buffer) if stream_handler is not None else None
    try:
        with contextlib.redirect_stdout(buffer), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield buffer
        for warning in caught:
            buffer.write(f"WARNING {warning.category.__name__}: {warning.message}\n")
    finally:
        if stream_handler is not None and previous is not None:
            stream_handler.setStream(previous)


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _event_time(value: Any) -> datetime | None:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


def _role_id(role_name: str) -> str:
    """A stable IAM-style unique role id ("AROA" + 17 characters) for a local role."""
    digest = base64.b32encode(hashlib.sha256(role_name.encode()).digest()).decode()
    return "AROA" + digest[:17]


def _lambda_sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping delivers it to the function."""
    attributes = message.get("Attributes", {})
    message_attributes: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        entry: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        message_attributes[name] = entry
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {name: attributes[name] for name in _SQS_RECORD_ATTRIBUTES if name in attributes},
        "messageAttributes": message_attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


# --------------------------------------------------------------------------------------------
# The local system
# --------------------------------------------------------------------------------------------


class LocalSystem:
    """Custom Labels Guard on a moto server on loopback (see the module documentation).

    ``parameters`` are template parameter values (``{"TrainingBuckets": "a,b", ...}``; lists are
    accepted for CommaDelimitedList); not given: the sample events' training bucket
    (``custom-labels-training``), then the template's defaults. Values are checked against the
    template's ``AllowedValues`` / ``AllowedPattern`` as CloudFormation would. ``account_id`` and
    ``region`` are those of the local account (moto's default account and us-east-1 unless a
    replayed record comes from elsewhere).
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
        # Member accounts (account id -> its training buckets): each gets member.yaml deployed,
        # and the central stack serves them (MemberAccountIds).
        self.members: dict[str, list[str]] = {a: list(b) for a, b in (members or {}).items()}
        if self.members and account_id != ACCOUNT_ID:
            raise ValueError("member accounts run beside moto's default account only")
        overrides = {name: list(v) if not isinstance(v, str) else v for name, v in (parameters or {}).items()}
        if self.members:
            overrides.setdefault("MemberAccountIds", ",".join(self.members))
        self.parameters: dict[str, Any] = parameter_values(self.template, {**TEST_PARAMETERS, **overrides})
        problems = check_parameters(self.template, self.parameters)
        if problems:
            raise ValueError("invalid template parameters: " + "; ".join(problems))
        self.pseudo: dict[str, Any] = {
            "AWS::Partition": PARTITION,
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{region}:{account_id}:stack/{STACK_NAME}/local",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        self.endpoint_url = ""
        self.deployed: dict[str, Deployed] = {}
        self.functions: dict[str, LocalFunction] = {}
        self.event_sources: list[SqsEventSource] = []
        self.rules: dict[str, str] = {}  # rule logical id -> physical name
        self.rule_targets: dict[str, list[str]] = {}  # rule logical id -> target descriptions
        self.standins: dict[str, str] = {}  # function logical id -> stand-in queue URL
        self.alert_queues: dict[str, str] = {}  # topic logical id -> subscribed queue URL
        self.subscriptions: list[str] = []  # AWS::SNS::Subscription logical ids deployed (sqs)
        self.dead_letter_queues: list[str] = []  # queue logical ids that receive failures
        self.invocations: list[Invocation] = []
        self.tap = EventBridgeTap()
        self.behaviour: AwsBehaviour | None = None
        self._server: ThreadedMotoServer | None = None
        self._stack: contextlib.ExitStack | None = None
        self._clients: dict[str, Any] = {}
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:  # also Ctrl-C while starting: everything started is stopped
            self._server, self.endpoint_url = None, ""
            raise
        return self

    def _start(self) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_logger_level("werkzeug", logging.ERROR))
            self.behaviour = stack.enter_context(aws_behaviour())
            stack.enter_context(self.tap)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()  # port 0: the OS picks a free port, bound at once (no race)
            stack.callback(server.stop)
            self._server = server
            host, port = server.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"
            hidden = [*_HIDDEN_VARIABLES, *(n for n in os.environ if n.startswith(_HIDDEN_PREFIXES))]
            # moto's account for every request (the server runs in this process) — except with
            # member accounts, where moto takes it from the credentials, as AWS does.
            pinned = {} if self.members else {"MOTO_ACCOUNT_ID": self.account_id}
            if self.members:
                hidden.append("MOTO_ACCOUNT_ID")
            stack.enter_context(
                _environment(
                    {
                        **_FAKE_CREDENTIALS,
                        "AWS_DEFAULT_REGION": self.region,
                        "AWS_REGION": self.region,
                        **pinned,
                        "AWS_ENDPOINT_URL": self.endpoint_url,
                        "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    },
                    hidden,
                )
            )
            stack.callback(self._forget_clients)
            self._reset_moto()  # moto's state lives in this process: start from an empty account
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
        self._server, self.endpoint_url = None, ""
        if stack is not None:
            stack.close()

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:{PARTITION}:{service}:{self.region}:{self.account_id}:{resource}"

    def _forget_clients(self) -> None:
        self._clients.clear()
        clients.reset()
        clear_cache()

    def reset(self) -> None:
        """A fresh account: moto's state is reset and the template deployed again; the records of
        invocations and rule matches are cleared, and the functions' caches too (a cold start)."""
        self._require_running()
        self._reset_moto()
        self.invocations.clear()
        self.tap.clear()
        self._forget_clients()
        self._deploy()

    def _reset_moto(self) -> None:
        host, _, port = self.endpoint_url.removeprefix("http://").partition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("POST", "/moto-api/reset")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"moto reset failed: HTTP {response.status}")
        finally:
            connection.close()

    def _require_running(self) -> None:
        if self._server is None:
            raise RuntimeError("the LocalSystem is not running: use it as a context manager")

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on the local server (for setting up a scenario)."""
        self._require_running()
        found = self._clients.get(service)
        if found is None:
            session = boto3.session.Session(
                aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=_FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
                region_name=self.region,
            )
            found = session.client(  # type: ignore[call-overload]
                service,
                endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 2}),
            )
            self._clients[service] = found
        return found

    # --- deployment -------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``value`` of the template with its intrinsic functions resolved for this deployment."""
        return resolve(self.template, value, self.parameters, deployed=self.deployed, pseudo=self.pseudo)

    def _deploy(self) -> None:
        self.deployed = {}
        sqs, sns, ddb, events = (self.client(s) for s in ("sqs", "sns", "dynamodb", "events"))
        queues = resources_of_type(self.template, "AWS::SQS::Queue")
        for logical_id in queues:
            name = f"{STACK_NAME}-{logical_id}"
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = self._arn("sqs", name)
            self.deployed[logical_id] = Deployed(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
        for logical_id in resources_of_type(self.template, "AWS::SNS::Topic"):
            arn = sns.create_topic(Name=f"{STACK_NAME}-{logical_id}")["TopicArn"]
            self.deployed[logical_id] = Deployed(arn, {"TopicArn": arn, "TopicName": arn.rsplit(":", 1)[1]})
        for logical_id, resource in resources_of_type(self.template, "AWS::DynamoDB::Table").items():
            self._deploy_table(ddb, logical_id, resource)
        # Buckets the stack creates (the audit's reports bucket, when AuditReportsLocation is empty).
        for logical_id, resource in resources_of_type(self.template, "AWS::S3::Bucket").items():
            if "Condition" in resource and not condition_holds(self.template, resource["Condition"], self.parameters):
                continue
            name = f"{STACK_NAME}-{logical_id}".lower()
            self.client("s3").create_bucket(Bucket=name)
            self.deployed[logical_id] = Deployed(name, {"Arn": f"arn:aws:s3:::{name}"})
        for logical_id in resources_of_type(self.template, "AWS::Serverless::Function"):
            name = f"{STACK_NAME}-{logical_id}"
            arn = self._arn("lambda", f"function:{name}")
            self.deployed[logical_id] = Deployed(name, {"Arn": arn})
            # The execution role SAM generates ("<Function>Role"): its ARN and unique RoleId.
            role = f"{STACK_NAME}-{logical_id}Role"
            self.deployed[f"{logical_id}Role"] = Deployed(
                role, {"Arn": f"arn:{PARTITION}:iam::{self.account_id}:role/{role}", "RoleId": _role_id(role)}
            )
        for logical_id in resources_of_type(self.template, "AWS::Events::Rule"):
            name = f"{STACK_NAME}-{logical_id}"
            self.deployed[logical_id] = Deployed(name, {"Arn": self._arn("events", f"rule/{name}")})
        # Queue properties may name other queues (RedrivePolicy): set them once all exist.
        for logical_id, resource in queues.items():
            properties = self.resolve(resource.get("Properties", {}))
            attributes = {name: _as_str(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties}
            if "RedrivePolicy" in properties:
                attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
            if attributes:
                sqs.set_queue_attributes(QueueUrl=self.deployed[logical_id].ref, Attributes=attributes)
        self._deploy_functions()
        self._subscribe_alert_queues(sqs, sns)
        self._deploy_subscriptions(sns)
        self._deploy_rules(sqs, events)
        self._deploy_bus_policies(events)
        self.dead_letter_queues = self._find_dead_letter_queues()
        for account, buckets in self.members.items():
            self._deploy_member(account, buckets)

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

    # --- member accounts --------------------------------------------------------------------------

    def member_client(self, account: str, service: str) -> Any:
        """A boto3 client acting in a member account (for setting up its side of a scenario)."""
        self._require_running()
        name = f"{account}:{service}"
        found = self._clients.get(name)
        if found is None:
            credentials = self.client("sts").assume_role(
                RoleArn=f"arn:{PARTITION}:iam::{account}:role/local-setup", RoleSessionName="localaws-setup"
            )["Credentials"]
            found = boto3.session.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                region_name=self.region,
            ).client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]
            self._clients[name] = found
        return found

    def _deploy_member(self, account: str, buckets: Sequence[str]) -> None:
        """What member.yaml deploys in a member account: its role (trusting the central
        functions' roles) and the rules forwarding its events to this account's bus."""
        template = load_template(MEMBER_TEMPLATE_PATH)
        parameters = {
            "CentralAccountId": self.account_id,
            "GuardRoleArns": [self._arn("iam", f"role/{STACK_NAME}-{f}Role") for f in self.functions],
            "TrainingBuckets": list(buckets),
            "MemberRoleName": str(self.parameters.get("MemberRoleName", "CustomLabelsGuardMember")),
        }
        pseudo = {**self.pseudo, "AWS::AccountId": account}

        def value(node: Any) -> Any:
            return resolve(template, node, parameters, pseudo=pseudo)

        iam, events = self.member_client(account, "iam"), self.member_client(account, "events")
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
        for logical_id, resource in resources_of_type(template, "AWS::Events::Rule").items():
            properties = value(resource["Properties"])
            name = f"{STACK_NAME}-member-{logical_id}"
            events.put_rule(Name=name, EventPattern=json.dumps(properties["EventPattern"]), State=properties["State"])
            events.put_targets(
                Rule=name, Targets=[{"Id": t["Id"], "Arn": t["Arn"]} for t in properties.get("Targets", [])]
            )

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
                queue=self._queue_by_arn(str(source[arn_field])),
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
            sns.subscribe(TopicArn=self.deployed[logical_id].ref, Protocol="sqs", Endpoint=self._arn("sqs", name))
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
        return self._arn("sqs", name)

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

    def _describe_arn(self, arn: str) -> str:
        for logical_id, deployed in self.deployed.items():
            if deployed.attributes.get("Arn") == arn or deployed.ref == arn:
                return logical_id
        return arn

    def _queue_by_arn(self, arn: str) -> str:
        for logical_id, deployed in self.deployed.items():
            if deployed.attributes.get("Arn") == arn and "QueueUrl" in deployed.attributes:
                return logical_id
        raise KeyError(f"no queue of the template has the ARN {arn}")

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
        return list(dict.fromkeys(self._queue_by_arn(arn) for arn in arns))

    # --- names ------------------------------------------------------------------------------------

    def queue_url(self, logical_id: str) -> str:
        return self.deployed[logical_id].ref

    def topic_arns(self) -> list[str]:
        """The topics the functions publish findings to (their ALERT_TOPIC_ARN): the machines' topic."""
        return self._topics_named_by("ALERT_TOPIC_ARN")

    def human_topic_arns(self) -> list[str]:
        """The topics for people (the digest function's HUMAN_TOPIC_ARN)."""
        return self._topics_named_by("HUMAN_TOPIC_ARN")

    def _topics_named_by(self, variable: str) -> list[str]:
        named = {f.environment.get(variable) for f in self.functions.values()}
        return [
            self.deployed[t].ref
            for t in resources_of_type(self.template, "AWS::SNS::Topic")
            if self.deployed[t].ref in named
        ]

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
        by_name = {name: logical_id for logical_id, name in self.rules.items()}
        matched = [by_name.get(name, name) for name in self.tap.rules_for(result["EventId"])]
        return Routed(result["EventId"], entry["Source"], entry["DetailType"], matched)

    def rules_matched(self, event_id: str) -> list[str]:
        """The template rules (logical ids) that matched the event with this id."""
        by_name = {name: logical_id for logical_id, name in self.rules.items()}
        return [by_name.get(name, name) for name in self.tap.rules_for(event_id)]

    # --- the Lambda service -----------------------------------------------------------------------

    def _handler(self, function: LocalFunction) -> Callable[[Any, Any], Any]:
        found = self._handlers.get(function.logical_id)
        if found is None:
            module_name, _, attribute = function.handler.rpartition(".")
            path = function.code_uri / (module_name.replace(".", "/") + ".py")
            unique = f"_localaws_{function.logical_id}_{module_name.replace('.', '_')}"
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path} for {function.logical_id}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            found = getattr(module, attribute)
            if not callable(found):
                raise TypeError(f"{function.handler} of {function.logical_id} is not callable")
            self._handlers[function.logical_id] = found
        return found

    def _published_count(self) -> int:
        backend = sns_backends[self.account_id][self.region]
        return sum(len(backend.topics[arn].sent_notifications) for arn in self.topic_arns() if arn in backend.topics)

    def invoke(
        self, function_id: str, event: dict[str, Any], *, trigger: str = "direct", events: list[Any] | None = None
    ) -> Invocation:
        """Invoke a function's handler once, as Lambda does, and record the invocation."""
        function = self.functions[function_id]
        handler = self._handler(function)
        context = LocalLambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + function.timeout_s,
        )
        invocation = Invocation(function_id, trigger, events if events is not None else [event], event)
        alerts_before = self._published_count()
        started = time.monotonic()
        with _environment(function.environment), self._sending_as(function), _function_output() as output:
            try:
                invocation.result = handler(event, context)
            except Exception as error:  # any exception is a function error, as in Lambda
                invocation.error = f"{type(error).__name__}: {error}"
                logging.getLogger(__name__).debug("function error", exc_info=True)
        invocation.duration_ms = (time.monotonic() - started) * 1000
        invocation.output = output.getvalue()
        invocation.alert_ids = [a.message_id for a in self.alerts()[alerts_before:]]
        self.invocations.append(invocation)
        return invocation

    def _sending_as(self, function: LocalFunction) -> contextlib.AbstractContextManager[None]:
        """While a function runs, the messages it sends carry the SenderId SQS would give them:
        its role's RoleId and the session Lambda names after the function."""
        assert self.behaviour is not None
        role_id = self.deployed[f"{function.logical_id}Role"].attributes["RoleId"]
        return self.behaviour[SqsSenderIds].sending_as(f"{role_id}:{function.name}")

    def _receive_batch(self, source: SqsEventSource) -> list[dict[str, Any]]:
        """What the event source mapping hands the function: one ReceiveMessage (at most 10),
        or, with a batching window, everything available up to BatchSize and the 6 MB payload
        (the window's wait itself is skipped)."""
        sqs = self.client("sqs")
        queue = self.deployed[source.queue]
        messages: list[dict[str, Any]] = []
        size = 0
        while len(messages) < source.batch_size:
            received = sqs.receive_message(
                QueueUrl=queue.ref,
                MaxNumberOfMessages=min(source.batch_size - len(messages), _SQS_RECEIVE_MAX),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            for message in received:
                cost = len(message["Body"].encode()) + 1024  # the record's other fields
                if messages and size + cost > LAMBDA_SQS_PAYLOAD_MAX:
                    # over the payload limit: back on the queue for the next batch
                    sqs.change_message_visibility(
                        QueueUrl=queue.ref, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                    return messages
                messages.append(message)
                size += cost
            if not received or source.batching_window_s <= 0:
                break
        return messages

    def _poll_sqs_source(self, source: SqsEventSource) -> bool:
        sqs = self.client("sqs")
        queue = self.deployed[source.queue]
        messages = self._receive_batch(source)
        if not messages:
            return False
        event = {"Records": [_lambda_sqs_record(m, queue.attributes["Arn"], self.region) for m in messages]}
        invocation = self.invoke(
            source.function,
            event,
            trigger=f"SQS {source.queue}",
            events=[_parsed(m["Body"]) for m in messages],
        )
        ids = [m["MessageId"] for m in messages]
        if invocation.error is not None:
            failed = set(ids)
        elif source.report_batch_item_failures and isinstance(invocation.result, Mapping):
            items = invocation.result.get("batchItemFailures") or []
            failed = {str(item.get("itemIdentifier")) for item in items if isinstance(item, Mapping)}
            if not failed <= set(ids):  # Lambda treats an unknown identifier as a failed batch
                failed = set(ids)
        else:
            failed = set()
        invocation.failed_records = [i for i in ids if i in failed]
        for message in messages:
            if message["MessageId"] in failed:
                # Skip the visibility timeout: the message is received again at once, and the
                # queue's redrive policy moves it to the DLQ after maxReceiveCount receives.
                sqs.change_message_visibility(
                    QueueUrl=queue.ref, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=queue.ref, ReceiptHandle=message["ReceiptHandle"])
        return True

    def _poll_async(self, function_id: str, url: str) -> bool:
        sqs = self.client("sqs")
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return False
        [message] = messages
        event = _parsed(message["Body"])
        function = self.functions[function_id]
        invocation: Invocation | None = None
        for attempt in range(1, function.max_retry_attempts + 2):
            invocation = self.invoke(function_id, event, trigger="EventBridge (async invoke)")
            invocation.attempt = attempt
            if invocation.error is None:
                break
        if invocation is not None and invocation.error is not None and function.on_failure:
            sqs.send_message(
                QueueUrl=self.deployed[self._queue_by_arn(function.on_failure)].ref,
                MessageBody=json.dumps(self._invocation_record(function, event, invocation)),
            )
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return True

    @staticmethod
    def _invocation_record(function: LocalFunction, event: Any, invocation: Invocation) -> dict[str, Any]:
        """What Lambda sends to an ``OnFailure`` destination after the last retry."""
        error_type, _, message = (invocation.error or "").partition(": ")
        return {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{function.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": invocation.attempt,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": message, "errorType": error_type},
        }

    def drain(self, timeout: float = 30.0) -> list[Invocation]:
        """Run the functions on whatever their queues hold until every queue is empty.

        Returns the invocations of this drain (also appended to ``invocations``). Raises
        DrainTimeout when work is still arriving after ``timeout`` seconds.
        """
        self._require_running()
        deadline = time.monotonic() + timeout
        first = len(self.invocations)
        # Batching windows are not waited out; instead a source with a longer window is polled
        # only once the sources with shorter (or no) windows are idle: its window closes after
        # the burst that fills it (what a digest of a burst sees in AWS).
        windows = sorted({source.batching_window_s for source in self.event_sources})
        while True:
            worked = False
            for function_id, url in self.standins.items():
                worked = self._poll_async(function_id, url) or worked
            for window in windows:
                for source in self.event_sources:
                    if source.batching_window_s == window:
                        worked = self._poll_sqs_source(source) or worked
                if worked:
                    break
            if not worked:
                return self.invocations[first:]
            if time.monotonic() > deadline:
                raise DrainTimeout(f"the queues were not empty after {timeout:.0f} s")

    # --- reading back -----------------------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        """Every publish to the alerts topic (one per finding), in order (read from moto's SNS
        backend, which keeps the whole ``MessageStructure="json"`` message: all three renderings)."""
        return self._published(self.topic_arns())

    def human_messages(self) -> list[Alert]:
        """Every publish to the human topic (digests, severe findings one by one), in order;
        ``finding`` is the message's ``default`` document."""
        return self._published(self.human_topic_arns())

    def _published(self, topic_arns: Sequence[str]) -> list[Alert]:
        backend = sns_backends[self.account_id][self.region]
        found: list[Alert] = []
        for arn in topic_arns:
            topic = backend.topics.get(arn)
            if topic is None:
                continue
            for message_id, message, subject, attributes, _group in list(topic.sent_notifications):
                structure = _parsed(message)
                if not isinstance(structure, dict) or "default" not in structure:
                    structure = {"default": message}
                default = _parsed(str(structure.get("default", "")))
                chat = _parsed(str(structure.get("https", "{}")))
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

    def subscriber_messages(self, *, people: bool = False) -> list[SubscriberMessage]:
        """Receive (and delete) what an SQS subscriber of the alerts topic (or, with ``people``,
        of the human topic) got since the last call."""
        sqs = self.client("sqs")
        received: list[SubscriberMessage] = []
        wanted = set(self.human_topic_arns() if people else self.topic_arns())
        for logical_id, url in self.alert_queues.items():
            if self.deployed[logical_id].ref not in wanted:
                continue
            while True:
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                    "Messages", []
                )
                if not messages:
                    break
                for message in messages:
                    envelope = json.loads(message["Body"])
                    received.append(
                        SubscriberMessage(
                            subject=envelope.get("Subject"),
                            message=_parsed(envelope.get("Message", "")),
                            attributes={
                                name: str(value.get("Value", ""))
                                for name, value in (envelope.get("MessageAttributes") or {}).items()
                            },
                        )
                    )
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return received

    def key_policy(self, key_id: str) -> dict[str, Any]:
        """The key's ``default`` policy document."""
        text = self.client("kms").get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
        document: dict[str, Any] = json.loads(text)
        return document

    def queue_depth(self, logical_id: str) -> int:
        """Messages in a template queue (visible, in flight and delayed)."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.client("sqs").get_queue_attributes(QueueUrl=self.queue_url(logical_id), AttributeNames=names)
        return sum(int(attributes["Attributes"].get(name, 0)) for name in names)

    def dead_letters(self) -> dict[str, int]:
        """Messages in each dead-letter queue of the template (redrive, rule DLQ, OnFailure)."""
        return {logical_id: self.queue_depth(logical_id) for logical_id in self.dead_letter_queues}

    def metric_totals(self, function_id: str | None = None) -> Counter[str]:
        """The EMF metrics of every recorded invocation (of one function), summed by name."""
        totals: Counter[str] = Counter()
        for invocation in self.invocations:
            if function_id is None or invocation.function == function_id:
                totals.update(invocation.metrics())
        return totals
