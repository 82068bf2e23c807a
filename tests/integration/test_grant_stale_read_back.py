"""A grant whose read-back is stale (KMS eventual consistency) is reported as the change it is.

"Because of the distributed nature of the system, the AWS KMS API follows an eventual
consistency model. As a result, changes to AWS KMS resources might not be immediately visible to
the subsequent commands you run" (KMS Developer Guide, "AWS KMS eventual consistency",
https://docs.aws.amazon.com/kms/latest/developerguide/programming-eventual-consistency.html; the
GetKeyPolicy reference points to it). So the GetKeyPolicy that confirms a PutKeyPolicy can still
return the policy as it was before the write. The write happened: the finding must say so
(REMEDIATED, with the statement before and after), not FAILED, or a key-policy change is never
reported as made."""

from __future__ import annotations

from clguard.rules import policy
from functions.verify_object_encryption import app
from tests.awscalls import Boundary, stale_key_policy_reads
from tests.conftest import TRAINER
from tests.eventsamples import load_event, sqs_event
from tests.world import LambdaContext, World


def test_a_grant_whose_read_back_is_stale_is_reported_as_made(world: World, calls: Boundary, cmk_object: str) -> None:
    # Given an object under a managed key TRAINER (a training principal) lacks, and a confirming
    # read (the third GetKeyPolicy: the batch's view, the re-read inside the lock, the read-back)
    # answered by a replica that has not seen the write yet
    stale_key_policy_reads(calls, world.policy(cmk_object), at_calls={3})

    # When the object's event is processed
    response = app.lambda_handler(sqs_event(load_event("s3_object_created")), LambdaContext())

    # Then the grant is in the policy and reported as the change it is, with its statement
    assert response == {"batchItemFailures": []}
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA, cmk_object)
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("KEY_ACCESS_MISSING", "REMEDIATED")
    assert finding["change"]["sid"] == policy.TRAINING_DATA.sid
