"""Shared fixtures: a moto AWS per test, with fresh client and key caches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from clguard.adapters import clients
from clguard.reporting import exceptions, labels
from clguard.state.keydirectory import clear_cache
from clguard.usecases import accounts
from localaws.doubles import AwsBehaviour, aws_behaviour
from localaws.runtime import FAKE_CREDENTIALS
from tests.awscalls import Boundary, boundary
from tests.world import ACCOUNT, REGION, LambdaContext, World


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "MOTO_ACCOUNT_ID": ACCOUNT,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws(aws_env: None) -> Iterator[AwsBehaviour]:
    """moto, made to behave like AWS where it matters (localaws.doubles)."""
    with mock_aws(), aws_behaviour() as behaviour:
        clients.reset()
        clear_cache()
        accounts.forget()
        labels.forget()
        exceptions.forget()
        yield behaviour
    clients.reset()
    clear_cache()
    accounts.forget()
    labels.forget()
    exceptions.forget()


@pytest.fixture
def calls(aws: AwsBehaviour) -> Iterator[Boundary]:
    """The code under test's AWS calls, counted, with fault injection."""
    with boundary() as b:
        yield b


@pytest.fixture
def world(aws: AwsBehaviour, monkeypatch: pytest.MonkeyPatch) -> World:
    w = World().create()
    w.monkeypatch = monkeypatch
    w.behaviour = aws
    for name, value in w.env().items():
        monkeypatch.setenv(name, value)
    return w


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
OBJECT_KEY = "datasets/cats/images/cat-001.jpg"  # the key of events/s3_object_created.json


@pytest.fixture
def cmk_object(world: World) -> str:
    """A managed CMK with an object under it, and TRAINER (role/ml/Trainer) as TRAINING_PRINCIPALS."""
    world.role("Trainer", "/ml/")
    key = world.key()
    world.put(OBJECT_KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    return key


@pytest.fixture
def audited(world: World) -> World:
    """The world with a reports bucket and the audit's own variable (AUDIT_REPORTS)."""
    from tests.auditrun import REPORTS  # noqa: PLC0415

    world.s3.create_bucket(Bucket=REPORTS)
    world.env_set(AUDIT_REPORTS=f"s3://{REPORTS}/audit-reports")
    return world
