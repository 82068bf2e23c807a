"""A grant whose confirming read is refused (not throttled) is still reported as the change it is.

After PutKeyPolicy the guard re-reads the policy to confirm the grant. That read can be refused
for good (AccessDeniedException, KMSInvalidStateException) when the key changes under the write:
an administrator replaces the policy or schedules the key for deletion between the two calls
(people do not take the guard's lock). KMS evaluates each request against the policy in force
(https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html), so the write has
landed and the read can still be denied. The write must then be reported (REMEDIATED,
unconfirmed), never replaced by a KEY_UNUSABLE finding that says nothing was changed."""

from __future__ import annotations

from clguard.rules import policy
from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.conftest import TRAINER
from tests.eventsamples import load_event, sqs_event
from tests.world import LambdaContext, World


def test_a_grant_whose_read_back_is_denied_is_reported_as_made(world: World, calls: Boundary, cmk_object: str) -> None:
    # Given an object under a managed key TRAINER (a training principal) lacks, and the confirming
    # read after the write denied (the third GetKeyPolicy: the batch's view, the re-read inside
    # the lock, the read-back)
    calls.faults.add("GetKeyPolicy", "AccessDeniedException", after=2, times=1)

    # When the object's event is processed
    response = app.lambda_handler(sqs_event(load_event("s3_object_created")), LambdaContext())

    # Then the grant is in the policy, and it was reported as a change (unconfirmed), not as
    # "nothing was changed"
    assert response == {"batchItemFailures": []}
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    reported = [(f["finding_type"], f["outcome"]) for f in world.findings()]
    assert ("KEY_ACCESS_MISSING", "REMEDIATED") in reported
    assert all("nothing was changed" not in f["detail"] for f in world.findings())
