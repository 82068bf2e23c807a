"""The remediator never destroys data it was not asked to touch, and one object is remediated
once: URL-encoded keys, UpdateObjectEncryption pinned to what was inspected, copies guarded by
what changes with every write, ACLs kept, concurrent deliveries serialized."""

from __future__ import annotations

from typing import Any

from functions.verify_object_encryption import app
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import BUCKET, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"


def run(*bodies: object) -> dict[str, object]:
    return app.lambda_handler(sqs_event(*bodies), LambdaContext())  # type: ignore[arg-type]


def cloudtrail_put(key: str) -> dict[str, Any]:
    event = load_event("cloudtrail_s3_putobject")
    event["detail"]["requestParameters"]["key"] = key
    event["detail"]["requestParameters"]["bucketName"] = BUCKET
    return event


# --- URL-encoded keys ---------------------------------------------------------------------------


def test_a_compliant_decoy_does_not_hide_the_url_decoded_object(world: World) -> None:
    # Given a compliant decoy "x+y.jpg" and the unencrypted "x y.jpg" it could stand for
    decoy, real = "datasets/x+y.jpg", "datasets/x y.jpg"
    world.put(decoy, ServerSideEncryption="AES256")
    world.put_legacy(real)

    # When the EventBridge event of the upload of "x y.jpg" arrives, its key URL-encoded
    run(world.object_created(decoy))

    # Then the real object is re-encrypted and reported, and the decoy left alone
    assert world.head(real)["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["resource"]["key"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", real)]


def test_both_readings_of_an_ambiguous_key_are_checked(world: World) -> None:
    # Given two unencrypted objects, "x+y.jpg" and "x y.jpg"
    raw, decoded = "datasets/x+y.jpg", "datasets/x y.jpg"
    world.put_legacy(raw)
    world.put_legacy(decoded)

    # When one EventBridge event names "x+y.jpg"
    run(world.object_created(raw))

    # Then both are re-encrypted and reported, each under its own key
    assert {f["resource"]["key"] for f in world.findings()} == {raw, decoded}
    assert world.head(raw)["ServerSideEncryption"] == world.head(decoded)["ServerSideEncryption"] == "AES256"


def test_a_cloudtrail_key_is_checked_in_both_readings_too(world: World) -> None:
    # Given a compliant "x+y.jpg" and an unencrypted "x y.jpg"
    world.put("datasets/x+y.jpg", ServerSideEncryption="AES256")
    world.put_legacy("datasets/x y.jpg")

    # When a CloudTrail PutObject data event names "x+y.jpg"
    run(cloudtrail_put("datasets/x+y.jpg"))

    # Then the unencrypted one is found all the same
    assert [f["resource"]["key"] for f in world.findings()] == ["datasets/x y.jpg"]


def test_our_own_fanout_keys_are_used_exactly(world: World, calls: Boundary) -> None:
    # Given an unencrypted "x y.jpg" and a fan-out message (raw keys) naming "x+y.jpg", which
    # does not exist
    from clguard import fanout  # noqa: PLC0415
    from clguard.manifest import ImageRef  # noqa: PLC0415

    world.put_legacy("datasets/x y.jpg")
    [body] = fanout.messages([ImageRef(BUCKET, "datasets/x+y.jpg")], source_event_id="e1", origin="test", principals=[])

    # When it is processed
    run(body)

    # Then only "x+y.jpg" was looked at (gone: skipped), never its URL-decoding
    assert world.findings() == []
    assert calls.log.count("HeadObject") == 1
