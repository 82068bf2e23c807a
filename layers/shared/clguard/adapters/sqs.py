"""SQS: put work (and deferred findings) on the verify queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from clguard.adapters.clients import aws, client

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {"SendMessage": ("sqs:SendMessage",)}


@aws
def send(queue_url: str, body: str) -> None:
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)


def send_all(queue_url: str, bodies: Sequence[str]) -> int:
    """Send each body as its own message (bodies are sized by the caller). Returns the count."""
    for body in bodies:
        send(queue_url, body)
    return len(bodies)
