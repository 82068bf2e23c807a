"""The digest stage: findings grouped for people, nothing lost, severe ones at once (pure logic)."""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.boundary import config
from clguard.errors import ConfigError
from clguard.usecases import digest, digestmessages
from localaws.runtime import LAMBDA_SQS_PAYLOAD_MAX, esm_batches
from tests.eventsamples import load_sqs_event

BURST = 10_000
BATCH_SIZE = 10_000  # the digest event source's BatchSize in template.yaml


def _samples() -> tuple[dict[str, Any], dict[str, Any]]:
    """The sample batch's first record (an OBJECT_WRONG_ENCRYPTION) and its refusal."""
    records = load_sqs_event("digest_findings")["Records"]
    return records[0], records[2]


def _record(template: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    """A copy of ``template`` as another finding: its own message id and (for objects) key."""
    record = copy.deepcopy(template)
    document = json.loads(record["body"])
    resource = document["resource"]
    if resource["type"] == "s3-object":
        resource["key"] = f"datasets/cats/images/cat-{index:06d}.jpg"
    document["source_event_id"] = str(uuid.uuid5(uuid.NAMESPACE_OID, f"event-{index}"))
    for name, value in changes.items():
        document[name] = value
    record["body"] = json.dumps(document)
    record["messageId"] = str(uuid.uuid5(uuid.NAMESPACE_OID, f"record-{index}-{sorted(changes.items())}"))
    return record


def _burst(n: int) -> list[dict[str, Any]]:
    template, _ = _samples()
    return [_record(template, i) for i in range(n)]


def _plan(records: Sequence[Mapping[str, Any]]) -> list[digestmessages.HumanMessage]:
    return digest.plan(digest.parse_record(r) for r in records)


def _plan_as_lambda_delivers(records: list[dict[str, Any]]) -> list[list[digestmessages.HumanMessage]]:
    """Plan each batch the event source mapping would deliver (BatchSize, 6 MB payload)."""
    return [_plan(batch) for batch in esm_batches(records, batch_size=BATCH_SIZE)]


def test_a_burst_of_ten_thousand_same_kind_findings_gives_at_most_five_human_messages() -> None:
    # Given 10,000 OBJECT_WRONG_ENCRYPTION REMEDIATED findings in one bucket, delivered as Lambda
    # delivers the digest queue (BatchSize 10,000, at most 6 MB per invocation)
    records = _burst(BURST)
    # When each batch is digested
    batches = _plan_as_lambda_delivers(records)
    messages = [m for batch in batches for m in batch]
    # Then people get at most 5 messages, and together they count all 10,000 findings
    assert len(messages) <= 5
    assert digest.findings_counted(messages) == BURST
    # And each message is a digest of that kind and place, with counts
    for message in messages:
        assert message.default["message_kind"] == digestmessages.DIGEST_KIND
        assert message.default["place"] == "s3://custom-labels-training/datasets/cats/images/"
        assert message.subject.startswith(f"[MEDIUM] {message.default['count']:,} x OBJECT_WRONG_ENCRYPTION REMEDIATED")


def test_the_lambda_payload_limit_is_what_splits_the_burst() -> None:
    # Given the burst's records
    records = _burst(BURST)
    # When they are split as the event source mapping would
    batches = esm_batches(records, batch_size=BATCH_SIZE)
    # Then every batch stays under the 6 MB payload and the split loses and repeats nothing
    assert all(len(json.dumps({"Records": b}).encode()) <= LAMBDA_SQS_PAYLOAD_MAX for b in batches)
    assert [r["messageId"] for b in batches for r in b] == [r["messageId"] for r in records]


def test_a_refusal_in_the_burst_reaches_people_alone_and_first() -> None:
    # Given a burst with one refusal in the middle
    template, refusal = _samples()
    records = [_record(template, i) for i in range(500)]
    records.insert(250, refusal)
    # When the batch is digested
    messages = _plan(records)
    # Then the first message is the refusal alone, rendered as the finding itself
    first = messages[0]
    assert first.record_ids == [refusal["messageId"]]
    assert first.subject.startswith("[HIGH] PRINCIPAL_NOT_ALLOWED ")
    assert first.default == json.loads(refusal["body"])
    assert "PRINCIPAL_NOT_ALLOWED (HIGH), REFUSED" in first.email
    # And the other 500 are one digest
    assert [m.default.get("count") for m in messages[1:]] == [500]


@pytest.mark.parametrize("finding_type", ["KEY_POLICY_LIMIT", "TRAINING_FAILED"])
def test_severe_finding_types_are_never_grouped(finding_type: str) -> None:
    # Given three findings of a severe type about one key
    _, refusal = _samples()
    records = [_record(refusal, i, finding_type=finding_type) for i in range(3)]
    # When digested
    messages = _plan(records)
    # Then each is its own message
    assert [len(m.record_ids) for m in messages] == [1, 1, 1]


def test_failed_outcomes_are_never_grouped() -> None:
    # Given three FAILED remediations in one folder
    template, _ = _samples()
    records = [_record(template, i, outcome="FAILED") for i in range(3)]
    # When digested
    messages = _plan(records)
    # Then each is its own message, and none is a digest
    assert len(messages) == 3
    assert all(m.default.get("message_kind") != digestmessages.DIGEST_KIND for m in messages)


def test_a_message_that_is_not_a_finding_is_forwarded_at_once() -> None:
    # Given the audit's summary (not a finding) and an unreadable body among findings
    template, _ = _samples()
    summary = _record(template, 0)
    summary["body"] = json.dumps({"message_kind": "clguard.audit-summary", "objects": 12})
    summary["messageAttributes"] = {"message_kind": {"stringValue": "clguard.audit-summary", "dataType": "String"}}
    garbage = _record(template, 1)
    garbage["body"] = "{not json"
    records = [_record(template, i) for i in range(2, 5)]
    # When digested
    messages = _plan([*records, summary, garbage])
    # Then both are forwarded one by one before the digest, their content intact
    assert messages[0].subject == "Custom Labels Guard: clguard.audit-summary"
    assert '"objects": 12' in messages[0].email
    assert "{not json" in messages[1].email
    assert [m.default.get("count") for m in messages[2:]] == [3]


def test_different_kind_or_place_are_different_messages() -> None:
    # Given findings of one kind in two buckets, and of two outcomes in one bucket
    template, _ = _samples()
    base = json.loads(template["body"])
    other_bucket = {**base["resource"], "bucket": "second.training-bucket"}
    records = [
        *(_record(template, i) for i in range(3)),
        *(_record(template, i, resource=other_bucket) for i in range(3, 6)),
        *(_record(template, i, outcome="REPORTED") for i in range(6, 9)),
    ]
    # When digested
    messages = _plan(records)
    # Then each (kind, outcome, place) is one digest of three
    assert sorted((m.default["place"], m.default["outcome"], m.default["count"]) for m in messages) == [
        ("s3://custom-labels-training/datasets/cats/images/", "REMEDIATED", 3),
        ("s3://custom-labels-training/datasets/cats/images/", "REPORTED", 3),
        ("s3://second.training-bucket/datasets/cats/images/", "REMEDIATED", 3),
    ]


def test_a_lone_finding_looks_like_the_finding_itself() -> None:
    # Given one finding
    template, _ = _samples()
    # When digested
    [message] = _plan([template])
    # Then it is the finding's own e-mail and document, nothing about a digest
    assert message.default == json.loads(template["body"])
    assert message.email.startswith("Custom Labels Guard: OBJECT_WRONG_ENCRYPTION (MEDIUM), REMEDIATED")


def test_the_digest_email_lists_counts_the_first_three_and_every_resource() -> None:
    # Given 1,000 findings in one folder
    records = _burst(1_000)
    # When digested
    [message] = _plan(records)
    # Then the e-mail says how many, where, shows the first 3 in full, and lists all 1,000
    assert message.email.startswith(
        "Custom Labels Guard digest: 1,000 OBJECT_WRONG_ENCRYPTION (MEDIUM), all remediated"
    )
    assert "Where: s3://custom-labels-training/datasets/cats/images/ in account 123456789012" in message.email
    assert "First 3 of 1,000:" in message.email
    assert message.email.count("re-encrypted in place") == 3
    assert "  - Nothing to do for these objects." in message.email
    assert all(f"\n  cat-{i:06d}.jpg" in message.email for i in range(1_000))
    # And Slack gets a short list, the keywords and the bucket's thread
    content = message.chat["content"]
    assert content["keywords"] == ["OBJECT_WRONG_ENCRYPTION", "MEDIUM", "REMEDIATED"]
    assert content["description"].count("• ") == digestmessages.CHAT_LISTED
    assert message.chat["metadata"]["threadId"].startswith("clguard-bucket-")


def test_a_digest_of_long_keys_fits_in_one_sns_message_and_says_where_the_rest_is() -> None:
    # Given 10,000 findings whose keys are 1,000 characters long
    template, _ = _samples()
    records = []
    for i in range(BURST):
        record = _record(template, i)
        document = json.loads(record["body"])
        document["resource"]["key"] = f"datasets/cats/{i:06d}-" + "x" * 990
        record["body"] = json.dumps(document)
        records.append(record)
    # When they are digested as one batch
    [message] = _plan(records)
    # Then the message is within SNS's 256 KiB, counts them all, and points to the full list
    assert len(message.sns_message().encode()) < 256 * 1024
    assert message.default["count"] == BURST
    assert f'filter digest_id = "{message.digest_id}"' in message.email
    assert len(message.resources) == BURST


def test_control_characters_in_keys_cannot_forge_lines_of_the_email() -> None:
    # Given findings whose keys hold a line break and a fake "What was done" line
    template, _ = _samples()
    records = []
    for i in range(2):
        record = _record(template, i)
        document = json.loads(record["body"])
        document["resource"]["key"] = f"a/{i}\nWhat was done: nothing, all fine"
        record["body"] = json.dumps(document)
        records.append(record)
    # When digested
    [message] = _plan(records)
    # Then the e-mail has only its own "What was done" line
    assert message.email.count("\nWhat was done:") == 1


def test_threads_group_one_training_request() -> None:
    # Given findings of one training request (they carry its origin), of several kinds and places,
    # and a plain upload in the same bucket
    template, refusal = _samples()
    origin = "CreateProjectVersion of arn:aws:rekognition:us-east-1:123456789012:project/cats/version/v1/1"
    request = "0f6a1d2c-7b3e-4c5d-9e8f-1a2b3c4d5e6f"
    records = [
        *(_record(template, i, origin=origin, source_event_id=request) for i in range(3)),
        _record(template, 3, origin=origin, source_event_id=request, outcome="REPORTED"),
        _record(refusal, 4, origin=origin, source_event_id=request),
        _record(template, 5),
    ]
    # When digested
    messages = _plan(records)
    threads = Counter(m.chat["metadata"]["threadId"] for m in messages)
    # Then the request's three messages share one thread, and the plain upload has its own
    assert sorted(threads.values()) == [1, 3]
    [(request_thread, _)] = [(t, n) for t, n in threads.items() if n == 3]
    assert request_thread.startswith("clguard-request-")


def test_one_bucket_burst_is_one_thread_across_batches() -> None:
    # Given two batches of the same bucket's burst within the hour
    records = _burst(20)
    # When each batch is digested
    first, second = _plan(records[:10]), _plan(records[10:])
    # Then both digests are in the same thread
    assert first[0].chat["metadata"]["threadId"] == second[0].chat["metadata"]["threadId"]


def test_a_duplicate_delivery_is_accounted_for_and_counted_once() -> None:
    # Given a batch where SQS delivered one finding twice (two records, same body)
    records = _burst(3)
    twin = copy.deepcopy(records[1])
    twin["messageId"] = str(uuid.uuid4())
    # When digested
    [message] = _plan([*records, twin])
    # Then the digest counts 3 findings and accounts for all 4 records
    assert message.default["count"] == 3
    assert sorted(message.record_ids) == sorted(r["messageId"] for r in [*records, twin])


KINDS = st.tuples(
    st.sampled_from(["OBJECT_UNENCRYPTED", "OBJECT_WRONG_ENCRYPTION", "KEY_ACCESS_MISSING", "PRINCIPAL_NOT_ALLOWED"]),
    st.sampled_from(["REMEDIATED", "REPORTED", "REFUSED", "FAILED"]),
    st.sampled_from(["custom-labels-training", "second.training-bucket"]),
    st.booleans(),  # a duplicate delivery of the previous record
    st.booleans(),  # not a finding at all
)


@given(st.lists(KINDS, max_size=60))
@settings(max_examples=60, deadline=None)
def test_the_digest_loses_nothing(kinds: list[tuple[str, str, str, bool, bool]]) -> None:
    # Given any mix of findings (kinds, outcomes, places), duplicates and other messages
    template, _ = _samples()
    records: list[dict[str, Any]] = []
    distinct = 0
    for index, (finding_type, outcome, bucket, duplicate, other) in enumerate(kinds):
        if duplicate and records:
            twin = copy.deepcopy(records[-1])
            twin["messageId"] = str(uuid.uuid4())
            distinct += 0 if records[-1]["body"].startswith("{") else 1  # other messages are not deduplicated
            records.append(twin)
            continue
        record = _record(template, index, finding_type=finding_type, outcome=outcome)
        document = json.loads(record["body"])
        document["resource"]["bucket"] = bucket
        record["body"] = json.dumps(document) if not other else f"other message {index}"
        records.append(record)
        distinct += 1
    # When the batch is digested
    messages = _plan(records)
    # Then every record is accounted for by exactly one human message
    accounted = [record_id for m in messages for record_id in m.record_ids]
    assert sorted(accounted) == sorted(r["messageId"] for r in records)
    # And every distinct finding (and other message) is counted once
    assert digest.findings_counted(messages) == distinct


def test_the_human_topic_is_validated_naming_the_variable() -> None:
    # Given an environment without a valid HUMAN_TOPIC_ARN
    # When the digest settings are loaded
    # Then the error names the variable
    with pytest.raises(ConfigError, match="HUMAN_TOPIC_ARN"):
        config.load_digest_settings({})
    with pytest.raises(ConfigError, match="HUMAN_TOPIC_ARN"):
        config.load_digest_settings({"HUMAN_TOPIC_ARN": "not-an-arn"})


@pytest.mark.parametrize(
    "change",
    [{"principal_arn": 123}, {"kms_key_arn": ["x"]}, {"detail": {"a": 1}}, {"observed_at": 5}],
)
def test_a_finding_document_with_a_mistyped_field_travels_as_a_plain_message(change: dict[str, Any]) -> None:
    # Given one alerts-topic delivery whose finding document has a field of the wrong type
    document = {
        "schema_version": "1",
        "finding_type": "OBJECT_UNENCRYPTED",
        "severity": "HIGH",
        "outcome": "REPORTED",
        "account": "123456789012",
        "region": "us-east-1",
        "resource": {"type": "s3-object", "bucket": "b", "key": "k1", "version_id": None},
        "principal_arn": None,
        "kms_key_arn": None,
        "detail": "d",
        "source_event_id": "e1",
        "observed_at": "2026-11-28T20:00:00Z",
        **change,
    }
    record = {"messageId": "m1", "body": json.dumps(document), "messageAttributes": {}}

    # When the batch is planned and rendered
    messages = digest.plan([digest.parse_record(record)])
    rendered = [m.sns_message() for m in messages]

    # Then it is not lost and does not stop the batch: one message for people
    assert len(rendered) == 1
