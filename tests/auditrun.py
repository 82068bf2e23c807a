"""Run the audit in tests: the audit function, then the verify function on every message it queued."""

from __future__ import annotations

import json
from typing import Any

from clguard import audit
from functions.audit import app as audit_app
from functions.verify_object_encryption import app as verify_app
from tests.eventsamples import load_event, sqs_event
from tests.world import LambdaContext, World

REPORTS = "custom-labels-guard-reports"


def run_audit(world: World, event: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    """One audit invocation, then the verify function on every message it queued (until empty)."""
    summary = audit_app.lambda_handler(
        load_event("scheduled_audit") if event is None else event, LambdaContext(function_name="audit", **context)
    )
    drain_to_verify(world)
    return summary


def drain_to_verify(world: World) -> int:
    handled = 0
    while True:
        bodies = [m["Body"] for m in world.drain_queue()]
        if not bodies:
            return handled
        for body in bodies:
            response = verify_app.lambda_handler(sqs_event(body), LambdaContext())
            assert response == {"batchItemFailures": []}
            handled += 1


def summaries(world: World) -> list[dict[str, Any]]:
    return [
        json.loads(p.structure["default"])
        for p in world.published()
        if p.attributes.get("message_kind", {}).get("Value") == audit.SUMMARY_KIND
    ]


def findings(world: World) -> list[dict[str, Any]]:
    return [p.finding for p in world.published() if "message_kind" not in p.attributes]


def report(world: World, summary: dict[str, Any]) -> dict[str, Any]:
    url = summary["report"]["json"].removeprefix("s3://")
    bucket, _, key = url.partition("/")
    value: dict[str, Any] = json.loads(world.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return value
