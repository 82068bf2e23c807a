"""Figures 1 and 4: AWS API calls, counted by a botocore ``before-call`` hook (tests/awscalls.py)
on the session the code under test uses. The benchmark's setup goes through its own clients
(tests.world.World), so only the handlers' calls are counted. moto in process (mock_aws)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

from moto import mock_aws
from moto.s3.models import s3_backends

from bench import cost
from bench.common import (
    TRAINER,
    TRAINER_NAME,
    TRAINER_PATH,
    Figure,
    chunks,
    environment,
    fresh_container,
    granted_policy,
    median,
    new_world,
    ops_text,
    progress,
    quiet,
)
from clguard.adapters import clients
from clguard.usecases import training
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from localaws.doubles import AwsBehaviour, RekognitionCustomLabels, aws_behaviour, dataset_entry
from tests.awscalls import boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, BUCKET, OUTPUT_BUCKET, LambdaContext, World

BATCH = 100
IMAGES = 10_000
SQS_BATCH = 10  # the Lambda SQS event source's default batch size
CPU_ROUNDS = 3
GRANT_CONTEXT = LambdaContext(function_name="grant-training-access")


def compliant_keys(count: int, prefix: str = "datasets/cats/images/bench") -> list[str]:
    return [f"{prefix}-{n:05}.jpg" for n in range(count)]


def trail_put_event(key: str, n: int, answered: dict[str, Any], sse_applied: str) -> dict[str, Any]:
    """The CloudTrail S3 PutObject data event (the other shape the verify function accepts, and
    the one a Cloud Custodian cloudtrail-mode policy consumes) S3 writes for the write it
    ``answered``."""
    return World.data_event(key, answered, sse_applied, event_id=f"bench-trail-{n}")


def compliant_world(count: int) -> tuple[World, list[str], list[dict[str, Any]]]:
    """One managed CMK whose policy already grants TRAINING_PRINCIPALS; ``count`` objects under
    it (with what S3 answered each PutObject)."""
    world = new_world()
    role = world.role(TRAINER_NAME, TRAINER_PATH)
    key = world.key(policy=granted_policy(role))
    keys = compliant_keys(count)
    answers = [world.put(name, ServerSideEncryption="aws:kms", SSEKMSKeyId=key) for name in keys]
    os.environ["TRAINING_PRINCIPALS"] = role
    return world, keys, answers


def cpu_per_event(event: dict[str, Any], count: int, rounds: int = CPU_ROUNDS) -> float:
    """Process CPU seconds per event of the handler on ``event`` (warm: median of ``rounds``).
    With moto in this process, this includes moto serving the handler's calls: an upper bound."""
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        run_verify(event)
        samples.append((time.process_time() - started) / count)
    return median(samples)


def run_verify(event: dict[str, Any]) -> dict[str, Any]:
    with quiet():
        response = verify_app.lambda_handler(event, LambdaContext())
    if response.get("batchItemFailures"):
        raise RuntimeError(f"verify handler failed records: {response['batchItemFailures']}")
    return dict(response)


def compliant_calls(count: int = BATCH) -> Figure:
    """Figure 1: calls per compliant object event, batch of ``count`` under one CMK."""
    progress(f"figure 1: AWS calls for a batch of {count} compliant objects (moto in process)")
    with environment(), mock_aws(), aws_behaviour():
        fresh_container()
        world, keys, _answers = compliant_world(count)
        created = sqs_event(*(World.object_created(k) for k in keys))
        with boundary() as b:
            fresh_container(b.session)  # a new container: no cached clients or key knowledge
            run_verify(created)
            cold = Counter(b.log.by_operation())
            cold_calls = Counter(b.log.calls)
            b.log.clear()
            run_verify(created)  # the same container, next batch (key knowledge cached, TTL 60 s)
            warm = Counter(b.log.by_operation())
            cpu = cpu_per_event(created, count)
        published = len(world.published())
        fresh_container()
    if published:
        raise RuntimeError(f"compliant objects published {published} findings")
    value = cold.total() / count
    return Figure(
        "calls_per_compliant_event",
        f"AWS calls per compliant object event (batch of {count}, one CMK, TRAINING_PRINCIPALS granted)",
        value,
        f"{value:.2f}",
        1.05,
        "≤ 1.05",
        detail=f"new container: {cold.total()} calls ({ops_text(cold)}); warm container, next batch: "
        f"{warm.total() / count:.2f}/event ({ops_text(warm)}); handler CPU {cpu * 1000:.2f} ms/event (warm)",
        data={
            "events": count,
            "calls_new_container": cold.total(),
            "by_operation_new_container": dict(cold),
            "calls_warm_container": warm.total(),
            "by_operation_warm_container": dict(warm),
            "calls_by_service_operation": {f"{svc}:{op}": n for (svc, op), n in cold_calls.items()},
            "cpu_seconds_per_event": cpu,
            "findings_published": published,
            "path": "S3 Object Created events, one CMK, TRAINING_PRINCIPALS granted",
        },
    )


# --- figures 1b, 1c: CloudTrail data events decide from their records ---------------------------


def trail_calls(count: int = BATCH, *, sse_s3: bool) -> Figure:
    """Calls per compliant object for a batch of ``count`` CloudTrail PutObject data events whose
    records say what S3 applied: under one granted CMK (goal: key reads only, ≤ 0.03), or SSE-S3
    under SSE_S3_OR_KMS (goal 0.00)."""
    what = "SSE-S3 objects under SSE_S3_OR_KMS" if sse_s3 else "one CMK, TRAINING_PRINCIPALS granted"
    progress(f"figure 1: AWS calls for {count} CloudTrail PutObject data events, {what} (moto in process)")
    with environment(), mock_aws(), aws_behaviour():
        fresh_container()
        if sse_s3:
            world = new_world()
            keys = compliant_keys(count)
            answers = [world.put(name) for name in keys]  # the bucket default: SSE-S3
            applied = "Default_SSE_S3"
        else:
            world, keys, answers = compliant_world(count)
            applied = "SSE_KMS"
        trail = sqs_event(
            *(trail_put_event(k, n, a, applied) for n, (k, a) in enumerate(zip(keys, answers, strict=True)))
        )
        with boundary() as b:
            fresh_container(b.session)  # a new container
            run_verify(trail)
            ops = Counter(b.log.by_operation())
            calls = Counter(b.log.calls)
            b.log.clear()
            cpu = cpu_per_event(trail, count)
        published = len(world.published())
        fresh_container()
    if published:
        raise RuntimeError(f"compliant objects published {published} findings")
    value = ops.total() / count
    goal, goal_text = (0.0, "0.00") if sse_s3 else (0.03, "≤ 0.03")
    return Figure(
        "calls_per_compliant_trail_event_sse_s3" if sse_s3 else "calls_per_compliant_trail_event_cmk",
        f"AWS calls per compliant object, batch of {count} CloudTrail PutObject data events, {what}",
        value,
        f"{value:.2f}",
        goal,
        goal_text,
        detail=f"new container: {ops.total()} calls ({ops_text(ops) or 'none'}): the record names the "
        f"encryption S3 applied, so no HeadObject; handler CPU {cpu * 1000:.2f} ms/event (warm)",
        data={
            "events": count,
            "calls_new_container": ops.total(),
            "by_operation_new_container": dict(ops),
            "calls_by_service_operation": {f"{svc}:{op}": n for (svc, op), n in calls.items()},
            "cpu_seconds_per_event": cpu,
            "findings_published": published,
            "path": f"CloudTrail PutObject data events, {what}",
        },
    )


def cost_figures(measured: list[Figure]) -> list[Figure]:
    """Information rows: dollars per million compliant object events, per path measured above."""
    deployment = cost.verify_deployment()
    rows = []
    for figure in measured:
        count = figure.data["events"]
        per_event = {
            tuple(name.split(":", 1)): n / count for name, n in figure.data["calls_by_service_operation"].items()
        }
        price = cost.per_million(per_event, figure.data["cpu_seconds_per_event"], deployment)
        trail = figure.key.startswith("calls_per_compliant_trail_event")
        extra = (
            f"; the trail's data events themselves: ${cost.CLOUDTRAIL_DATA_EVENT * 1e6:.2f}/M (CloudTrail, paid "
            "for the trail whether or not the guard reads it)"
            if trail
            else ""
        )
        parts = price.as_dict()
        rows.append(
            Figure(
                f"cost_per_million_{figure.key.removeprefix('calls_per_')}",
                f"Cost model: USD per million compliant object events — {figure.data['path']}",
                price.total,
                f"${price.total:.2f}",
                detail=f"AWS calls ${parts['aws_calls']:.3f} + Lambda requests ${parts['lambda_requests']:.3f} "
                f"(batch {deployment.batch_size}) + Lambda {deployment.architecture} duration "
                f"${parts['lambda_duration']:.3f} ({deployment.memory_mb} MB × "
                f"{figure.data['cpu_seconds_per_event'] * 1000:.2f} ms CPU/event) + SQS delivery "
                f"${parts['sqs_delivery']:.3f} (1.2 requests/event); us-east-1 list prices of {cost.PRICES_AS_OF} "
                f"(bench/README.md){extra}",
                data={
                    "from_figure": figure.key,
                    "usd_per_million": parts,
                    "calls_per_event": {f"{s}:{o}": n for (s, o), n in per_event.items()},
                    "cpu_seconds_per_event": figure.data["cpu_seconds_per_event"],
                    "memory_mb": deployment.memory_mb,
                    "architecture": deployment.architecture,
                    "batch_size": deployment.batch_size,
                    "prices_as_of": cost.PRICES_AS_OF,
                },
            )
        )
    return rows


# --- figure 4: the grant path with a large manifest -------------------------------------------


def manifest_line(bucket: str, key: str) -> str:
    return json.dumps({"source-ref": f"s3://{bucket}/{key}", "cat": 1}, separators=(",", ":"))


def grant_world(
    images: int, *, granted: bool, datasets: AwsBehaviour | None = None
) -> tuple[World, dict[str, Any], list[str]]:
    """Two managed CMKs; ``images`` images split across them (alternating); a manifest listing
    them all under key A; KmsKeyId = key A; the output bucket's default encryption = key B.
    ``granted``: the caller is already in both keys' policies (training data + copied images).
    ``datasets`` (the doubles in use): no manifest; the images are the entries of the project's
    TRAIN (80 %) and TEST (20 %) datasets, and the request names no manifest."""
    world = new_world()
    role = world.role(TRAINER_NAME, TRAINER_PATH)
    assert role == TRAINER
    doc = granted_policy(role, copied_images=True) if granted else None
    key_a, key_b = world.key(policy=doc), world.key(policy=doc)
    # Setup straight into moto's S3 backend: 10,000 PutObject calls through HTTP would only
    # measure the benchmark's own setup. The objects are what PutObject with SSE-KMS stores.
    backend = s3_backends[ACCOUNT]["aws"]
    names = compliant_keys(images, "datasets/big/images/img")
    for n, name in enumerate(names):
        backend.put_object(BUCKET, name, b"image", encryption="aws:kms", kms_key_id=(key_a, key_b)[n % 2])
    world.s3.put_bucket_encryption(
        Bucket=OUTPUT_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_b}}]
        },
    )
    kind = "datasets" if datasets is not None else "manifest"
    event_id = f"bench-grant-{kind}-{'granted' if granted else 'first'}"
    if datasets is not None:
        rekognition = datasets[RekognitionCustomLabels]
        project = rekognition.create_project("big")
        cut = images * 4 // 5
        rekognition.create_dataset(project, "TRAIN", [dataset_entry(BUCKET, n) for n in names[:cut]])
        rekognition.create_dataset(project, "TEST", [dataset_entry(BUCKET, n) for n in names[cut:]])
        event = world.training_event("cloudtrail_create_project_version_datasets", kms_key=key_a, event_id=event_id)
        event["detail"]["requestParameters"]["ProjectArn"] = project
        return world, event, [key_a, key_b]
    manifest_key = "datasets/big/train.manifest"
    body = "\n".join(manifest_line(BUCKET, name) for name in names).encode()
    world.put(manifest_key, body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_a)
    event = world.training_event(kms_key=key_a, event_id=event_id)
    params = event["detail"]["requestParameters"]
    params["TrainingData"]["Assets"][0]["GroundTruthManifest"]["S3Object"]["Name"] = manifest_key
    params["TestingData"] = {"AutoCreate": True}
    return world, event, [key_a, key_b]


def grant_path(images: int = IMAGES, *, granted: bool = True, datasets: bool = False) -> dict[str, Any]:
    """Run the grant function on the event, then drain the verify queue through the verify
    function (batches of 10, a separate container), counting each function's calls."""
    with environment(), mock_aws(), aws_behaviour() as behaviour:
        fresh_container()
        world, event, keys = grant_world(images, granted=granted, datasets=behaviour if datasets else None)
        with boundary() as b:
            fresh_container(b.session)
            with quiet():
                summary = grant_app.lambda_handler(event, GRANT_CONTEXT)
            grant_ops = Counter(b.log.by_operation())
        bodies = [m["Body"] for m in world.drain_queue()]  # the benchmark's receive: not counted
        objects = sum(len(json.loads(body).get("objects", [])) for body in bodies)
        with boundary() as b:
            fresh_container(b.session)  # the verify function runs in its own containers
            invocations = 0
            for batch in chunks(bodies, SQS_BATCH):
                run_verify(sqs_event(*batch))
                invocations += 1
            verify_ops = Counter(b.log.by_operation())
        findings = [(f["finding_type"], f["outcome"]) for f in world.findings()]
        fresh_container()
    clients.reset()
    return {
        "images": images,
        "keys": len(keys),
        "inline_limit": training.INLINE_IMAGE_LIMIT,
        "grant_calls": grant_ops.total(),
        "grant_by_operation": dict(grant_ops),
        "fanout_messages": summary.get("fanout_messages"),
        "fanout_objects": objects,
        "verify_invocations": invocations,
        "verify_calls": verify_ops.total(),
        "verify_by_operation": dict(verify_ops),
        "total_calls": grant_ops.total() + verify_ops.total(),
        "summary_status": summary.get("status"),
        "summary_keys": summary.get("keys"),
        "objects_checked_inline": summary.get("objects_checked"),
        "findings": [list(f) for f in findings],
    }


def grant_figure(images: int = IMAGES) -> Figure:
    progress(f"figure 4: grant path, {images:,}-image manifest under 2 CMKs, caller granted (moto in process)")
    d = grant_path(images, granted=True)
    goal = images + 20
    return Figure(
        "grant_path_calls",
        f"Grant path: AWS calls for CreateProjectVersion, {images:,}-image manifest under 2 CMKs, caller granted "
        "(grant function + verify function on its fan-out)",
        float(d["total_calls"]),
        f"{d['total_calls']:,}",
        float(goal),
        f"≤ {goal:,}",
        detail=f"inline (grant function): {d['grant_calls']} ({ops_text(d['grant_by_operation'])}); "
        f"fan-out: {d['fanout_messages']} messages, {d['fanout_objects']:,} objects, {d['verify_invocations']} "
        f"verify invocation(s): {d['verify_calls']:,} ({ops_text(d['verify_by_operation'])}); "
        f"findings: {len(d['findings'])}",
        data=d,
    )


DATASET_PAGE = 100  # ListDatasetEntries' maximum page size


def dataset_grant_figure(images: int = IMAGES) -> Figure:
    progress(f"figure 4: grant path, dataset-only training, {images:,} entries under 2 CMKs, caller granted")
    d = grant_path(images, granted=True, datasets=True)
    goal = images + 120  # one HeadObject per image plus the pages (and the few per-key calls)
    pages = d["grant_by_operation"].get("ListDatasetEntries", 0)
    return Figure(
        "grant_path_calls_datasets",
        f"Grant path: AWS calls for a dataset-only CreateProjectVersion (TRAIN + TEST datasets), {images:,} entries "
        "under 2 CMKs, caller granted (grant function + verify function on its fan-out)",
        float(d["total_calls"]),
        f"{d['total_calls']:,}",
        float(goal),
        f"≤ {goal:,}",
        detail=f"inline (grant function): {d['grant_calls']} ({ops_text(d['grant_by_operation'])}); "
        f"{pages} ListDatasetEntries pages of ≤ {DATASET_PAGE}; "
        f"fan-out: {d['fanout_messages']} messages, {d['fanout_objects']:,} objects, {d['verify_invocations']} "
        f"verify invocation(s): {d['verify_calls']:,} ({ops_text(d['verify_by_operation'])}); "
        f"findings: {len(d['findings'])}",
        data=d,
    )


def first_grant_figure(images: int = IMAGES) -> Figure:
    progress(f"info: grant path, {images:,}-image manifest, caller NOT yet granted on the 2 CMKs")
    d = grant_path(images, granted=False)
    published = Counter(f"{t} {o}" for t, o in d["findings"])
    return Figure(
        "grant_path_calls_first_grant",
        f"Grant path, caller NOT yet granted on the 2 CMKs (first-time grants), {images:,} images",
        float(d["total_calls"]),
        f"{d['total_calls']:,}",
        detail=f"inline (grant function): {d['grant_calls']} ({ops_text(d['grant_by_operation'])}); "
        f"fan-out: {d['verify_calls']:,} ({ops_text(d['verify_by_operation'])}); "
        f"published: {ops_text(published) or 'nothing'}",
        data=d,
    )
