"""Grants written one principal at a time stay written when KMS reads lag behind the writes.

"Because of the distributed nature of the system, the AWS KMS API follows an eventual
consistency model. As a result, changes to AWS KMS resources might not be immediately visible to
the subsequent commands you run" (KMS Developer Guide, "AWS KMS eventual consistency",
https://docs.aws.amazon.com/kms/latest/developerguide/programming-eventual-consistency.html), and
"the principals in the key policy must exist and be visible to KMS ... a new principal might not
be immediately visible to KMS" (PutKeyPolicy API reference). When one principal KMS cannot see
yet makes the combined write fail, the guard writes the principals one at a time. If the read
before the second write still shows the policy from before the first (the lag the guard itself
saw in the first write's read-back), the second write must not be built on it: that would erase
the first grant, which was just reported REMEDIATED."""

from __future__ import annotations

import pytest

from clguard.rules import policy
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app
from localaws.doubles import KeyPolicyValidation
from tests.awscalls import Boundary, stale_key_policy_reads
from tests.eventsamples import load_event, sqs_event
from tests.world import LambdaContext, World

OBJECT_KEY = "datasets/cats/images/cat-001.jpg"  # the key of events/s3_object_created.json


def test_a_grant_written_alone_is_not_erased_by_the_next_one_on_a_stale_read(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two training principals lacking access to a managed key, one of which KMS does not
    # see yet (its first 4 PutKeyPolicy calls fail: the combined write is rejected, so the
    # guard writes them one at a time)
    monkeypatch.setattr("clguard.usecases.keyattempt.MALFORMED_BACKOFF", 0.0)
    first, late = world.role("Trainer", "/ml/"), world.role("LateTrainer", "/ml/")
    world.behaviour[KeyPolicyValidation].not_yet_visible(late, times=4)
    key = world.key()
    world.put(OBJECT_KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=f"{first},{late}")
    # And KMS reads lag: the first write's read-back and the read before the second write (the
    # 4th and 5th GetKeyPolicy: batch view, re-read in the lock, re-read before the first
    # write, read-back, re-read before the second write) still show the policy from before
    stale_key_policy_reads(calls, world.policy(key), at_calls={4, 5})

    # When an object under the key is verified
    response = app.lambda_handler(sqs_event(load_event("s3_object_created")), LambdaContext())

    # Then both principals are granted in the key policy, as both findings say
    assert response == {"batchItemFailures": []}
    outcomes = sorted((f["principal_arn"], f["outcome"]) for f in world.findings())
    assert outcomes == sorted([(first, "REMEDIATED"), (late, "REMEDIATED")])
    final = world.policy(key)
    assert policy.is_granted(final, first, policy.TRAINING_DATA, key), "the first grant, reported made, was erased"
    assert policy.is_granted(final, late, policy.TRAINING_DATA, key)


def test_a_grant_of_another_invocation_is_not_erased_by_a_write_built_on_a_lagging_read(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a managed KmsKeyId key on which one training call just granted its caller
    monkeypatch.setattr("clguard.usecases.keywrite.CAUGHT_UP_DELAYS", (0.0, 0.0))
    first, second = world.role("Trainer", "/ml/"), world.role("OtherTrainer", "/ml/")
    key = world.key()
    before = world.policy(key)
    grant_app.lambda_handler(world.training_event(kms_key=key, issuer=first), LambdaContext(function_name="grant"))
    assert policy.is_granted(world.policy(key), first, policy.COPIED_IMAGES_USE, key)
    # And seconds later another caller's call, whose first reads of the policy (the directory's,
    # then the one inside the lock) come from a replica that has not seen the first write yet
    stale_key_policy_reads(calls, before, at_calls={1, 2})

    # When the second call is handled
    grant_app.lambda_handler(
        world.training_event(kms_key=key, issuer=second, event_id="second-call"), LambdaContext(function_name="grant")
    )

    # Then both callers are granted: the second write waited for a read that shows the first
    final = world.policy(key)
    assert policy.is_granted(final, second, policy.COPIED_IMAGES_USE, key)
    assert policy.is_granted(final, first, policy.COPIED_IMAGES_USE, key), "the first call's grant was erased"
