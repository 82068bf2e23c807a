"""Amazon SNS as documented, where moto 5.2.5 differs: PublishBatch's limits and per-entry failures.

``SnsPublishBatch`` reproduces the Amazon SNS API Reference, "PublishBatch"
(https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html): "The result of publishing each
message is reported individually in the response" (each entry is in ``Successful`` or in
``Failed``, a ``BatchResultErrorEntry`` with ``Code``, ``Message`` and ``SenderFault``), and "the
maximum total payload size (the sum of the individual lengths of all of the batched messages)" is
256 KiB (262,144 bytes), including each message's body and attributes; a larger request is refused
whole with ``BatchRequestTooLong``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from moto.sns.exceptions import SNSException
from moto.sns.models import SNSBackend

from localaws.doubles.base import Double, Wrapper, wrapped

MAX_BATCH_BYTES = 262_144


class BatchRequestTooLong(SNSException):
    code = "BatchRequestTooLong"
    message = "The length of all the batch messages put together is more than the limit."


def _payload(entry: Mapping[str, Any]) -> int:
    """An entry's share of the request: its body and its attributes (name, type, value), UTF-8."""
    attributes = entry.get("MessageAttributes") or {}
    size = len(str(entry.get("Message", "")).encode())
    for name, value in attributes.items():
        size += len(str(name).encode())
        if isinstance(value, Mapping):
            size += sum(len(str(v).encode()) for v in value.values())
    return size


class SnsPublishBatch(Double):
    """SNS ``PublishBatch``: the 256 KiB limit on the request, and every entry answered.

    AWS: a request whose messages (bodies and attributes) together pass 262,144 bytes fails whole
    (``BatchRequestTooLong``); each entry is reported either in ``Successful`` or in ``Failed``, and
    an entry can fail alone for a reason on the service's side (``SenderFault`` false: worth
    retrying) while the others are published. moto checks neither limit, fails an entry only for an
    invalid message, and leaves an entry it refuses for another parameter (a subject of 100 characters
    or more) out of both lists; here that entry is ``Failed`` as ``InvalidParameter``, a sender fault.

    ``fail_entries(marker, times)``: the next ``times`` entries whose message contains ``marker``
    fail alone, as SNS reports an internal failure of one entry (``InternalFailure``, not published).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._failing: dict[str, int] = {}

    def fail_entries(self, marker: str, times: int = 1) -> None:
        with self._lock:
            self._failing[marker] = self._failing.get(marker, 0) + times

    def _fails(self, entry: Mapping[str, Any]) -> bool:
        message = str(entry.get("Message", ""))
        with self._lock:
            for marker, left in self._failing.items():
                if left > 0 and marker in message:
                    self._failing[marker] = left - 1
                    return True
        return False

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        def publish_batch(original: Wrapper) -> Wrapper:
            def handler(
                backend: SNSBackend, topic_arn: str, publish_batch_request_entries: list[dict[str, Any]]
            ) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
                entries = publish_batch_request_entries
                if sum(_payload(e) for e in entries) > MAX_BATCH_BYTES:
                    raise BatchRequestTooLong()
                failing = [e for e in entries if self._fails(e)]
                rest = [e for e in entries if all(e is not f for f in failing)]
                successful, failed = original(backend, topic_arn, rest) if rest else ([], [])
                failed = list(failed) + [
                    {
                        "Id": e["Id"],
                        "Code": "InternalFailure",
                        "Message": "injected: the entry failed",
                        "SenderFault": False,
                    }
                    for e in failing
                ]
                answered = {str(x["Id"]) for x in (*successful, *failed)}
                failed += [  # moto raised a validation error of its own (a subject of 100 characters or more)
                    {"Id": e["Id"], "Code": "InvalidParameter", "Message": "Invalid parameter", "SenderFault": True}
                    for e in rest
                    if str(e["Id"]) not in answered
                ]
                return successful, failed

            return handler

        yield wrapped(SNSBackend, "publish_batch", publish_batch)
