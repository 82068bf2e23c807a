"""Figure 3: cold import + init of each handler module ÷ ``import boto3`` + creating one client.

Fresh subprocesses (``python -I``: no PYTHON* variables, no user site, no current directory on
the path), interleaved, median of 10 each. Each child times itself from its first statement, so
interpreter start-up (the same for both) is left out; the wall time of the whole child is kept
as information.

- handler: only the function folder and the layer folder are put on ``sys.path`` (as Lambda
  does: /var/task and /opt/python; boto3 and powertools come from site-packages here), then
  ``import app`` and ``clguard.boundary.config.current_settings(os.environ, account_id=...)`` with a
  valid environment.
- baseline: ``import boto3`` and ``boto3.client("s3")``.

Bytecode: every child uses ``-X pycache_prefix=<a temporary directory>`` (so nothing is
written into the source tree) and one discarded warm-up child per variant fills it: both sides
then load cached bytecode, as a warm disk does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import FUNCTIONS, LAYER
from bench.common import FAKE_AWS, Figure, median, progress
from tests.world import ACCOUNT, REGION

RUNS = 10
HANDLERS = ("verify_object_encryption", "grant_training_access")

CHILD = r"""
import json, os, sys, time
start = time.perf_counter()
mode = sys.argv[1]
if mode == "baseline":
    import boto3
    boto3.client("s3")
else:
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    import importlib
    importlib.import_module("app")
    from clguard.boundary.config import current_settings
    current_settings(os.environ, account_id=sys.argv[4])
    if mode.endswith("+client"):
        from clguard.adapters.clients import client
        client("s3")
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "modules": len(sys.modules)}))
"""

FUNCTION_ENV = {
    "ALERT_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:custom-labels-guard-alerts",
    "TRAINING_BUCKETS": "custom-labels-training",
    "ENCRYPTION_REQUIREMENT": "SSE_S3_OR_KMS",
    "REMEDIATION_MODE": "enforce",
    "TRAINING_PRINCIPALS": f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer",
    "MANAGED_KEY_TAG": "custom-labels-guard=managed",
    "STATE_TABLE": "custom-labels-guard-state",
    "VERIFY_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/custom-labels-guard-verify",
    "POWERTOOLS_SERVICE_NAME": "custom-labels-guard",
    "POWERTOOLS_METRICS_NAMESPACE": "CustomLabelsGuard",
    "LANG": "C.UTF-8",
    "PATH": "/usr/bin:/bin",
}


def run_child(mode: str, prefix: str) -> dict[str, Any]:
    args = [sys.executable, "-I", "-X", f"pycache_prefix={prefix}", "-c", CHILD, mode]
    if mode != "baseline":
        args += [str(FUNCTIONS / mode.removesuffix("+client")), str(LAYER), ACCOUNT]
    started = time.perf_counter()
    done = subprocess.run(args, env={**FAKE_AWS, **FUNCTION_ENV}, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def cold_start(runs: int = RUNS) -> list[Figure]:
    progress(f"figure 3: cold import + init, {runs} fresh subprocesses per variant (interleaved)")
    modes = ("baseline", *HANDLERS, f"{HANDLERS[0]}+client")
    prefix = tempfile.mkdtemp(prefix="clguard-bench-pycache-")
    try:
        for mode in modes:
            run_child(mode, prefix)  # warm-up: fills the bytecode cache
        samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for _ in range(runs):
            for mode in modes:
                samples[mode].append(run_child(mode, prefix))
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    base = median(s["seconds"] for s in samples["baseline"])
    base_wall = median(s["wall"] for s in samples["baseline"])
    figures = []
    for mode in HANDLERS:
        init = median(s["seconds"] for s in samples[mode])
        wall = median(s["wall"] for s in samples[mode])
        ratio = init / base
        figures.append(
            Figure(
                f"cold_start_{mode}",
                f"Cold import + init of {mode}/app.py ÷ import boto3 + one client (fresh processes, median of {runs})",
                ratio,
                f"{ratio:.2f}",
                1.5,
                "≤ 1.5",
                detail=f"handler {init * 1000:.0f} ms ({samples[mode][0]['modules']} modules) vs baseline "
                f"{base * 1000:.0f} ms ({samples['baseline'][0]['modules']} modules); whole child process "
                f"{wall * 1000:.0f} vs {base_wall * 1000:.0f} ms",
                data={
                    "handler_ms": round(init * 1000, 2),
                    "baseline_ms": round(base * 1000, 2),
                    "handler_process_ms": round(wall * 1000, 2),
                    "baseline_process_ms": round(base_wall * 1000, 2),
                    "handler_samples_ms": [round(s["seconds"] * 1000, 2) for s in samples[mode]],
                    "baseline_samples_ms": [round(s["seconds"] * 1000, 2) for s in samples["baseline"]],
                    "modules_loaded": samples[mode][0]["modules"],
                    "baseline_modules_loaded": samples["baseline"][0]["modules"],
                },
            )
        )
    first = f"{HANDLERS[0]}+client"
    with_client = median(s["seconds"] for s in samples[first])
    figures.append(
        Figure(
            "cold_start_with_first_client",
            f"Cold import + init of {HANDLERS[0]} + its first client (S3), as the first invocation adds ÷ baseline",
            with_client / base,
            f"{with_client / base:.2f}",
            detail=f"{with_client * 1000:.0f} ms vs baseline {base * 1000:.0f} ms: clients are created lazily, "
            "so the handler's init above does not include one",
            data={"ms": round(with_client * 1000, 2), "baseline_ms": round(base * 1000, 2)},
        )
    )
    return figures
