"""Names people know (clguard.reporting.labels) are cached per warm container with a TTL and a size
bound: a retagged bucket or a new alias shows within TTL_SECONDS, and the cache never grows past
MAX_CACHED entries."""

from __future__ import annotations

import pytest

from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting import labels
from clguard.reporting.findings import Finding, FindingType, Outcome
from tests.awscalls import Boundary
from tests.world import ACCOUNT, BUCKET, REGION, World


def _finding(bucket: str = BUCKET) -> Finding:
    return Finding(
        finding_type=FindingType.OBJECT_UNENCRYPTED,
        outcome=Outcome.REPORTED,
        resource=S3ObjectRef(bucket, "images/a.jpg"),
        detail="no encryption",
        source_event_id="evt",
        account=ACCOUNT,
        region=REGION,
    )


def _tag(world: World, team: str) -> None:
    world.s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "team", "Value": team}]})


def test_an_owner_tag_changed_shows_after_the_ttl_and_not_before(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bucket owned by team-a, read once by a warm container at t=0
    now = [1_000.0]
    monkeypatch.setattr(labels, "clock", lambda: now[0])
    _tag(world, "team-a")
    assert labels.owner_of(_finding(), "team") == "team-a"
    reads = calls.log.count("GetBucketTagging")
    # When the bucket is retagged team-b
    _tag(world, "team-b")
    # Then within the TTL the cached owner is used (no read)
    now[0] += labels.TTL_SECONDS - 1
    assert labels.owner_of(_finding(), "team") == "team-a"
    assert calls.log.count("GetBucketTagging") == reads
    # and once the TTL has passed the tag is read again and the new owner shows
    now[0] += 2
    assert labels.owner_of(_finding(), "team") == "team-b"
    assert calls.log.count("GetBucketTagging") == reads + 1


def test_a_new_alias_shows_after_the_ttl(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a key with no alias, looked up at t=0
    now = [50.0]
    monkeypatch.setattr(labels, "clock", lambda: now[0])
    key = world.key()
    assert labels.alias_of(key) is None
    # When an alias is created and the TTL passes
    world.kms.create_alias(AliasName="alias/training-images", TargetKeyId=key)
    now[0] += labels.TTL_SECONDS
    # Then the alias is shown
    assert labels.alias_of(key) == "alias/training-images"


def test_the_cache_keeps_at_most_max_cached_entries_dropping_the_oldest(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a small bound, and more buckets looked up than it allows (lookups of unknown buckets
    # fail, and a failure is cached too)
    del world
    monkeypatch.setattr(labels, "MAX_CACHED", 3)
    for i in range(5):
        labels.owner_of(_finding(f"bucket-{i}"), "team")
    # Then the memo holds MAX_CACHED entries: the newest ones
    memo = labels._bucket_tags
    assert len(memo) == 3
    assert list(memo._values) == ["bucket-2", "bucket-3", "bucket-4"]
