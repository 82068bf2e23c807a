"""The Lambda service on this machine: runs the real handlers of the deployed functions.

- **Invoking** (``LambdaService.invoke``): the handler is imported by file path (every module is
  named ``app``), with the layer folder on ``sys.path`` (see ``localaws/__init__.py``); it runs
  with the function's environment, a ``LocalLambdaContext``, its output captured (Powertools log
  lines, EMF metrics, warnings: its "CloudWatch Logs") and, while it runs, the SQS messages it
  sends carry the ``SenderId`` SQS would give them (its role's RoleId and the session Lambda names
  after the function: ``localaws.doubles.SqsSenderIds``). Any exception is a function error, as in
  Lambda. Each invocation is recorded as an ``localaws.observed.Invocation``, with the alerts it
  published.
- **SQS event sources**: each function's event source receives from its queue and invokes the
  handler with a Lambda-shaped batch (``{"Records": [...]}``, at most BatchSize records and 6 MB:
  ``esm_batches()`` is the same rule for code that splits records itself). Records reported in
  ``batchItemFailures`` (or the whole batch, on a function error) stay on the queue, so the
  template's redrive to the DLQ applies.
- **Asynchronous invocations**: an EventBridge rule's function target is a stand-in SQS queue
  (``localaws.deploy``); each event on it invokes the handler once, retried up to the function's
  ``EventInvokeConfig.MaximumRetryAttempts``, and after the last failure the invocation record
  Lambda writes is sent to the ``OnFailure`` destination.
- ``drain()`` runs all of this until every queue is empty.

Local differences from AWS, on purpose: queue visibility timeouts are skipped (a failed message
is visible again at once; the receive count and the redrive still apply); Lambda's retry delays
are skipped; batching windows are not waited out: a source with a window gets everything
available (up to BatchSize and the 6 MB payload), and sources with longer windows are polled
only once those with shorter ones are idle (so the digest of a burst sees the whole burst).
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import logging
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from clguard.observability import logger as function_logger
from localaws.deploy import ClientFor, Deployment, LocalFunction, SqsEventSource
from localaws.doubles import SqsSenderIds
from localaws.isolation import environment
from localaws.observed import Invocation, TopicLog, parsed

__all__ = [
    "LAMBDA_SQS_PAYLOAD_MAX",
    "DrainTimeout",
    "LambdaService",
    "LocalLambdaContext",
    "esm_batches",
]

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
_SQS_RECEIVE_MAX: Final = 10
# Lambda's invocation payload limit, which also bounds what an SQS event source gathers.
LAMBDA_SQS_PAYLOAD_MAX: Final = 6 * 1024 * 1024


class DrainTimeout(TimeoutError):
    """The queues were not empty when ``drain()``'s time was up."""


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


class LambdaService:
    """Runs ``deployment``'s functions: direct invocations, SQS event sources, asynchronous
    invocations with retries and on-failure records. Every invocation is kept in ``invocations``.

    ``client`` gives the boto3 clients (the service's own SQS calls), ``senders`` the SenderId
    double while the system runs, ``alerts`` the alerts topic (to record which alerts an
    invocation published).
    """

    def __init__(
        self,
        deployment: Deployment,
        *,
        client: ClientFor,
        senders: Callable[[], SqsSenderIds],
        alerts: TopicLog,
    ) -> None:
        self.deployment = deployment
        self._client = client
        self._senders = senders
        self._alerts = alerts
        self.invocations: list[Invocation] = []
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}  # kept across resets, as imports are

    # --- invoking ---------------------------------------------------------------------------------

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

    def invoke(
        self, function_id: str, event: dict[str, Any], *, trigger: str = "direct", events: list[Any] | None = None
    ) -> Invocation:
        """Invoke a function's handler once, as Lambda does, and record the invocation."""
        function = self.deployment.functions[function_id]
        handler = self._handler(function)
        context = LocalLambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + function.timeout_s,
        )
        invocation = Invocation(function_id, trigger, events if events is not None else [event], event)
        alerts_before = self._alerts.count()
        started = time.monotonic()
        with environment(function.environment), self._sending_as(function), _function_output() as output:
            try:
                invocation.result = handler(event, context)
            except Exception as error:  # any exception is a function error, as in Lambda
                invocation.error = f"{type(error).__name__}: {error}"
                logging.getLogger(__name__).debug("function error", exc_info=True)
        invocation.duration_ms = (time.monotonic() - started) * 1000
        invocation.output = output.getvalue()
        invocation.alert_ids = [a.message_id for a in self._alerts.messages()[alerts_before:]]
        self.invocations.append(invocation)
        return invocation

    def _sending_as(self, function: LocalFunction) -> contextlib.AbstractContextManager[None]:
        """While a function runs, the messages it sends carry the SenderId SQS would give them:
        its role's RoleId and the session Lambda names after the function."""
        role_id = self.deployment.deployed[f"{function.logical_id}Role"].attributes["RoleId"]
        return self._senders().sending_as(f"{role_id}:{function.name}")

    # --- SQS event sources ------------------------------------------------------------------------

    def _receive_batch(self, source: SqsEventSource) -> list[dict[str, Any]]:
        """What the event source mapping hands the function: one ReceiveMessage (at most 10),
        or, with a batching window, everything available up to BatchSize and the 6 MB payload
        (the window's wait itself is skipped)."""
        sqs = self._client("sqs")
        queue = self.deployment.deployed[source.queue]
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
        sqs = self._client("sqs")
        deployment = self.deployment
        queue = deployment.deployed[source.queue]
        messages = self._receive_batch(source)
        if not messages:
            return False
        event = {"Records": [_lambda_sqs_record(m, queue.attributes["Arn"], deployment.region) for m in messages]}
        invocation = self.invoke(
            source.function,
            event,
            trigger=f"SQS {source.queue}",
            events=[parsed(m["Body"]) for m in messages],
        )
        ids = [m["MessageId"] for m in messages]
        failed = _failed_ids(source, invocation, ids)
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

    # --- asynchronous invocations -----------------------------------------------------------------

    def _poll_async(self, function_id: str, url: str) -> bool:
        sqs = self._client("sqs")
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return False
        [message] = messages
        event = parsed(message["Body"])
        deployment = self.deployment
        function = deployment.functions[function_id]
        invocation: Invocation | None = None
        for attempt in range(1, function.max_retry_attempts + 2):
            invocation = self.invoke(function_id, event, trigger="EventBridge (async invoke)")
            invocation.attempt = attempt
            if invocation.error is None:
                break
        if invocation is not None and invocation.error is not None and function.on_failure:
            sqs.send_message(
                QueueUrl=deployment.deployed[deployment.queue_by_arn(function.on_failure)].ref,
                MessageBody=json.dumps(_invocation_record(function, event, invocation)),
            )
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return True

    # --- draining ---------------------------------------------------------------------------------

    def drain(self, timeout: float = 30.0) -> list[Invocation]:
        """Run the functions on whatever their queues hold until every queue is empty.

        Returns the invocations of this drain (also appended to ``invocations``). Raises
        DrainTimeout when work is still arriving after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        first = len(self.invocations)
        # Batching windows are not waited out; instead a source with a longer window is polled
        # only once the sources with shorter (or no) windows are idle: its window closes after
        # the burst that fills it (what a digest of a burst sees in AWS).
        deployment = self.deployment
        windows = sorted({source.batching_window_s for source in deployment.event_sources})
        while True:
            worked = False
            for function_id, url in deployment.standins.items():
                worked = self._poll_async(function_id, url) or worked
            for window in windows:
                for source in deployment.event_sources:
                    if source.batching_window_s == window:
                        worked = self._poll_sqs_source(source) or worked
                if worked:
                    break
            if not worked:
                return self.invocations[first:]
            if time.monotonic() > deadline:
                raise DrainTimeout(f"the queues were not empty after {timeout:.0f} s")


def _failed_ids(source: SqsEventSource, invocation: Invocation, ids: list[str]) -> set[str]:
    """The messages Lambda keeps on the queue: all of them when the invocation failed or named an
    identifier not in the batch (a failed batch), else those in ``batchItemFailures``."""
    if invocation.error is not None:
        return set(ids)
    if not (source.report_batch_item_failures and isinstance(invocation.result, Mapping)):
        return set()
    items = invocation.result.get("batchItemFailures") or []
    failed = {str(item.get("itemIdentifier")) for item in items if isinstance(item, Mapping)}
    return failed if failed <= set(ids) else set(ids)
