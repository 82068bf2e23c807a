"""Many accounts: the extra AWS calls a member account's object events cost in a warm container,
measured side by side with the same batch in the deployment's own account (moto in process; moto
maps assumed-role credentials to the role's account, as AWS does)."""

from __future__ import annotations

import os
from collections import Counter

from moto import mock_aws

from bench.calls import BATCH, compliant_keys, compliant_world, run_verify
from bench.common import Figure, environment, fresh_container, ops_text, progress
from clguard.rules import policy
from localaws.doubles import aws_behaviour
from tests.awscalls import boundary
from tests.eventsamples import sqs_event
from tests.world import World, default_key_policy, member_world

MEMBER = "111122223333"
MEMBER_BUCKET = "member-training-data"


def member_overhead(count: int = BATCH) -> list[Figure]:
    progress(f"many accounts: AWS calls for batches of {count} compliant objects, own account vs member")
    # Without MOTO_ACCOUNT_ID, moto takes the account from the credentials.
    with environment(), mock_aws(), aws_behaviour():
        os.environ.pop("MOTO_ACCOUNT_ID", None)
        fresh_container()
        world, keys, _ = compliant_world(count)
        member = member_world(MEMBER)
        member.role("CustomLabelsGuardMember")
        trainer = member.role("CustomLabelsTrainer", "/ml/")
        key = member.key(policy=_granted(trainer))
        member.s3.create_bucket(Bucket=MEMBER_BUCKET)
        member_keys = compliant_keys(count, "images/member")
        for name in member_keys:
            member.put(name, bucket=MEMBER_BUCKET, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        os.environ["MEMBER_ACCOUNTS"] = MEMBER
        os.environ["TRAINING_BUCKETS"] = f"{os.environ['TRAINING_BUCKETS']},{MEMBER_BUCKET}"
        os.environ["TRAINING_PRINCIPALS"] = f"{os.environ['TRAINING_PRINCIPALS']},{trainer}"
        own = sqs_event(*(World.object_created(k) for k in keys))
        events = []
        for k in member_keys:
            event = World.object_created(k, bucket=MEMBER_BUCKET)
            event["account"] = MEMBER
            events.append(event)
        theirs = sqs_event(*events)
        with boundary() as b:
            fresh_container(b.session)
            run_verify(own)
            run_verify(theirs)  # the member's first batch in this container: assumes its role
            b.log.clear()
            run_verify(own)
            own_warm = Counter(b.log.by_operation())
            b.log.clear()
            run_verify(theirs)
            member_warm = Counter(b.log.by_operation())
        published = len(world.published())
        fresh_container()
    if published:
        raise RuntimeError(f"compliant objects published {published} findings")
    extra = (member_warm.total() - own_warm.total()) / count
    return [
        Figure(
            "member_extra_calls_per_event",
            f"Extra AWS calls per member-account object event, warm container (batch of {count})",
            extra,
            f"{extra:.2f}",
            0.01,
            "≤ 0.01",
            detail=f"member: {member_warm.total() / count:.2f}/event ({ops_text(member_warm)}); own account: "
            f"{own_warm.total() / count:.2f}/event ({ops_text(own_warm)}); the role is assumed once per member "
            "and warm container (1 AssumeRole on the member's first batch)",
            data={"member": dict(member_warm), "own": dict(own_warm), "events": count},
        )
    ]


def _granted(trainer: str) -> dict[str, object]:
    """The member's default key policy with its trainer already granted."""
    specs = [policy.TRAINING_DATA]
    return policy.merge_grants(default_key_policy(MEMBER), [(trainer, specs)], key_account=MEMBER).document
