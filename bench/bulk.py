"""Figure 14: bulk re-encryption on S3 Batch Operations (``clguard.usecases.bulkremediation``).

50,000 unencrypted objects in one bucket, an S3 Inventory report saying so, enforce mode with the
default threshold (10,000): the audit writes one manifest and creates one job; S3 runs it (the
``S3BatchJobs`` double, ``localaws/doubles/s3control.py``: copies in moto's S3, a completion report with the
failed tasks, here 10); the next audit reconciles the report. Counted: every AWS call the audit
function makes in both runs (moto in process, calls counted on the code's own session,
tests/awscalls.py), divided by the objects re-encrypted in bulk. The job's own copies are S3's,
not Lambda's. Anchor: the per-object path makes at least 3 calls per such object (HeadObject,
CopyObject, the verify message), plus the findings.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from moto import mock_aws
from moto.s3.models import s3_backends

from bench.common import Figure, environment, fresh_container, new_world, progress, quiet
from functions.audit import app as audit_app
from localaws.doubles import aws_behaviour, legacy_unencrypted_objects
from localaws.doubles.s3control import S3BatchJobs
from tests.auditrun import REPORTS, put_inventory, scheduled_event
from tests.awscalls import boundary
from tests.world import ACCOUNT, BUCKET, LambdaContext

OBJECTS = 50_000
FAILING = 10
GOAL = 0.01
ROLE = f"arn:aws:iam::{ACCOUNT}:role/clguard-bulk-reencrypt"
CONTEXT = LambdaContext(function_name="audit", remaining_ms=900_000)


def bulk_calls(objects: int = OBJECTS) -> dict[str, Any]:
    with environment(), mock_aws(), aws_behaviour() as behaviour:
        fresh_container()
        world = new_world(AUDIT_REPORTS=f"s3://{REPORTS}/audit-reports", BULK_REENCRYPT_ROLE=ROLE)
        world.s3.create_bucket(Bucket=REPORTS)
        backend = s3_backends[ACCOUNT]["aws"]
        keys = [f"datasets/cats/images/cat-{n:06d}.jpg" for n in range(objects)]
        with legacy_unencrypted_objects(BUCKET):
            for key in keys:
                backend.put_object(BUCKET, key, b"image")
        os.environ["AUDIT_INVENTORY"] = put_inventory(world, BUCKET, [(key, "NOT-SSE") for key in keys])
        jobs: S3BatchJobs = behaviour[S3BatchJobs]
        for key in keys[:FAILING]:
            jobs.fail(BUCKET, key)
        ops: Counter[str] = Counter()
        cpu = 0.0
        for run in ("creates the job", "reconciles its report"):
            with boundary() as b:
                fresh_container(b.session)
                started = time.process_time()
                with quiet():
                    audit_app.lambda_handler(scheduled_event(), CONTEXT)
                cpu += time.process_time() - started
                ops.update(f"{s}:{o}" for s, o in b.log.calls)
            if run == "creates the job":
                jobs.finish_all()
        messages = len(list(world.drain_queue()))
        [job] = jobs.jobs.values()
        stored = [backend.get_object(BUCKET, key) for key in keys]
        encrypted = len([o for o in stored if o is not None and o.encryption == "AES256"])
        findings = [p.finding for p in world.published() if "message_kind" not in p.attributes]
        fresh_container()
    if jobs.created != 1 or messages or job.succeeded != objects - FAILING or encrypted != objects - FAILING:
        raise RuntimeError(f"bulk: {jobs.created} jobs, {messages} verify messages, {job.succeeded} succeeded")
    return {
        "objects": objects,
        "jobs": jobs.created,
        "lambda_calls": ops.total(),
        "calls_by_service_operation": dict(ops),
        "succeeded": job.succeeded,
        "failed": job.failed,
        "findings": len(findings),
        "verify_messages": messages,
        "cpu_seconds": cpu,
    }


def bulk_figures() -> list[Figure]:
    progress(f"figure 14: bulk re-encryption of {OBJECTS:,} objects on S3 Batch Operations (the S3BatchJobs double)")
    data = bulk_calls()
    ratio = data["lambda_calls"] / data["objects"]
    return [
        Figure(
            "bulk_lambda_calls_per_object",
            "Bulk re-encryption: Lambda-side AWS calls per object",
            ratio,
            f"{ratio:.5f}",
            GOAL,
            f"≤ {GOAL}",
            detail=(
                f"{data['lambda_calls']} calls for {OBJECTS:,} objects in one bucket over two audits "
                f"(one job; {data['failed']} failed tasks -> {data['findings']} findings); the per-object "
                "path: ≥ 3 per object"
            ),
            data=data,
        )
    ]
