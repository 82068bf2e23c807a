"""Bulk re-encryption on S3 Batch Operations (docs/architecture.md §3, "Bulk re-encryption").

When the audit reads a bucket's S3 Inventory and finds more objects to re-encrypt than
``BULK_REENCRYPT_THRESHOLD`` (default 10,000), it does not send them to the verify queue one by
one: it writes them to a Batch Operations manifest (``S3BatchOperations_CSV_20180820``: Bucket,
Key, keys URL-encoded) under the audit's reports location (``<AUDIT_REPORTS>/bulk-reencryption/``,
SSE-S3), and

- in enforce mode creates one S3 Batch Operations job per manifest (``S3PutObjectCopy`` in place
  with the target encryption, ``ConfirmationRequired=false``, a ``FailedTasksOnly`` completion
  report, the job's own role ``BULK_REENCRYPT_ROLE``), with a ClientRequestToken derived from the
  run, the bucket and the manifest's number, so a retried audit creates no second job; its one
  finding per bucket and job (``REPORTED``: the change has not taken effect yet) names the job;
- in report mode reports the job it would create (one finding per bucket and manifest).

Only what the inventory settles is collected: ``NOT-SSE`` and (under ``SSE_KMS``) ``SSE-S3`` rows
with a safe target (``rules.encryption.assess``); everything else goes through the verify queue.
A bucket with at most the threshold of such objects keeps the per-object path.

The next run reconciles each job (``state.bulkjobs``) before the bucket is read again: a job still
running keeps the bucket's candidates out of new jobs; a finished job's completion report turns
each failed task into a ``FAILED`` finding (at most ``MAX_FAILURE_FINDINGS`` per job, the rest
counted in one), and its succeeded tasks into one ``REMEDIATED`` finding for the bucket and job.

Memory stays bounded: a manifest holds at most ``MANIFEST_LINES`` objects (then the next job
starts); what is collected before the threshold is decided is kept, when the invocation runs short
of time, in a carry object read back by the continuation.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, unquote

from clguard.adapters import s3, s3batch
from clguard.boundary.config import Settings
from clguard.errors import ConfigError
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.reporting.publisher import Publisher
from clguard.rules.arns import parse_key_arn
from clguard.rules.encryption import Encryption, ObjectEncryption, assess
from clguard.state import bulkjobs

DEFAULT_THRESHOLD: Final = 10_000
MAX_THRESHOLD: Final = 100_000  # what is collected before the decision is held in memory
MANIFEST_LINES: Final = 500_000  # objects per job manifest (then the next job)
MAX_FAILURE_FINDINGS: Final = 100  # per job; the rest are counted in one finding
REPORT_LIMIT: Final = 64 * 1024**2
_INVENTORY_KINDS: Final = {"NOT-SSE": Encryption.NONE, "SSE-S3": Encryption.SSE_S3}


@dataclass(frozen=True, slots=True)
class BulkConfig:
    """BULK_REENCRYPT_THRESHOLD (objects per bucket above which a job re-encrypts them) and
    BULK_REENCRYPT_ROLE (the job's role; without it, enforce mode keeps the per-object path)."""

    threshold: int = DEFAULT_THRESHOLD
    role_arn: str | None = None


def load_config(env: Mapping[str, str]) -> BulkConfig:
    raw = env.get("BULK_REENCRYPT_THRESHOLD", "").strip() or str(DEFAULT_THRESHOLD)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_THRESHOLD:
        raise ConfigError("BULK_REENCRYPT_THRESHOLD", f"{raw!r} is not a whole number from 1 to {MAX_THRESHOLD}")
    role = env.get("BULK_REENCRYPT_ROLE", "").strip() or None
    if role is not None and not (role.startswith("arn:") and ":iam::" in role and ":role/" in role):
        raise ConfigError("BULK_REENCRYPT_ROLE", f"{role!r} is not an IAM role ARN")
    return BulkConfig(int(raw), role)


@dataclass(frozen=True, slots=True)
class Candidate:
    key: str
    state: str
    finding_type: str
    target: ObjectEncryption


def candidate(settings: Settings, key: str, state: str, inventory_encryption: str) -> Candidate | None:
    """An object the inventory says needs re-encryption with a safe target (else None)."""
    kind = _INVENTORY_KINDS.get(inventory_encryption)
    if kind is None:
        return None
    assessment = assess(ObjectEncryption(kind), settings)
    if assessment.remediation is None or assessment.finding_type is None:
        return None
    return Candidate(key, state, assessment.finding_type, assessment.remediation.target)


def manifest_line(bucket: str, key: str) -> str:
    """One manifest row: the key URL-encoded (as S3 Batch Operations requires), so no comma, quote,
    line break or non-ASCII character reaches the CSV."""
    return f"{bucket},{quote(key, safe='/')}\n"


@dataclass(slots=True)
class BulkRemediation:
    """One invocation's bulk collection, one bucket at a time (the lister's hook)."""

    settings: Settings
    config: BulkConfig
    reports_bucket: str
    reports_prefix: str
    run_id: str
    publisher: Publisher
    bucket: str = ""
    busy: tuple[str, ...] = ()  # jobs still running on this bucket
    collected: list[Candidate] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)  # the cursor's share: count, segment, carry
    tally: Counter[str] = field(default_factory=Counter)  # objects left to jobs, as the run counts them

    @property
    def root(self) -> str:
        return f"{self.reports_prefix}bulk-reencryption/"

    def enabled(self) -> bool:
        return not self.settings.enforce or self.config.role_arn is not None

    # --- the lister's calls ----------------------------------------------------------------------

    def begin(self, bucket: str, progress: dict[str, Any], inventory_created: str = "") -> None:
        """Before reading ``bucket`` (again, in a continuation: ``progress`` from the cursor) from
        an inventory report created at ``inventory_created`` (epoch milliseconds, as S3 writes it)."""
        self.bucket, self.progress, self.collected = bucket, progress, []
        carry = progress.get("carry")
        if isinstance(carry, str) and carry:
            data = json.loads(s3.get_bytes(self.reports_bucket, carry, limit=REPORT_LIMIT))
            self.collected = [Candidate(k, s, t, ObjectEncryption(Encryption(e), a)) for k, s, t, e, a in data]
            progress["carry"] = ""
        if "busy" in progress:
            self.busy = tuple(progress["busy"])
        else:
            running, settled_at = self.reconcile(bucket)
            created = int(inventory_created) / 1000 if inventory_created.isdigit() else 0.0
            # An inventory older than the last job's settling still shows what that job changed.
            self.busy = running or (("settled",) if created < settled_at else ())
            progress["busy"] = list(self.busy)

    def take(self, found: Candidate) -> bool:
        """True: collected for a job (or left to a running job); False: the per-object path."""
        if not self.enabled():
            return False
        self.progress["count"] = int(self.progress.get("count", 0)) + 1
        if self.busy:
            count("BulkLeftToRunningJob")
            self._count(found)
            return True
        self.collected.append(found)
        if len(self.collected) >= MANIFEST_LINES:
            self._job()
        return True

    def stop(self, position: str) -> None:
        """The invocation runs short of time: a bucket past the threshold gets its job for what is
        collected; below it, what is collected waits in a carry object for the continuation."""
        if not self.collected:
            return
        if self._past_threshold():
            self._job()
            return
        key = f"{self.root}carry/{self.run_id}/{self.bucket}/{position}.json"
        rows = [[c.key, c.state, c.finding_type, c.target.kind.value, c.target.kms_key_arn] for c in self.collected]
        s3.put_object(self.reports_bucket, key, json.dumps(rows).encode(), "application/json")
        self.progress["carry"] = key
        self.collected = []

    def end(self, offer: Callable[[Candidate], None]) -> None:
        """The bucket is read: at most the threshold -> each object through ``offer`` (the verify
        queue); more -> the last job."""
        if self._past_threshold():
            if self.collected:
                self._job()
        else:
            for found in self.collected:
                offer(found)
        self.collected = []

    def _count(self, found: Candidate) -> None:
        kind = Encryption.NONE if found.finding_type == "OBJECT_UNENCRYPTED" else Encryption.SSE_S3
        self.tally[f"n|{self.bucket}|{kind.value}|{found.finding_type}"] += 1

    def _past_threshold(self) -> bool:
        return int(self.progress.get("segment", 0)) > 0 or int(self.progress.get("count", 0)) > self.config.threshold

    # --- one job ---------------------------------------------------------------------------------

    def _job(self) -> None:
        segment = int(self.progress.get("segment", 0))
        self.progress["segment"] = segment + 1
        objects, self.collected = self.collected, []
        for found in objects:
            self._count(found)
        body = "".join(manifest_line(self.bucket, c.key) for c in objects).encode()
        digest = hashlib.sha256(body).hexdigest()
        manifest = f"{self.root}manifests/{self.run_id}/{self.bucket}/{segment:05d}.csv"
        etag = s3.put_object(self.reports_bucket, manifest, body, "text/csv").strip('"')
        # One target for every candidate: the settings' (rules.encryption: the re-encryption key, or SSE-S3).
        target = objects[0].target
        types = sorted({c.finding_type for c in objects})
        name = f"{segment}:{target.describe()}"
        account = self.settings.account_id
        where = f"s3://{self.reports_bucket}/{manifest}"
        what = f"{len(objects)} objects of bucket {self.bucket} need re-encryption ({', '.join(types)})"
        finding_type = FindingType.OBJECT_UNENCRYPTED if "OBJECT_UNENCRYPTED" in types else FindingType(types[0])
        if not self.settings.enforce or self.config.role_arn is None:
            count("BulkJobsReported")
            self._publish(
                finding_type,
                Outcome.REPORTED,
                f"{what}; in enforce mode one S3 Batch Operations job would re-encrypt them in place with "
                f"{target.describe()} (manifest {where})",
                scope=f"audit:bulk:{digest}",
            )
            return
        token = hashlib.sha256(f"{account}|{self.bucket}|{self.run_id}|{name}".encode()).hexdigest()[:64]
        entries, settled_at = bulkjobs.load(self.settings.state_table, account, self.bucket)
        if token not in entries and len(entries) >= bulkjobs.MAX_JOBS:
            count("BulkJobsBounded")
            logger.warning("too many unsettled bulk jobs on this bucket", extra={"bucket": self.bucket})
            self._publish(
                finding_type,
                Outcome.REPORTED,
                f"{what}; bucket {self.bucket} already has {bulkjobs.MAX_JOBS} S3 Batch Operations jobs not yet "
                "settled, so no job was created for them: a later audit will, once those settle",
                scope=f"audit:bulk:{digest}",
            )
            return
        entry = entries.setdefault(
            token, {"count": len(objects), "manifest": where, "reported": False, "run": self.run_id}
        )
        entry.update(target=target.kms_key_arn or "", types=types, etag=etag, key=manifest)
        bulkjobs.save(self.settings.state_table, account, self.bucket, entries, settled_at)  # write-ahead
        self._create_and_report(token, entry, etag, manifest)
        bulkjobs.save(self.settings.state_table, account, self.bucket, entries, settled_at)

    def _request(self, token: str, entry: Mapping[str, Any], etag: str, manifest: str) -> s3batch.JobRequest:
        assert self.config.role_arn is not None  # only called in enforce mode with a role
        return s3batch.JobRequest(
            account=self.settings.account_id,
            token=token,
            manifest_bucket=self.reports_bucket,
            manifest_key=manifest,
            manifest_etag=etag,
            report_bucket=self.reports_bucket,
            report_prefix=f"{self.root}reports",
            role_arn=self.config.role_arn,
            target_bucket=self.bucket,
            kms_key_arn=str(entry.get("target") or "") or None,
            description=f"Custom Labels Guard audit {self.run_id}: re-encrypt {entry['count']} objects",
        )

    def _create_and_report(self, token: str, entry: dict[str, Any], etag: str, manifest: str) -> None:
        job_id = s3batch.create_job(self._request(token, entry, etag, manifest))
        entry["job_id"] = job_id
        count("BulkJobsCreated")
        self._report_created(entry)

    def _report_created(self, entry: dict[str, Any]) -> None:
        types = list(entry.get("types") or ["OBJECT_UNENCRYPTED"])
        finding_type = FindingType.OBJECT_UNENCRYPTED if "OBJECT_UNENCRYPTED" in types else FindingType(types[0])
        target = f"SSE-KMS with {entry['target']}" if entry.get("target") else "SSE-S3"
        self._publish(
            finding_type,
            Outcome.REPORTED,
            f"{entry['count']} objects of bucket {self.bucket} need re-encryption ({', '.join(types)}): they are "
            f"being re-encrypted in place with {target} by S3 Batch Operations job {entry['job_id']} "
            f"(manifest {entry['manifest']}); the next audit reports its result",
            scope=f"bulk-job:{entry['job_id']}",
            key=str(entry.get("target") or "") or None,
        )
        entry["reported"] = True

    def _publish(
        self, finding_type: FindingType, outcome: Outcome, detail: str, *, scope: str, key: str | None = None
    ) -> None:
        from clguard.boundary.s3ref import S3ObjectRef  # noqa: PLC0415

        self.publisher.publish(
            Finding(
                finding_type=finding_type,
                outcome=outcome,
                resource=S3ObjectRef(self.bucket, ""),
                detail=detail,
                source_event_id=f"audit-{self.run_id}",
                account=self.settings.account_id,
                region=self.settings.region,
                kms_key_arn=key if key and parse_key_arn(key) else None,
                scope=scope,
            )
        )

    # --- the next run: reconcile -------------------------------------------------------------------

    def reconcile(self, bucket: str) -> tuple[tuple[str, ...], float]:
        """Settle the bucket's finished jobs; the ids of those still running, and when the last
        job was settled."""
        account = self.settings.account_id
        entries, settled_at = bulkjobs.load(self.settings.state_table, account, bucket)
        if not entries:
            return (), settled_at
        running: list[str] = []
        for token, entry in sorted(entries.items()):
            if not entry.get("job_id") and self.settings.enforce and self.config.role_arn and entry.get("etag"):
                self._create_and_report(token, entry, str(entry["etag"]), str(entry["key"]))
            if not entry.get("job_id"):
                entries.pop(token)  # never created (its write-ahead only): the objects are found again
                continue
            if not entry.get("reported"):
                self._report_created(entry)
            state = s3batch.describe_job(account, str(entry["job_id"]))
            if not state.done:
                running.append(state.job_id)
                continue
            self._settle(entry, state)
            entries.pop(token)
            settled_at = time.time()
        bulkjobs.save(self.settings.state_table, account, bucket, entries, settled_at)
        return tuple(running), settled_at

    def _settle(self, entry: Mapping[str, Any], state: s3batch.JobState) -> None:
        job = state.job_id
        failures = self._failures(job)
        types = list(entry.get("types") or ["OBJECT_UNENCRYPTED"])
        finding_type = FindingType.OBJECT_UNENCRYPTED if "OBJECT_UNENCRYPTED" in types else FindingType(types[0])
        from clguard.boundary.s3ref import S3ObjectRef  # noqa: PLC0415

        for key, code, message in failures[:MAX_FAILURE_FINDINGS]:
            count("BulkTasksFailed")
            self.publisher.publish(
                Finding(
                    finding_type=finding_type,
                    outcome=Outcome.FAILED,
                    resource=S3ObjectRef(self.bucket, key),
                    detail=f"S3 Batch Operations job {job} could not re-encrypt this object: {code} {message}".strip(),
                    source_event_id=f"audit-{self.run_id}",
                    account=self.settings.account_id,
                    region=self.settings.region,
                    scope=f"bulk-job:{job}:failed",
                )
            )
        rest = max(state.failed, len(failures)) - min(len(failures), MAX_FAILURE_FINDINGS)
        if rest > 0 or (state.status != "Complete" and not failures):
            reasons = "; ".join(state.reasons)[:500]
            self._publish(
                finding_type,
                Outcome.FAILED,
                f"S3 Batch Operations job {job} ended {state.status}: {rest} more objects were not re-encrypted "
                f"(its completion report names them){': ' + reasons if reasons else ''}",
                scope=f"bulk-job:{job}:failed-rest",
            )
        if state.succeeded:
            count("BulkTasksSucceeded", state.succeeded)
            self._publish(
                finding_type,
                Outcome.REMEDIATED,
                f"{state.succeeded} objects of bucket {self.bucket} were re-encrypted in place by S3 Batch "
                f"Operations job {job} (of {state.total}; {state.failed} failed)",
                scope=f"bulk-job:{job}:done",
            )

    def _failures(self, job: str) -> list[tuple[str, str, str]]:
        """(key, error code, message) of each failed task, from the job's completion report."""
        root = f"{self.root}reports/job-{job}"
        try:
            report = json.loads(s3.get_bytes(self.reports_bucket, f"{root}/manifest.json"))
        except Exception as error:  # noqa: BLE001 - no report (a job that failed before any task): counted
            logger.warning("no completion report", extra={"job": job, "error": str(error)})
            return []
        out: list[tuple[str, str, str]] = []
        for result in report.get("Results") or ():
            if result.get("TaskExecutionStatus") != "failed" or result.get("Bucket") != self.reports_bucket:
                continue
            key = str(result.get("Key", ""))
            if not key.startswith(f"{root}/results/"):
                continue  # the report names only its own files
            text = s3.get_bytes(self.reports_bucket, key, limit=REPORT_LIMIT).decode("utf-8", "replace")
            for row in csv.reader(io.StringIO(text)):
                if len(row) >= 7 and row[0] == self.bucket:
                    # ErrorCode and HTTPStatusCode: the documented schema and example differ in order
                    code = row[5] if row[4].isdigit() else row[4]
                    out.append((unquote(row[1]), code[:100], row[6][:300]))
                    if len(out) > MAX_FAILURE_FINDINGS:
                        return out
        return out
