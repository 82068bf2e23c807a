"""What EventBridge did on the moto server: which rule matched which event.

``EventBridgeTap`` wraps moto's ``Rule.send_to_targets`` (the one place where both ``PutEvents``
and S3's EventBridge notifications meet a rule) and records every match, so the local runtime
can say which rule of the template routed an event, or that none did.

It also closes the gaps between moto 5.2.5 and AWS that sit on this path:

- moto gives every S3 EventBridge notification the same event id
  (``17793124-05d4-b198-2fde-7ededc63b103``, from its base message), where AWS gives each event
  its own. Our findings are idempotent per source event, so with moto's constant id a second,
  different upload of the same key (or the copy echo of a remediation) would be taken for a
  redelivery. The tap gives each such event a fresh id, the same for every rule that sees it
  (moto passes one dict to all rules).
- moto writes ``"version-id": "null"`` into the notification of an object of an unversioned
  bucket, where S3 leaves ``version-id`` out (the object has no version); and moto's HeadObject
  then answers ``VersionId=null`` with 400 (S3 accepts it). The tap leaves it out, as S3 does.
- moto routes events through DISABLED rules; the tap does not.

moto's other differences in these notifications are left as they are: ``reason`` is
``ObjectCreated`` (S3: ``PutObject``, ``CopyObject``, ...) and ``time`` is a number until moto
delivers the event to SQS; the parser accepts both. Like ``localaws.doubles``, it
patches a moto class, in process, so it holds for the moto server too; undone on exit.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

from moto.events.models import Rule
from moto.events.utils import _BASE_EVENT_MESSAGE

from localaws.doubles import Double

__all__ = ["EventBridgeTap", "RuleMatch"]

_MOTO_CONSTANT_EVENT_ID: str = _BASE_EVENT_MESSAGE["id"]


@dataclass(frozen=True)
class RuleMatch:
    """One rule matched one event (on the bus ``event_bus``)."""

    rule: str  # the rule's name
    event_bus: str
    event_id: str
    source: str
    detail_type: str


def _drop_null_version(event: dict[str, Any]) -> None:
    detail = event.get("detail")
    item = detail.get("object") if isinstance(detail, dict) else None
    if isinstance(item, dict) and item.get("version-id") in ("null", None):
        item.pop("version-id", None)


class EventBridgeTap(Double):
    """Records rule matches; gives S3 notification events their own ids (see module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self._matches_lock = threading.Lock()
        self._matches: list[RuleMatch] = []

    @property
    def matches(self) -> list[RuleMatch]:
        with self._matches_lock:
            return list(self._matches)

    def rules_for(self, event_id: str) -> list[str]:
        """The names of the rules that matched the event with this id, in match order."""
        return [m.rule for m in self.matches if m.event_id == event_id]

    def clear(self) -> None:
        with self._matches_lock:
            self._matches.clear()

    def _record(self, rule: Rule, event: dict[str, Any]) -> None:
        match = RuleMatch(
            rule=str(rule.name),
            event_bus=str(rule.event_bus_name),
            event_id=str(event.get("id")),
            source=str(event.get("source")),
            detail_type=str(event.get("detail-type")),
        )
        with self._matches_lock:
            self._matches.append(match)

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        original = Rule.send_to_targets
        tap = self

        def send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
            if self.state != "ENABLED":
                return  # moto routes through disabled rules too; EventBridge does not
            if original_event.get("id") == _MOTO_CONSTANT_EVENT_ID:  # an S3 notification of moto
                original_event["id"] = str(uuid.uuid4())
                _drop_null_version(original_event)
            if self.event_pattern.matches_event(original_event):
                tap._record(self, original_event)
            original(self, original_event, transform_input)

        yield patch.object(Rule, "send_to_targets", send_to_targets)
