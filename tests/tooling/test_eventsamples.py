"""The sample-event helper builds SQS events the way Lambda delivers them."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.eventsamples import VERIFY_QUEUE_ARN, all_event_names, load_event, sqs_event


def test_sqs_event_wraps_eventbridge_events_like_lambda() -> None:
    # Given two sample EventBridge events
    created = load_event("s3_object_created")
    data_event = load_event("cloudtrail_s3_putobject")

    # When they are wrapped into one SQS Lambda event
    event = sqs_event(created, data_event, sent_timestamp_ms=1_764_360_000_000)

    # Then each is one record, in order, with the fields and types Lambda uses
    records = event["Records"]
    assert [json.loads(record["body"]) for record in records] == [created, data_event]
    assert len({record["messageId"] for record in records}) == 2
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == VERIFY_QUEUE_ARN
        assert record["awsRegion"] == "us-east-1"
        assert record["messageAttributes"] == {}
        assert record["receiptHandle"]
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert all(isinstance(value, str) for value in record["attributes"].values())
    assert records[0]["attributes"]["SentTimestamp"] == "1764360000000"


def test_sqs_event_keeps_string_bodies_and_receive_counts() -> None:
    # Given a raw body (e.g. a fan-out message or garbage) and a redelivery
    # When it is wrapped
    event = sqs_event("not json", receive_count=3)

    # Then the body is used verbatim and the receive count is reported
    (record,) = event["Records"]
    assert record["body"] == "not json"
    assert record["attributes"]["ApproximateReceiveCount"] == "3"


def test_unknown_sample_names_fail_clearly() -> None:
    # Given the sample catalogue
    assert "s3_object_created" in all_event_names()

    # When a name that does not exist, or is a path, is asked for
    # Then the helper says so
    with pytest.raises(FileNotFoundError, match="no sample event"):
        load_event("does_not_exist")
    with pytest.raises(ValueError, match="not a sample event name"):
        load_event("../template")
