"""The verify-queue message that carries image checks of a large manifest (our own shape).

    {
      "kind": "clguard.verify-objects",
      "version": 1,
      "source_event_id": "<the CloudTrail event's EventBridge id>",
      "origin": "CreateProjectVersion of arn:aws:rekognition:…/version/v1",
      "principals": ["arn:aws:iam::123456789012:role/ml/Trainer"],   # to ensure on each image's key
      "account": "123456789012",   # optional: the account whose objects and keys these are (default: own)
      "objects": [{"bucket": "…", "key": "…", "version_id": null}, …]
    }

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
MAX_ITEM_BYTES: Final = 6 * MAX_KEY_BYTES + 256


def _encode(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def messages(
    refs: Iterable[ImageRef],
    *,
    source_event_id: str,
    origin: str,
    principals: Sequence[str],
    account: str | None = None,
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
    if account is not None:
        header["account"] = account
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
