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
- moto leaves ``account`` out of the events a PutEvents target receives (its default input
  template has no such field); EventBridge delivers the whole event. The tap puts it back.
- a rule target that is another account's event bus (how a member account forwards its events to
  the central guard): moto re-puts the event with PutEvents in the target account, which gives it
  a new id and the *target's* ``account``. EventBridge delivers it unchanged, with the sender's
  ``account``, and only if the target bus's resource policy admits the sender. The tap does that
  (an organization-wide statement, ``Principal: "*"`` with ``aws:PrincipalOrgID``, admits every
  sender: moto has no organizations to check it against).

moto's other differences in these notifications are left as they are: ``reason`` is
``ObjectCreated`` (S3: ``PutObject``, ``CopyObject``, ...) and ``time`` is a number until moto
delivers the event to SQS; the parser accepts both. Like ``localaws.doubles``, it
patches a moto class, in process, so it holds for the moto server too; undone on exit.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

from moto.events.models import Rule, events_backends
from moto.events.utils import _BASE_EVENT_MESSAGE, EventTemplateParser

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
            if not self.event_pattern.matches_event(original_event):
                return
            tap._record(self, original_event)
            forwarded = [t for t in self.targets if _other_accounts_bus(t.get("Arn", ""), self.account_id)]
            if forwarded:
                for target in forwarded:
                    _forward(target["Arn"], original_event, transform_input)
                kept = [t for t in self.targets if t not in forwarded]
                saved, self.targets = self.targets, kept
                try:
                    original(self, original_event, transform_input)
                finally:
                    self.targets = saved
                return
            original(self, original_event, transform_input)

        yield patch.object(Rule, "send_to_targets", send_to_targets)
        # moto's default input template (no InputTransformer) leaves ``account`` out of the event
        # a target receives from PutEvents; EventBridge delivers the whole event.
        yield patch.object(
            EventTemplateParser,
            "DEFAULT_EVENT_INPUT_TEMPLATE",
            EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE.replace(
                '"version": "0", ', '"version": "0", "account": "<account>", '
            ),
        )


def _other_accounts_bus(arn: str, account: str) -> bool:
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[2] == "events" and parts[5].startswith("event-bus/") and parts[4] != account


def _forward(bus_arn: str, event: dict[str, Any], transform_input: bool) -> None:
    """A rule target that is another account's event bus: EventBridge delivers the event as it is
    (its ``account``, ``id``, ``time`` and ``resources`` kept) to that bus's rules, if the bus
    policy admits the sender. moto 5.2.5 re-puts it with PutEvents in the target account instead,
    which replaces ``account`` with the target's own and gives it a new id."""
    _, _, _, region, account, resource = bus_arn.split(":", 5)
    backend = events_backends[account][region]
    bus = backend.event_buses.get(resource.removeprefix("event-bus/"))
    if bus is None or not _admits(bus, str(event.get("account"))):
        return  # EventBridge drops what the bus policy does not admit
    for rule in list(bus.rules.values()):
        rule.send_to_targets(copy.deepcopy(event), transform_input)  # type: ignore[arg-type]


def _admits(bus: Any, sender: str) -> bool:
    """Whether the bus's resource policy lets ``sender`` put events (the statements the central
    template writes: named account roots, or any principal of an organization)."""
    policy = bus.policy
    if not policy:
        return False
    document = json.loads(policy) if isinstance(policy, str) else policy
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        aws = principal.get("AWS") if isinstance(principal, dict) else principal
        names = aws if isinstance(aws, list) else [aws]
        if principal == "*" or any(str(n).split(":")[4:5] == [sender] or n == sender for n in names if n):
            return True
    return False
