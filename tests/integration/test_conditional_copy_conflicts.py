"""A re-encryption copy that meets a concurrent write of the same key: S3 answers a conditional
CopyObject (``If-Match``) or CompleteMultipartUpload with 409 ConditionalRequestConflict, and
the S3 API reference says what to do: "If a concurrent operation occurs during the upload S3
returns a 409 ConditionalRequestConflict response. On a 409 failure you should fetch the
object's ETag and retry" (CopyObject, ``If-Match``). So the record is retried (SQS redelivers
it; the retry re-inspects the object), not closed with a FAILED finding that leaves the object
unencrypted."""

from __future__ import annotations

from typing import Any

from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import LambdaContext, World

KEY = "datasets/cats/images/cat-409.jpg"


def verify(event: dict[str, Any], *, receive_count: int = 1) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(sqs_event(event, receive_count=receive_count), LambdaContext())
    return response


def test_a_copy_that_meets_a_concurrent_write_is_retried_not_failed(world: World, calls: Boundary) -> None:
    # Given an unencrypted object, and S3 answering the first re-encryption copy with a 409
    world.put_legacy(KEY)
    calls.faults.add("CopyObject", "ConditionalRequestConflict", status=409, times=1)
    event = world.object_created(KEY)

    # When its event is handled
    # Then the record fails for SQS to redeliver, and no FAILED finding is published
    assert len(verify(event)["batchItemFailures"]) == 1
    assert world.findings() == []

    # And when SQS redelivers it, the object is re-encrypted and reported once
    assert verify(event, receive_count=2) == {"batchItemFailures": []}
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]
