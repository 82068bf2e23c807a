"""Two audiences, one source of truth: the alerts topic keeps one message per finding; people get
digests through the alerts topic's raw SQS subscription and the digest function (moto)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from moto.sns.models import sns_backends

from clguard.boundary.config import load_settings
from clguard.errors import RetryableError
from clguard.observability import metrics
from clguard.reporting.findings import Finding
from clguard.reporting.publisher import Publisher
from clguard.reporting.rendering import subject as finding_subject
from clguard.reporting.unitofwork import Unit
from clguard.usecases import digest, digestmessages
from localaws.runtime import esm_batches
from tests.awscalls import Boundary
from tests.eventsamples import load_sqs_event
from tests.world import ACCOUNT, REGION, LambdaContext, World

# moto with the doubles is slow (~0.1 s a publish): the integration burst is 100 findings; the 10,000-finding burst
# is planned as Lambda batches it in tests/unit/test_digest.py and measured by `make bench`.
BURST = 100
DIGEST_APP = Path(__file__).resolve().parents[2] / "functions" / "digest" / "app.py"


def _digest_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("digest_app_under_test", DIGEST_APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.lambda_handler
    return handler


def _sample_findings() -> tuple[Finding, Finding]:
    """The sample batch's OBJECT_WRONG_ENCRYPTION and its PRINCIPAL_NOT_ALLOWED, as findings."""
    records = load_sqs_event("digest_findings")["Records"]
    return Finding.from_document(json.loads(records[0]["body"])), Finding.from_document(json.loads(records[2]["body"]))


class Channels:
    """The alerts topic, its raw digest subscription, and the human topic (as the template wires them)."""

    def __init__(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        self.world = world
        self.human_topic = world.sns.create_topic(Name="custom-labels-guard-HumanTopic")["TopicArn"]
        self.digest_queue = world.sqs.create_queue(QueueName="custom-labels-guard-DigestQueue")["QueueUrl"]
        queue_arn = world.sqs.get_queue_attributes(QueueUrl=self.digest_queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        world.sns.subscribe(
            TopicArn=world.topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        monkeypatch.setenv("HUMAN_TOPIC_ARN", self.human_topic)
        self.settings = load_settings(world.env(AWS_REGION=REGION), account_id=ACCOUNT)

    def machine_messages(self) -> int:
        return len(sns_backends[ACCOUNT][REGION].topics[self.world.topic_arn].sent_notifications)

    def human_messages(self) -> list[tuple[str, dict[str, Any]]]:
        """(subject, the three renderings) of every message published to the human topic."""
        sent = sns_backends[ACCOUNT][REGION].topics[self.human_topic].sent_notifications
        return [(str(subject), json.loads(message)) for _id, message, subject, _attributes, _group in sent]

    def publish(self, findings: list[Finding]) -> None:
        publisher = Publisher(self.settings, idempotent=False)
        for finding in findings:
            publisher.publish(finding)

    def queued_records(self) -> list[dict[str, Any]]:
        """Everything in the digest queue, as Lambda records (received once: each stays invisible
        for the queue's visibility timeout, longer than the test)."""
        records: list[dict[str, Any]] = []
        while True:
            messages = self.world.sqs.receive_message(
                QueueUrl=self.digest_queue,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return records
            for message in messages:
                records.append(
                    {
                        "messageId": message["MessageId"],
                        "receiptHandle": message["ReceiptHandle"],
                        "body": message["Body"],
                        "attributes": message.get("Attributes", {}),
                        "messageAttributes": {
                            name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"]}
                            for name, value in message.get("MessageAttributes", {}).items()
                        },
                        "md5OfBody": message["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:custom-labels-guard-DigestQueue",
                        "awsRegion": REGION,
                    }
                )

    def digest_all(self) -> list[dict[str, Any]]:
        """Run the digest function on the queue as its event source mapping would batch it."""
        handler = _digest_handler()
        return [
            handler({"Records": list(batch)}, LambdaContext(function_name="digest"))
            for batch in esm_batches(self.queued_records(), batch_size=10_000)
        ]


@pytest.fixture
def channels(world: World, monkeypatch: pytest.MonkeyPatch) -> Channels:
    return Channels(world, monkeypatch)


def _burst(template: Finding, n: int) -> list[Finding]:
    from dataclasses import replace  # noqa: PLC0415

    from clguard.boundary.s3ref import S3ObjectRef  # noqa: PLC0415

    return [
        replace(
            template,
            resource=S3ObjectRef("custom-labels-training", f"datasets/cats/images/cat-{i:06d}.jpg"),
            source_event_id=f"event-{i}",
        )
        for i in range(n)
    ]


@pytest.mark.slow
def test_a_burst_is_one_machine_message_per_finding_and_a_handful_for_people(
    channels: Channels,
) -> None:
    # Given a burst of same-kind findings, and one refusal in the middle of it
    wrong, refusal = _sample_findings()
    findings = _burst(wrong, BURST)
    findings.insert(BURST // 2, refusal)

    # When they are published, and the digest function reads the alerts topic's subscription
    channels.publish(findings)
    responses = channels.digest_all()

    # Then machines got every finding as its own message
    assert channels.machine_messages() == BURST + 1
    # And people got at most 5 digests, plus the refusal on its own
    human = channels.human_messages()
    digests = [m for m in human if json.loads(m[1]["default"]).get("message_kind") == digestmessages.DIGEST_KIND]
    alone = [m for m in human if m not in digests]
    assert len(digests) <= 5
    assert [subject for subject, _ in alone] == [finding_subject(refusal)]
    # And the refusal came first in its batch (before that batch's digest)
    assert human.index(alone[0]) < human.index(digests[-1])
    # And nothing was lost: the digests count all 10,000, and no record failed
    assert sum(json.loads(m[1]["default"])["count"] for m in digests) == BURST
    assert all(response == {"batchItemFailures": []} for response in responses)


def test_a_digest_that_cannot_be_published_fails_exactly_its_records(channels: Channels, calls: Boundary) -> None:
    # Given a refusal and 20 same-kind findings waiting for the digest, and SNS failing the
    # second publish (the digest; the refusal goes first)
    wrong, refusal = _sample_findings()
    channels.publish([refusal, *_burst(wrong, 20)])
    records = channels.queued_records()
    calls.faults.add("Publish", "InternalError", status=500, after=1)

    # When the digest function runs on the batch
    response = _digest_handler()({"Records": records}, LambdaContext(function_name="digest"))

    # Then the 20 records of the digest fail (SQS retries them, then DigestDLQ), the refusal's does not
    refusal_record = next(r for r in records if "PRINCIPAL_NOT_ALLOWED" in r["body"])
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert failed == {r["messageId"] for r in records} - {refusal_record["messageId"]}
    # And people got the refusal
    assert [json.loads(m[1]["default"])["finding_type"] for m in channels.human_messages()] == ["PRINCIPAL_NOT_ALLOWED"]


def test_the_sample_batch_gives_the_refusal_then_one_digest_with_a_thread(channels: Channels) -> None:
    # Given the sample digest-queue batch (what `sam local invoke DigestFunction -e` uses)
    event = load_sqs_event("digest_findings")

    # When the digest function handles it
    response = _digest_handler()(event, LambdaContext(function_name="digest"))

    # Then the refusal comes alone, then one digest of the two objects, in the bucket's thread
    assert response == {"batchItemFailures": []}
    [(first_subject, _), (second_subject, second)] = channels.human_messages()
    assert first_subject.startswith("[HIGH] PRINCIPAL_NOT_ALLOWED")
    assert (
        second_subject
        == "[MEDIUM] 2 x OBJECT_WRONG_ENCRYPTION REMEDIATED s3://custom-labels-training/datasets/cats/images/"
    )
    chat = json.loads(second["https"])
    assert chat["metadata"]["threadId"].startswith("clguard-bucket-")
    assert chat["content"]["keywords"] == ["OBJECT_WRONG_ENCRYPTION", "MEDIUM", "REMEDIATED"]
    assert "2 OBJECT_WRONG_ENCRYPTION (MEDIUM), all remediated" in second["email"]


def test_a_finding_neither_published_nor_deferred_is_counted_undelivered(world: World, calls: Boundary) -> None:
    # Given SNS and the findings outbox both failing
    wrong, _ = _sample_findings()
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    publisher = Publisher(load_settings(world.env(AWS_REGION=REGION), account_id=ACCOUNT), idempotent=False)

    # When a finding is published in a unit of work
    metrics.clear_metrics()
    unit = Unit(publisher)
    sent = unit.report(wrong)

    # Then it is not sent, the FindingsUndelivered metric (the alarm's) is emitted, and the unit of
    # work fails so that its retry publishes it
    assert sent is False
    assert "FindingsUndelivered" in metrics.metric_set
    with pytest.raises(RetryableError):
        unit.finish()
    metrics.clear_metrics()


def test_threads_group_one_training_request(channels: Channels, world: World) -> None:
    # Given a training request (CreateProjectVersion) that needs a grant on its KmsKeyId and
    # whose manifests cannot be read, and an unrelated plain upload that gets re-encrypted
    from functions.grant_training_access import app as grant_app  # noqa: PLC0415
    from functions.verify_object_encryption import app as verify_app  # noqa: PLC0415
    from tests.eventsamples import load_event, sqs_event  # noqa: PLC0415

    world.role("CustomLabelsTrainer", "/ml/")
    copy_key = world.key()
    event = world.training_event(kms_key=copy_key)
    world.put_legacy("datasets/cats/images/cat-001.jpg")  # the key of the s3_object_created sample

    # When both are handled, and the digest function reads what the alerts topic delivered
    grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
    verify_app.lambda_handler(sqs_event(load_event("s3_object_created")), LambdaContext(function_name="verify"))
    channels.digest_all()

    # Then every finding of the request names it (origin) and shares its event id; the upload's does not
    findings = world.findings()
    request = [f for f in findings if f["source_event_id"] == event["id"]]
    upload = [f for f in findings if f["source_event_id"] != event["id"]]
    assert {f["finding_type"] for f in request} >= {"KEY_ACCESS_MISSING"}
    assert len(request) >= 2
    assert all(f["origin"].startswith("CreateProjectVersion") for f in request)
    assert [f["finding_type"] for f in upload] == ["OBJECT_UNENCRYPTED"]
    assert "origin" not in upload[0]
    # And people's messages about the request are in one Slack thread, the upload in another
    threads: dict[str, set[str]] = {}
    human = channels.human_messages()
    assert len(human) >= 3  # the request gives at least two messages, the upload one
    for _subject, message in human:
        chat = json.loads(message["https"])
        document = json.loads(message["default"])
        source = document.get("source_event_id") or document["first"][0]["source_event_id"]
        threads.setdefault(chat["metadata"]["threadId"], set()).add(source)
    assert sorted(map(sorted, threads.values())) == sorted([[upload[0]["source_event_id"]], [event["id"]]])


def test_a_finding_planted_by_a_principal_reaches_people_as_unverified_never_as_a_finding(
    channels: Channels, world: World
) -> None:
    # Given a forged REMEDIATED finding that a role of the account sent through the SQS API (as one
    # planted in DigestDLQ before its lock and redriven keeps its sender), beside a real finding
    from localaws.doubles import SqsSenderIds  # noqa: PLC0415

    wrong, _refusal = _sample_findings()
    channels.publish([wrong])
    forged = json.loads(load_sqs_event("digest_findings")["Records"][0]["body"])
    forged["detail"] = "all keys fixed; nothing to do"
    with world.behaviour[SqsSenderIds].sending_as("AROAEXAMPLEROLEID1234:intruder"):
        world.sqs.send_message(
            QueueUrl=channels.digest_queue,
            MessageBody=json.dumps(forged),
            MessageAttributes={"outcome": {"DataType": "String", "StringValue": "REMEDIATED"}},
        )
    records = channels.queued_records()
    metrics.clear_metrics()

    # When the digest function handles the batch
    response = _digest_handler()({"Records": records}, LambdaContext(function_name="digest"))

    # Then nothing fails, the real finding reaches people as a finding, and the planted one only as
    # an unverified message that names its sender (never rendered as one of the guard's findings)
    assert response == {"batchItemFailures": []}
    human = channels.human_messages()
    findings = [m for s, m in human if json.loads(m["default"]).get("finding_type") == "OBJECT_WRONG_ENCRYPTION"]
    unverified = [(s, m) for s, m in human if json.loads(m["default"]).get("message_kind") == "forwarded"]
    assert len(findings) == 1
    [(subject, message)] = unverified
    assert subject == "Custom Labels Guard: unverified message"
    assert "Not from the alerts topic" in message["email"]
    assert "AROAEXAMPLEROLEID1234:intruder" in message["email"]
    assert "Not from the alerts topic" in json.loads(message["https"])["content"]["description"]
    assert json.loads(message["default"])["kind"] == "unverified message"


def test_the_sender_check_knows_a_role_session_and_an_account_from_the_alerts_topic() -> None:
    # Given SenderIds: SNS's (an AWS-owned user id), a role session, an account's root, none
    def sender(value: object) -> str | None:
        return digest.sent_by_a_principal({"attributes": {"SenderId": value}})

    # Then only what a principal of an account sent through the SQS API is named
    assert sender("AIDAIT2UOQQY3AUEKVGXU") is None
    assert sender(None) is None
    assert sender("AROAEXAMPLEROLEID1234:session") == "AROAEXAMPLEROLEID1234:session"
    assert sender("123456789012") == "123456789012"
