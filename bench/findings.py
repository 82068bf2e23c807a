"""Figure 16: findings in bulk. SNS calls for the machine (alerts) topic when one audit finds a
burst of violations, with the findings sent in PublishBatch requests, side by side with the same
run sent one finding per call (the anchor: the publisher's requests cut to one entry, the call count
of the one-Publish-per-finding path); Security Hub's imports and the digest's messages for people
for the same burst.

The burst: an audit in report mode (the template's default) of N legacy unencrypted objects (written
into moto's S3 backend, setup, not counted), with SECURITY_HUB=on; the audit function lists and fans
out, the verify function checks its messages in batches of 10 (moto in process, calls counted on the
code's own session, tests/awscalls.py). The topic's messages are then delivered to the digest as its
queue's raw subscription would (records of up to 10,000) and its Publish calls to the human topic
counted.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any
from unittest.mock import patch

from moto import mock_aws
from moto.s3.models import s3_backends

from bench.calls import SQS_BATCH, run_verify
from bench.common import Figure, chunks, environment, fresh_container, new_world, progress, quiet
from clguard.rules import snsbatches
from functions.audit import app as audit_app
from localaws.doubles import aws_behaviour, legacy_unencrypted_objects
from localaws.runtime import esm_batches
from tests.auditrun import REPORTS, scheduled_event
from tests.awscalls import boundary
from tests.eventsamples import sqs_event, sqs_record
from tests.world import ACCOUNT, BUCKET, REGION, LambdaContext, World

BURST = 10_000
ANCHOR = 1_000  # the anchor's audit (one call per finding: N + 1 calls) is measured on fewer objects: time
AUDIT_CONTEXT = LambdaContext(function_name="audit", remaining_ms=900_000)
DIGEST_BATCH = 10_000  # DigestQueueEventSource BatchSize in template.yaml
DIGEST_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:custom-labels-guard-DigestQueue"


def burst_world(objects: int) -> World:
    world = new_world(AUDIT_REPORTS=f"s3://{REPORTS}/audit-reports", REMEDIATION_MODE="report", SECURITY_HUB="on")
    world.s3.create_bucket(Bucket=REPORTS)
    import boto3  # noqa: PLC0415

    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    backend = s3_backends[ACCOUNT]["aws"]
    with legacy_unencrypted_objects(BUCKET, "datasets/"):
        for n in range(objects):
            backend.put_object(BUCKET, f"datasets/cats/images/cat-{n:06d}.jpg", b"image")
    return world


def human_messages(world: World) -> tuple[int, int]:
    """The digest's Publish calls for the alerts topic's findings (raw SQS delivery), and its
    failed records."""
    from functions.digest import app as digest_app  # noqa: PLC0415

    records = []
    for n, published in enumerate(p for p in world.published() if "message_kind" not in p.attributes):
        record = sqs_record(published.structure["default"], queue_arn=DIGEST_QUEUE_ARN)
        record["messageId"] = f"burst-{n}"
        record["messageAttributes"] = {
            name: {"stringValue": value["Value"], "dataType": value["Type"]}
            for name, value in published.attributes.items()
        }
        records.append(record)
    topic = world.sns.create_topic(Name="custom-labels-guard-HumanTopic")["TopicArn"]
    os.environ["HUMAN_TOPIC_ARN"] = topic
    with boundary() as b, quiet():
        fresh_container(b.session)
        responses = [
            digest_app.lambda_handler({"Records": list(batch)}, LambdaContext(function_name="digest"))
            for batch in esm_batches(records, batch_size=DIGEST_BATCH)
        ]
        sent = b.log.count("Publish")
    return sent, sum(len(r["batchItemFailures"]) for r in responses)


def burst(objects: int, *, entries: int) -> dict[str, Any]:
    """The audit of ``objects`` unencrypted objects, the publisher's requests cut to ``entries``."""
    with (
        environment(),
        mock_aws(),
        aws_behaviour(),
        patch.object(snsbatches, "MAX_ENTRIES", entries),
    ):
        fresh_container()
        world = burst_world(objects)
        started = time.perf_counter()
        with boundary() as b:
            fresh_container(b.session)
            with quiet():
                audit_app.lambda_handler(scheduled_event(), AUDIT_CONTEXT)
            bodies = [m["Body"] for m in world.drain_queue()]  # the Lambda poller's receive: not counted
            for batch in chunks(bodies, SQS_BATCH):
                run_verify(sqs_event(*batch))
            ops = Counter(b.log.by_operation())
        seconds = time.perf_counter() - started
        published = world.published()
        findings = [p for p in published if "message_kind" not in p.attributes]
        distinct = {json.loads(p.structure["default"])["resource"]["key"] for p in findings}
        people, failed = human_messages(world) if entries > 1 else (0, 0)
        fresh_container()
    if len(findings) != objects or len(distinct) != objects:
        raise RuntimeError(
            f"{objects} unencrypted objects: {len(findings)} findings on the topic, {len(distinct)} distinct"
        )
    return {
        "objects": objects,
        "entries_per_request": entries,
        "sns_calls": ops["PublishBatch"] + ops["Publish"],
        "publish_batch": ops["PublishBatch"],
        "publish": ops["Publish"],
        "security_hub_imports": ops["BatchImportFindings"],
        "messages_on_topic": len(published),
        "human_messages": people,
        "digest_failed_records": failed,
        "seconds": seconds,
    }


def findings_figures(objects: int = BURST, anchor: int = ANCHOR) -> list[Figure]:
    progress(f"figure 16: an audit finding {objects:,} unencrypted objects, findings in PublishBatch requests")
    batched = burst(objects, entries=snsbatches.MAX_ENTRIES)
    progress(f"figure 16: the anchor, one finding per SNS call ({anchor:,} objects)")
    single = burst(anchor, entries=1)
    ratio = (batched["sns_calls"] / objects) / (single["sns_calls"] / anchor)
    return [
        Figure(
            "machine_topic_sns_calls_per_burst",
            f"Findings in bulk: SNS calls for the alerts topic, an audit finding {objects:,} unencrypted objects "
            "(report mode), findings in PublishBatch requests (anchor: the same audit with one finding per call)",
            float(batched["sns_calls"]),
            f"{batched['sns_calls']:,} ({batched['sns_calls'] / objects:.4f} per finding; anchor "
            f"{single['sns_calls'] / anchor:.4f}: ratio {ratio:.3f})",
            1_001.0,
            "≤ 1,001",
            detail=f"{batched['publish_batch']:,} PublishBatch + {batched['publish']} Publish (the run's summary) "
            f"for {batched['messages_on_topic']:,} messages, one per finding; anchor: the same audit of "
            f"{anchor:,} objects with one-entry requests, {single['publish_batch']:,} + {single['publish']} Publish "
            f"for {single['messages_on_topic']:,} messages; audit + verify {batched['seconds']:.0f} s "
            f"({objects:,}) and {single['seconds']:.0f} s ({anchor:,})",
            data={"batched": batched, "single": single},
        ),
        Figure(
            "security_hub_imports_per_burst",
            f"Findings in bulk: Security Hub BatchImportFindings calls for the same {objects:,} findings",
            float(batched["security_hub_imports"]),
            f"{batched['security_hub_imports']:,}",
            101.0,
            "≤ 101",
            data={"imports": batched["security_hub_imports"], "anchor_imports": single["security_hub_imports"]},
        ),
        Figure(
            "human_messages_per_audit_burst",
            f"Findings in bulk: messages for people for the same {objects:,} findings (the digest)",
            float(batched["human_messages"]),
            f"{batched['human_messages']}",
            5.0,
            "≤ 5",
            data={"human_messages": batched["human_messages"], "failed_records": batched["digest_failed_records"]},
            passed_override=batched["human_messages"] <= 5 and batched["digest_failed_records"] == 0,
        ),
    ]
