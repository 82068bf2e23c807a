"""The remediator never destroys data it was not asked to touch, and one object is remediated
once: URL-encoded keys, UpdateObjectEncryption pinned to what was inspected, copies guarded by
what changes with every write, ACLs kept, concurrent deliveries serialized."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from clguard.adapters import s3
from clguard.adapters.s3 import HeadStatus, ObjectChanged
from clguard.boundary.s3ref import S3ObjectRef
from clguard.rules.encryption import Encryption, ObjectEncryption
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
    from clguard.boundary import fanout  # noqa: PLC0415
    from clguard.boundary.s3ref import S3ObjectRef  # noqa: PLC0415

    world.put_legacy("datasets/x y.jpg")
    [body] = fanout.messages(
        [S3ObjectRef(BUCKET, "datasets/x+y.jpg")], source_event_id="e1", origin="test", principals=[]
    )

    # When it is processed
    run(body)

    # Then only "x+y.jpg" was looked at (gone: skipped), never its URL-decoding
    assert world.findings() == []
    assert calls.log.count("HeadObject") == 1


# --- UpdateObjectEncryption pinned to what was inspected ----------------------------------------


def wrong_key_setup(world: World) -> tuple[str, str, str]:
    """ALLOWED_KMS_KEYS = {allowed, target}, REENCRYPT_KMS_KEY = target, and KEY under a third
    key: the remediation is UpdateObjectEncryption to ``target``."""
    allowed, target, other = world.key(), world.key(), world.key()
    world.env_set(ALLOWED_KMS_KEYS=f"{allowed},{target}", REENCRYPT_KMS_KEY=target)
    world.put(KEY, b"old", ServerSideEncryption="aws:kms", SSEKMSKeyId=other)
    return allowed, target, other


def upload_after(calls: Boundary, event: str, world: World, key_arn: str, *, skip: int = 0) -> None:
    """Upload a newer version of KEY under ``key_arn`` when ``event`` fires (once, after ``skip``)."""
    seen = {"n": 0}

    def upload(**_: Any) -> None:
        seen["n"] += 1
        if seen["n"] == skip + 1:
            world.put(KEY, b"new", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)

    calls.session.events.register(event, upload)


def test_a_newer_upload_after_the_inspection_is_not_rekeyed(world: World, calls: Boundary) -> None:
    # Given an object under a key outside ALLOWED_KMS_KEYS (unversioned bucket), and a newer
    # upload under an allowed key landing right after the remediator inspected it
    allowed, target, _ = wrong_key_setup(world)
    upload_after(calls, "after-call.s3.HeadObject", world, allowed)

    # When its event is processed
    run(load_event("s3_object_created"))

    # Then the newer upload keeps its allowed key: nothing was updated, nothing reported
    assert world.head(KEY)["SSEKMSKeyId"] == allowed
    assert calls.log.count("UpdateObjectEncryption") == 0
    assert world.findings() == []
    del target


def test_in_an_unversioned_bucket_the_update_is_a_conditional_copy(world: World, calls: Boundary) -> None:
    # Given an unversioned bucket and an object under a key outside ALLOWED_KMS_KEYS (no version
    # id can pin an UpdateObjectEncryption to it)
    _, target, _ = wrong_key_setup(world)

    # When its event is processed
    run(load_event("s3_object_created"))

    # Then it is re-encrypted by the copy that has preconditions, never by UpdateObjectEncryption
    assert world.head(KEY)["SSEKMSKeyId"] == target
    assert (calls.log.count("UpdateObjectEncryption"), calls.log.count("CopyObject")) == (0, 1)
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_WRONG_ENCRYPTION", "REMEDIATED")
    assert "(CopyObject)" in finding["detail"]


def test_in_an_unversioned_bucket_an_upload_racing_the_write_is_never_rekeyed(world: World, calls: Boundary) -> None:
    # Given an unversioned bucket, an object under a key outside ALLOWED_KMS_KEYS, and a newer
    # upload under an allowed key landing after every check, as the re-encrypting write is sent
    allowed, target, _ = wrong_key_setup(world)
    upload_after(calls, "before-call.s3.CopyObject", world, allowed)

    # When its event is processed
    response = run(load_event("s3_object_created"))

    # Then S3 refuses the conditional copy: the upload keeps its bytes and its allowed key, and
    # nothing is reported for it (its own event checks it)
    assert response == {"batchItemFailures": []}
    current = world.s3.get_object(Bucket=BUCKET, Key=KEY)
    assert (current["Body"].read(), current["SSEKMSKeyId"]) == (b"new", allowed)
    assert calls.log.count("UpdateObjectEncryption") == 0
    assert world.findings() == []
    del target


def test_in_an_unversioned_bucket_an_upload_racing_a_multipart_copy_is_never_overwritten(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an unversioned bucket, an 11 MiB object under a key outside ALLOWED_KMS_KEYS (above the
    # copy limit: copied in parts), and a newer upload under an allowed key landing after every part
    # was copied, as CompleteMultipartUpload is sent
    allowed, target, other = world.key(), world.key(), world.key()
    world.env_set(ALLOWED_KMS_KEYS=f"{allowed},{target}", REENCRYPT_KMS_KEY=target)
    world.put(KEY, bytes(range(256)) * (11 * 4096), ServerSideEncryption="aws:kms", SSEKMSKeyId=other)
    monkeypatch.setattr(s3, "MIN_PART", 5 * 1024 * 1024)
    monkeypatch.setattr(s3, "copy_in_place", functools.partial(s3.copy_in_place, copy_limit=1024 * 1024))
    upload_after(calls, "before-call.s3.CompleteMultipartUpload", world, allowed)

    # When its event is processed
    response = run(load_event("s3_object_created"))

    # Then S3 refuses to complete the copy over it: the upload keeps its bytes and its key, the
    # parts are aborted, and no change is claimed
    assert response == {"batchItemFailures": []}
    current = world.s3.get_object(Bucket=BUCKET, Key=KEY)
    assert (current["Body"].read(), current["SSEKMSKeyId"]) == (b"new", allowed)
    assert (calls.log.count("UploadPartCopy"), calls.log.count("AbortMultipartUpload")) == (3, 1)
    assert calls.log.count("UpdateObjectEncryption") == 0
    assert world.findings() == []
    del target


def test_in_an_unversioned_bucket_an_upload_racing_the_copy_of_an_unencrypted_object_is_kept(
    world: World, calls: Boundary
) -> None:
    # Given an unversioned bucket, an unencrypted object, and a newer upload (other bytes, SSE-S3)
    # landing as the re-encryption copy is sent
    world.put_legacy(KEY, b"old")
    fired = {"n": 0}

    def upload(**_: Any) -> None:
        fired["n"] += 1
        if fired["n"] == 1:
            world.put(KEY, b"new", Metadata={"a": "2"}, ServerSideEncryption="AES256")

    calls.session.events.register("before-call.s3.CopyObject", upload)

    # When the first upload's event is processed
    run(load_event("s3_object_created"))

    # Then the newer upload is untouched (bytes, metadata), and no change is claimed
    current = world.s3.get_object(Bucket=BUCKET, Key=KEY)
    assert (current["Body"].read(), current["Metadata"]) == (b"new", {"a": "2"})
    assert world.findings() == []


def test_in_a_versioned_bucket_the_update_is_pinned_to_the_inspected_version(world: World, calls: Boundary) -> None:
    # Given a versioned bucket, an object under a key outside ALLOWED_KMS_KEYS, and a newer
    # upload under an allowed key landing after every check, as UpdateObjectEncryption is sent
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    allowed, target, _ = wrong_key_setup(world)
    inspected = world.head(KEY)["VersionId"]
    upload_after(calls, "before-call.s3.UpdateObjectEncryption", world, allowed)

    # When its event is processed
    run(load_event("s3_object_created"))

    # Then the newer upload keeps its key, and only the inspected version was updated
    assert world.head(KEY)["SSEKMSKeyId"] == allowed
    old = world.s3.head_object(Bucket=BUCKET, Key=KEY, VersionId=inspected)
    assert old["SSEKMSKeyId"] == target


# --- copies guarded by what changes with every write ---------------------------------------------


def versioned_same_bytes_race(world: World, calls: Boundary, event: str) -> None:
    """A versioned bucket, KEY unencrypted without metadata, and a same-bytes re-upload with
    metadata a=2 (same ETag: the MD5 of the bytes) landing when ``event`` first fires."""
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    world.put_legacy(KEY, b"same bytes")
    fired = {"n": 0}

    def reupload(**_: Any) -> None:
        fired["n"] += 1
        if fired["n"] == 1:
            world.put(KEY, b"same bytes", Metadata={"a": "2"})

    calls.session.events.register(event, reupload)


def test_a_same_bytes_reupload_after_the_inspection_is_not_rolled_back(world: World, calls: Boundary) -> None:
    # Given a versioned bucket, an unencrypted object, and a same-bytes re-upload with new
    # metadata (same ETag) landing right after the remediator inspected the object
    versioned_same_bytes_race(world, calls, "after-call.s3.HeadObject")

    # When the first upload's event is processed
    run(load_event("s3_object_created"))

    # Then the re-upload stays current with its metadata: nothing was copied over it
    assert world.head(KEY)["Metadata"] == {"a": "2"}
    assert calls.log.count("CopyObject") == 0


def test_a_same_bytes_reupload_racing_the_copy_is_put_back_on_top(world: World, calls: Boundary) -> None:
    # Given the same-bytes re-upload lands between the last check and the CopyObject itself
    versioned_same_bytes_race(world, calls, "before-call.s3.CopyObject")

    # When the first upload's event is processed
    run(load_event("s3_object_created"))

    # Then the re-upload's metadata is current again (the copy's version lies under it), and
    # no remediation is claimed for the version that is no longer current
    head = world.head(KEY)
    assert head["Metadata"] == {"a": "2"}
    assert head["ServerSideEncryption"] == "AES256"
    assert world.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"same bytes"
    assert world.findings() == []


# --- ACLs survive the copy ---------------------------------------------------------------------------

PARTNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"


def grants_of(world: World, key: str) -> set[tuple[str, str]]:
    acl = world.s3.get_object_acl(Bucket=BUCKET, Key=key)
    return {(g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"]) for g in acl["Grants"]}


def test_a_partner_read_grant_survives_the_reencryption(world: World) -> None:
    # Given an unencrypted object whose ACL grants a partner account READ
    world.put_legacy(KEY)
    owner = world.s3.get_object_acl(Bucket=BUCKET, Key=KEY)["Owner"]["ID"]
    world.s3.put_object_acl(Bucket=BUCKET, Key=KEY, GrantRead=f'id="{PARTNER}"', GrantFullControl=f'id="{owner}"')
    before = grants_of(world, KEY)
    assert (PARTNER, "READ") in before

    # When it is re-encrypted in place
    run(load_event("s3_object_created"))

    # Then it is encrypted and its ACL has the same grants
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert grants_of(world, KEY) == before


def test_the_acl_is_read_on_the_remediation_path_only(world: World, calls: Boundary) -> None:
    # Given a compliant object
    world.put(KEY, ServerSideEncryption="AES256")

    # When its event is processed
    run(load_event("s3_object_created"))

    # Then one HeadObject was the only S3 call
    assert calls.log.by_operation() == {"HeadObject": 1}


def test_an_acl_a_copy_cannot_carry_is_reported_not_copied(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an unencrypted object whose ACL has a grant the grant headers cannot express
    from clguard.adapters import s3  # noqa: PLC0415

    world.put_legacy(KEY)

    def unsupported(ref: S3ObjectRef) -> dict[str, str]:
        raise s3.UnsupportedAcl("permission 'WRITE'")

    monkeypatch.setattr(s3, "acl_grants", unsupported)

    # When its event is processed
    run(load_event("s3_object_created"))

    # Then it is not copied (that would drop the grant) and the finding says why
    assert calls.log.count("CopyObject") == 0
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"]) == ("OBJECT_UNENCRYPTED", "REPORTED")
    assert "ACL" in finding["detail"]


# --- one remediation of an object at a time ------------------------------------------------------


def test_the_same_event_delivered_twice_at_once_copies_once(world: World, calls: Boundary) -> None:
    # Given an unencrypted object, and two deliveries of its event that both inspect it before
    # either remediates (each waits for the other after its first HeadObject)
    import threading  # noqa: PLC0415

    world.put_legacy(KEY)
    barrier = threading.Barrier(2)
    waited = threading.local()

    def meet(**_: Any) -> None:
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait(timeout=10)

    calls.session.events.register("after-call.s3.HeadObject", meet)
    event = load_event("s3_object_created")
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(run(event))) for _ in range(2)]

    # When both run at the same moment
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then the object was copied once, one finding says so, and both records succeeded
    assert not barrier.broken
    assert results == [{"batchItemFailures": []}] * 2
    assert calls.log.count("CopyObject") == 1
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"


def test_without_its_lease_an_object_is_not_remediated_and_the_record_is_retried(world: World, calls: Boundary) -> None:
    # Given DynamoDB refusing every write (the lease cannot be taken)
    world.put_legacy(KEY)
    calls.faults.add("PutItem", "ProvisionedThroughputExceededException")

    # When the event is processed
    response = run(load_event("s3_object_created"))

    # Then nothing was copied and the record fails (SQS retries it, then its DLQ keeps it)
    assert len(response["batchItemFailures"]) == 1  # type: ignore[arg-type]
    assert calls.log.count("CopyObject") == 0
    assert "ServerSideEncryption" not in world.head(KEY)


def test_a_compliant_object_takes_no_lease(world: World, calls: Boundary) -> None:
    # Given a compliant object / When its event is processed / Then no state-table call is made
    world.put(KEY, ServerSideEncryption="AES256")
    run(load_event("s3_object_created"))
    assert calls.log.count("PutItem") == calls.log.count("DeleteItem") == 0


# --- versioned buckets and changed objects: the copy never overwrites or revives ----------------


def versioned_event(version: str) -> dict[str, Any]:
    """The sample Object Created event, for one version of its key."""
    event = load_event("s3_object_created")
    event["detail"]["object"]["version-id"] = version
    return event


@pytest.fixture
def versioned(world: World) -> World:
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return world


def test_a_deleted_object_is_not_brought_back(versioned: World) -> None:
    # Given an unencrypted version, then the object deleted (a delete marker is current)
    versioned.put_legacy(KEY, b"old")
    version = versioned.head(KEY)["VersionId"]
    versioned.s3.delete_object(Bucket=BUCKET, Key=KEY)

    # When the first upload's event arrives (late, or redriven from the DLQ)
    run(versioned_event(version))

    # Then the object stays deleted and nothing is reported
    assert s3.head(S3ObjectRef(BUCKET, KEY)).status is HeadStatus.GONE
    assert versioned.published() == []


def test_a_newer_upload_is_not_rolled_back(versioned: World) -> None:
    # Given an unencrypted version, then a newer upload (SSE-S3) of the key
    versioned.put_legacy(KEY, b"old-unencrypted")
    old = versioned.head(KEY)["VersionId"]
    versioned.put(KEY, b"new", ServerSideEncryption="AES256")

    # When the old version's event arrives
    run(versioned_event(old))

    # Then the newer upload stays current, untouched
    assert versioned.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"new"
    assert versioned.published() == []


def test_copy_does_not_overwrite_an_object_that_changed_since_it_was_inspected(world: World) -> None:
    # Given an inspected unencrypted object, then a new upload of the key
    world.put_legacy(KEY, b"old")
    inspected = s3.head(S3ObjectRef(BUCKET, KEY))
    world.put(KEY, b"new", ServerSideEncryption="AES256")

    # When the remediator copies what it inspected
    with pytest.raises(ObjectChanged):
        s3.copy_in_place(inspected, ObjectEncryption(Encryption.SSE_S3))

    # Then the new upload is intact
    assert world.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"new"


def test_in_a_versioned_bucket_the_copy_does_not_overwrite_a_newer_upload(versioned: World) -> None:
    # Given an inspected version, then a newer upload: the inspected version itself is unchanged,
    # so only the destination's If-Match can tell
    versioned.put_legacy(KEY, b"old")
    inspected = s3.head(S3ObjectRef(BUCKET, KEY))
    versioned.put(KEY, b"new", ServerSideEncryption="AES256")

    # When the remediator copies what it inspected, it is told the object changed
    with pytest.raises(ObjectChanged):
        s3.copy_in_place(inspected, ObjectEncryption(Encryption.SSE_S3))

    # Then the newer upload is intact
    assert versioned.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"new"


def test_multipart_copy_keeps_content_metadata_and_tags(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an 11 MiB legacy object with metadata and tags, and a copy limit below its size
    body = bytes(range(256)) * (11 * 4096)
    world.put_legacy(KEY, body)
    world.s3.put_object_tagging(Bucket=BUCKET, Key=KEY, Tagging={"TagSet": [{"Key": "label", "Value": "cat"}]})
    h = s3.head(S3ObjectRef(BUCKET, KEY))

    # When it is re-encrypted with 5 MiB parts
    monkeypatch.setattr(s3, "MIN_PART", 5 * 1024 * 1024)
    s3.copy_in_place(h, ObjectEncryption(Encryption.SSE_S3), copy_limit=1024 * 1024)

    # Then the content, tags and encryption are right, and the parts went through UploadPartCopy
    assert world.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == body
    assert world.s3.get_object_tagging(Bucket=BUCKET, Key=KEY)["TagSet"] == [{"Key": "label", "Value": "cat"}]
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    assert calls.log.count("UploadPartCopy") == 3
    assert calls.log.count("CompleteMultipartUpload") == 1


def test_a_second_event_for_the_same_upload_is_not_a_false_failure(versioned: World) -> None:
    # Given an unencrypted upload remediated once (its copy is a newer version)
    versioned.put_legacy(KEY)
    event = versioned_event(versioned.head(KEY)["VersionId"])
    run(event)

    # When the same upload's event comes again (CloudTrail rule, redelivery, redrive)
    run(event)

    # Then the one finding is the remediation: no "copy did not take effect"
    assert [(f["finding_type"], f["outcome"]) for f in versioned.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]
