"""Figure 7: the audit. AWS calls per compliant existing object (the audit function listing and
fanning out, then the verify function checking its messages, report and summary included), the
same with an S3 Inventory report under SSE_S3_OR_KMS, and the audit function's peak memory for
100,000 objects ÷ 1,000 objects.

Calls: moto in process, objects written straight into moto's S3 backend (setup, not counted),
calls counted on the code's own session (tests/awscalls.py). Memory: tracemalloc over the audit
function's run, with ListObjectsV2 answered by a generator of pages shaped like S3's (1,000 keys,
ETag, LastModified) and SendMessage counted instead of sent, so the traced heap is the audit's
own (moto in process would trace moto's bucket index too).
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

from moto import mock_aws
from moto.s3.models import s3_backends

from bench.calls import SQS_BATCH, run_verify
from bench.common import Figure, chunks, environment, fresh_container, new_world, ops_text, progress, quiet
from clguard.adapters import clients
from clguard.adapters import s3 as s3_adapter
from clguard.adapters import sqs as sqs_adapter
from clguard.state import auditruns
from functions.audit import app as audit_app
from localaws.doubles import aws_behaviour
from tests.auditrun import REPORTS, put_inventory, scheduled_event
from tests.awscalls import boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, BUCKET, TABLE, LambdaContext, World

OBJECTS = 10_000
SMALL, LARGE = 1_000, 100_000
AUDIT_CONTEXT = LambdaContext(function_name="audit", remaining_ms=900_000)


def audit_world(objects: int) -> World:
    world = new_world(AUDIT_REPORTS=f"s3://{REPORTS}/audit-reports")
    world.s3.create_bucket(Bucket=REPORTS)
    backend = s3_backends[ACCOUNT]["aws"]
    for n in range(objects):
        backend.put_object(BUCKET, f"datasets/cats/images/cat-{n:06d}.jpg", b"image", encryption="AES256")
    return world


def audit_calls(objects: int, *, inventory: bool) -> dict[str, Any]:
    with environment(), mock_aws(), aws_behaviour():
        fresh_container()
        world = audit_world(objects)
        if inventory:
            rows = [(f"datasets/cats/images/cat-{n:06d}.jpg", "SSE-S3") for n in range(objects)]
            os.environ["AUDIT_INVENTORY"] = put_inventory(world, BUCKET, rows)
        cpu = 0.0
        with boundary() as b:
            fresh_container(b.session)
            started = time.process_time()
            with quiet():
                summary = audit_app.lambda_handler(scheduled_event(), AUDIT_CONTEXT)
            cpu += time.process_time() - started
            audit_ops = Counter(b.log.by_operation())
            audit_calls_by_service = Counter(f"{s}:{o}" for s, o in b.log.calls)
        bodies = [m["Body"] for m in world.drain_queue()]  # the Lambda poller's receive: not counted
        with boundary() as b:
            fresh_container(b.session)
            started = time.process_time()
            for batch in chunks(bodies, SQS_BATCH):
                run_verify(sqs_event(*batch))
            cpu += time.process_time() - started
            verify_ops = Counter(b.log.by_operation())
            verify_calls_by_service = Counter(f"{s}:{o}" for s, o in b.log.calls)
        published = world.published()
        summaries = [p for p in published if "message_kind" in p.attributes]
        alerts = len(published) - len(summaries)
        covered = json.loads(summaries[-1].structure["default"])["objects"] if summaries else 0
        fresh_container()
    if alerts or covered != objects:
        raise RuntimeError(f"audit of {objects} compliant objects: {alerts} alerts, {covered} covered")
    total = audit_ops.total() + verify_ops.total()
    # Once per run, whatever the bucket holds: the last run (GetItem, PutItem), the run record
    # (PutItem, the audit function's UpdateItems), the trainings (DescribeProjects), the report
    # (PutObject x2), the summary (Publish), and the update that elects the finalizer.
    per_run = sum(
        audit_ops[op] for op in ("GetItem", "PutItem", "UpdateItem", "DescribeProjects", "PutObject", "Publish")
    )
    per_run += sum(verify_ops[op] for op in ("PutObject", "Publish")) + (1 if verify_ops["UpdateItem"] else 0)
    return {
        "per_run_calls": per_run,
        "per_object_calls": total - per_run,
        "objects": objects,
        "messages": len(bodies),
        "audit_calls": audit_ops.total(),
        "audit_by_operation": dict(audit_ops),
        "verify_calls": verify_ops.total(),
        "verify_by_operation": dict(verify_ops),
        "total_calls": total,
        "status": summary.get("status"),
        # (service:operation) -> calls, both functions; CPU seconds of both handlers (incl. moto's)
        "calls_by_service_operation": dict(audit_calls_by_service + verify_calls_by_service),
        "cpu_seconds": cpu,
    }


def calls_figures() -> list[Figure]:
    progress(f"figure 7: audit calls for {OBJECTS:,} compliant existing objects (moto in process)")
    listed = audit_calls(OBJECTS, inventory=False)
    progress(f"figure 7: audit calls for {OBJECTS:,} SSE-S3 objects with an S3 Inventory report")
    inv = audit_calls(OBJECTS, inventory=True)
    per = listed["per_object_calls"] / OBJECTS
    per_inv = inv["total_calls"] / OBJECTS
    return [
        Figure(
            "audit_calls_per_object",
            f"Audit: AWS calls per compliant existing object ({OBJECTS:,} SSE-S3 objects listed; audit + "
            "verify functions), besides the few calls each run makes once",
            per,
            f"{per:.4f}",
            1.002,
            "≤ 1.002",
            detail=f"{listed['total_calls']:,} calls in all = {listed['per_object_calls']:,} that grow with the "
            f"objects + {listed['per_run_calls']} once per run ({listed['total_calls'] / OBJECTS:.4f}/object "
            f"at {OBJECTS:,}); audit function: {listed['audit_calls']} ({ops_text(listed['audit_by_operation'])}); "
            f"{listed['messages']} messages; verify: {listed['verify_calls']:,} "
            f"({ops_text(listed['verify_by_operation'])})",
            data=listed,
        ),
        Figure(
            "audit_calls_per_object_inventory",
            f"Audit with an S3 Inventory report under SSE_S3_OR_KMS: AWS calls per SSE-S3 object ({OBJECTS:,}, "
            "all calls counted)",
            per_inv,
            f"{per_inv:.4f}",
            0.01,
            "≤ 0.01",
            detail=f"audit function: {inv['audit_calls']} ({ops_text(inv['audit_by_operation'])}); "
            f"{inv['messages']} messages; verify: {inv['verify_calls']}",
            data=inv,
        ),
        _cost_figure("listed", listed),
        _cost_figure("inventory", inv),
    ]


def _cost_figure(how: str, measured: dict[str, Any]) -> Figure:
    """Information: USD per million existing objects, from this run's calls and CPU time."""
    from bench.cost import audit_per_million  # noqa: PLC0415

    objects = int(measured["objects"])
    calls: dict[tuple[str, str], float] = {
        (key.split(":", 1)[0], key.split(":", 1)[1]): n / objects
        for key, n in measured["calls_by_service_operation"].items()
    }
    cost = audit_per_million(calls, measured["cpu_seconds"] / objects, int(measured["messages"]) / objects)
    what = "listed page by page" if how == "listed" else "from an S3 Inventory report (SSE-S3 objects)"
    return Figure(
        f"audit_cost_per_million_objects_{how}",
        f"Cost model: USD per million existing objects audited, {what}",
        cost.total,
        f"${cost.total:.3f}",
        detail=f"AWS calls ${cost.aws_calls:.3f} + Lambda requests ${cost.lambda_requests:.4f} + Lambda arm64 "
        f"duration ${cost.lambda_duration:.3f} ({measured['cpu_seconds'] / objects * 1000:.2f} ms CPU/object, both "
        f"handlers, incl. moto: an upper bound) + SQS receive/delete ${cost.sqs_delivery:.4f}; us-east-1 list prices "
        f"of the cost model (bench/README.md); an S3 Inventory itself costs $0.0025 per million objects listed",
        data=cost.as_dict(),
    )


def _pages(objects: int) -> Any:
    """ListObjectsV2 as S3 answers it, page by page, generated (nothing held but one page)."""
    stamp = datetime(2026, 11, 1, tzinfo=UTC).isoformat()

    def list_page(
        bucket: str, *, token: str | None = None, prefix: str = "", delimiter: str = "", owner: str = ""
    ) -> Any:
        start = int(token or 0)
        end = min(start + 1000, objects)
        items = tuple(
            s3_adapter.Listed(f"datasets/cats/images/cat-{n:07d}.jpg", f'"{n:032x}"', stamp) for n in range(start, end)
        )
        return s3_adapter.Page(items, (), str(end) if end < objects else None)

    return list_page


def _peak(objects: int) -> tuple[int, int]:
    sent = Counter[str]()

    def send(queue: str, body: str) -> None:
        sent["messages"] += 1
        sent["bytes"] = max(sent["bytes"], len(body))

    # Each measured run starts as the first one: the previous (never completed: its messages were
    # not sent) is not closed and reported inside the measurement.
    clients.client("dynamodb").delete_item(TableName=TABLE, Key={"id": {"S": auditruns.LAST_RUN_ID}})
    with patch.object(s3_adapter, "list_page", _pages(objects)), patch.object(sqs_adapter, "send", send):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        with quiet():
            summary = audit_app.lambda_handler(scheduled_event(), AUDIT_CONTEXT)
        peak = tracemalloc.get_traced_memory()[1] - before
    if summary.get("objects_listed") != objects:
        raise RuntimeError(f"listed {summary.get('objects_listed')} of {objects}")
    return peak, sent["messages"]


def memory_figure() -> Figure:
    progress(f"figure 7: audit function peak memory, {LARGE:,} vs {SMALL:,} objects (tracemalloc)")
    with environment(), mock_aws(), aws_behaviour():
        fresh_container()
        new_world(AUDIT_REPORTS=f"s3://{REPORTS}/audit-reports").s3.create_bucket(Bucket=REPORTS)
        _peak(SMALL)  # clients created and modules imported outside tracing
        peaks: dict[int, list[int]] = {SMALL: [], LARGE: []}
        messages: dict[int, int] = {}
        tracemalloc.start()
        try:
            for _ in range(2):
                for objects in (SMALL, LARGE):
                    peak, messages[objects] = _peak(objects)
                    peaks[objects].append(peak)
        finally:
            tracemalloc.stop()
            fresh_container()
    small, large = max(peaks[SMALL]), max(peaks[LARGE])
    ratio = large / small
    return Figure(
        "audit_peak_memory",
        f"Audit function peak memory, {LARGE:,} objects ÷ {SMALL:,} (listing and fan-out, tracemalloc)",
        ratio,
        f"{ratio:.2f}",
        1.2,
        "≤ 1.2",
        detail=f"peak {large / 1024:.0f} KiB for {LARGE:,} objects ({messages[LARGE]} messages) vs "
        f"{small / 1024:.0f} KiB for {SMALL:,} ({messages[SMALL]} message(s)); max of 2",
        data={"peak_bytes_small": peaks[SMALL], "peak_bytes_large": peaks[LARGE], "messages": messages},
    )


def audit_figures() -> list[Figure]:
    return [*calls_figures(), memory_figure()]
