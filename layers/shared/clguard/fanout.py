"""The verify-queue message that carries image checks of a large manifest (our own shape).

    {
      "kind": "clguard.verify-objects",
      "version": 1,
      "source_event_id": "<the CloudTrail event's EventBridge id>",
      "origin": "CreateProjectVersion of arn:aws:rekognition:…/version/v1",
      "principals": ["arn:aws:iam::123456789012:role/ml/Trainer"],   # to ensure on each image's key
      "objects": [{"bucket": "…", "key": "…", "version_id": null}, …]
    }

Version 2 is the audit's fan-out: the same plus ``"audit_run": "<run id>"`` and the
``"bucket"`` of every object (one bucket per message), and each object is
``{"key": "…", "state": "<digest of ETag and LastModified as listed>"}``. Its objects are checked only in
TRAINING_BUCKETS (as uploads are), and the verify function tallies each message for the run.

The verify function checks every object as it checks an uploaded one, wherever it is (not only
in TRAINING_BUCKETS), and ensures ``principals`` (besides TRAINING_PRINCIPALS) on each CMK.
Messages stay under ``MAX_MESSAGE_BYTES`` (SQS allows 256 KiB).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from clguard.events import MAX_KEY_BYTES, VERIFY_OBJECTS_KIND
from clguard.manifest import ImageRef

MAX_MESSAGE_BYTES: Final = 240 * 1024
# The largest one object can encode to: a 1024-byte key of control characters escapes to
# \uXXXX (6 bytes each), plus the bucket name and the field names.
MAX_ITEM_BYTES: Final = 6 * MAX_KEY_BYTES + 384  # incl. an audit state (ETag@LastModified)


def _encode(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def messages(
    refs: Iterable[ImageRef],
    *,
    source_event_id: str,
    origin: str,
    principals: Sequence[str],
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Iterator[str]:
    """Pack refs into as few messages as fit (streaming: one message in memory at a time)."""
    header: dict[str, object] = {
        "kind": VERIFY_OBJECTS_KIND,
        "version": 1,
        "source_event_id": source_event_id,
        "origin": origin,
        "principals": list(principals),
    }
    head = _encode(header)[:-1] + ',"objects":['

    room = max_bytes - len(head.encode()) - 2
    if room < MAX_ITEM_BYTES:
        raise ValueError("message header leaves no room for one object")
    items: list[str] = []
    size = 0
    for ref in refs:
        item = _encode({"bucket": ref.bucket, "key": ref.key, "version_id": None})
        cost = len(item.encode()) + 1
        if items and size + cost > room:
            yield head + ",".join(items) + "]}"
            items, size = [], 0
        items.append(item)
        size += cost
    if items:
        yield head + ",".join(items) + "]}"


class Packer:
    """The audit's packer: objects added one at a time (pages of a listing), a message returned
    whenever one is full, and ``flush()`` at a stop point so the cursor and the messages agree."""

    def __init__(
        self,
        *,
        source_event_id: str,
        origin: str,
        principals: Sequence[str],
        audit_run: str,
        bucket: str,
        max_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        header: dict[str, object] = {
            "kind": VERIFY_OBJECTS_KIND,
            "version": 2,
            "source_event_id": source_event_id,
            "origin": origin,
            "principals": list(principals),
            "audit_run": audit_run,
            "bucket": bucket,
        }
        self.bucket = bucket
        self._head = _encode(header)[:-1] + ',"objects":['
        self._room = max_bytes - len(self._head.encode()) - 2
        if self._room < MAX_ITEM_BYTES:
            raise ValueError("message header leaves no room for one object")
        self._items: list[str] = []
        self._size = 0

    def add(self, ref: ImageRef, state: str) -> str | None:
        """Add one object (of this packer's bucket); a full message when it did not fit in the
        current one."""
        if ref.bucket != self.bucket:
            raise ValueError(f"a packer of {self.bucket} cannot take an object of {ref.bucket}")
        item = _encode({"key": ref.key, "state": state})
        cost = len(item.encode()) + 1
        full = None
        if self._items and self._size + cost > self._room:
            full = self.flush()
        self._items.append(item)
        self._size += cost
        return full

    def flush(self) -> str | None:
        if not self._items:
            return None
        body = self._head + ",".join(self._items) + "]}"
        self._items, self._size = [], 0
        return body
