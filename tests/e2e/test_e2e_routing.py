"""Every sample event goes through the template's EventBridge rules on the local system and
reaches exactly the handler it should, or none."""

from __future__ import annotations

from typing import Any

import pytest

from localaws.runtime import Invocation, LocalSystem
from tests.eventsamples import all_event_names, load_event

VERIFY = "VerifyObjectEncryptionFunction"
GRANT = "GrantTrainingAccessFunction"

# sample -> (the rule that must match it, the handler that must run), or None: no rule, no handler.
EXPECTED: dict[str, tuple[str, str] | None] = {
    "s3_object_created": ("ObjectCreatedRule", VERIFY),
    "s3_object_created_copy_echo": ("ObjectCreatedRule", VERIFY),
    "s3_object_created_other_bucket": None,
    "cloudtrail_s3_putobject": ("S3DataEventRule", VERIFY),
    "cloudtrail_s3_copyobject": ("S3DataEventRule", VERIFY),
    "cloudtrail_s3_completemultipartupload": ("S3DataEventRule", VERIFY),
    "cloudtrail_s3_putobject_default_sse_kms": ("S3DataEventRule", VERIFY),
    "cloudtrail_s3_putobject_dsse_kms": ("S3DataEventRule", VERIFY),
    "cloudtrail_s3_putobject_sse_c": ("S3DataEventRule", VERIFY),
    "cloudtrail_s3_putobject_no_encryption_fields": ("S3DataEventRule", VERIFY),
    "cloudtrail_create_project_version": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_sso": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_iam_user": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_root": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_other_account": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_lowercamel": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_alias_key": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_error": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_access_denied_kms": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_access_denied_kms_scp": ("TrainingCallRule", GRANT),
    "cloudtrail_create_project_version_other_event": None,
    "cloudtrail_create_project_version_datasets": ("TrainingCallRule", GRANT),
    "cloudtrail_create_dataset": ("TrainingCallRule", GRANT),
    "cloudtrail_create_dataset_from_dataset": ("TrainingCallRule", GRANT),
    "cloudtrail_update_dataset_entries": ("TrainingCallRule", GRANT),
    "cloudtrail_copy_project_version": ("TrainingCallRule", GRANT),
    # KeyLifecycleRule is deployed only with SecurityHub on (off here): tests/e2e/test_e2e_key_lifecycle.py
    "cloudtrail_kms_schedule_key_deletion": None,
    "cloudtrail_kms_disable_key": None,
    # The schedule rule has no pattern: the scheduler invokes its target, no bus event matches it.
    "scheduled_audit": None,
}


def delivered_details(invocation: Invocation) -> list[Any]:
    return [event.get("detail") for event in invocation.events if isinstance(event, dict)]


def test_every_sample_event_has_an_expected_route() -> None:
    # Given the sample events on disk
    # When compared with the routes this module expects
    # Then every sample has one, and none is stale
    assert set(all_event_names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_reaches_exactly_its_handler(system: LocalSystem, name: str) -> None:
    # Given a sample event, as CloudTrail or S3 deliver it to EventBridge
    event = load_event(name)

    # When it is put on the local default bus and the local Lambda service runs
    routed = system.put_event(event)
    invocations = system.drain()

    # Then exactly the expected rule matched and exactly the expected handler ran, once, on it
    expected = EXPECTED[name]
    if expected is None:
        assert routed.rules == []
        assert invocations == []
        assert system.queue_depth("VerifyQueue") == 0
        return
    rule, handler = expected
    assert routed.rules == [rule]
    # (the digest function also runs when the handler published a finding)
    handled = [i for i in invocations if i.function != "DigestFunction"]
    assert [i.function for i in handled] == [handler]
    [invocation] = handled
    assert delivered_details(invocation) == [event["detail"]]
    # And the handler coped with it on an empty account: no error, nothing left for a DLQ
    assert invocation.error is None, invocation.output[-2000:]
    assert invocation.failed_records == []
    assert system.dead_letters() == {"VerifyDLQ": 0, "GrantDLQ": 0, "AuditDLQ": 0, "DigestDLQ": 0}


def test_grant_handler_gets_the_event_as_lambda_async_invoke_delivers_it(system: LocalSystem) -> None:
    # Given the CreateProjectVersion sample
    event = load_event("cloudtrail_create_project_version")

    # When it goes through TrainingCallRule to the grant function
    routed = system.put_event(event)
    [invocation] = [i for i in system.drain() if i.function == "GrantTrainingAccessFunction"]

    # Then the handler got one EventBridge event (not a batch) with EventBridge's id for it
    assert invocation.payload["id"] == routed.event_id
    assert invocation.payload["detail-type"] == "AWS API Call via CloudTrail"
    assert invocation.payload["source"] == "aws.rekognition"
    assert "Records" not in invocation.payload
    # And it resolved the caller to the role with its path
    assert invocation.result["principal"] == "arn:aws:iam::123456789012:role/ml/CustomLabelsTrainer"


def test_verify_handler_gets_lambda_shaped_sqs_batches(system: LocalSystem) -> None:
    # Given twelve S3 events for the training bucket
    for n in range(12):
        event = load_event("s3_object_created")
        event["detail"]["object"]["key"] = f"datasets/cats/images/gone-{n:02}.jpg"
        system.put_event(event)

    # When the local Lambda service drains VerifyQueue
    invocations = system.drain()

    # Then they arrive as Lambda delivers them: gathered over the batching window into one
    # batch of at most BatchSize records
    batch_size = system.template["Resources"]["VerifyQueueEventSource"]["Properties"]["BatchSize"]
    invocations = [i for i in invocations if i.function == "VerifyObjectEncryptionFunction"]
    assert [len(i.payload["Records"]) for i in invocations] == [12]
    assert all(len(i.payload["Records"]) <= batch_size for i in invocations)
    record = invocations[0].payload["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":custom-labels-guard-VerifyQueue")
    assert {"messageId", "receiptHandle", "body", "attributes", "md5OfBody"} <= set(record)
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    # And every message was deleted after its successful batch
    assert system.queue_depth("VerifyQueue") == 0
