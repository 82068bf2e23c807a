"""The publisher sends the machine topic's findings in SNS PublishBatch requests (docs/architecture.md
§12) without changing the contract: each finding is still its own message with the subject, body and
attributes a Publish carries; once per fingerprint; an entry SNS fails is retried once, then goes to
the outbox, and is never lost."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clguard.boundary.config import load_settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Unit
from clguard.rules import snsbatches
from functions.verify_object_encryption import app as verify_app
from localaws.doubles import SnsPublishBatch
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, BUCKET, REGION, TABLE, LambdaContext, World

HOSTILE = [
    'team "a"},{"DataType":"String"',
    "line\nbreak\r\n\ttab",
    "<script>alert(1)</script>&amp;",
    "émoji 🚨 and \u202eright-to-left",
    '{"default": "not the body"}',
    "x" * 1_000,
]


def finding(n: int, *, detail: str = "", owner: str | None = None, key: str = "") -> Finding:
    return Finding(
        finding_type=FindingType.OBJECT_UNENCRYPTED,
        outcome=Outcome.REPORTED,
        resource=S3ObjectRef(BUCKET, key or f"datasets/cats/images/cat-{n:03}.jpg", None),
        detail=detail or f"object had no server-side encryption (report mode) #{n}",
        source_event_id=f"evt-{n}",
        account=ACCOUNT,
        region=REGION,
        owner=owner,
        observed_at="2026-12-07T20:00:00Z",  # the same document on both paths of the differential test
    )


def publisher(world: World, *, idempotent: bool = True) -> Publisher:
    return Publisher(load_settings(world.env(AWS_REGION=REGION), account_id=ACCOUNT), idempotent=idempotent)


def idempotency_records(world: World) -> dict[str, str]:
    items = world.ddb.scan(TableName=TABLE)["Items"]
    return {i["id"]["S"]: i["status"]["S"] for i in items if i["id"]["S"].startswith("clguard-finding")}


def outbox(world: World) -> list[str]:
    return [m["Body"] for m in world.drain_queue()]


def consume(bodies: list[str]) -> None:
    """The verify function consumes outbox messages, as the verify queue delivers them."""
    for body in bodies:
        assert verify_app.lambda_handler(sqs_event(body), LambdaContext()) == {"batchItemFailures": []}


def test_a_burst_of_25_findings_is_three_publish_batch_calls_each_finding_its_own_message(
    world: World, calls: Boundary
) -> None:
    # Given 25 new findings made in one unit of work
    with Unit(publisher(world)) as unit:
        sent = [unit.report(finding(n)) for n in range(25)]

    # Then each was sent now, in 3 PublishBatch requests (10, 10, 5) and no single Publish
    assert sent == [True] * 25
    assert calls.log.count("PublishBatch") == 3
    assert calls.log.count("Publish") == 0
    # And the topic holds 25 messages, one per finding, each acknowledged once (COMPLETED)
    assert sorted(f["source_event_id"] for f in world.findings()) == sorted(f"evt-{n}" for n in range(25))
    assert sorted(idempotency_records(world).values()) == ["COMPLETED"] * 25
    assert outbox(world) == []


def test_a_full_request_goes_out_before_the_unit_ends_and_a_second_publisher_sends_nothing_again(
    world: World, calls: Boundary
) -> None:
    # Given a publisher that has queued 10 findings (a full request) and one more
    first = publisher(world)
    for n in range(11):
        first.publish(finding(n))

    # Then the full request went out at once; the eleventh waits for the unit of work
    assert calls.log.count("PublishBatch") == 1
    assert len(world.findings()) == 10
    first.send_queued()
    assert len(world.findings()) == 11

    # When another invocation meets the same conditions (a redelivered event)
    second = publisher(world)
    again = [second.publish(finding(n)) for n in range(11)]
    second.send_queued()

    # Then nothing is sent twice: the claims read COMPLETED
    assert again == [False] * 11
    assert calls.log.count("PublishBatch") == 2
    assert len(world.findings()) == 11


def test_an_entry_sns_fails_is_retried_in_the_next_request_and_reported_once(world: World, calls: Boundary) -> None:
    # Given SNS fails the entry of finding 3 once, alone (SenderFault false)
    world.behaviour[SnsPublishBatch].fail_entries("#3", times=1)

    # When 12 findings are made in one unit of work
    with Unit(publisher(world)) as unit:
        for n in range(12):
            unit.report(finding(n))

    # Then finding 3 was retried in the next request and is on the topic once, like every other
    events = sorted(f["source_event_id"] for f in world.findings())
    assert events == sorted(f"evt-{n}" for n in range(12))
    assert calls.log.count("PublishBatch") == 2
    # And nothing went to the outbox, and each record is COMPLETED
    assert outbox(world) == []
    assert sorted(idempotency_records(world).values()) == ["COMPLETED"] * 12


def test_an_entry_that_fails_twice_goes_to_the_outbox_and_is_published_from_there_once(
    world: World, calls: Boundary
) -> None:
    # Given SNS fails the entry of finding 3 every time it is in a request
    world.behaviour[SnsPublishBatch].fail_entries("#3", times=2)

    # When 5 findings are made in one unit of work
    with Unit(publisher(world)) as unit:
        for n in range(5):
            unit.report(finding(n))

    # Then the other four are on the topic, finding 3 is not (yet): tried twice, then its claim
    # released and the finding handed to the outbox
    assert sorted(f["source_event_id"] for f in world.findings()) == ["evt-0", "evt-1", "evt-2", "evt-4"]
    assert calls.log.count("PublishBatch") == 2
    bodies = outbox(world)
    assert len(bodies) == 1
    assert "evt-3" in bodies[0]

    # When the outbox message is consumed (and delivered again: SQS is at least once)
    consume(bodies)
    consume(bodies)

    # Then finding 3 is published exactly once, by a single Publish, and the unit lost nothing
    assert sorted(f["source_event_id"] for f in world.findings()) == [f"evt-{n}" for n in range(5)]
    assert calls.log.count("Publish") == 1


def test_a_whole_request_refused_sends_each_entry_to_the_outbox_and_the_unit_fails_only_if_that_fails_too(
    world: World, calls: Boundary
) -> None:
    # Given SNS refuses PublishBatch whole (after botocore's retries)
    calls.faults.add("PublishBatch", "InternalError", status=500)

    # When 3 findings are made in one unit of work
    with Unit(publisher(world)) as unit:
        for n in range(3):
            unit.report(finding(n))

    # Then none is on the topic, each is in the outbox, and no claim is left in progress
    assert world.findings() == []
    bodies = outbox(world)
    assert len(bodies) == 3
    assert idempotency_records(world) == {}

    # And with SNS healthy again, the outbox publishes each once
    calls.faults.faults.clear()
    consume(bodies)
    assert sorted(f["source_event_id"] for f in world.findings()) == ["evt-0", "evt-1", "evt-2"]

    # And with SNS and the outbox both refusing, the unit of work fails (it is retried)
    calls.faults.add("PublishBatch", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    with pytest.raises(Exception, match="could not be delivered"), Unit(publisher(world)) as unit:
        unit.report(finding(9))


def test_findings_over_256_kib_together_are_split_into_requests_sns_accepts(world: World, calls: Boundary) -> None:
    # Given 10 findings of about 30 KB of message each (a long detail): 10 would pass 256 KiB,
    # which SNS refuses whole (BatchRequestTooLong, the SnsPublishBatch double)
    big = [finding(n, detail=f"#{n} " + "d" * 12_000) for n in range(10)]
    sizes = [len(m) for m in (json.dumps(publisher(world).prepared(f).document()) for f in big)]
    assert sum(sizes) < snsbatches.MAX_BATCH_BYTES  # the documents alone would fit: the whole message counts

    # When they are made in one unit of work
    with Unit(publisher(world)) as unit:
        for f in big:
            unit.report(f)

    # Then they went out in more than one request, none refused, none to the outbox
    assert calls.log.count("PublishBatch") >= 2
    assert outbox(world) == []
    assert sorted(f["source_event_id"] for f in world.findings()) == sorted(f"evt-{n}" for n in range(10))


def subscribed_queue(world: World) -> str:
    """An SQS subscriber of the alerts topic (envelope delivery, as a filter-policy consumer has)."""
    url = world.sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    arn = world.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    world.sns.subscribe(TopicArn=world.topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def received(world: World, url: str) -> dict[str, dict[str, Any]]:
    """Each message the subscriber received, by finding: subject, body and attributes."""
    out: dict[str, dict[str, Any]] = {}
    while messages := world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            world.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            envelope = json.loads(message["Body"])
            document = json.loads(envelope["Message"])
            key = document["source_event_id"]
            assert key not in out, f"two messages for {key}"
            out[key] = {
                "subject": envelope.get("Subject"),
                "message": envelope["Message"],
                "attributes": envelope.get("MessageAttributes"),
            }
    return out


def hostile_findings() -> list[Finding]:
    return [
        finding(n, detail=f"#{n} {value}", owner=value, key=f"datasets/{value}/cat.jpg")
        for n, value in enumerate(HOSTILE)
    ]


def test_hostile_bodies_and_attributes_reach_a_subscriber_exactly_as_a_single_publish_sends_them(
    world: World, calls: Boundary
) -> None:
    # Given findings whose detail, object key and owner (message attribute) are hostile text:
    # quotes and JSON, newlines, markup, bidirectional controls, a long value
    url = subscribed_queue(world)

    # When they are published one Publish each (the path before batching) ...
    with Unit(publisher(world, idempotent=False)) as unit:
        for f in hostile_findings():
            unit.report(f)
    single = received(world, url)
    assert calls.log.count("Publish") == len(HOSTILE)

    # ... and, anew, through the batched path (their idempotency records cleared in between)
    for record in idempotency_records(world):
        world.ddb.delete_item(TableName=TABLE, Key={"id": {"S": record}})
    with Unit(publisher(world)) as unit:
        for f in hostile_findings():
            unit.report(f)
    batched = received(world, url)
    assert calls.log.count("PublishBatch") == 1

    # Then the subscriber received the same messages: subject, body and attributes, per finding
    assert set(batched) == set(single) == {f"evt-{n}" for n in range(len(HOSTILE))}
    for key, message in single.items():
        assert batched[key] == message, key
    # And each owner arrived as data, unchanged
    owners = {k: m["attributes"]["owner"]["Value"] for k, m in batched.items()}
    assert owners == {f"evt-{n}": value for n, value in enumerate(HOSTILE)}


def audit_page(keys: list[str]) -> str:
    from clguard.boundary import fanout  # noqa: PLC0415

    packer = fanout.Packer(
        source_event_id="audit-run1", origin="audit run run1", principals=(), audit_run="run1", bucket=BUCKET
    )
    bodies = [packer.add(S3ObjectRef(BUCKET, key), f"state-{key}") for key in keys]
    last = packer.flush()
    assert bodies == [None] * len(keys)
    assert last is not None
    return last


def test_changes_in_one_unit_are_reported_in_shared_requests_and_acknowledged_once_sent(
    world: World, calls: Boundary
) -> None:
    # Given an audit page (one verify message: one unit of work) naming 12 legacy unencrypted
    # objects, in enforce mode: 12 changes, each written ahead (an intent) before its copy
    keys = [f"old/cat-{n:02}.jpg" for n in range(12)]
    for key in keys:
        world.put_legacy(key)

    # When the verify function handles it
    assert verify_app.lambda_handler(sqs_event(audit_page(keys)), LambdaContext()) == {"batchItemFailures": []}

    # Then every object was re-encrypted and reported once, the 12 findings in 2 requests (not 12)
    assert all(world.head(key)["ServerSideEncryption"] == "AES256" for key in keys)
    remediated = [f["resource"]["key"] for f in world.findings() if f["outcome"] == "REMEDIATED"]
    assert sorted(remediated) == keys
    assert calls.log.count("PublishBatch") == 2
    # And each change's intent was cleared once its finding was sent
    intents = [i for i in world.ddb.scan(TableName=TABLE)["Items"] if i["id"]["S"].startswith("intent")]
    assert intents == []


def test_a_change_whose_finding_is_lost_keeps_its_intent_for_the_retry(world: World, calls: Boundary) -> None:
    # Given an audit page of 3 legacy objects, and SNS and the outbox both down
    keys = [f"old/cat-{n:02}.jpg" for n in range(3)]
    for key in keys:
        world.put_legacy(key)
    calls.faults.add("PublishBatch", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    body = audit_page(keys)

    # When the verify function handles it: the changes are made, their findings lost, the record fails
    first = verify_app.lambda_handler(sqs_event(body), LambdaContext())
    assert len(first["batchItemFailures"]) == 1
    assert world.findings() == []
    intents = [i for i in world.ddb.scan(TableName=TABLE)["Items"] if i["id"]["S"].startswith("intent#")]
    assert len(intents) == 3

    # And SQS redelivers it, AWS healthy again: each change is reported once, nothing copied again
    calls.faults.faults.clear()
    copies = calls.log.count("CopyObject")
    assert verify_app.lambda_handler(sqs_event(body, receive_count=2), LambdaContext()) == {"batchItemFailures": []}
    assert calls.log.count("CopyObject") == copies
    assert sorted(f["resource"]["key"] for f in world.findings() if f["outcome"] == "REMEDIATED") == keys
