"""Amazon SQS as documented, where moto 5.2.5 differs: who sent a message.

``SqsSenderIds`` reproduces the Amazon SQS API Reference, "ReceiveMessage",
``MessageSystemAttributeName`` ``SenderId``
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html):
the id of the principal (user, or role and session) that sent the message.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from moto.sqs.models import SQSBackend
from moto.sqs.responses import SQSResponse

from localaws.doubles.base import Double, Wrapper, wrapped

if TYPE_CHECKING:
    pass


_SQS_API_SEND = threading.local()  # set while an SQS SendMessage(Batch) API request is handled


class SqsSenderIds(Double):
    """SQS ``SenderId``: the id of the principal that sent the message.

    AWS (SQS ReceiveMessage, ``MessageSystemAttributeName``): "SenderId: for a user, returns the
    user ID, for example ABCDEFGHI1JKLMNOPQ23R; for an IAM role, returns the IAM role ID, for
    example ABCDE1F2GH3I4JK5LMNOP:i-a123b456" (the role's unique id and the session name; a
    Lambda function's session is named after the function). Messages an AWS service delivers
    (an EventBridge target) carry that service's id. moto gives every message one constant.

    ``sending_as(sender_id)``: while active, messages sent through the SQS API (SendMessage,
    SendMessageBatch) get this SenderId; the local runtime sets it to the invoked function's
    role session. Messages moto's EventBridge delivers to a queue target keep moto's constant
    (an AWS-owned id, as in AWS), and a message moved to a DLQ keeps its SenderId.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sender_lock = threading.Lock()
        self._sender: str | None = None

    @contextlib.contextmanager
    def sending_as(self, sender_id: str) -> Iterator[None]:
        with self._sender_lock:
            previous, self._sender = self._sender, sender_id
        try:
            yield
        finally:
            with self._sender_lock:
                self._sender = previous

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        def api(original: Wrapper) -> Wrapper:
            def handler(resp: SQSResponse) -> Any:
                _SQS_API_SEND.active = True
                try:
                    return original(resp)
                finally:
                    _SQS_API_SEND.active = False

            return handler

        def backend(original: Wrapper) -> Wrapper:
            def send_message(backend_self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
                message = original(backend_self, *args, **kwargs)
                with self._sender_lock:
                    sender = self._sender
                if sender is not None and getattr(_SQS_API_SEND, "active", False):
                    message.sender_id = sender
                return message

            return send_message

        yield wrapped(SQSResponse, "send_message", api)
        yield wrapped(SQSResponse, "send_message_batch", api)
        yield wrapped(SQSBackend, "send_message", backend)
