"""S3 Batch Operations (the S3 Control API): create one copy-in-place job, read its state.

The job re-encrypts the objects of a manifest in place (``S3PutObjectCopy`` with the target
encryption), with its own role, and writes a completion report of its failed tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from clguard.adapters.clients import aws, client

# S3 Batch Operations are authorized as S3 actions (s3:CreateJob, s3:DescribeJob); handing the job
# its role needs iam:PassRole on exactly that role.
IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "CreateJob": ("s3:CreateJob", "iam:PassRole"),
    "DescribeJob": ("s3:DescribeJob",),
}

MANIFEST_FORMAT: Final = "S3BatchOperations_CSV_20180820"
REPORT_FORMAT: Final = "Report_CSV_20180820"
DONE: Final = frozenset({"Complete", "Failed", "Cancelled"})


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One copy-in-place job: ``kms_key_arn`` None means SSE-S3."""

    account: str
    token: str  # ClientRequestToken: a retried request returns the same job
    manifest_bucket: str
    manifest_key: str
    manifest_etag: str
    report_bucket: str
    report_prefix: str
    role_arn: str
    target_bucket: str
    kms_key_arn: str | None
    description: str


@dataclass(frozen=True, slots=True)
class JobState:
    job_id: str
    status: str
    total: int
    succeeded: int
    failed: int
    reasons: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.status in DONE


def _arn(bucket: str, key: str = "") -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")


@aws
def create_job(request: JobRequest) -> str:
    """The job id (the same one again for a request with the same token)."""
    metadata: dict[str, Any] = {"SSEAlgorithm": "KMS" if request.kms_key_arn else "AES256"}
    copy: dict[str, Any] = {
        "TargetResource": _arn(request.target_bucket),
        "MetadataDirective": "COPY",
        "NewObjectMetadata": metadata,
    }
    if request.kms_key_arn:
        copy["SSEAwsKmsKeyId"] = request.kms_key_arn
        copy["BucketKeyEnabled"] = True
    response = client("s3control").create_job(
        AccountId=request.account,
        ConfirmationRequired=False,
        ClientRequestToken=request.token,
        Operation={"S3PutObjectCopy": copy},
        Manifest={
            "Spec": {"Format": MANIFEST_FORMAT, "Fields": ["Bucket", "Key"]},
            "Location": {
                "ObjectArn": _arn(request.manifest_bucket, request.manifest_key),
                "ETag": request.manifest_etag,
            },
        },
        Report={
            "Bucket": _arn(request.report_bucket),
            "Format": REPORT_FORMAT,
            "Enabled": True,
            "Prefix": request.report_prefix,
            "ReportScope": "FailedTasksOnly",
        },
        Priority=10,
        RoleArn=request.role_arn,
        Description=request.description[:256],
    )
    return str(response["JobId"])


@aws
def describe_job(account: str, job_id: str) -> JobState:
    job = client("s3control").describe_job(AccountId=account, JobId=job_id)["Job"]
    progress = job.get("ProgressSummary") or {}
    reasons = tuple(str(r.get("FailureReason", "")) for r in job.get("FailureReasons") or ())
    return JobState(
        job_id=job_id,
        status=str(job.get("Status", "")),
        total=int(progress.get("TotalNumberOfTasks", 0)),
        succeeded=int(progress.get("NumberOfTasksSucceeded", 0)),
        failed=int(progress.get("NumberOfTasksFailed", 0)),
        reasons=reasons,
    )
