"""The SNS adapter's PublishBatch (adapters/sns.py) against moto: each entry its own message with its
own attributes, a failed entry reported alone, hostile attribute values delivered unchanged."""

from __future__ import annotations

import json

import pytest

from clguard.adapters import sns
from clguard.errors import Rejected
from clguard.rules.snsbatches import Entry, batches
from tests.awscalls import Boundary
from tests.world import World

HOSTILE = [
    'team "a"},{"DataType":"String"',
    "line\nbreak\r\n\ttab",
    "<script>alert(1)</script>&amp;",
    "émoji 🚨 and \u202eright-to-left",
    "x" * 1_000,
]


def entry(i: int, *, owner: str = "team", size: int = 0) -> Entry:
    body = json.dumps({"default": json.dumps({"n": i, "pad": "p" * size})})
    return Entry(f"e{i}", f"subject {i}", body, {"owner": {"DataType": "String", "StringValue": owner}})


def test_25_messages_go_out_in_three_requests_each_its_own_message(world: World, calls: Boundary) -> None:
    # Given 25 findings' messages
    planned = [entry(i) for i in range(25)]
    # When each planned request is sent
    results = [sns.publish_batch(world.topic_arn, request) for request in batches(planned)]
    # Then 3 PublishBatch calls (10, 10, 5) and no Publish
    assert calls.log.count("PublishBatch") == 3
    assert calls.log.count("Publish") == 0
    # And 25 messages on the topic, each with its own body and attributes, none failed
    assert sorted(json.loads(p.structure["default"])["n"] for p in world.published()) == list(range(25))
    assert all(not r.failed for r in results)
    assert sum(len(r.sent) for r in results) == 25


def test_an_entry_sns_refuses_fails_alone(world: World, calls: Boundary) -> None:
    # Given one request whose second entry has a subject over SNS's 100-character limit (an invalid
    # parameter of that entry alone; an entry over 256 KiB makes the whole request too long: below)
    request = [entry(0), Entry("e1", "s" * 120, entry(1).message, entry(1).attributes), entry(2)]
    # When it is sent
    result = sns.publish_batch(world.topic_arn, request)
    # Then the call succeeds, the invalid entry alone is in Failed (a sender fault), the others were sent
    assert set(result.sent) == {"e0", "e2"}
    assert set(result.failed) == {"e1"}
    assert result.sender_fault == {"e1"}
    assert "InvalidParameter" in result.failed["e1"]
    assert len(world.published()) == 2


def test_a_request_over_256_kib_in_all_is_refused_whole(world: World, calls: Boundary) -> None:
    # Given one request whose messages together pass 256 KiB (here its second entry alone does)
    request = [entry(0), entry(1, size=262_144), entry(2)]
    # When it is sent, SNS refuses it whole (BatchRequestTooLong, the SnsPublishBatch double)
    with pytest.raises(Rejected, match="BatchRequestTooLong"):
        sns.publish_batch(world.topic_arn, request)
    # Then nothing was published
    assert world.published() == []


def test_hostile_attribute_values_arrive_unchanged(world: World, calls: Boundary) -> None:
    # Given owners (tag values: outside text) with quotes, JSON, newlines, markup, bidi controls
    request = [entry(i, owner=owner) for i, owner in enumerate(HOSTILE)]
    # When they are sent in one request
    result = sns.publish_batch(world.topic_arn, request)
    # Then each message carries exactly its own owner value: data, never structure
    assert not result.failed
    owners = {json.loads(p.structure["default"])["n"]: p.attributes["owner"]["Value"] for p in world.published()}
    assert owners == dict(enumerate(HOSTILE))
