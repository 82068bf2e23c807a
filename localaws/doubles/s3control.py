"""S3 Batch Operations jobs, which moto does not implement at all (the ``S3BatchJobs`` double).

What it stands for, as documented (S3 User Guide, "Performing object operations in bulk with
Batch Operations"; S3 Control API ``CreateJob``/``DescribeJob``):

- ``POST /v20180820/jobs`` (``CreateJob``) on the account's ``s3-control`` endpoint: a job with an
  ``Operation`` (here ``S3PutObjectCopy``, the copy in place with ``NewObjectMetadata.SSEAlgorithm``
  and ``SSEAwsKmsKeyId``), a ``Manifest`` (``S3BatchOperations_CSV_20180820`` with ``Fields``
  Bucket, Key[, VersionId]; object keys URL-encoded) located by ``ObjectArn`` and ``ETag`` (a
  manifest whose ETag differs is refused), a ``Report`` (``Report_CSV_20180820``, ``AllTasks`` or
  ``FailedTasksOnly``) and a ``RoleArn``. ``ClientRequestToken`` is the idempotency token: the same
  token returns the same job id, and no second job.
- Job states: ``New`` -> ``Preparing`` (manifest read) -> ``Ready`` -> ``Active`` (tasks run) ->
  ``Complete`` (or ``Failed`` when the manifest cannot be read). ``ConfirmationRequired=false``
  runs without a confirmation. Each ``DescribeJob`` (``GET /v20180820/jobs/{id}``) advances a
  job by one state (``finish_all()`` runs every job to its end): jobs are asynchronous in AWS.
- Tasks copy each object in place with moto's S3 (the copy's new encryption), and a task fails
  when its object is missing or was marked by ``fail(bucket, key, code)``.
- The completion report, as documented ("Examples: S3 Batch Operations completion reports"):
  ``<Prefix>/job-<id>/manifest.json`` (``Format``, ``ReportCreationDate``, ``Results`` with
  ``TaskExecutionStatus``, ``Bucket``, ``Key``, ``MD5Checksum``, and ``ReportSchema`` "Bucket, Key,
  VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage") and the result CSV files
  under ``<Prefix>/job-<id>/results/``, one for succeeded and one for failed tasks.

Not modelled: priorities, pausing and cancelling, other operations, the role's permissions (the
template's role is checked by the infrastructure tests, not here).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import hashlib
import io
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import patch
from urllib.parse import quote, unquote

import xmltodict  # type: ignore[import-untyped]
from moto.s3.models import s3_backends
from moto.s3control import urls as s3control_urls

from localaws.doubles.base import Double

STATES = ("New", "Preparing", "Ready", "Active", "Complete")
_NS = "http://awss3control.amazonaws.com/doc/2018-08-20/"
Response = tuple[int, dict[str, Any], str]


@dataclass(slots=True)
class Job:
    job_id: str
    account: str
    request: dict[str, Any]
    status: str = "New"
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    failure_reasons: list[str] = field(default_factory=list)


def _error(status: int, code: str, message: str) -> Response:
    body = f"<ErrorResponse><Error><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
    return status, {"Content-Type": "application/xml"}, body


def _s3(account: str) -> Any:
    return s3_backends[account]["aws"]


def _arn_bucket(arn: str) -> tuple[str, str]:
    """``arn:aws:s3:::bucket/key`` -> (bucket, key); ``arn:aws:s3:::bucket`` -> (bucket, "")."""
    bucket, _, key = arn.split(":::", 1)[1].partition("/")
    return bucket, key


class S3BatchJobs(Double):
    """S3 Batch Operations ``CreateJob``/``DescribeJob`` with documented job states, manifest and
    completion-report formats (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        self._failing: dict[tuple[str, str], str] = {}
        self.created = 0  # CreateJob calls that created a job (not idempotent replays)

    # --- test controls -------------------------------------------------------------------------

    def fail(self, bucket: str, key: str, code: str = "AccessDenied") -> None:
        """The task of ``bucket``/``key`` fails with ``code`` (HTTP 403)."""
        with self._lock:
            self._failing[(bucket, key)] = code

    def finish_all(self) -> None:
        """Run every job to its end state, as S3 would in time."""
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            while job.status not in ("Complete", "Failed"):
                self._advance(job)

    # --- the API -------------------------------------------------------------------------------

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield patch.dict(
            s3control_urls.url_paths,
            {
                "{0}/v20180820/jobs$": self._jobs,
                "{0}/v20180820/jobs/(?P<id>[^/]+)$": self._job,
            },
        )

    def _jobs(self, request: Any, full_url: str, headers: Any) -> Response:
        if request.method != "POST":
            return _error(501, "NotImplemented", "ListJobs is not modelled")
        account = str(headers.get("x-amz-account-id", ""))
        data = request.get_data() if hasattr(request, "get_data") else request.body
        body = data.decode() if isinstance(data, bytes) else str(data or "")
        parsed = xmltodict.parse(body, force_list=("member",))["CreateJobRequest"]
        token = str(parsed.get("ClientRequestToken") or "")
        if not token or str(parsed.get("ConfirmationRequired", "")).lower() not in ("false", "true"):
            return _error(400, "InvalidRequest", "ClientRequestToken and ConfirmationRequired are required")
        location = parsed["Manifest"]["Location"]
        bucket, key = _arn_bucket(str(location["ObjectArn"]))
        try:
            manifest = _s3(account).get_object(bucket, key)
        except Exception:  # noqa: BLE001 - moto raises its own NoSuchBucket/NoSuchKey
            manifest = None
        if manifest is None:
            return _error(400, "InvalidRequest", "Reading the manifest failed: the object does not exist")
        if manifest.etag.strip('"') != str(location["ETag"]).strip('"'):
            return _error(400, "InvalidRequest", "Reading the manifest failed: the ETag does not match")
        with self._lock:
            existing = self._tokens.get((account, token))
            if existing is None:
                existing = str(uuid.uuid4())
                self._tokens[(account, token)] = existing
                self.jobs[existing] = Job(existing, account, parsed)
                self.created += 1
        result = f'<CreateJobResult xmlns="{_NS}"><JobId>{existing}</JobId></CreateJobResult>'
        return 200, {"Content-Type": "application/xml"}, result

    def _job(self, request: Any, full_url: str, headers: Any) -> Response:
        job_id = unquote(full_url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[1])
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None or job.account != str(headers.get("x-amz-account-id", "")):
            return _error(404, "NoSuchJob", f"The specified job {job_id} does not exist")
        self._advance(job)
        document = {
            "DescribeJobResult": {
                "@xmlns": _NS,
                "Job": {
                    "JobId": job.job_id,
                    "Status": job.status,
                    "ConfirmationRequired": job.request.get("ConfirmationRequired"),
                    "RoleArn": job.request.get("RoleArn"),
                    "Report": job.request.get("Report"),
                    "ProgressSummary": {
                        "TotalNumberOfTasks": job.total,
                        "NumberOfTasksSucceeded": job.succeeded,
                        "NumberOfTasksFailed": job.failed,
                    },
                    "FailureReasons": {"member": [{"FailureReason": r} for r in job.failure_reasons]}
                    if job.failure_reasons
                    else None,
                },
            }
        }
        return 200, {"Content-Type": "application/xml"}, xmltodict.unparse(document)

    # --- running a job -------------------------------------------------------------------------

    def _advance(self, job: Job) -> None:
        if job.status in ("Complete", "Failed"):
            return
        next_state = STATES[STATES.index(job.status) + 1]
        if next_state == "Complete":
            self._run(job)
            if job.status == "Failed":
                return
        job.status = next_state

    def _tasks(self, job: Job) -> list[tuple[str, str, str]]:
        spec = job.request["Manifest"]["Spec"]
        fields = spec.get("Fields", {}).get("member", ["Bucket", "Key"])
        bucket, key = _arn_bucket(str(job.request["Manifest"]["Location"]["ObjectArn"]))
        text = _s3(job.account).get_object(bucket, key).value.decode()
        tasks = []
        for record in csv.reader(io.StringIO(text)):
            values = dict(zip(fields, record, strict=False))
            tasks.append((values.get("Bucket", ""), unquote(values.get("Key", "")), values.get("VersionId", "")))
        return tasks

    def _run(self, job: Job) -> None:
        try:
            tasks = self._tasks(job)
        except Exception as error:  # noqa: BLE001 - a manifest S3 cannot read fails the job
            job.status = "Failed"
            job.failure_reasons.append(f"Reading the manifest failed: {error}")
            return
        copy = job.request["Operation"]["S3PutObjectCopy"]
        metadata = copy.get("NewObjectMetadata") or {}
        algorithm = {"KMS": "aws:kms", "AES256": "AES256"}.get(str(metadata.get("SSEAlgorithm", "")))
        kms_key = copy.get("SSEAwsKmsKeyId")
        s3 = _s3(job.account)
        rows: dict[str, list[list[str]]] = {"succeeded": [], "failed": []}
        for bucket, key, version in tasks:
            code = self._failing.get((bucket, key))
            source = None
            if code is None:
                try:
                    source = s3.get_object(bucket, key, version_id=version or None)
                except Exception:  # noqa: BLE001
                    source = None
                code = None if source is not None else "NoSuchKey"
            if code is not None or source is None:
                status = "403" if code == "AccessDenied" else "404"
                rows["failed"].append([bucket, quote(key), version, "failed", code or "", status, f"{code}"])
                continue
            s3.copy_object(source, bucket, key, encryption=algorithm, kms_key_id=kms_key, mdirective="COPY")
            rows["succeeded"].append([bucket, quote(key), version, "succeeded", "", "200", "Successful"])
        job.total, job.succeeded, job.failed = len(tasks), len(rows["succeeded"]), len(rows["failed"])
        self._report(job, rows)

    def _report(self, job: Job, rows: dict[str, list[list[str]]]) -> None:
        report = job.request.get("Report") or {}
        if str(report.get("Enabled", "")).lower() != "true":
            return
        bucket, _ = _arn_bucket(str(report["Bucket"]))
        root = f"{str(report.get('Prefix') or '').strip('/')}/job-{job.job_id}".lstrip("/")
        failed_only = report.get("ReportScope") == "FailedTasksOnly"
        s3 = _s3(job.account)
        results = []
        for status, lines in rows.items():
            if not lines or (failed_only and status == "succeeded"):
                continue
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(lines)
            data = text.getvalue().encode()
            key = f"{root}/results/{hashlib.sha1(data).hexdigest()}.csv"  # noqa: S324 - a name, as S3's
            s3.put_object(bucket, key, data, encryption="AES256")
            results.append(
                {
                    "TaskExecutionStatus": status,
                    "Bucket": bucket,
                    "MD5Checksum": hashlib.md5(data).hexdigest(),  # noqa: S324 - the documented checksum
                    "Key": key,
                }
            )
        manifest = {
            "Format": "Report_CSV_20180820",
            "ReportCreationDate": datetime.datetime.now(datetime.UTC).isoformat(),
            "Results": results,
            "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage",
        }
        s3.put_object(bucket, f"{root}/manifest.json", json.dumps(manifest).encode(), encryption="AES256")
