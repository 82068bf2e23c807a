"""Information rows: what Cloud Custodian's cloudtrail-mode S3 policy pays per S3 event.

c7n is not a project dependency. When a separate Python with c7n exists (default
``/tmp/clguard-c7n-venv/bin/python``, or ``C7N_PYTHON``; bench/README.md says how to make one),
``bench/c7n_probe.py`` runs in it and its result is kept in ``bench/c7n_measured.json``; without
it, the last kept measurement is shown (with its date); without either, the count documented
from c7n's source.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import Figure, progress

PROBE = ROOT / "bench" / "c7n_probe.py"
KEPT = ROOT / "bench" / "c7n_measured.json"
DEFAULT_PYTHON = "/tmp/clguard-c7n-venv/bin/python"  # noqa: S108 - a throwaway venv, see README
EVENTS = 20

# From c7n 0.9.53's source, per event (used only when no measurement exists):
# - ListBuckets: c7n/query.py ResourceQuery.get → filter (enum_spec list_buckets; ids filtered client-side);
# - 10 bucket GETs: c7n/resources/s3.py S3_AUGMENT_TABLE, BucketAssembly.assemble (augment-keys "all"),
#   called from DescribeS3.augment;
# - GetBucketEncryption: c7n/resources/s3.py BucketEncryption.process_bucket.
DOCUMENTED_CALLS_PER_EVENT = 12.0
DOCUMENTED: dict[str, Any] = {
    "calls_per_event": DOCUMENTED_CALLS_PER_EVENT,
    "by_operation": {
        "s3:ListBuckets": 1,
        "s3:GetBucketLocation…GetBucketLifecycleConfiguration": 10,
        "s3:GetBucketEncryption": 1,
    },
    "source": "c7n/policy.py LambdaMode.run → resolve_resources → resource_manager.get_resources (c7n/query.py "
    "QueryResourceManager.get_resources: source.get_resources + augment) → filter_resources",
}


def _measure(python: str) -> dict[str, Any]:
    done = subprocess.run(
        [python, str(PROBE), str(EVENTS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))},
    )
    if done.returncode != 0:
        raise RuntimeError(f"c7n probe failed: {done.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    KEPT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def custodian(ours_per_event: float | None) -> list[Figure]:
    python = os.environ.get("C7N_PYTHON", DEFAULT_PYTHON)
    origin = "measured now"
    if Path(python).exists():
        progress(f"info: Cloud Custodian cloudtrail-mode S3 policy on {EVENTS} PutObject events ({python})")
        try:
            result = _measure(python)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
            progress(f"c7n probe failed ({error}); falling back to the kept measurement")
            result, origin = {}, ""
    else:
        result = {}
    if not result and KEPT.exists():
        result = json.loads(KEPT.read_text(encoding="utf-8"))
        origin = f"kept measurement of {result.get('measured_at', '?')} ({python} not found)"
    if not result:
        return [
            Figure(
                "c7n_calls_per_event",
                "Cloud Custodian cloudtrail-mode S3 policy: calls per S3 event (documented from its source)",
                DOCUMENTED_CALLS_PER_EVENT,
                f"{DOCUMENTED_CALLS_PER_EVENT:.0f}",
                detail=f"not measured (no c7n Python); {DOCUMENTED['source']}",
                data=DOCUMENTED,
            )
        ]
    rows = []
    for variant, label in (("default", "augment-keys all (default)"), ("augment_keys_none", "augment-keys: none")):
        r = result[variant]
        per = float(r["calls_per_event"])
        versus = f"; {per / ours_per_event:.1f}× ours" if ours_per_event else ""
        ops = ", ".join(f"{k.split(':', 1)[1]} {v // r['events']}" for k, v in r["by_operation"].items())
        rows.append(
            Figure(
                f"c7n_calls_per_event_{variant}",
                f"Cloud Custodian {r.get('c7n_version', '')} cloudtrail-mode s3 policy (bucket-encryption filter), "
                f"{label}: calls per S3 PutObject event",
                per,
                f"{per:.2f}",
                detail=f"{origin}: {r['calls']} calls for {r['events']} events, per event: {ops}{versus}. It checks "
                "the bucket's default encryption, not the object's",
                data={**r, "origin": origin},
            )
        )
    return rows
