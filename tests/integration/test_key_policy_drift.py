"""Drift (issue 20, item 12): a warm container never trusts what it remembers of a key policy that
someone else (an infrastructure-as-code redeploy) has replaced since."""

from __future__ import annotations

import json
from typing import Any

from clguard.rules import policy
from functions.verify_object_encryption import app as verify_app
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, LambdaContext, World, default_key_policy

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"


def verify(*events: dict[str, Any]) -> dict[str, Any]:
    return verify_app.lambda_handler(sqs_event(*events), LambdaContext())


def _upload(world: World, key: str, n: int) -> dict[str, Any]:
    name = f"datasets/a/{n}.jpg"
    world.put(name, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    return world.object_created(name)


def test_an_iac_redeploy_that_drops_the_grant_is_repaired_by_the_next_batch_of_the_same_container(
    world: World,
) -> None:
    # Given a training principal the guard granted on a managed key, in a warm container that
    # remembers the policy with the grant
    world.role("Trainer", "/ml/")
    key = world.key()
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    verify(_upload(world, key, 0))
    assert policy.is_granted(world.policy(key), TRAINER, policy.TRAINING_DATA, key)
    # And an infrastructure-as-code redeploy replaced the key policy a moment later (well within
    # the container's 60 s key cache), without the guard's statement
    world.kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(default_key_policy()))

    # When the same warm container verifies the next upload under the key
    verify(_upload(world, key, 1))

    # Then the trainer can use the key again
    assert policy.is_granted(world.policy(key), TRAINER, policy.TRAINING_DATA, key)
    # And the finding tells the owner their IaC removed the guard's grant and what to add to it
    [drift] = [
        f
        for f in world.findings()
        if (f["finding_type"], f["outcome"]) == ("KEY_ACCESS_MISSING", "REMEDIATED") and "Drift" in f["detail"]
    ]
    assert drift["principal_arn"] == TRAINER
    assert "infrastructure-as-code" in drift["detail"]
    assert f"add {TRAINER} with kms:Decrypt, kms:GenerateDataKey to the key policy" in drift["detail"]
    assert policy.TRAINING_DATA.sid in drift["detail"]


def test_a_first_grant_is_not_called_drift(world: World) -> None:
    # Given a key the guard never saw, without the trainer
    world.role("Trainer", "/ml/")
    key = world.key()
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    # When an upload under it is verified
    verify(_upload(world, key, 0))
    # Then the trainer is granted, and the finding speaks of no drift
    [granted] = [
        f for f in world.findings() if (f["finding_type"], f["outcome"]) == ("KEY_ACCESS_MISSING", "REMEDIATED")
    ]
    assert "Drift" not in granted["detail"]


def test_already_granted_costs_one_policy_read_per_batch_and_nothing_else(world: World, calls: Boundary) -> None:
    # Given a trainer already granted on a key, and three batches of uploads under it
    world.role("Trainer", "/ml/")
    document = default_key_policy()
    document["Statement"].append(policy.TRAINING_DATA.new_statement(TRAINER))
    key = world.key(policy=document)
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    events = [_upload(world, key, n) for n in range(3)]
    # When one warm container verifies them, one batch each (the middle one of two uploads)
    verify(events[0])
    verify(events[1], events[2])
    verify(events[2])
    # Then the key was described once (the cache), and its policy read once per batch: the bound
    # of trusting a remembered "already granted" (docs/architecture.md §6, Drift)
    assert calls.log.count("DescribeKey") == 1
    assert calls.log.count("GetKeyPolicy") == 3
    assert calls.log.count("PutKeyPolicy") == 0
