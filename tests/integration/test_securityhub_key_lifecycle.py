"""A key's Security Hub findings over their lifecycle (docs/architecture.md §5a): they are per
principal, so a principal found able to use the key closes its own and no other; a new decision on
a principal closes the finding it supersedes (the key opted in); a usable key closes its
KEY_UNUSABLE; a key deleted, pending deletion or disabled archives its access findings. Against moto and the
SecurityHubFindings double; GetFindings (eventually consistent) is never read."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from clguard.reporting import asff
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome
from clguard.reporting.securityhub import SecurityHubOutput
from clguard.state import openfindings
from clguard.state.keydirectory import clear_cache
from functions.verify_object_encryption import app
from localaws.doubles import SecurityHubFindings
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, REGION, TABLE, TAG, LambdaContext, World, default_key_policy

OBJECT = "datasets/cats/images/cat-001.jpg"


def _hub(world: World, **env: str) -> None:
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(SECURITY_HUB="on", REMEDIATION_MODE="report", **env)


def _verify(world: World, event_id: str, key: str = OBJECT) -> None:
    clear_cache()  # a later batch, after the key cache's short TTL
    result = app.lambda_handler(sqs_event(world.object_created(key, event_id=event_id)), LambdaContext())
    assert result == {"batchItemFailures": []}


def _by_type(principal: str | None = None) -> dict[str, dict[str, Any]]:
    out = {}
    for finding in SecurityHubFindings.findings(ACCOUNT, REGION):
        fields = finding["ProductFields"]
        if principal is None or fields.get("CustomLabelsGuard/principal_arn") == principal:
            out[fields["CustomLabelsGuard/finding_type"]] = finding
    return out


def _state(finding: dict[str, Any]) -> tuple[str, str, str]:
    return finding["Workflow"]["Status"], finding["RecordState"], finding["Compliance"]["Status"]


OPEN = ("NEW", "ACTIVE", "FAILED")
CLOSED = ("RESOLVED", "ARCHIVED", "PASSED")


def _grant_by_hand(world: World, key: str, principal: str) -> None:
    policy = default_key_policy()
    policy["Statement"].append(
        {
            "Sid": "ByHand",
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
        }
    )
    world.kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(policy))


def _key_under_object(world: World, *principals: str, managed: bool = True) -> str:
    key = world.key(managed=managed)
    world.put(OBJECT, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=",".join(principals))
    return key


def test_access_granted_by_hand_closes_only_that_principals_finding(world: World, calls: Boundary) -> None:
    # Given two trainers lacking access to the key of a training object (report mode): two open
    # KEY_ACCESS_MISSING findings, one per principal
    _hub(world)
    first, second = world.role("Trainer", "/ml/"), world.role("Other", "/ml/")
    key = _key_under_object(world, first, second)
    _verify(world, "evt-1")
    assert _state(_by_type(first)["KEY_ACCESS_MISSING"]) == OPEN
    assert _state(_by_type(second)["KEY_ACCESS_MISSING"]) == OPEN
    # When a key administrator grants the first one by hand, and a later event sees the key
    _grant_by_hand(world, key, first)
    _verify(world, "evt-2")
    # Then the first trainer's finding is closed, saying why, and the second one's stays open
    closed = _by_type(first)["KEY_ACCESS_MISSING"]
    assert _state(closed) == CLOSED
    assert closed["ProductFields"]["CustomLabelsGuard/closed"] == f"{first} can use the key for training"
    assert asff.problems(closed) == []
    assert _state(_by_type(second)["KEY_ACCESS_MISSING"]) == OPEN
    recorded = openfindings.open_findings(TABLE, ACCOUNT, REGION, key)
    assert [openfindings.condition(d).principal for d in recorded] == [second]
    # and Security Hub's eventually consistent GetFindings was never asked
    assert calls.log.count("GetFindings") == 0


def test_opting_the_key_in_supersedes_its_key_not_managed_finding(world: World) -> None:
    # Given a key without the opt-in tag: KEY_NOT_MANAGED (REFUSED) for the trainer
    _hub(world)
    trainer = world.role("Trainer", "/ml/")
    key = _key_under_object(world, trainer, managed=False)
    _verify(world, "evt-1")
    assert _state(_by_type(trainer)["KEY_NOT_MANAGED"]) == OPEN
    # When the key is opted in (report mode: the guard now says what it would add)
    world.kms.tag_resource(KeyId=key, Tags=[{"TagKey": TAG[0], "TagValue": TAG[1]}])
    _verify(world, "evt-2")
    # Then KEY_NOT_MANAGED is closed as superseded and KEY_ACCESS_MISSING is the open condition
    found = _by_type(trainer)
    assert _state(found["KEY_NOT_MANAGED"]) == CLOSED
    assert "superseded" in found["KEY_NOT_MANAGED"]["ProductFields"]["CustomLabelsGuard/closed"]
    assert _state(found["KEY_ACCESS_MISSING"]) == OPEN
    # And when enforce mode grants it, that one is fixed (REMEDIATED: PASSED, RESOLVED, ARCHIVED) too
    world.env_set(REMEDIATION_MODE="enforce")
    _verify(world, "evt-3")
    assert _state(_by_type(trainer)["KEY_ACCESS_MISSING"]) == CLOSED
    assert openfindings.open_findings(TABLE, ACCOUNT, REGION, key) == []


def test_a_key_pending_deletion_archives_its_access_findings_and_says_so_itself(world: World) -> None:
    # Given an open KEY_ACCESS_MISSING on a key
    _hub(world)
    trainer = world.role("Trainer", "/ml/")
    key = _key_under_object(world, trainer)
    _verify(world, "evt-1")
    assert _state(_by_type(trainer)["KEY_ACCESS_MISSING"]) == OPEN
    # When the key is scheduled for deletion and a later event (or the audit's fan-out) sees it
    key_id = key.rsplit("/", 1)[1]  # moto's ScheduleKeyDeletion takes the key id only
    world.kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    _verify(world, "evt-2")
    # Then the access finding is archived (the key is going away) and KEY_UNUSABLE is the open condition
    found = _by_type()
    assert _state(found["KEY_ACCESS_MISSING"]) == CLOSED
    assert found["KEY_ACCESS_MISSING"]["ProductFields"]["CustomLabelsGuard/closed"] == "the key is PendingDeletion"
    assert _state(found["KEY_UNUSABLE"]) == OPEN
    # And when the key's deletion is cancelled and it is enabled again, KEY_UNUSABLE closes
    world.kms.cancel_key_deletion(KeyId=key_id)
    world.kms.enable_key(KeyId=key_id)
    _verify(world, "evt-3")
    found = _by_type()
    assert _state(found["KEY_UNUSABLE"]) == CLOSED
    assert found["KEY_UNUSABLE"]["ProductFields"]["CustomLabelsGuard/closed"] == "the key is usable"
    assert _state(found["KEY_ACCESS_MISSING"]) == OPEN  # the trainer still lacks access: open again


def _key_finding(key: str, finding_type: FindingType, principal: str | None) -> Finding:
    return Finding(
        finding_type=finding_type,
        outcome=Outcome.REPORTED,
        resource=KmsKeyResource(key),
        detail="lacks access",
        source_event_id="evt",
        account=ACCOUNT,
        region=REGION,
        principal_arn=principal,
        kms_key_arn=key,
    )


@pytest.mark.parametrize(
    ("state", "not_found", "closes"),
    [(None, True, True), ("PendingDeletion", False, True), ("Disabled", False, True), ("Enabled", False, False)],
)
def test_a_deleted_key_archives_every_open_finding_but_the_one_saying_it_is_gone(
    world: World, state: str | None, not_found: bool, closes: bool
) -> None:
    # Given a key with open findings for two principals and its KEY_UNUSABLE
    del world
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-00000000dead"
    output = SecurityHubOutput(table=TABLE)
    for finding_type, principal in (
        (FindingType.KEY_ACCESS_MISSING, "arn:aws:iam::123456789012:role/A"),
        (FindingType.KEY_NOT_MANAGED, "arn:aws:iam::123456789012:role/B"),
        (FindingType.KEY_UNUSABLE, None),
    ):
        output.add(_key_finding(key, finding_type, principal))
    output.flush()
    # When the key is found deleted (not found), pending deletion, disabled (issue 23: a disabled
    # key closes them too), or enabled
    said = output.key_unusable(ACCOUNT, REGION, key, state, not_found=not_found)
    output.flush()
    # Then (deleted, pending deletion, disabled) every access finding is archived and KEY_UNUSABLE
    # stays open; (enabled) nothing closes
    found = _by_type()
    expected = CLOSED if closes else OPEN
    assert said is closes
    assert _state(found["KEY_ACCESS_MISSING"]) == expected
    assert _state(found["KEY_NOT_MANAGED"]) == expected
    assert _state(found["KEY_UNUSABLE"]) == OPEN
    assert output.closed == (2 if closes else 0)


def test_a_finding_imported_open_in_the_same_flush_is_not_closed_by_it(world: World) -> None:
    # Given one flush that both raises KEY_ACCESS_MISSING for a principal and hears the key deleted
    del world
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-0000000000aa"
    output = SecurityHubOutput(table=TABLE)
    output.add(_key_finding(key, FindingType.KEY_ACCESS_MISSING, "arn:aws:iam::123456789012:role/A"))
    output.key_unusable(ACCOUNT, REGION, key, None, not_found=True)
    output.flush()
    # Then the finding raised now stays open (the evidence does not postdate it)
    assert _state(_by_type()["KEY_ACCESS_MISSING"]) == OPEN


def test_every_object_of_a_batch_under_one_key_adds_one_pending_close_not_one_each(world: World) -> None:
    # Given a verify batch of 1,000 objects under one key, each deciding the same principal "ok"
    del world
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-0000000000bb"
    output = SecurityHubOutput(table=TABLE)
    for _ in range(1_000):
        output.key_decided(ACCOUNT, REGION, key, {"arn:aws:iam::123456789012:role/A": "ok"})
    # Then the flush has two things to check on the key (the principal, KEY_UNUSABLE), not 2,000
    assert [len(pending) for pending in output.gone.values()] == [2]
