"""The S3BatchJobs double (localaws/doubles/s3control.py) behaves as S3 Batch Operations is documented to,
and moto alone has no jobs at all."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localaws.doubles.s3control import S3BatchJobs

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/batch"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        control = boto3.client("s3control", region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        s3.create_bucket(Bucket="reports")
        yield s3, control


def _job(s3: Any, control: Any, token: str = "t1", etag: str | None = None) -> str:
    body = b"data,a%2Cb.jpg\ndata,gone.jpg\n"
    put = s3.put_object(Bucket="reports", Key="m.csv", Body=body)
    response = control.create_job(
        AccountId=ACCOUNT,
        ConfirmationRequired=False,
        ClientRequestToken=token,
        Operation={
            "S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::data", "NewObjectMetadata": {"SSEAlgorithm": "AES256"}}
        },
        Manifest={
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": "arn:aws:s3:::reports/m.csv", "ETag": etag or put["ETag"].strip('"')},
        },
        Report={
            "Bucket": "arn:aws:s3:::reports",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "Prefix": "rep",
            "ReportScope": "AllTasks",
        },
        Priority=1,
        RoleArn=ROLE,
    )
    return str(response["JobId"])


def test_moto_alone_has_no_batch_jobs(aws: tuple[Any, Any]) -> None:
    s3, control = aws
    with pytest.raises(ClientError):
        _job(s3, control)


def test_a_job_goes_through_the_documented_states_copies_and_reports(aws: tuple[Any, Any]) -> None:
    # Given one object of a two-line manifest (the other is missing) and a job on it
    s3, control = aws
    s3.put_object(Bucket="data", Key="a,b.jpg", Body=b"x")
    with S3BatchJobs():
        job = _job(s3, control)
        # When its state is read until it ends
        states = [control.describe_job(AccountId=ACCOUNT, JobId=job)["Job"]["Status"] for _ in range(5)]
        final = control.describe_job(AccountId=ACCOUNT, JobId=job)["Job"]
    # Then it went New -> Preparing -> Ready -> Active -> Complete, the copy landed, the missing one failed
    assert states == ["Preparing", "Ready", "Active", "Complete", "Complete"]
    assert (final["ProgressSummary"]["NumberOfTasksSucceeded"], final["ProgressSummary"]["NumberOfTasksFailed"]) == (
        1,
        1,
    )
    assert s3.head_object(Bucket="data", Key="a,b.jpg")["ServerSideEncryption"] == "AES256"
    # And the completion report is the documented manifest.json with one CSV per task status
    report = json.loads(s3.get_object(Bucket="reports", Key=f"rep/job-{job}/manifest.json")["Body"].read())
    assert report["Format"] == "Report_CSV_20180820"
    assert report["ReportSchema"] == "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    by_status = {r["TaskExecutionStatus"]: r["Key"] for r in report["Results"]}
    failed = s3.get_object(Bucket="reports", Key=by_status["failed"])["Body"].read().decode()
    assert next(iter(csv.reader(io.StringIO(failed))))[:5] == ["data", "gone.jpg", "", "failed", "NoSuchKey"]


def test_the_same_token_is_the_same_job_and_a_wrong_etag_is_refused(aws: tuple[Any, Any]) -> None:
    s3, control = aws
    with S3BatchJobs() as jobs:
        first, again = _job(s3, control), _job(s3, control)
        other = _job(s3, control, token="t2")
        with pytest.raises(ClientError, match="ETag"):
            _job(s3, control, token="t3", etag="0" * 32)
    assert first == again != other
    assert jobs.created == 2
