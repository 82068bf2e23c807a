"""End to end on the local system: moto's S3 → EventBridge → the template's rule → VerifyQueue →
the verify function → S3, SNS; and what happens to records the functions cannot process."""

from __future__ import annotations

import json

from localaws.doubles import put_legacy_unencrypted_object
from localaws.runtime import LocalSystem
from tests.eventsamples import load_event

BUCKET = "custom-labels-training"
KEY = "datasets/cats/images/cat-2019-archive.jpg"


def object_keys(system: LocalSystem) -> list[str]:
    """The object key of every S3 event the verify function received, in order."""
    keys = []
    for invocation in system.invocations:
        for event in invocation.events:
            if isinstance(event, dict) and event.get("detail-type") == "Object Created":
                keys.append(event["detail"]["object"]["key"])
    return keys


def test_legacy_upload_is_reencrypted_once_and_its_copy_echo_is_quiet(system: LocalSystem) -> None:
    # Given the training bucket with S3 → EventBridge notifications on
    s3 = system.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    system.enable_eventbridge_notifications(BUCKET)

    # When a legacy object without encryption lands in it and the local Lambda service runs
    put_legacy_unencrypted_object(s3, BUCKET, KEY, b"cat from 2019")
    assert "ServerSideEncryption" not in s3.head_object(Bucket=BUCKET, Key=KEY)
    invocations = system.drain()

    # Then moto's own notifications went through ObjectCreatedRule, twice: the upload and the echo
    # of the in-place copy, each with its own event id
    matches = [m for m in system.tap.matches if m.source == "aws.s3"]
    assert [system.rules_matched(m.event_id) for m in matches] == [["ObjectCreatedRule"]] * 2
    assert len({m.event_id for m in matches}) == 2
    assert object_keys(system) == [KEY, KEY]
    assert {i.function for i in invocations} == {"VerifyObjectEncryptionFunction", "DigestFunction"}
    # And the object is SSE-S3 now, with its content
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"cat from 2019"
    # And the alerts queue got exactly one finding: the echo caused no second one
    [received] = system.subscriber_messages()
    assert received.subject == f"[HIGH] OBJECT_UNENCRYPTED s3://{BUCKET}/{KEY}"
    assert received.message["finding_type"] == "OBJECT_UNENCRYPTED"
    assert received.message["outcome"] == "REMEDIATED"
    assert received.message["resource"] == {"type": "s3-object", "bucket": BUCKET, "key": KEY, "version_id": None}
    assert received.attributes == {
        "finding_type": "OBJECT_UNENCRYPTED",
        "severity": "HIGH",
        "outcome": "REMEDIATED",
        "suppressed": "false",
    }
    verify_runs = [i for i in invocations if i.function == "VerifyObjectEncryptionFunction"]
    assert [len(i.alert_ids) for i in verify_runs] in ([1], [1, 0])
    # And people got it too, through the digest (alone, so rendered as the finding itself)
    [human] = system.human_messages()
    assert human.subject == received.subject
    assert human.chat["metadata"]["threadId"].startswith("clguard-bucket-")
    # And the published message carries all three renderings
    [alert] = system.alerts()
    assert "re-encrypted in place" in alert.email
    assert alert.chat["content"]["textType"] == "client-markdown"
    assert system.dead_letters() == {"VerifyDLQ": 0, "GrantDLQ": 0, "AuditDLQ": 0, "DigestDLQ": 0}


def test_compliant_upload_outside_the_training_buckets_reaches_no_handler(system: LocalSystem) -> None:
    # Given another bucket with EventBridge notifications on
    s3 = system.client("s3")
    s3.create_bucket(Bucket="unrelated-bucket")
    system.enable_eventbridge_notifications("unrelated-bucket")

    # When an unencrypted legacy object lands there
    put_legacy_unencrypted_object(s3, "unrelated-bucket", KEY, b"x")
    invocations = system.drain()

    # Then the rule does not take the event, so no handler runs and the object stays as it is
    assert invocations == []
    assert [m for m in system.tap.matches if m.source == "aws.s3"] == []
    assert "ServerSideEncryption" not in s3.head_object(Bucket="unrelated-bucket", Key=KEY)


def test_record_the_verify_function_cannot_parse_ends_in_verify_dlq(system: LocalSystem) -> None:
    # Given a message on VerifyQueue that is no event at all, and the queue's redrive policy
    redrive = system.resolve(system.template["Resources"]["VerifyQueue"]["Properties"]["RedrivePolicy"])
    system.client("sqs").send_message(QueueUrl=system.queue_url("VerifyQueue"), MessageBody="not an event")

    # When the local Lambda service runs
    invocations = system.drain()

    # Then the record failed alone each time, was received maxReceiveCount times, and moved to VerifyDLQ
    assert len(invocations) == int(redrive["maxReceiveCount"])
    assert all(len(i.failed_records) == 1 and i.error is None for i in invocations)
    assert system.dead_letters() == {"VerifyDLQ": 1, "GrantDLQ": 0, "AuditDLQ": 0, "DigestDLQ": 0}
    assert system.queue_depth("VerifyQueue") == 0


def test_failed_grant_invocation_is_retried_then_recorded_in_grant_dlq(system: LocalSystem) -> None:
    # Given a CreateProjectVersion record whose request parameters are not an object
    event = load_event("cloudtrail_create_project_version")
    event["detail"]["requestParameters"] = "redacted"
    retries = system.template["Resources"]["GrantTrainingAccessFunction"]["Properties"]["EventInvokeConfig"][
        "MaximumRetryAttempts"
    ]

    # When the rule routes it to the grant function and the local Lambda service runs
    routed = system.put_event(event)
    invocations = system.drain()

    # Then the function failed, was retried as EventInvokeConfig says, and the invocation record
    # went to the OnFailure destination
    assert routed.rules == ["TrainingCallRule"]
    assert [i.attempt for i in invocations] == list(range(1, retries + 2))
    assert all(i.error for i in invocations)
    assert system.dead_letters() == {"VerifyDLQ": 0, "GrantDLQ": 1, "AuditDLQ": 0, "DigestDLQ": 0}
    sqs = system.client("sqs")
    [message] = sqs.receive_message(QueueUrl=system.queue_url("GrantDLQ"))["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == retries + 1
    assert record["requestPayload"]["id"] == routed.event_id
    assert record["responseContext"]["functionError"] == "Unhandled"
