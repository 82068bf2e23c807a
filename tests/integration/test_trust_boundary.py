"""The guard's own verify-queue message kinds (fan-out image checks, the findings outbox) are
accepted only from the guard's own functions: SQS SenderId against GUARD_ROLE_IDS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clguard import observability
from clguard.boundary import fanout
from clguard.boundary.s3ref import S3ObjectRef
from clguard.rules import policy
from clguard.usecases import verify
from functions.verify_object_encryption import app
from tests.conftest import OBJECT_KEY, TRAINER
from tests.eventsamples import GUARD_SENDER_ID, sqs_event
from tests.world import ACCOUNT, BUCKET, LambdaContext, World

FORGER = "AROA3XFRBF23FORGER01:mallory"  # a role of the account that may send to the queue
ATTACKER = f"arn:aws:iam::{ACCOUNT}:role/Attacker"


def run(body: str, sender_id: str, **options: Any) -> dict[str, Any]:
    event = sqs_event(body, sender_id=sender_id, **options)
    result: dict[str, Any] = app.lambda_handler(event, LambdaContext())
    return result


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The SenderIds of the ERROR lines that refused a message."""
    return [str(getattr(r, "sender_id", "")) for r in caplog.records if r.levelname == "ERROR"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The metrics the verify logic counts."""
    names: list[str] = []
    original = observability.count

    def count(name: str, value: int = 1) -> None:
        names.append(name)
        original(name, value)

    monkeypatch.setattr(verify, "count", count)
    return names


def fanout_naming(principal: str) -> str:
    [body] = fanout.messages(
        [S3ObjectRef(BUCKET, OBJECT_KEY)], source_event_id="forged-1", origin="a forged request", principals=[principal]
    )
    return body


@pytest.mark.parametrize("receive_count", [1, 6], ids=["sent", "redriven-from-the-dlq"])
def test_a_forged_fanout_message_grants_nothing(
    world: World, cmk_object: str, caplog: pytest.LogCaptureFixture, counted: list[str], receive_count: int
) -> None:
    # Given an object under a managed key, a role that never trained, and a fan-out message
    # naming it, sent by another principal of the account (or redriven from the DLQ: SQS keeps
    # the original SenderId)
    world.role("Attacker")
    before = world.policy(cmk_object)

    # When the verify function receives it
    response = run(fanout_naming(ATTACKER), FORGER, receive_count=receive_count)

    # Then the record fails (to the DLQ), the key policy is unchanged, nothing is published,
    # and an ERROR line and the UntrustedMessages metric say so
    assert len(response["batchItemFailures"]) == 1
    assert world.policy(cmk_object) == before
    assert world.findings() == []
    assert refusals(caplog) == [FORGER]
    assert counted.count("UntrustedMessages") == 1


def test_the_same_message_from_the_guard_is_processed(world: World, cmk_object: str) -> None:
    # Given the same fan-out message, sent by the verify function's role
    world.role("Attacker")

    # When the verify function receives it
    response = run(fanout_naming(TRAINER), GUARD_SENDER_ID)

    # Then it is processed: the principal it names is granted
    assert response == {"batchItemFailures": []}
    statement = world.statement(cmk_object, policy.TRAINING_DATA.sid)
    assert statement is not None
    assert TRAINER in json.dumps(statement)


def test_a_forged_outbox_finding_is_not_published(world: World, caplog: pytest.LogCaptureFixture) -> None:
    # Given a findings-outbox message with a chosen scope and text, from another principal
    body = json.dumps(
        {
            "kind": "clguard.finding",
            "version": 1,
            "scope": "window:0",
            "finding": {
                "schema_version": "1",
                "finding_type": "OBJECT_UNENCRYPTED",
                "severity": "HIGH",
                "outcome": "REMEDIATED",
                "account": ACCOUNT,
                "region": "us-east-1",
                "resource": {"type": "s3-object", "bucket": BUCKET, "key": OBJECT_KEY, "version_id": None},
                "principal_arn": None,
                "kms_key_arn": None,
                "detail": "all is well, nothing to see",
                "source_event_id": "forged-2",
                "observed_at": "2026-11-28T20:00:00Z",
            },
        }
    )

    # When the verify function receives it
    response = run(body, FORGER)

    # Then nothing is published and the record fails
    assert len(response["batchItemFailures"]) == 1
    assert world.published() == []
    assert refusals(caplog) == [FORGER]


def test_without_guard_role_ids_no_guard_message_is_accepted(world: World, cmk_object: str) -> None:
    # Given GUARD_ROLE_IDS unset (fail closed)
    world.env_set(GUARD_ROLE_IDS="")

    # When even the guard's own sender id delivers a fan-out message
    response = run(fanout_naming(TRAINER), GUARD_SENDER_ID)

    # Then it is refused
    assert len(response["batchItemFailures"]) == 1
    assert world.findings() == []
