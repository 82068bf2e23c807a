"""Figure 7: messages people get for a burst of findings (the digest stage).

A burst of 10,000 same-kind findings (OBJECT_WRONG_ENCRYPTION REMEDIATED under one folder, as a
50,000-image SSE-S3 upload under SSE_KMS would give) is one message each on the alerts topic (the
machines' channel): the digest queue holds one raw delivery per message. The records are split as
the digest event source mapping delivers them (BatchSize 10,000, at most 6 MB of payload per
invocation), the digest handler runs on each batch (moto in process), and its SNS Publish calls to
the human topic are counted (tests/awscalls.py).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from moto import mock_aws

from bench.common import Figure, environment, fresh_container, progress, quiet
from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting.findings import Finding
from localaws.runtime import FAKE_CREDENTIALS, esm_batches
from tests.awscalls import boundary
from tests.eventsamples import load_sqs_event, sqs_record
from tests.world import ACCOUNT, REGION, LambdaContext

BURST = 10_000
BATCH_SIZE = 10_000  # DigestQueueEventSource BatchSize in template.yaml
DIGEST_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:custom-labels-guard-DigestQueue"


def burst_records(n: int = BURST) -> list[dict[str, Any]]:
    """n findings as the alerts topic's raw subscription delivers them to the digest queue."""
    sample = load_sqs_event("digest_findings")["Records"][0]
    template = Finding.from_document(json.loads(sample["body"]))
    records = []
    for i in range(n):
        finding = Finding(
            finding_type=template.finding_type,
            outcome=template.outcome,
            resource=S3ObjectRef("custom-labels-training", f"datasets/cats/images/cat-{i:06d}.jpg"),
            detail=template.detail,
            source_event_id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-event-{i}")),
            account=template.account,
            region=template.region,
            kms_key_arn=template.kms_key_arn,
        )
        record = sqs_record(json.dumps(finding.document()), queue_arn=DIGEST_QUEUE_ARN)
        record["messageId"] = str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-record-{i}"))
        record["messageAttributes"] = sample["messageAttributes"]
        records.append(record)
    return records


def human_messages_per_burst(n: int = BURST) -> Figure:
    progress(f"figure 7: human messages for a burst of {n:,} same-kind findings (digest handler, moto in process)")
    from functions.digest import app as digest_app  # noqa: PLC0415

    records = burst_records(n)
    batches = esm_batches(records, batch_size=BATCH_SIZE)
    with environment(**FAKE_CREDENTIALS, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION), mock_aws():
        import boto3  # noqa: PLC0415

        topic = boto3.client("sns", region_name=REGION).create_topic(Name="custom-labels-guard-HumanTopic")
        os.environ["HUMAN_TOPIC_ARN"] = topic["TopicArn"]
        fresh_container()
        started = time.perf_counter()
        with boundary() as b, quiet():
            responses = [digest_app.lambda_handler({"Records": list(batch)}, LambdaContext()) for batch in batches]
        seconds = time.perf_counter() - started
        published = b.log.count("Publish")
        fresh_container()
    failed = sum(len(r["batchItemFailures"]) for r in responses)
    return Figure(
        "human_messages_per_burst",
        f"Messages for people per {n:,}-finding burst (machines: {n:,} on the alerts topic)",
        float(published),
        f"{published}",
        5.0,
        "≤ 5",
        detail=f"{len(batches)} digest invocation(s) of {', '.join(str(len(x)) for x in batches)} records "
        f"(BatchSize {BATCH_SIZE:,}, 6 MB payload); {failed} failed records; digest handler time "
        f"{seconds:.1f} s in all",
        data={"batches": [len(x) for x in batches], "published": published, "failed_records": failed},
        passed_override=published <= 5 and failed == 0,
    )
