"""SNS: publish one finding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from clguard.adapters.clients import aws, client

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {"Publish": ("sns:Publish",)}


@aws
def publish(topic_arn: str, *, subject: str, message: str, attributes: Mapping[str, Mapping[str, str]]) -> str:
    response = client("sns").publish(
        TopicArn=topic_arn,
        Subject=subject,
        Message=message,
        MessageStructure="json",
        MessageAttributes=dict(attributes),
    )
    return str(response["MessageId"])
