"""Figure 15: group commit of concurrent grants on one key (``clguard.usecases.keygroup``).

Twenty first-time trainers start a training on the same CMK at the same moment: twenty grant
function invocations (threads of this process, moto in process) each need their own principal
added to the key policy. KMS's PutKeyPolicy is given a simulated latency of 100 ms (moto answers
in about a millisecond; KMS's documented writes are not that fast, and the latency is what
serialized writes multiply). Side by side in one run: with group commit (the waiting grants
joined to the lease holder's write) and without it (each grant waits for the key's lease and
writes alone, as before). Counted: PutKeyPolicy calls; timed: from the moment the twenty are
released together until the last returned, divided by one grant alone on a fresh key (median of
three). Every principal must be granted and reported exactly once in both runs.

Timed twice. The goal (15b) is judged on ``bench/lambdatime.py``'s clocks, in a process of its
own: each invocation on its own processor, as each Lambda execution environment is, with the real
code, moto and the lease and pending-grant items between them. Shown beside it (a row with no goal):
the same burst as threads of this interpreter on this machine's cores, where the twenty
invocations' CPU runs one after another and the wall time mostly measures that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from moto import mock_aws

from bench import ROOT, lambdatime
from bench.common import Figure, environment, fresh_container, median, new_world, progress, quiet
from clguard.adapters import kms
from clguard.rules import policy
from clguard.usecases import keygroup
from functions.grant_training_access import app as grant_app
from localaws.doubles import aws_behaviour
from tests.world import LambdaContext, World

TRAINERS = 20
WRITE_LATENCY = 0.1  # seconds, every PutKeyPolicy
SPREAD = 1.0  # seconds over which the twenty arrive in the information row (evenly)
SINGLES = 3
WRITES_GOAL = 2.0
WALL_GOAL = 2.0
CONTEXT = LambdaContext(function_name="grant-training-access")


def _job(world: World, key: str, role: str, event_id: str) -> Callable[[], Any]:
    event = world.training_event(kms_key=key, event_id=event_id, issuer=role)
    params = event["detail"]["requestParameters"]
    params.pop("TrainingData"), params.pop("TestingData"), params.pop("OutputConfig")
    return lambda: grant_app.lambda_handler(event, CONTEXT)


def _together(jobs: list[Callable[[], Any]]) -> tuple[float, list[BaseException]]:
    """Run ``jobs`` released at one moment; wall seconds from then until the last ended."""
    barrier = threading.Barrier(len(jobs) + 1)
    errors: list[BaseException] = []

    def run(job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as error:  # noqa: BLE001 - reported as a broken measurement
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, errors


def _granted(world: World, key: str) -> set[str]:
    """The principals the guard's statements grant (the key is the training's KmsKeyId)."""
    found: set[str] = set()
    for sid in (policy.TRAINING_DATA.sid, policy.COPIED_IMAGES_USE.sid):
        statement = world.statement(key, sid) or {}
        found.update(policy.as_list(statement.get("Principal", {}).get("AWS")))
    return found


def _on_lambda_clocks(jobs: list[Callable[[], Any]], spread: float = 0.0) -> tuple[float, list[BaseException]]:
    """Run ``jobs`` each on its own virtual processor, arriving evenly over ``spread`` seconds (all
    at once by default): the longest any waited from its arrival to its end."""
    arrivals = [spread * n / max(len(jobs) - 1, 1) for n in range(len(jobs))]
    delayed = [partial(_after, at, job) for at, job in zip(arrivals, jobs, strict=True)]
    ended = lambdatime.Schedule().run(delayed)
    return max(end - at for end, at in zip(ended.seconds, arrivals, strict=True)), ended.errors


def _after(seconds: float, job: Callable[[], Any]) -> Any:
    if seconds:
        time.sleep(seconds)
    return job()


def _alone(job: Callable[[], Any], *, lambda_clocks: bool) -> tuple[float, float]:
    """One grant's wall seconds and CPU seconds."""
    if lambda_clocks:
        cpu = time.process_time()
        wall, errors = _on_lambda_clocks([job])
        if errors:
            raise errors[0]
        return wall, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    job()
    return time.perf_counter() - started, time.process_time() - cpu


def measure(*, group_commit: bool, lambda_clocks: bool = False, spread: float = 0.0) -> dict[str, Any]:
    """One single grant (median of ``SINGLES``) and ``TRAINERS`` at once, with or without group
    commit; timed as threads of this interpreter, or with ``lambda_clocks`` each on its own
    virtual processor (``lambdatime.install()`` must have run before the product was imported),
    and then arriving evenly over ``spread`` seconds if asked (timed: the longest wait from an
    arrival to its end)."""
    writes: list[str] = []
    original_put = kms.put_policy
    original_wait = keygroup.wait_for_writer

    def put_policy(key_arn: str, policy: str, *, send_by: float | None = None) -> None:
        writes.append(key_arn)
        time.sleep(WRITE_LATENCY)
        original_put(key_arn, policy, send_by=send_by)

    def wait_for_the_lease(*_: Any, **__: Any) -> tuple[None, None]:
        return None, None  # before group commit: every grant waits for the lease and writes alone

    kms.put_policy = put_policy
    if not group_commit:
        keygroup.wait_for_writer = wait_for_the_lease
    try:
        with environment(), mock_aws(), aws_behaviour(), quiet():
            fresh_container()
            world = new_world()
            singles, single_cpu = [], []
            for n in range(SINGLES):
                key = world.key()
                job = _job(world, key, world.role(f"Alone{n}", "/ml/"), f"alone-{n}")
                wall, cpu = _alone(job, lambda_clocks=lambda_clocks)
                singles.append(wall)
                single_cpu.append(cpu)
            key = world.key()
            roles = [world.role(f"Trainer{n:02}", "/ml/") for n in range(TRAINERS)]
            writes.clear()
            cpu = time.process_time()
            jobs = [_job(world, key, role, f"cpv-{n}") for n, role in enumerate(roles)]
            wall, errors = _on_lambda_clocks(jobs, spread) if lambda_clocks else _together(jobs)
            remediated = sorted(
                p.finding["principal_arn"]
                for p in world.published()
                if p.finding.get("outcome") == "REMEDIATED" and p.finding.get("kms_key_arn") == key
            )
            cpu = time.process_time() - cpu
            granted = _granted(world, key)
            fresh_container()
    finally:
        kms.put_policy = original_put
        keygroup.wait_for_writer = original_wait
    if errors or granted != set(roles) or remediated != sorted(roles):
        raise RuntimeError(
            f"group commit={group_commit}: {len(errors)} errors ({errors[:1]!r}), "
            f"{len(granted)} granted, {len(remediated)} reported of {TRAINERS}"
        )
    single = median(singles)
    return {
        "writes": len(writes),
        "wall_seconds": wall,
        "single_grant_seconds": single,
        "ratio": wall / single,
        "cpu_seconds": cpu,
        "single_grant_cpu_seconds": median(single_cpu),
        "trainers": TRAINERS,
        "write_latency_seconds": WRITE_LATENCY,
        "clocks": "each invocation its own (bench/lambdatime.py)" if lambda_clocks else "threads of one interpreter",
    }


def on_lambda_clocks() -> dict[str, Any]:
    """Both runs on ``lambdatime``'s clocks (``python -m bench.lambdatime`` installed them)."""
    return {
        "without": measure(group_commit=False, lambda_clocks=True),
        "with": measure(group_commit=True, lambda_clocks=True),
        "spread": measure(group_commit=True, lambda_clocks=True, spread=SPREAD),
        "spread_without": measure(group_commit=False, lambda_clocks=True, spread=SPREAD),
    }


def measure_on_lambda_clocks(aws_call_seconds: float = 0.0) -> dict[str, Any]:
    """Both runs on ``lambdatime``'s clocks, in a process of their own (see the module's text)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.lambdatime",
            f"--aws-call-seconds={aws_call_seconds}",
            "bench.groupcommit:on_lambda_clocks",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the lambda-clock measurement failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def group_commit_figures() -> list[Figure]:
    progress(
        f"figure 15: {TRAINERS} first-time trainers on one key at once, PutKeyPolicy +{WRITE_LATENCY * 1000:.0f} ms"
    )
    on_lambda = measure_on_lambda_clocks()
    before, after = on_lambda["without"], on_lambda["with"]
    spread, spread_before = on_lambda["spread"], on_lambda["spread_without"]
    threads_before, threads_after = measure(group_commit=False), measure(group_commit=True)
    anchor = (
        f"anchor, the same run without group commit: {before['writes']} PutKeyPolicy, "
        f"{before['wall_seconds']:.2f} s = {before['ratio']:.1f}× a single grant"
    )
    clocks = (
        "each invocation on its own virtual processor as in Lambda (bench/lambdatime.py: its own CPU, "
        "moto's set aside; no AWS call takes time but the write)"
    )
    return [
        Figure(
            "group_commit_writes",
            f"PutKeyPolicy calls, {TRAINERS} concurrent first-time trainers on one key",
            float(after["writes"]),
            f"{after['writes']}",
            WRITES_GOAL,
            f"≤ {WRITES_GOAL:.0f}",
            detail=f"simulated PutKeyPolicy latency {WRITE_LATENCY * 1000:.0f} ms; {anchor}",
            data={"with": after, "without": before},
        ),
        Figure(
            "group_commit_wall",
            f"Wall time, {TRAINERS} concurrent first-time trainers on one key ÷ a single grant",
            after["ratio"],
            f"{after['ratio']:.1f} ({after['wall_seconds']:.2f} s ÷ {after['single_grant_seconds']:.2f} s)",
            WALL_GOAL,
            f"≤ {WALL_GOAL:.0f}",
            detail=f"{clocks}; {anchor}",
            data={"with": after, "without": before},
        ),
        Figure(
            "group_commit_spread",
            f"The same {TRAINERS} trainers arriving evenly over {SPREAD:.0f} s: PutKeyPolicy calls, and the "
            "longest wait from an arrival to its end ÷ a single grant",
            spread["ratio"],
            f"{spread['writes']} writes, {spread['ratio']:.1f} ({spread['wall_seconds']:.2f} s ÷ "
            f"{spread['single_grant_seconds']:.2f} s)",
            detail=(
                f"no goal: the holder lingers only while grants keep arriving (none for "
                f"{keygroup.LINGER_STEP * 1000:.0f} ms), so grants {SPREAD / (TRAINERS - 1) * 1000:.0f} ms apart "
                f"share {spread['writes']} writes; without group commit {spread_before['writes']} writes, "
                f"{spread_before['ratio']:.1f}×; {clocks}"
            ),
            data={"with": spread, "without": spread_before},
        ),
        Figure(
            "group_commit_wall_threads",
            f"The same burst as {TRAINERS} threads of one interpreter on this machine ÷ a single grant",
            threads_after["ratio"],
            f"{threads_after['ratio']:.1f} ({threads_after['wall_seconds']:.2f} s ÷ "
            f"{threads_after['single_grant_seconds']:.2f} s)",
            detail=(
                f"no goal: the {TRAINERS} invocations' CPU ({threads_after['cpu_seconds']:.2f} s, moto's "
                f"included) runs one after another on {os.cpu_count()} shared cores, where Lambda gives "
                f"each its own; {threads_after['writes']} PutKeyPolicy; without group commit "
                f"{threads_before['writes']} PutKeyPolicy, {threads_before['ratio']:.1f}×"
            ),
            data={"with": threads_after, "without": threads_before},
        ),
    ]
