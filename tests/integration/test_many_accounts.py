"""Many accounts, one guard: a central deployment acts in a member account through the member
role, with that member's guardrails, and does nothing for accounts it does not serve
(docs/architecture.md §2). moto keeps one backend per account and maps assumed-role credentials
to the role's account, as AWS does."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from clguard.adapters import clients
from clguard.rules import policy
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, LambdaContext, World, default_key_policy, member_world

MEMBER = "111122223333"
STRANGER = "999988887777"
MEMBER_BUCKET = "member-training-data"
MEMBER_TRAINER = f"arn:aws:iam::{MEMBER}:role/ml/Trainer"
MEMBER_ROLE = f"arn:aws:iam::{MEMBER}:role/CustomLabelsGuardMember"


@dataclass
class Member:
    """The member account's own side: its clients (through an assumed role) and resources."""

    world: World
    key: str
    central_key: str


@pytest.fixture
def member(world: World) -> Member:
    """A member account with the guard's member role, a trainer role, a managed key and a
    training bucket; the central deployment serves it (MEMBER_ACCOUNTS)."""
    # MOTO_ACCOUNT_ID pins every request to one account; without it moto takes the account from
    # the credentials, as AWS does (the default one is ACCOUNT).
    world.monkeypatch.delenv("MOTO_ACCOUNT_ID")
    side = member_world(MEMBER)
    side.role("CustomLabelsGuardMember")
    side.role("Trainer", "/ml/")
    side.s3.create_bucket(Bucket=MEMBER_BUCKET)
    key = side.key(policy=default_key_policy(MEMBER))
    central_key = world.key()
    world.role("Trainer", "/ml/")
    world.env_set(MEMBER_ACCOUNTS=MEMBER, TRAINING_BUCKETS=f"custom-labels-training,{MEMBER_BUCKET}")
    return Member(side, key, central_key)


def member_training_call(
    world: World, m: Member, *, account: str = MEMBER, issuer: str = MEMBER_TRAINER
) -> dict[str, Any]:
    event = world.training_event(kms_key=m.key, issuer=issuer)
    event["account"] = account
    event["detail"]["recipientAccountId"] = account
    params = event["detail"]["requestParameters"]
    del params["TrainingData"], params["TestingData"], params["OutputConfig"]
    return event


def grant(event: dict[str, Any]) -> dict[str, Any]:
    return grant_app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))


def verify(*events: dict[str, Any]) -> dict[str, Any]:
    return verify_app.lambda_handler(sqs_event(*events), LambdaContext())


def upload_event(world: World, key: str, account: str = MEMBER) -> dict[str, Any]:
    event = world.object_created(key, bucket=MEMBER_BUCKET)
    event["account"] = account
    return event


def test_member_training_call_grants_its_trainer_on_the_member_key_through_the_member_role(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given a member's trainer calls CreateProjectVersion with the member's managed key
    event = member_training_call(world, member)

    # When the central grant function handles the forwarded event
    summary = grant(event)

    # Then the member role was assumed once, the member key's policy names the member's trainer,
    # the central key is untouched, and the finding carries the member's account
    assert calls.log.count("AssumeRole") == 1
    statement = member.world.statement(member.key, policy.COPIED_IMAGES_USE.sid)
    assert statement is not None
    assert statement["Principal"]["AWS"] == [MEMBER_TRAINER]
    assert world.policy(member.central_key) == default_key_policy()
    assert summary["keys"] == {member.key: "granted"}
    assert {f["account"] for f in world.findings()} == {MEMBER}


def test_member_upload_is_verified_and_remediated_in_the_member(world: World, member: Member, calls: Boundary) -> None:
    # Given an unencrypted (legacy) object in the member's training bucket
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)

    # When its Object Created event reaches the central verify function
    response = verify(upload_event(world, "images/a.jpg"))

    # Then the object is re-encrypted in the member account through the member role, and
    # reported with the member's id
    assert response == {"batchItemFailures": []}
    assert calls.log.count("AssumeRole") == 1
    assert member.world.head("images/a.jpg", bucket=MEMBER_BUCKET)["ServerSideEncryption"] == "AES256"
    findings = world.findings()
    assert [(f["finding_type"], f["outcome"], f["account"]) for f in findings] == [
        ("OBJECT_UNENCRYPTED", "REMEDIATED", MEMBER)
    ]


def test_an_event_of_an_account_not_served_assumes_nothing_and_writes_nothing(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given a training call and an upload event of an account that is not a member
    training = member_training_call(world, member, account=STRANGER, issuer=f"arn:aws:iam::{STRANGER}:role/ml/T")
    upload = upload_event(world, "images/b.jpg", account=STRANGER)
    member.world.put_legacy("images/b.jpg", bucket=MEMBER_BUCKET)

    # When both reach the central functions
    summary = grant(training)
    response = verify(upload)

    # Then nothing was assumed or called in any account, and nothing was published
    assert summary["status"] == "ignored"
    assert response == {"batchItemFailures": []}
    assert calls.log.count("AssumeRole") == 0
    assert [op for _, op in calls.log.calls if op not in ("GetItem", "PutItem")] == []
    assert world.findings() == []
    assert "ServerSideEncryption" not in member.world.head("images/b.jpg", bucket=MEMBER_BUCKET)


def test_a_member_event_naming_a_principal_of_another_account_is_refused(world: World, member: Member) -> None:
    # Given a member's training call whose caller is a role of the central account
    central_trainer = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    event = member_training_call(world, member, issuer=central_trainer)

    # When the grant function handles it
    grant(event)

    # Then the member key is not edited and the caller is refused
    assert member.world.policy(member.key) == default_key_policy(MEMBER)
    refusals = [f for f in world.findings() if f["finding_type"] == "PRINCIPAL_NOT_ALLOWED"]
    assert len(refusals) == 1
    assert refusals[0]["principal_arn"] == central_trainer
    assert refusals[0]["outcome"] == "REFUSED"


def test_member_credentials_are_assumed_once_per_warm_container(world: World, member: Member, calls: Boundary) -> None:
    # Given objects under the member's key in its training bucket
    for n in range(3):
        member.world.put(
            f"images/{n}.jpg", bucket=MEMBER_BUCKET, ServerSideEncryption="aws:kms", SSEKMSKeyId=member.key
        )

    # When three batches of their events arrive in one warm container
    for n in range(3):
        verify(upload_event(world, f"images/{n}.jpg"))

    # Then the member role was assumed once, and every HeadObject ran (in the member account)
    assert calls.log.count("AssumeRole") == 1
    assert calls.log.count("HeadObject") == 3
    assert world.findings() == []


def test_member_credentials_are_renewed_before_they_expire_and_the_old_clients_dropped(
    world: World, member: Member, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an object under the member's key, verified once in a warm container
    member.world.put("images/r.jpg", bucket=MEMBER_BUCKET, ServerSideEncryption="aws:kms", SSEKMSKeyId=member.key)
    verify(upload_event(world, "images/r.jpg"))
    first = dict(clients._clients)

    # When the member session's renewal time has passed and the next batch arrives
    later = time.monotonic() + clients.MEMBER_SESSION_SECONDS
    monkeypatch.setattr("clguard.adapters.clients.time.monotonic", lambda: later)
    verify(upload_event(world, "images/r.jpg"))

    # Then the role was assumed again; the S3 client the batch used has the new credentials, and
    # each member client is cached once (the one the old credentials made was dropped)
    assert calls.log.count("AssumeRole") == 2
    s3_clients = [name for name in clients._clients if name.startswith(f"{MEMBER}:s3:")]
    assert len(s3_clients) == 1
    assert s3_clients[0] not in first
    member_clients = [name for name in clients._clients if name.startswith(f"{MEMBER}:")]
    assert len({name.rsplit(":", 1)[0] for name in member_clients}) == len(member_clients)


def test_member_trainers_are_ensured_only_on_member_keys(world: World, member: Member) -> None:
    # Given TRAINING_PRINCIPALS with a central and a member trainer, and an object under the member key
    central_trainer = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    world.env_set(TRAINING_PRINCIPALS=f"{central_trainer},{MEMBER_TRAINER}")
    member.world.put("images/k.jpg", bucket=MEMBER_BUCKET, ServerSideEncryption="aws:kms", SSEKMSKeyId=member.key)

    # When its upload event is verified
    verify(upload_event(world, "images/k.jpg"))

    # Then only the member's trainer is added to the member key, and nobody is refused
    statement = member.world.statement(member.key, policy.TRAINING_DATA.sid)
    assert statement is not None
    assert statement["Principal"]["AWS"] == [MEMBER_TRAINER]
    assert [f["finding_type"] for f in world.findings()] == ["KEY_ACCESS_MISSING"]
    assert json.dumps(world.findings()).count("PRINCIPAL_NOT_ALLOWED") == 0
