"""What one account learns about a key or a bucket stays that account's (docs/architecture.md §2,
"The organization boundary"): the per-container caches of key lookups, key policies, tags and the
names people know (owner, alias) are kept per account acted in, ARNs included, and a finding's
identity names its account, so a member's failed lookup of a central key neither poisons nor
mutes the central account's own work on that key."""

from __future__ import annotations

from dataclasses import replace

import boto3

from clguard.adapters import clients
from clguard.boundary.config import load_settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting import labels
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.state.keydirectory import KeyDirectory
from tests.awscalls import Boundary
from tests.integration import test_many_accounts as many
from tests.integration.test_many_accounts import MEMBER, MEMBER_BUCKET, MEMBER_ROLE, Member, upload_event, verify
from tests.world import ACCOUNT, BUCKET, REGION, World

member = many.member
CENTRAL_TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"


def _as_member() -> clients.Member:
    return clients.Member(MEMBER, MEMBER_ROLE)


def object_finding(bucket: str) -> Finding:
    return Finding(
        finding_type=FindingType.OBJECT_UNENCRYPTED,
        outcome=Outcome.REPORTED,
        resource=S3ObjectRef(bucket, "images/a.jpg"),
        detail="no encryption",
        source_event_id="evt",
        account=ACCOUNT,
        region=REGION,
    )


def test_a_member_lookup_of_a_central_key_does_not_poison_the_central_account(world: World, member: Member) -> None:
    # Given the central trainer as TRAINING_PRINCIPALS and a managed central key K, and one object
    # in the member's bucket and one in the central bucket, both under K (an org-shared key)
    world.env_set(TRAINING_PRINCIPALS=CENTRAL_TRAINER)
    key = member.central_key
    member.world.put("images/m.jpg", bucket=MEMBER_BUCKET, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.put("images/c.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)

    # When the member's upload is verified (its role cannot describe K), then, in the same warm
    # container and within the key cache's minute, the central one
    assert verify(upload_event(world, "images/m.jpg")) == {"batchItemFailures": []}
    before = len(world.findings())
    assert verify(world.object_created("images/c.jpg")) == {"batchItemFailures": []}

    # Then the central object's key is judged by what the central account sees: K is usable, the
    # central trainer is granted on it, and the central account has no KEY_UNUSABLE
    central = [(f["finding_type"], f["outcome"], f["account"]) for f in world.findings()[before:]]
    assert ("KEY_UNUSABLE", "REPORTED", ACCOUNT) not in central, central
    statement = world.statement(key, "CustomLabelsGuardTrainingData")
    assert statement is not None, central
    assert CENTRAL_TRAINER in str(statement["Principal"]), central


def test_a_central_key_unusable_is_published_after_a_member_s_for_the_same_key(world: World, member: Member) -> None:
    # Given a central key K that is disabled, and an object under K in the member's bucket and
    # one in the central bucket
    key = member.central_key
    member.world.put("images/m.jpg", bucket=MEMBER_BUCKET, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.put("images/c.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.kms.disable_key(KeyId=key.rsplit("/", 1)[1])

    # When the member's upload is verified, then the central one, within the same hour (the
    # window in which one key's condition is reported once)
    assert verify(upload_event(world, "images/m.jpg")) == {"batchItemFailures": []}
    assert verify(world.object_created("images/c.jpg")) == {"batchItemFailures": []}

    # Then each account got its own KEY_UNUSABLE: the member's did not deduplicate the central's away
    unusable = [f["account"] for f in world.findings() if f["finding_type"] == "KEY_UNUSABLE"]
    assert sorted(unusable) == sorted([MEMBER, ACCOUNT]), unusable


def test_the_key_directory_keeps_each_account_s_answer_for_one_key_arn(world: World, member: Member) -> None:
    # Given a central key, and a warm container's shared key cache
    key = member.central_key
    keys = KeyDirectory()

    # When the member role describes it first (KMS refuses it: another account's key), then the
    # central account does
    with clients.acting_in(_as_member()):
        seen_by_member = keys.lookup(key)
    seen_by_central = keys.lookup(key)

    # Then the member's refusal is the member's alone: the central account sees its usable key
    assert seen_by_member.key is None
    assert seen_by_central.key is not None
    assert seen_by_central.key.usable


def test_the_labels_of_one_account_are_not_served_to_another(world: World, member: Member) -> None:
    # Given a central key with an alias, and a central bucket with an owner tag
    key = world.key(alias="alias/training-images")
    world.s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "owner", "Value": "ml"}]})

    # When the member role looks them up first (refused: not its key, not its bucket), then the
    # central account does, within the labels' TTL
    with clients.acting_in(_as_member()):
        assert labels.alias_of(key) is None
        assert labels.owner_of(object_finding(BUCKET), "owner") is None
    alias = labels.alias_of(key)
    owner = labels.owner_of(object_finding(BUCKET), "owner")

    # Then the central account gets its own answers, not the member's empty ones
    assert alias == "alias/training-images"
    assert owner == "ml"


def test_a_member_finding_is_labelled_through_the_member_role_whatever_the_caller_acts_in(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given the member's bucket with an owner tag, and a finding about one of its objects, labelled
    # outside any member work (as the audit report's rows are, after the member's checks)
    member.world.s3.put_bucket_tagging(
        Bucket=MEMBER_BUCKET, Tagging={"TagSet": [{"Key": "owner", "Value": "member-ml"}]}
    )
    finding = replace(object_finding(MEMBER_BUCKET), account=MEMBER)
    settings = load_settings(world.env(AWS_REGION=REGION), account_id=ACCOUNT)
    seen: list[str] = []
    calls.session.events.register(
        "before-call.s3.GetBucketTagging",
        lambda request_signer, **_: seen.append(request_signer._credentials.access_key),
        unique_id="who-reads-tags",
    )

    # When the publisher labels it
    labelled = labels.labelled_in_its_account(finding, settings)

    # Then the member's bucket was read with the member role's credentials only, and its owner shown
    assert labelled.owner == "member-ml"
    central = boto3.session.Session().get_credentials()
    assert central is not None
    assert seen
    assert central.access_key not in seen
