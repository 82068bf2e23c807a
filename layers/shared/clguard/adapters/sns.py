"""SNS: publish one finding, or up to ten as one PublishBatch request (each its own message).

IAM: PublishBatch is authorized by ``sns:Publish`` ("Grants permission to both publish and publish
batch to a topic", SNS Developer Guide, API permissions reference): there is no separate action.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from clguard.adapters.clients import aws, client
from clguard.rules.snsbatches import MAX_ENTRIES, Entry

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {"Publish": ("sns:Publish",), "PublishBatch": ("sns:Publish",)}


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


@dataclass(slots=True)
class BatchResult:
    """Per entry id: the message id SNS gave it, or why it failed (``Code: Message``; a
    ``SenderFault`` entry is not worth retrying as it is)."""

    sent: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    sender_fault: set[str] = field(default_factory=set)


@aws
def publish_batch(topic_arn: str, entries: Sequence[Entry]) -> BatchResult:
    """One PublishBatch request (``snsbatches.batches`` plans them). A request error raises; an
    entry that failed is in ``failed`` (the call returns 200 with a ``Failed`` list)."""
    if not 0 < len(entries) <= MAX_ENTRIES:
        raise ValueError(f"a PublishBatch request takes 1 to {MAX_ENTRIES} entries, not {len(entries)}")
    response = client("sns").publish_batch(
        TopicArn=topic_arn,
        PublishBatchRequestEntries=[
            {
                "Id": e.entry_id,
                "Subject": e.subject,
                "Message": e.message,
                "MessageStructure": "json",
                "MessageAttributes": {name: dict(value) for name, value in e.attributes.items()},
            }
            for e in entries
        ],
    )
    result = BatchResult()
    for ok in response.get("Successful", []):
        result.sent[str(ok["Id"])] = str(ok["MessageId"])
    for bad in response.get("Failed", []):
        entry_id = str(bad["Id"])
        result.failed[entry_id] = f"{bad.get('Code', '')}: {bad.get('Message', '')}"
        if bad.get("SenderFault"):
            result.sender_fault.add(entry_id)
    return result
