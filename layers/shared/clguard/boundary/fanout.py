"""The ``clguard.verify-objects`` message (our own shape): image checks of a large manifest (v1)
and the audit's fan-out (v2), encoded by ``messages`` and ``Packer``, decoded by ``decode``.

    {
      "kind": "clguard.verify-objects",
      "version": 1,
      "source_event_id": "<the CloudTrail event's EventBridge id>",
      "origin": "CreateProjectVersion of arn:aws:rekognition:…/version/v1",
      "principals": ["arn:aws:iam::123456789012:role/ml/Trainer"],   # to ensure on each image's key
      "account": "123456789012",   # optional: the account whose objects and keys these are (default: own)
      "objects": [{"bucket": "…", "key": "…", "version_id": null}, …]
    }

Version 2 is the audit's fan-out: the same plus ``"audit_run": "<run id>"`` and the
``"bucket"`` of every object (one bucket per message), and each object is
``{"key": "…", "state": "<digest of ETag and LastModified as listed>"}``. Its objects are checked only in
TRAINING_BUCKETS (as uploads are), and the verify function tallies each message for the run. A
member's bucket carries the member's ``account``: its objects are checked through that member's
role (never with the central credentials), and their findings name the member.

The verify function checks every object as it checks an uploaded one, wherever it is (not only
in TRAINING_BUCKETS), and ensures ``principals`` (besides TRAINING_PRINCIPALS) on each CMK.
Messages stay under ``MAX_MESSAGE_BYTES`` (SQS allows 256 KiB).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from clguard.boundary.parsing import (
    MAX_KEY_BYTES,
    object_key,
    optional_account_id,
    optional_field,
    optional_text,
    required_field,
    required_text,
)
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork
from clguard.errors import InvalidEvent

VERIFY_OBJECTS_KIND: Final = "clguard.verify-objects"
VERSIONS: Final = (1, 2)  # 1: image checks of a manifest (``messages``); 2: the audit's (``Packer``)

MAX_MESSAGE_BYTES: Final = 240 * 1024
# The largest one object can encode to: a 1024-byte key of control characters escapes to
# \uXXXX (6 bytes each), plus the bucket name and the field names.
MAX_ITEM_BYTES: Final = 6 * MAX_KEY_BYTES + 384  # incl. an audit state (ETag@LastModified)


def _encode(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def messages(
    refs: Iterable[S3ObjectRef],
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


class Packer:
    """The audit's packer: objects added one at a time (pages of a listing), a message returned
    whenever one is full, and ``flush()`` at a stop point so the cursor and the messages agree.

    Memory is constant: one preallocated buffer of ``max_bytes`` holds the message being built
    (whatever the bucket's size), and a finished message is decoded from it without a copy of
    the buffer. The lister flushes between list pages when the next page may not fit, so a
    page and a finished message are rarely in memory together.
    """

    def __init__(
        self,
        *,
        source_event_id: str,
        origin: str,
        principals: Sequence[str],
        audit_run: str,
        bucket: str,
        account: str | None = None,
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
        if account is not None:
            header["account"] = account  # a member's bucket: checked through that member's role
        self.bucket = bucket
        self.account = account
        head = (_encode(header)[:-1] + ',"objects":[').encode()
        if max_bytes - len(head) - 2 < MAX_ITEM_BYTES:
            raise ValueError("message header leaves no room for one object")
        self._buffer = bytearray(max_bytes)
        self._buffer[: len(head)] = head
        self._head = len(head)
        self._end = len(head)
        self._max = max_bytes
        self.count = 0

    @property
    def room(self) -> int:
        """Bytes still free for objects in the current message."""
        return self._max - self._end - 2

    def add(self, ref: S3ObjectRef, state: str) -> str | None:
        """Add one object (of this packer's bucket); a full message when it did not fit in the
        current one."""
        if ref.bucket != self.bucket:
            raise ValueError(f"a packer of {self.bucket} cannot take an object of {ref.bucket}")
        item = _encode({"key": ref.key, "state": state}).encode()
        full = None
        if self.count and len(item) + 1 > self.room:
            full = self.flush()
        if self.count:
            self._buffer[self._end] = 0x2C  # ","
            self._end += 1
        self._buffer[self._end : self._end + len(item)] = item
        self._end += len(item)
        self.count += 1
        return full

    def flush(self) -> str | None:
        if not self.count:
            return None
        self._buffer[self._end : self._end + 2] = b"]}"
        with memoryview(self._buffer) as view:
            body = str(view[: self._end + 2], "utf-8")
        self._end, self.count = self._head, 0
        return body


def decode(message: Mapping[str, Any]) -> list[ObjectWork]:
    """A ``clguard.verify-objects`` message (v1 or v2, already parsed as JSON) -> its work.
    Raises InvalidEvent naming the field that is wrong."""
    where = VERIFY_OBJECTS_KIND
    version = message.get("version")
    if version not in VERSIONS or isinstance(version, bool):
        raise InvalidEvent(f"{where} version {version!r} is not supported")
    audit_run = required_text(message, "audit_run", where) if version == 2 else ""
    audit_bucket = required_text(message, "bucket", where) if version == 2 else ""
    event_id = required_text(message, "source_event_id", where)
    origin = optional_text(message, "origin", where) or "a training request"
    principals = optional_field(message, "principals", list, where) or []
    if not all(isinstance(p, str) for p in principals):
        raise InvalidEvent(f"{where}.principals must be a list of strings")
    account = optional_account_id(message, where)
    objects = required_field(message, "objects", list, where)
    # v2 (the audit) lists the training buckets only: checked as an upload is (training buckets
    # only, in the bucket's account), its findings scoped by the object's listed state. v1 (a
    # training request's images) is checked wherever it is, in the account the request came from.
    audit = bool(audit_run)
    asked = tuple(principals)
    work = []
    for index, item in enumerate(objects):
        at = f"{where}.objects[{index}]"
        if not isinstance(item, dict):
            raise InvalidEvent(f"{at} must be an object")
        work.append(
            ObjectWork(
                S3ObjectRef(
                    audit_bucket or required_text(item, "bucket", at),
                    object_key(required_text(item, "key", at), f"{at}.key"),
                    optional_text(item, "version_id", at),
                ),
                event_id,
                "audit" if audit else "manifest image",
                principals=asked,
                anywhere=not audit,
                origin=origin,
                account=account,
                audit_run=audit_run,
                state=(optional_text(item, "state", at) or "") if audit else "",
            )
        )
    return work
