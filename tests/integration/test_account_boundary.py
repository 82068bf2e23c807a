"""The organization boundary of S3 (docs/architecture.md §2): bucket names are global and a
member's declaration is its own word, so a member never takes over another account's bucket.

- The audit lists a bucket that more than one account names as the account S3 says owns it; the
  other members' claims are refused and reported once per run, naming both accounts.
- Acting in a member, every S3 call names the member as the bucket's expected owner
  (``ExpectedBucketOwner``, a copy's ``ExpectedSourceBucketOwner``), so S3 refuses any other
  account's bucket: no path (the audit, an event, a training call's fan-out) reads or rewrites
  another account's object through a member's role. moto ignores the condition; the
  ``BucketOwnerCondition`` double makes it answer as S3 does.
"""

from __future__ import annotations

from typing import Any

from tests.auditrun import findings, run_audit
from tests.awscalls import Boundary
from tests.integration import test_many_accounts as many
from tests.integration.test_many_accounts import MEMBER, MEMBER_BUCKET, Member, upload_event, verify
from tests.integration.test_organization import declare
from tests.world import ACCOUNT, BUCKET, World, member_world

member = many.member
SECOND = "444455556666"  # a second member


def _record_owner_headers(calls: Boundary) -> list[tuple[str, str, str | None, str | None]]:
    """Every S3 request of the code under test: (operation, url, expected owner, expected source owner)."""
    seen: list[tuple[str, str, str | None, str | None]] = []

    def record(model: Any, params: Any, **_: Any) -> None:
        headers = params.get("headers", {})
        seen.append(
            (
                model.name,
                str(params.get("url", "")),
                headers.get("x-amz-expected-bucket-owner"),
                headers.get("x-amz-source-expected-bucket-owner"),
            )
        )

    calls.session.events.register("before-call.s3.*", record, unique_id="owner-headers")
    return seen


def _claims_refused(world: World) -> list[dict[str, Any]]:
    return [f for f in findings(world) if f["finding_type"] == "MEMBER_UNREACHABLE" and f["outcome"] == "REFUSED"]


# --- the audit: who owns a bucket named by more than one account --------------------------------------


def test_a_member_cannot_take_over_the_audit_of_a_central_training_bucket(audited: World, member: Member) -> None:
    # Given a legacy (unencrypted) object in the central account's own training bucket
    audited.env_set(TRAINING_BUCKETS=BUCKET)
    audited.put_legacy("images/legacy.jpg")
    # and a member whose declaration (its own SSM parameter) also names that bucket
    declare(training_buckets=[MEMBER_BUCKET, BUCKET])

    # When the audit runs
    run_audit(audited)

    # Then the central object was found and remediated by the central account, as without the member
    central = [
        (f["finding_type"], f["outcome"], f["account"])
        for f in findings(audited)
        if f["resource"].get("bucket") == BUCKET
    ]
    assert ("OBJECT_UNENCRYPTED", "REMEDIATED", ACCOUNT) in central, central
    assert audited.head("images/legacy.jpg")["ServerSideEncryption"] == "AES256"
    # and the member's claim is refused, once, naming the member and the owning account
    refused = _claims_refused(audited)
    assert [f["account"] for f in refused] == [MEMBER]
    assert BUCKET in refused[0]["detail"]
    assert ACCOUNT in refused[0]["detail"]


def test_a_central_object_is_never_re_keyed_with_a_member_key(audited: World, member: Member) -> None:
    # Given SSE_KMS with the central re-encryption key, a legacy object in the central bucket,
    # and a member whose declaration names the central bucket and its own re-encryption key
    audited.env_set(TRAINING_BUCKETS=BUCKET, ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=member.central_key)
    audited.put_legacy("images/legacy.jpg")
    declare(training_buckets=[MEMBER_BUCKET, BUCKET], reencrypt_kms_key=member.key)

    # When the audit runs
    run_audit(audited)

    # Then the central object is under the central key, never the member account's (design §11)
    head = audited.head("images/legacy.jpg")
    assert head.get("SSEKMSKeyId") == member.central_key, head.get("SSEKMSKeyId")


def test_a_claim_is_refused_once_per_run_and_the_member_s_own_bucket_is_still_audited(
    audited: World, member: Member
) -> None:
    # Given the member's own legacy object, and a declaration naming its bucket and the central one
    audited.env_set(TRAINING_BUCKETS=BUCKET)
    member.world.put_legacy("images/own.jpg", bucket=MEMBER_BUCKET)
    declare(training_buckets=[MEMBER_BUCKET, BUCKET])

    # When two audit runs happen
    run_audit(audited)
    run_audit(audited)

    # Then the member's own object was remediated as the member, and each run refused the claim once
    assert member.world.head("images/own.jpg", bucket=MEMBER_BUCKET)["ServerSideEncryption"] == "AES256"
    assert ("OBJECT_UNENCRYPTED", "REMEDIATED", MEMBER) in {
        (f["finding_type"], f["outcome"], f["account"]) for f in findings(audited)
    }
    assert len(_claims_refused(audited)) == 2
    assert len({f["source_event_id"] for f in _claims_refused(audited)}) == 2


def test_a_bucket_named_by_the_central_configuration_and_its_owner_member_is_the_member_s(
    audited: World, member: Member
) -> None:
    # Given TRAINING_BUCKETS naming the member's bucket too (as before members declared theirs),
    # and the member declaring it
    audited.env_set(TRAINING_BUCKETS=f"{BUCKET},{MEMBER_BUCKET}")
    member.world.put_legacy("images/own.jpg", bucket=MEMBER_BUCKET)
    declare()

    # When the audit runs
    run_audit(audited)

    # Then S3 says the bucket is the member's: it is audited as the member, and no claim is refused
    assert ("OBJECT_UNENCRYPTED", "REMEDIATED", MEMBER) in {
        (f["finding_type"], f["outcome"], f["account"]) for f in findings(audited)
    }
    assert _claims_refused(audited) == []


def test_a_member_cannot_take_over_another_member_s_bucket(audited: World, member: Member) -> None:
    # Given a second member (lower in no order that matters) that owns a bucket with a legacy
    # object, and the first member's declaration naming that bucket too
    second = member_world(SECOND)
    second.role("CustomLabelsGuardMember")
    second.s3.create_bucket(Bucket="second-training-data")
    second.put_legacy("images/s.jpg", bucket="second-training-data")
    audited.env_set(MEMBER_ACCOUNTS=f"{MEMBER},{SECOND}", TRAINING_BUCKETS=BUCKET)
    declare(training_buckets=[MEMBER_BUCKET, "second-training-data"])
    declare(SECOND, training_buckets=["second-training-data"])

    # When the audit runs
    run_audit(audited)

    # Then the bucket was audited as its owner, the second member, and the first member's claim refused
    assert second.head("images/s.jpg", bucket="second-training-data")["ServerSideEncryption"] == "AES256"
    on_it = {f["account"] for f in findings(audited) if f["resource"].get("bucket") == "second-training-data"}
    assert on_it == {SECOND}
    refused = _claims_refused(audited)
    assert [f["account"] for f in refused] == [MEMBER]
    assert SECOND in refused[0]["detail"]


# --- every member S3 call names the member as the bucket's owner ---------------------------------------


def test_every_s3_call_made_as_a_member_names_the_member_as_the_bucket_owner(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given a legacy object in the member's bucket, and a record of the guard's S3 requests
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)
    seen = _record_owner_headers(calls)

    # When its upload is verified (head, ACL, copy in place, read back) through the member role
    assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}

    # Then it was remediated, and every S3 request named the member as the owner of the bucket
    # (and of the copy source)
    assert member.world.head("images/a.jpg", bucket=MEMBER_BUCKET)["ServerSideEncryption"] == "AES256"
    assert {"HeadObject", "CopyObject"} <= {operation for operation, *_ in seen}
    assert [s for s in seen if s[2] != MEMBER] == []
    assert [s for s in seen if s[0] == "CopyObject" and s[3] != MEMBER] == []


def test_a_member_event_for_a_central_object_changes_nothing_in_the_central_bucket(
    world: World, member: Member
) -> None:
    # Given a legacy object in the central bucket, and a data event of the member account for it
    # (a cross-account write: the member's trail records it; the member declares nothing, so the
    # central TRAINING_BUCKETS apply to it)
    world.put_legacy("images/c.jpg")
    event = world.data_event("images/c.jpg", None, None)
    event["account"] = MEMBER

    # When the verify function handles it, acting in the member
    assert verify(event) == {"batchItemFailures": []}

    # Then S3 refused the member's role the central bucket: the object is untouched (never
    # re-encrypted as the member), and what the member could not see is reported for the member
    assert "ServerSideEncryption" not in world.head("images/c.jpg")
    assert [(f["finding_type"], f["account"]) for f in world.findings()] == [("OBJECT_UNVERIFIABLE", MEMBER)]


def test_an_owner_s3_cannot_confirm_now_leaves_the_claim_to_the_member_s_own_bucket_condition(
    audited: World, member: Member, calls: Boundary
) -> None:
    # Given a member claiming the central bucket, and S3 answering neither account's probe of who
    # owns it (503 SlowDown: the injected fault fails the whole call, retries included)
    audited.env_set(TRAINING_BUCKETS=BUCKET)
    audited.put_legacy("images/legacy.jpg")
    declare(training_buckets=[MEMBER_BUCKET, BUCKET])
    calls.faults.add("ListObjectsV2", "SlowDown", status=503, times=2)

    # When the audit runs
    summary = run_audit(audited)

    # Then the run still completes; the member keeps its claim for this run, but listing the
    # bucket as the member is refused by S3 (reported: the member could not read it), so no object
    # of the central account is touched as the member, and no claim is refused without S3's word
    assert summary["status"] in ("listed", "finished"), summary
    assert "ServerSideEncryption" not in audited.head("images/legacy.jpg")
    as_member = [
        (f["finding_type"], f["outcome"])
        for f in findings(audited)
        if f["resource"].get("bucket") == BUCKET and f["account"] == MEMBER
    ]
    assert as_member == [("OBJECT_UNVERIFIABLE", "REPORTED")]
    assert _claims_refused(audited) == []
