"""Bulk re-encryption on S3 Batch Operations (clguard.usecases.bulkremediation): past the
threshold, one job per bucket instead of a copy per object; findings per bucket and job; the next
run reconciles the job's completion report."""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import pytest

from clguard.boundary.config import current_settings
from clguard.state import bulkjobs
from clguard.usecases import audit, auditlist, bulkremediation
from functions.audit import app as audit_app
from localaws.doubles.s3control import S3BatchJobs
from tests.auditrun import REPORTS, drain_to_verify, findings, put_inventory, run_audit, scheduled_event
from tests.awscalls import Boundary
from tests.integration.test_declared_actions import declared
from tests.world import ACCOUNT, BUCKET, LambdaContext, World


class Died(Exception):
    """The runtime ended (timeout, out of memory) at this point."""


ROLE = f"arn:aws:iam::{ACCOUNT}:role/clguard-bulk-reencrypt"
THRESHOLD = 20


def _bucket_of(world: World, count: int, *, prefix: str = "old/", extra: list[str] | None = None) -> list[str]:
    """``count`` unencrypted objects (and ``extra`` keys), with the bucket's inventory saying so."""
    keys = [f"{prefix}{index:05d}.jpg" for index in range(count)] + list(extra or [])
    for key in keys:
        world.put_legacy(key)
    world.env_set(AUDIT_INVENTORY=put_inventory(world, BUCKET, [(key, "NOT-SSE") for key in keys]))
    return keys


@pytest.fixture
def bulk(audited: World) -> S3BatchJobs:
    audited.env_set(BULK_REENCRYPT_THRESHOLD=str(THRESHOLD), BULK_REENCRYPT_ROLE=ROLE)
    jobs: S3BatchJobs = audited.behaviour[S3BatchJobs]
    return jobs


def _objects_findings(world: World) -> list[dict[str, Any]]:
    return [f for f in findings(world) if f["resource"]["type"] == "s3-object"]


def test_at_the_threshold_each_object_is_remediated_on_its_own(audited: World, bulk: S3BatchJobs) -> None:
    # Given exactly THRESHOLD unencrypted objects in one bucket
    keys = _bucket_of(audited, THRESHOLD)
    # When the audit runs
    run_audit(audited)
    # Then no job was created, and each object was re-encrypted and reported on its own
    assert bulk.created == 0
    assert all(audited.head(key)["ServerSideEncryption"] == "AES256" for key in keys)
    assert len([f for f in findings(audited) if f["outcome"] == "REMEDIATED"]) == THRESHOLD


def test_past_the_threshold_one_job_re_encrypts_them_and_one_finding_names_it(
    audited: World, bulk: S3BatchJobs
) -> None:
    # Given one more unencrypted object than the threshold
    keys = _bucket_of(audited, THRESHOLD + 1)
    # When the audit runs (enforce mode)
    run_audit(audited)
    # Then one job was created, nothing was copied by Lambda, and one finding names the job
    assert bulk.created == 1
    [job] = bulk.jobs.values()
    assert audited.head(keys[0]).get("ServerSideEncryption") is None  # the job has not run yet
    [finding] = findings(audited)
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_UNENCRYPTED", "REPORTED")
    assert finding["resource"] == {"type": "s3-object", "bucket": BUCKET, "key": "", "version_id": None}
    assert f"job {job.job_id}" in finding["detail"]
    assert f"{THRESHOLD + 1} objects" in finding["detail"]
    # And the job is what the documented request asks: copy in place, SSE-S3, no confirmation, its role
    copy = job.request["Operation"]["S3PutObjectCopy"]
    assert copy["TargetResource"] == f"arn:aws:s3:::{BUCKET}"
    assert copy["NewObjectMetadata"]["SSEAlgorithm"] == "AES256"
    assert (job.request["ConfirmationRequired"], job.request["RoleArn"]) == ("false", ROLE)
    assert job.request["Report"]["Format"] == "Report_CSV_20180820"
    # And the manifest is encrypted, under the reports location
    location = job.request["Manifest"]["Location"]["ObjectArn"].removeprefix("arn:aws:s3:::")
    bucket, _, key = location.partition("/")
    assert bucket == REPORTS
    assert key.startswith("audit-reports/bulk-reencryption/manifests/")
    assert audited.s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"


def test_the_next_run_reconciles_the_report_failures_become_findings(audited: World, bulk: S3BatchJobs) -> None:
    # Given a job created by an audit, whose task for one object fails
    keys = _bucket_of(audited, THRESHOLD + 5)
    run_audit(audited)
    bulk.fail(BUCKET, keys[3], "AccessDenied")
    bulk.finish_all()
    before = len(findings(audited))
    # When the next audit runs (its inventory still lists the objects as they were)
    run_audit(audited)
    # Then the failed task is a FAILED finding on its object, the others settle in one REMEDIATED finding
    new = findings(audited)[before:]
    failed = [f for f in new if f["outcome"] == "FAILED"]
    assert [(f["resource"]["key"], f["finding_type"]) for f in failed] == [(keys[3], "OBJECT_UNENCRYPTED")]
    assert "AccessDenied" in failed[0]["detail"]
    [done] = [f for f in new if f["outcome"] == "REMEDIATED"]
    assert done["resource"]["key"] == ""
    assert f"{THRESHOLD + 4} objects" in done["detail"]
    assert audited.head(keys[0])["ServerSideEncryption"] == "AES256"
    # And the inventory, older than the job's end, starts no second job for what the job changed
    assert bulk.created == 1


def test_a_job_still_running_gets_no_second_job(audited: World, bulk: S3BatchJobs) -> None:
    # Given a job created by an audit and still running
    _bucket_of(audited, THRESHOLD + 1)
    run_audit(audited)
    # When the next audit runs before it finished
    run_audit(audited)
    # Then no second job is created and nothing more is reported
    assert bulk.created == 1
    assert len(findings(audited)) == 1


def test_a_job_created_but_not_reported_is_reported_by_the_next_attempt_and_not_created_again(
    audited: World, bulk: S3BatchJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an audit invocation that dies after CreateJob, before its finding is published
    _bucket_of(audited, THRESHOLD + 1)

    original = bulkremediation.BulkRemediation._report_created

    def dies(self: Any, entry: dict[str, Any]) -> None:
        raise Died

    monkeypatch.setattr(bulkremediation.BulkRemediation, "_report_created", dies)
    with pytest.raises(Died):
        run_audit(audited)
    assert bulk.created == 1
    assert findings(audited) == []
    # When the audit runs again
    monkeypatch.setattr(bulkremediation.BulkRemediation, "_report_created", original)
    run_audit(audited)
    # Then the job is reported, once, and no second job exists (same ClientRequestToken)
    assert bulk.created == 1
    [finding] = findings(audited)
    assert f"job {next(iter(bulk.jobs))}" in finding["detail"]


def test_report_mode_reports_the_job_it_would_create(audited: World, bulk: S3BatchJobs) -> None:
    # Given report mode and more unencrypted objects than the threshold
    audited.env_set(REMEDIATION_MODE="report")
    keys = _bucket_of(audited, THRESHOLD + 1)
    # When two audits run
    run_audit(audited)
    run_audit(audited)
    # Then no job exists, nothing changed, and one finding (once) says what job would run
    assert bulk.created == 0
    assert audited.head(keys[0]).get("ServerSideEncryption") is None
    [finding] = findings(audited)
    assert finding["outcome"] == "REPORTED"
    assert "would re-encrypt" in finding["detail"]
    assert f"{THRESHOLD + 1} objects" in finding["detail"]


HOSTILE = ["a,b.jpg", 'quote"d.jpg', "new\nline.jpg", "ünï/çødé 猫.jpg", "plus+sign %41.jpg", "  spaced  .jpg"]


def test_hostile_keys_survive_the_manifest_and_are_re_encrypted(audited: World, bulk: S3BatchJobs) -> None:
    # Given keys with commas, quotes, line breaks, non-ASCII, '+' and '%' among the objects of a job
    keys = _bucket_of(audited, THRESHOLD, extra=[f"hostile/{k}" for k in HOSTILE])
    # When the audit creates its job and S3 runs it
    run_audit(audited)
    bulk.finish_all()
    # Then the manifest has one URL-encoded row per object (no CSV metacharacter inside a key)
    [job] = bulk.jobs.values()
    location = job.request["Manifest"]["Location"]["ObjectArn"].removeprefix(f"arn:aws:s3:::{REPORTS}/")
    text = audited.s3.get_object(Bucket=REPORTS, Key=location)["Body"].read().decode("ascii")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == len(keys)
    assert all(len(row) == 2 and row[0] == BUCKET for row in rows)
    # And every object, hostile ones included, was re-encrypted in place
    assert all(audited.head(key)["ServerSideEncryption"] == "AES256" for key in keys)
    assert job.succeeded == len(keys)
    assert job.failed == 0


def test_a_bucket_past_the_threshold_is_collected_across_continuations(
    audited: World, bulk: S3BatchJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a threshold of 1,500 and 1,800 unencrypted objects, and an audit invocation that runs
    # short of time at the inventory's row 1,000 (below the threshold: nothing decided yet)
    audited.env_set(BULK_REENCRYPT_THRESHOLD="1500")
    keys = _bucket_of(audited, 1800)
    stops: list[int] = []

    def time_short(self: auditlist.Lister) -> bool:
        if self.cursor.inventory_row == 1000 and not stops:
            stops.append(self.cursor.inventory_row)
            return True
        return False

    monkeypatch.setattr(auditlist.Lister, "time_short", time_short)
    continued: list[dict[str, Any]] = []
    settings = current_settings(dict(os.environ), account_id=ACCOUNT)
    config = audit.load_config(dict(os.environ))
    context = LambdaContext(function_name="audit")
    first = audit.run(
        scheduled_event(), context, settings, config, continue_with=lambda _arn, event: continued.append(event)
    )
    assert first["status"] == "continuing"
    assert bulk.created == 0
    # When the continuation finishes the bucket
    audit.run(continued[0], context, settings, config)
    drain_to_verify(audited)
    # Then one job covers every object, the ones read before the stop included
    assert bulk.created == 1
    bulk.finish_all()
    [job] = bulk.jobs.values()
    assert job.total == job.succeeded == len(keys)


def test_every_call_of_the_bulk_path_is_declared_for_the_audit_and_few_per_object(
    audited: World, bulk: S3BatchJobs, calls: Boundary
) -> None:
    # Given a bucket past the threshold, a first audit that creates its job, and the job run by S3
    keys = _bucket_of(audited, THRESHOLD * 10)
    calls.log.clear()
    audit_app.lambda_handler(scheduled_event(), LambdaContext(function_name="audit"))
    first = list(calls.log.calls)
    bulk.fail(BUCKET, keys[0])
    bulk.finish_all()
    # When the next audit reconciles its completion report
    calls.log.clear()
    audit_app.lambda_handler(scheduled_event(), LambdaContext(function_name="audit"))
    second = list(calls.log.calls)
    # Then every AWS call both made is one the audit declares (and the template grants)
    made = set(first) | set(second)
    assert ("s3control", "CreateJob") in made
    assert ("s3control", "DescribeJob") in made
    assert made - declared("audit") == set()
    # And the job was handed to S3 with no per-object call in Lambda
    assert calls.log.count("CopyObject") == 0
    assert ("s3", "HeadObject") not in first


def test_a_bucket_at_its_bound_of_unsettled_jobs_gets_no_new_job_and_a_finding_says_so(
    audited: World, bulk: S3BatchJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bucket past the threshold whose record of unsettled jobs is full (bound lowered to 0)
    monkeypatch.setattr(bulkjobs, "MAX_JOBS", 0)
    _bucket_of(audited, THRESHOLD + 1)
    # When the audit runs
    run_audit(audited)
    # Then no job is created, and the objects are not silently dropped: one finding names them
    assert bulk.created == 0
    [finding] = findings(audited)
    assert finding["outcome"] == "REPORTED"
    assert "no job was created" in finding["detail"]
    assert f"{THRESHOLD + 1} objects" in finding["detail"]
