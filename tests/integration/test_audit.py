"""The audit (functions/audit): existing objects, keys in use and failed trainings, found by a
scheduled run and checked through the verify queue exactly as uploads are."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from clguard.boundary.config import current_settings
from clguard.errors import Throttled
from clguard.usecases import audit, verify
from functions.verify_object_encryption import app as verify_app
from localaws.doubles import RekognitionCustomLabels
from tests.auditrun import (
    drain_to_verify,
    findings,
    put_inventory,
    put_inventory_configuration,
    report,
    run_audit,
    scheduled_event,
    summaries,
)
from tests.awscalls import Boundary
from tests.conftest import TRAINER
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, BUCKET, LambdaContext, World


def test_existing_unencrypted_objects_are_found_and_fixed(audited: World) -> None:
    # Given a training bucket with objects uploaded before the guard: two unencrypted, one SSE-S3
    audited.put_legacy("old/a.jpg")
    audited.put_legacy("old/b.jpg")
    audited.put("old/c.jpg", ServerSideEncryption="AES256")

    # When the scheduled audit runs and its messages are checked
    run_audit(audited)

    # Then the two unencrypted objects are re-encrypted and reported as remediated
    assert audited.head("old/a.jpg")["ServerSideEncryption"] == "AES256"
    assert audited.head("old/b.jpg")["ServerSideEncryption"] == "AES256"
    found = sorted((f["finding_type"], f["outcome"], f["resource"]["key"]) for f in findings(audited))
    assert found == [
        ("OBJECT_UNENCRYPTED", "REMEDIATED", "old/a.jpg"),
        ("OBJECT_UNENCRYPTED", "REMEDIATED", "old/b.jpg"),
    ]
    # And one summary says what the run covered
    [summary] = summaries(audited)
    assert (summary["buckets"], summary["objects"], summary["new_alerts_by_type"]) == (
        1,
        3,
        {"OBJECT_UNENCRYPTED": 2},
    )


def test_a_second_audit_reports_nothing_new(audited: World) -> None:
    # Given an audit that found and fixed an unencrypted object
    audited.put_legacy("old/a.jpg")
    run_audit(audited)
    before = len(findings(audited))

    # When the next audit runs
    run_audit(audited)

    # Then it publishes no new finding, only its own summary
    assert len(findings(audited)) == before == 1
    assert len(summaries(audited)) == 2
    assert summaries(audited)[1]["new_alerts_by_type"] == {}


def test_report_mode_changes_nothing_and_reports_once(audited: World) -> None:
    # Given report mode and an unencrypted existing object
    audited.env_set(REMEDIATION_MODE="report")
    audited.put_legacy("old/a.jpg")

    # When two audits run
    run_audit(audited)
    run_audit(audited)

    # Then the object is unchanged, and the condition was reported once, not once per run
    assert "ServerSideEncryption" not in audited.head("old/a.jpg")
    assert [(f["finding_type"], f["outcome"]) for f in findings(audited)] == [("OBJECT_UNENCRYPTED", "REPORTED")]


def test_a_condition_that_reappears_after_a_fix_is_new(audited: World) -> None:
    # Given report mode, an unencrypted object reported by one audit
    audited.env_set(REMEDIATION_MODE="report")
    audited.put_legacy("old/a.jpg")
    run_audit(audited)
    # ... that someone then fixed, and someone else broke again (a new upload of the object)
    audited.put("old/a.jpg", ServerSideEncryption="AES256")
    run_audit(audited)
    audited.put_legacy("old/a.jpg", body=b"new content")

    # When the next audit runs
    run_audit(audited)

    # Then the condition is reported again: it is a new one
    assert [f["finding_type"] for f in findings(audited)] == ["OBJECT_UNENCRYPTED", "OBJECT_UNENCRYPTED"]


def test_keys_already_in_use_get_the_training_principals(cmk_object: str, audited: World) -> None:
    # Given an object that was uploaded under a managed CMK before TRAINER was a training principal
    # When the audit runs
    run_audit(audited)

    # Then TRAINER can now use the key for training, and the grant was reported
    statement = audited.statement(cmk_object, "CustomLabelsGuardTrainingData")
    assert statement is not None
    assert TRAINER in statement["Principal"]["AWS"]
    assert [(f["finding_type"], f["outcome"], f["principal_arn"]) for f in findings(audited)] == [
        ("KEY_ACCESS_MISSING", "REMEDIATED", TRAINER)
    ]
    # And the report lists the key with TRAINER and how it got access
    [summary] = summaries(audited)
    [key] = report(audited, summary)["keys"]
    assert key["arn"] == cmk_object
    assert {"arn": TRAINER, "how": "added by the guard (statement CustomLabelsGuardTrainingData)"} in key["principals"]


def test_a_bucket_of_more_than_a_thousand_objects_is_fully_covered(audited: World, calls: Boundary) -> None:
    # Given 2,345 compliant objects and one unencrypted object among the last listed
    for index in range(2345):
        audited.put(f"images/{index:05d}.jpg", ServerSideEncryption="AES256")
    audited.put_legacy("images/zz-last.jpg")

    # When the audit runs
    run_audit(audited)

    # Then every page was listed, every object checked once (and the unencrypted one inspected
    # once more, inside its remediation lease), and the last one fixed
    assert calls.log.count("ListObjectsV2") == 3
    assert calls.log.count("HeadObject") == 2346 + 1
    assert audited.head("images/zz-last.jpg")["ServerSideEncryption"] == "AES256"
    [summary] = summaries(audited)
    assert summary["objects"] == 2346


def test_an_audit_short_of_time_resumes_where_it_stopped(audited: World, calls: Boundary) -> None:
    # Given 1,500 objects and an audit invocation that has little time left after its first page
    for index in range(1500):
        audited.put(f"images/{index:05d}.jpg", ServerSideEncryption="AES256")
    continued: list[dict[str, Any]] = []
    remaining = iter([120_000, 1_000])
    context = LambdaContext(function_name="audit")
    context.get_remaining_time_in_millis = lambda: next(remaining, 1_000)  # type: ignore[method-assign]
    settings_env = dict(os.environ)
    settings = current_settings(settings_env, account_id=ACCOUNT)
    config = audit.load_config(settings_env)

    # When it runs, stops, and its continuation runs
    first = audit.run(
        scheduled_event(),
        context,
        settings,
        config,
        continue_with=lambda _arn, event: continued.append(event),
    )
    [event] = continued
    second = audit.run(event, LambdaContext(function_name="audit"), settings, config)
    drain_to_verify(audited)

    # Then the first stopped after one page, the second went on from the next page (not from
    # the start), and every object was checked exactly once
    assert (first["status"], first["objects_listed"]) == ("continuing", 1000)
    assert second["objects_listed"] == 1500
    assert calls.log.count("ListObjectsV2") == 2
    assert calls.log.count("HeadObject") == 1500
    [summary] = summaries(audited)
    assert summary["objects"] == 1500


def test_a_failed_training_is_reported_once_and_a_completed_one_never(audited: World) -> None:
    # Given a project with a version that failed for access, one that failed otherwise, one completed
    rekognition = audited.behaviour[RekognitionCustomLabels]
    key = audited.key()
    audited.put("train.manifest", b"{}", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    audited.env_set(TRAINING_PRINCIPALS=TRAINER)
    audited.role("Trainer", "/ml/")
    project = rekognition.create_project("cats")
    failed = rekognition.create_project_version(
        project,
        "v1",
        status="TRAINING_FAILED",
        status_message="The S3 bucket permissions are incorrect for the training manifest.",
        training_manifests=[(BUCKET, "train.manifest")],
    )
    rekognition.create_project_version(project, "v2", status="TRAINING_FAILED", status_message="Internal server error")
    rekognition.create_project_version(project, "v3")

    # When two audits run
    run_audit(audited)
    run_audit(audited)

    # Then the access failure was reported once, with the key and the principal that lacked it
    trainings = [f for f in findings(audited) if f["finding_type"] == "TRAINING_FAILED"]
    assert [(f["resource"], f["severity"]) for f in trainings] == [
        ({"type": "rekognition-project-version", "arn": failed}, "HIGH")
    ]
    assert key in trainings[0]["detail"]
    assert TRAINER in trainings[0]["detail"]


def test_an_unreadable_bucket_is_a_finding_and_the_others_are_still_audited(audited: World, calls: Boundary) -> None:
    # Given two training buckets, the first of which the audit may not list
    audited.s3.create_bucket(Bucket="a-denied-bucket")
    audited.env_set(TRAINING_BUCKETS=f"a-denied-bucket,{BUCKET}")
    audited.put_legacy("old/a.jpg")
    calls.faults.add("ListObjectsV2", "AccessDenied", status=403, times=1)

    # When the audit runs
    run_audit(audited)

    # Then the unreadable bucket is a finding, and the other bucket was audited and fixed
    found = sorted((f["finding_type"], f["resource"]["bucket"]) for f in findings(audited))
    assert found == [("OBJECT_UNENCRYPTED", BUCKET), ("OBJECT_UNVERIFIABLE", "a-denied-bucket")]
    assert audited.head("old/a.jpg")["ServerSideEncryption"] == "AES256"


def test_an_inventory_under_sse_s3_or_kms_spares_the_head_of_sse_s3_objects(audited: World, calls: Boundary) -> None:
    # Given an S3 Inventory report of the bucket: 300 SSE-S3 objects and one NOT-SSE object
    for index in range(300):
        audited.put(f"images/{index:04d}.jpg", ServerSideEncryption="AES256")
    audited.put_legacy("images/old one.jpg")
    rows = [(f"images/{index:04d}.jpg", "SSE-S3") for index in range(300)] + [("images/old one.jpg", "NOT-SSE")]
    audited.env_set(AUDIT_INVENTORY=put_inventory(audited, BUCKET, rows))

    # When the audit runs under SSE_S3_OR_KMS
    run_audit(audited)

    # Then the bucket was not listed, only the NOT-SSE object was inspected, and it was fixed
    assert calls.log.count("HeadObject") == 1 + 1  # the unencrypted one, and again inside its lease
    assert audited.head("images/old one.jpg")["ServerSideEncryption"] == "AES256"
    [summary] = summaries(audited)
    assert summary["objects"] == 301
    bucket_rows = [b for b in report(audited, summary)["buckets"] if b["name"] == BUCKET]
    assert bucket_rows[0]["by_encryption"] == {"SSE-S3": 300, "none": 1}


def test_a_missing_inventory_falls_back_to_listing(audited: World, calls: Boundary) -> None:
    # Given an inventory location that holds no report for the bucket (configured, none delivered yet)
    audited.s3.create_bucket(Bucket="empty-inventory")
    audited.env_set(AUDIT_INVENTORY="s3://empty-inventory/inv")
    put_inventory_configuration(audited, BUCKET)
    audited.put_legacy("old/a.jpg")

    # When the audit runs
    run_audit(audited)

    # Then it listed the bucket instead, fixed the object, and the report says why
    assert audited.head("old/a.jpg")["ServerSideEncryption"] == "AES256"
    [summary] = summaries(audited)
    notes = report(audited, summary)["notes"]
    assert any("no inventory report" in note and "listed instead" in note for note in notes)


def test_an_object_deleted_between_list_and_head_is_skipped(audited: World) -> None:
    # Given an audit whose messages are queued, and an object deleted before they are checked
    audited.put_legacy("old/a.jpg")
    audited.put_legacy("old/b.jpg")
    audit_summary = audit_app_handler(audited)
    audited.s3.delete_object(Bucket=BUCKET, Key="old/a.jpg")

    # When the verify function checks them
    drain_to_verify(audited)

    # Then the deleted object is skipped (counted as gone), the other fixed, and the run completes
    assert audit_summary["status"] == "listed"
    assert [f["resource"]["key"] for f in findings(audited)] == ["old/b.jpg"]
    [summary] = summaries(audited)
    [bucket] = report(audited, summary)["buckets"]
    assert (bucket["objects"], bucket["gone"]) == (1, 1)


def audit_app_handler(world: World) -> dict[str, Any]:
    """The audit function alone (its messages stay queued)."""
    from functions.audit import app  # noqa: PLC0415

    result: dict[str, Any] = app.lambda_handler(scheduled_event(), LambdaContext(function_name="audit"))
    return result


def test_a_throttled_list_continues_in_a_new_invocation(audited: World, calls: Boundary) -> None:
    # Given a listing that is throttled on its first two calls (each after botocore's own retries)
    audited.put_legacy("old/a.jpg")
    calls.faults.add("ListObjectsV2", "SlowDown", status=503, times=2)
    continued: list[dict[str, Any]] = []
    settings = current_settings(dict(os.environ), account_id=ACCOUNT)
    config = audit.load_config(dict(os.environ))

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return audit.run(
            event,
            LambdaContext(function_name="audit"),
            settings,
            config,
            continue_with=lambda _arn, next_event: continued.append(next_event),
        )

    # When the audit runs, and then each continuation it asks for
    results = [invoke(scheduled_event())]
    while continued and len(results) < 5:
        results.append(invoke(continued.pop()))
    drain_to_verify(audited)

    # Then no invocation crashed: two handed over (attempts counted), the third covered the bucket
    assert [r["status"] for r in results] == ["continuing", "continuing", "listed"]
    assert audited.head("old/a.jpg")["ServerSideEncryption"] == "AES256"
    assert len(summaries(audited)) == 1


def test_a_throttled_send_of_the_audit_s_messages_is_not_taken_for_a_listing_failure(
    audited: World, calls: Boundary
) -> None:
    # Given a bucket to audit, and a verify queue whose SendMessage is throttled once (after
    # botocore's own retries): a failure no step of the listing handles
    audited.put_legacy("old/a.jpg")
    calls.faults.add("SendMessage", "ThrottlingException", times=1)
    continued: list[dict[str, Any]] = []
    settings = current_settings(dict(os.environ), account_id=ACCOUNT)
    config = audit.load_config(dict(os.environ))

    # When the audit runs, the error surfaces: the invocation fails, and Lambda's async retry runs it again
    with pytest.raises(Throttled):
        audit.run(
            scheduled_event(),
            LambdaContext(function_name="audit"),
            settings,
            config,
            continue_with=lambda _arn, next_event: continued.append(next_event),
        )

    # Then it did not hand over to a new invocation as for a throttled listing (whose attempts are counted)
    assert continued == []


def test_a_failed_training_s_keys_are_granted_and_the_finding_says_retry(audited: World) -> None:
    # Given a training that failed for access, whose manifest is under a managed key TRAINER lacks
    rekognition = audited.behaviour[RekognitionCustomLabels]
    key = audited.key()
    audited.put("train.manifest", b"{}", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    audited.role("Trainer", "/ml/")
    audited.env_set(TRAINING_PRINCIPALS=TRAINER)
    project = rekognition.create_project("cats")
    rekognition.create_project_version(
        project,
        "v1",
        status="TRAINING_FAILED",
        status_message="Failed to copy images: the images S3 bucket permissions are invalid.",
        training_manifests=[(BUCKET, "train.manifest")],
    )

    # When the audit runs (enforce mode)
    run_audit(audited)

    # Then TRAINER can use the key now, and the finding says the training can be retried
    statement = audited.statement(key, "CustomLabelsGuardTrainingData")
    assert statement is not None
    assert TRAINER in statement["Principal"]["AWS"]
    [training] = [f for f in findings(audited) if f["finding_type"] == "TRAINING_FAILED"]
    assert training["outcome"] == "REMEDIATED"
    assert "retry the training" in training["detail"]


def test_an_audit_message_short_of_time_continues_and_the_run_still_completes(
    audited: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an audit of 6 unencrypted objects whose one message reaches a verify invocation that
    # has time for 2 objects only
    keys = [f"old/{n}.jpg" for n in range(6)]
    for key in keys:
        audited.put_legacy(key)
    audit_app_handler(audited)
    [body] = [m["Body"] for m in audited.drain_queue()]
    checks = iter([False, False])
    monkeypatch.setattr(verify.BatchRun, "_time_short", lambda self: next(checks, True))

    # When it is handled, and then the message it continued in (with time enough)
    assert verify_app.lambda_handler(sqs_event(body), LambdaContext()) == {"batchItemFailures": []}
    [rest] = [m["Body"] for m in audited.drain_queue()]
    monkeypatch.setattr(verify.BatchRun, "_time_short", lambda self: False)
    assert verify_app.lambda_handler(sqs_event(rest), LambdaContext()) == {"batchItemFailures": []}

    # Then the rest went on as the same audit run, every object was fixed once, and the run
    # completed with one summary counting all six
    assert json.loads(rest)["audit_run"] == json.loads(body)["audit_run"]
    assert sorted(f["resource"]["key"] for f in findings(audited)) == sorted(keys)
    [summary] = summaries(audited)
    assert summary["objects"] == 6


def test_a_run_that_never_completed_is_reported_incomplete_by_the_next(audited: World) -> None:
    # Given an audit whose queued checks were lost (e.g. in VerifyDLQ): no summary was published
    audited.put_legacy("old/a.jpg")
    audit_app_handler(audited)
    lost = list(audited.drain_queue())
    assert lost
    assert summaries(audited) == []

    # When the next audit runs
    run_audit(audited)

    # Then the first run is reported too, marked incomplete, and the second one normally
    first, second = summaries(audited)
    assert any("incomplete: 0 of 1 messages" in note for note in report(audited, first)["notes"])
    assert (first["objects"], second["objects"]) == (0, 1)
    assert report(audited, second)["notes"] == []


def test_a_redelivered_scheduled_event_starts_no_second_run(audited: World, calls: Boundary) -> None:
    # Given one firing of the schedule, delivered twice (EventBridge delivers at least once)
    audited.put_legacy("old/a.jpg")
    event = scheduled_event()

    # When both deliveries reach the audit
    first = run_audit(audited, event)
    second = run_audit(audited, event)

    # Then the second does nothing: one listing, one finding, one summary
    assert (first["status"], second["status"]) == ("listed", "duplicate")
    assert calls.log.count("ListObjectsV2") == 1
    assert len(findings(audited)) == 1
    assert len(summaries(audited)) == 1


def _audit_message(key: str) -> str:
    from clguard.boundary import fanout  # noqa: PLC0415
    from clguard.boundary.s3ref import S3ObjectRef  # noqa: PLC0415

    packer = fanout.Packer(
        source_event_id="audit-run1", origin="audit run run1", principals=(), audit_run="run1", bucket=BUCKET
    )
    assert packer.add(S3ObjectRef(BUCKET, key), "state1") is None
    body = packer.flush()
    assert body is not None
    return body


def test_a_change_an_audit_message_made_is_reported_by_its_retry_when_sns_was_down(
    audited: World, calls: Boundary
) -> None:
    # Given an audit page naming a legacy unencrypted object, while SNS and the outbox are down
    audited.put_legacy("old/lost.jpg")
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("PublishBatch", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    body = _audit_message("old/lost.jpg")
    first = verify_app.lambda_handler(sqs_event(body), LambdaContext())

    # When SQS redelivers the message, AWS healthy again
    calls.faults.faults.clear()
    verify_app.lambda_handler(sqs_event(body, receive_count=2), LambdaContext())

    # Then the record failed the first time, and the retry reports the re-encryption it made
    assert first["batchItemFailures"] != []
    assert audited.head("old/lost.jpg")["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"]) for f in findings(audited)] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]


def _failed_training(audited: World) -> str:
    rekognition = audited.behaviour[RekognitionCustomLabels]
    key = audited.key()
    audited.put("train.manifest", b"{}", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    project = rekognition.create_project("cats")
    rekognition.create_project_version(
        project,
        "v1",
        status="TRAINING_FAILED",
        status_message="The S3 bucket permissions are incorrect for the training manifest.",
        training_manifests=[(BUCKET, "train.manifest")],
    )
    return key


def test_a_failed_training_the_guard_did_not_fix_is_not_remediated(audited: World) -> None:
    # Given an access-related failed training, and no TRAINING_PRINCIPALS (the default)
    key = _failed_training(audited)
    before = audited.policy(key)

    # When the audit runs
    run_audit(audited)

    # Then nothing changed, so the finding is REPORTED, and it says why
    [training] = [f for f in findings(audited) if f["finding_type"] == "TRAINING_FAILED"]
    assert audited.policy(key) == before
    assert training["outcome"] == "REPORTED"
    assert "none is set" in training["detail"]


def test_a_failed_training_reported_while_sns_is_down_is_reported_by_the_retry(audited: World, calls: Boundary) -> None:
    # Given an access-related failed training whose data key lacks the training principal, and
    # SNS and the outbox down during the scheduled run
    audited.role("Trainer", "/ml/")
    audited.env_set(TRAINING_PRINCIPALS=TRAINER)
    key = _failed_training(audited)
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("PublishBatch", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    event = scheduled_event()
    with pytest.raises(Exception, match="could not be delivered"):
        run_audit(audited, event)

    # When Lambda retries the same scheduled event, AWS healthy again
    calls.faults.faults.clear()
    run_audit(audited, event)

    # Then the grant made by the first attempt and the failed training are both reported
    reported = {(f["finding_type"], f["outcome"]) for f in findings(audited)}
    assert ("TRAINING_FAILED", "REMEDIATED") in reported
    assert ("KEY_ACCESS_MISSING", "REMEDIATED") in reported
    statement = audited.statement(key, "CustomLabelsGuardTrainingData")
    assert statement is not None
    assert TRAINER in statement["Principal"]["AWS"]
