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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from moto import mock_aws

from bench.common import Figure, environment, fresh_container, median, new_world, progress, quiet
from clguard.adapters import kms
from clguard.rules import policy
from clguard.usecases import keygroup
from functions.grant_training_access import app as grant_app
from localaws.doubles import aws_behaviour
from tests.world import LambdaContext, World

TRAINERS = 20
WRITE_LATENCY = 0.1  # seconds, every PutKeyPolicy
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


def measure(*, group_commit: bool) -> dict[str, Any]:
    """One single grant (median of ``SINGLES``) and ``TRAINERS`` at once, with or without group commit."""
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
                started, cpu = time.perf_counter(), time.process_time()
                job()
                singles.append(time.perf_counter() - started)
                single_cpu.append(time.process_time() - cpu)
            key = world.key()
            roles = [world.role(f"Trainer{n:02}", "/ml/") for n in range(TRAINERS)]
            writes.clear()
            cpu = time.process_time()
            wall, errors = _together([_job(world, key, role, f"cpv-{n}") for n, role in enumerate(roles)])
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
    }


def group_commit_figures() -> list[Figure]:
    progress(
        f"figure 15: {TRAINERS} first-time trainers on one key at once, PutKeyPolicy +{WRITE_LATENCY * 1000:.0f} ms"
    )
    before = measure(group_commit=False)
    after = measure(group_commit=True)
    anchor = (
        f"anchor, the same run without group commit: {before['writes']} PutKeyPolicy, "
        f"{before['wall_seconds']:.2f} s = {before['ratio']:.1f}× a single grant"
    )
    cpu = (
        f"; the {TRAINERS} invocations' own CPU, {after['cpu_seconds']:.2f} s "
        f"({after['cpu_seconds'] / after['single_grant_cpu_seconds']:.0f}× one grant's "
        f"{after['single_grant_cpu_seconds']:.3f} s), runs on one interpreter here (in Lambda each has its own)"
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
            detail=anchor + cpu,
            data={"with": after, "without": before},
        ),
    ]
