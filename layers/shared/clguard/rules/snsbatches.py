"""SNS PublishBatch requests planned from messages, pure (no I/O): the API's documented limits.

PublishBatch takes at most ``MAX_ENTRIES`` (10) entries, and the sum of the entries' sizes (each
message's body and its attributes) must not exceed ``MAX_BATCH_BYTES`` (256 KiB, 262,144 bytes), the
same as one message's limit (SNS API Reference, PublishBatch). Each entry is its own message on the
topic, with its own message attributes: the contract of one message per finding (docs/architecture.md
§5) is unchanged by batching. An entry too large to share a request goes alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

MAX_ENTRIES: Final = 10
MAX_BATCH_BYTES: Final = 262_144


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of a PublishBatch request. ``entry_id``: unique within its request (the API
    allows up to 80 characters of letters, digits, hyphens and underscores; the caller numbers them)."""

    entry_id: str
    subject: str
    message: str
    attributes: Mapping[str, Mapping[str, str]]

    def size(self) -> int:
        """The bytes the entry counts towards the batch: its body, subject and each attribute's
        name, data type and value (UTF-8), counted as SNS counts a message's size, or more."""
        attributes = sum(
            len(name.encode()) + sum(len(str(v).encode()) for v in value.values())
            for name, value in self.attributes.items()
        )
        return len(self.message.encode()) + len(self.subject.encode()) + attributes


def batches(entries: Sequence[Entry]) -> Iterator[list[Entry]]:
    """``entries`` in order, as consecutive requests of at most ``MAX_ENTRIES`` entries and at most
    ``MAX_BATCH_BYTES`` bytes in all (an entry over the limit alone: SNS then fails that one entry)."""
    batch: list[Entry] = []
    total = 0
    for entry in entries:
        size = entry.size()
        if batch and (len(batch) == MAX_ENTRIES or total + size > MAX_BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(entry)
        total += size
    if batch:
        yield batch
