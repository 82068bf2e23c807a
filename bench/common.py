"""What every figure shares: the fake AWS environment, the moto world, quiet handlers, results."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clguard.adapters import clients
from clguard.rules import policy
from clguard.state.keydirectory import clear_cache
from clguard.usecases import accounts
from localaws.runtime import FAKE_CREDENTIALS
from tests.world import ACCOUNT, REGION, World, default_key_policy

# The caller of the sample CreateProjectVersion events (events/): an AssumedRole with a path.
TRAINER_NAME = "CustomLabelsTrainer"
TRAINER_PATH = "/ml/"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/{TRAINER_NAME}"

FAKE_AWS = {
    **FAKE_CREDENTIALS,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "MOTO_ACCOUNT_ID": ACCOUNT,
}
NOT_INHERITED = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_LAMBDA_FUNCTION_NAME", "AWS_CONFIG_FILE")

# powertools Metrics is one per process; a handler without metrics warns (not our concern here)
warnings.filterwarnings("ignore", message="No application metrics to publish")


def progress(message: str) -> None:
    """Progress goes to stderr: stdout carries the table (and is muted while handlers run)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Fake AWS credentials (never a real account) plus ``values``; the old environment after."""
    saved = dict(os.environ)
    try:
        for name in NOT_INHERITED:
            os.environ.pop(name, None)
        os.environ.update(FAKE_AWS)
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: the handlers' JSON logs and EMF metrics (which a
    Lambda writes to its stdout pipe) cost what they cost, but do not mix with the table."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def fresh_container(session: Any | None = None) -> None:
    """What a new Lambda container starts with: no cached clients, no cached key knowledge."""
    clients.reset(session)
    clear_cache()
    accounts.forget()


def granted_policy(principal: str, *, copied_images: bool = False) -> dict[str, Any]:
    """The default key policy with ``principal`` already granted, as the remediator writes it."""
    specs = [policy.TRAINING_DATA]
    if copied_images:
        specs += [policy.COPIED_IMAGES_GRANT, policy.COPIED_IMAGES_USE]
    return policy.merge_grants(default_key_policy(), [(principal, specs)], key_account=ACCOUNT).document


def new_world(**env: str) -> World:
    """Buckets, topic, queue and table (setup calls, never counted) and the function env set."""
    world = World().create()
    os.environ.update(world.env(**env))
    return world


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def chunks[T](items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ops_text(ops: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class Figure:
    """One row of the table. ``goal`` None: an information row (no pass/fail)."""

    key: str
    title: str
    value: float | None
    shown: str  # the measured value as printed
    goal: float | None = None
    goal_text: str = ""
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    passed_override: bool | None = None  # for goals that are more than "value <= goal"
    number: str = ""  # the figure's number in the brief ("3a"); set by bench.__main__

    @property
    def passed(self) -> bool | None:
        if self.passed_override is not None:
            return self.passed_override
        if self.goal is None:
            return None
        return self.value is not None and self.value <= self.goal

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number or None,
            "key": self.key,
            "figure": self.title,
            "value": None if self.value is None else round(self.value, 4),
            "shown": self.shown,
            "goal": self.goal,
            "goal_text": self.goal_text or None,
            "pass": self.passed,
            "detail": self.detail,
            "data": self.data,
        }


def failed_figure(key: str, title: str, goal: float | None, goal_text: str, error: BaseException) -> Figure:
    """A figure whose measurement raised: shown as a miss, never silently dropped."""
    return Figure(
        key,
        title,
        None,
        "error",
        goal,
        goal_text,
        detail=f"measurement failed: {type(error).__name__}: {error}",
        passed_override=False if goal is not None else None,
    )
