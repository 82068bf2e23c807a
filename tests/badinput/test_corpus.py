"""Every malformed or hostile event of the corpus gets a clear log line or finding: no crash that
loses the rest of a batch, no grant to anyone but the allowed training role, nothing lost."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from clguard.errors import InvalidEvent
from clguard.rules import policy
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from tests.badinput.corpus import CASES, ROLE, Case, materialize
from tests.eventsamples import sqs_event
from tests.world import BUCKET, LambdaContext, World

CONTROL_KEY = "datasets/control/ok.jpg"


def test_the_corpus_has_at_least_50_cases_with_unique_names() -> None:
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture
def managed_key(world: World) -> str:
    """The training role, a managed CMK holding the manifests and images, a control object."""
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    for name in ("datasets/cats/images/cat-001.jpg", "datasets/cats/train.manifest", "datasets/cats/test.manifest"):
        body = json.dumps({"source-ref": f"s3://{BUCKET}/datasets/cats/images/cat-001.jpg"}).encode()
        world.put(name, body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.put_legacy(CONTROL_KEY)
    return key


def owned_principals(world: World, key: str) -> set[str]:
    found: set[str] = set()
    for statement in world.policy(key)["Statement"]:
        if statement.get("Sid") in policy.OWNED_SIDS:
            found.update(policy.as_list(statement["Principal"]["AWS"]))
    return found


def run_case(case: Case, world: World, key: str) -> tuple[Any, list[dict[str, Any]]]:
    event = materialize(case, key)
    if case.target == "verify":
        control = world.object_created(CONTROL_KEY)
        batch = sqs_event(event, control)
        response = verify_app.lambda_handler(batch, LambdaContext())
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        # The control record of the batch is always processed: it was remediated and not failed
        assert batch["Records"][1]["messageId"] not in failed
        assert world.head(CONTROL_KEY)["ServerSideEncryption"] == "AES256"
        findings = [f for f in world.findings() if f["resource"].get("key") != CONTROL_KEY]
        return ("failed" if batch["Records"][0]["messageId"] in failed else "ok"), findings
    try:
        summary = grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
    except InvalidEvent:
        return "invalid", world.findings()
    return summary, world.findings()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, world: World, managed_key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    if case.key_policy == "without-root":
        admin = world.role("KeyAdmin")
        statement = {
            "Sid": "KeyAdmin",
            "Effect": "Allow",
            "Principal": {"AWS": admin},
            "Action": "kms:*",
            "Resource": "*",
        }
        document = {"Version": "2012-10-17", "Statement": [statement]}
        world.kms.put_key_policy(KeyId=managed_key, PolicyName="default", Policy=json.dumps(document))
    before = world.policy(managed_key)

    outcome, findings = run_case(case, world, managed_key)
    types = [f["finding_type"] for f in findings]

    if case.expect == "record-fails":
        assert outcome == "failed"
        assert any("invalid" in r.getMessage().lower() for r in caplog.records), "no clear log line"
        assert types == []
    elif case.expect == "invalid":
        assert outcome == "invalid"
        assert types == []
    elif case.expect == "ignored":
        assert outcome != "failed"
        assert outcome != "invalid"
        if case.target == "grant":  # the grant function said so, not just "did nothing visible"
            assert outcome["status"] == "ignored", outcome
        assert types == []
        assert world.policy(managed_key) == before
    elif case.expect == "refused":
        assert outcome not in ("failed", "invalid")
        assert types.count("PRINCIPAL_NOT_ALLOWED") == 1
        refusal = next(f for f in findings if f["finding_type"] == "PRINCIPAL_NOT_ALLOWED")
        assert (refusal["outcome"], refusal["severity"]) == ("REFUSED", "HIGH")
        assert managed_key in refusal["detail"]
        assert case.why in refusal["detail"]
        assert world.policy(managed_key) == before
    else:
        expected = case.expect.removeprefix("finding:")
        assert expected in types
    # Whatever the input: nobody but the allowed training role was ever added to a key policy
    assert owned_principals(world, managed_key) <= {ROLE}
    # and every statement that was there is still there, unchanged
    assert world.policy(managed_key)["Statement"][: len(before["Statement"])] == before["Statement"]
