"""Organization-grade: in every member account the guard acts as that account and for it
(design §11, docs/architecture.md "Organizations").

- a key is only ever used for objects of its own account: a member's objects are re-encrypted
  with the key its member stack declares, never the central REENCRYPT_KMS_KEY;
- what a member declares about itself (its SSM parameter, read through its member role) wins
  for its own resources;
- a member's trainer behind its own organization's perimeter is judged with the organization the
  member itself reads (its role's DescribeOrganization), never one lent from the centre.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto.organizations.models import organizations_backends

from clguard.boundary.declaration import PARAMETER_NAME
from clguard.rules import policy
from localaws.doubles import AssumeRoleRefusals, RekognitionCustomLabels
from tests.auditrun import findings, report, run_audit, summaries
from tests.awscalls import Boundary
from tests.fixtures import key_policy
from tests.integration import test_many_accounts as many
from tests.integration.test_many_accounts import (
    MEMBER,
    MEMBER_BUCKET,
    MEMBER_TRAINER,
    Member,
    grant,
    member_training_call,
    upload_event,
    verify,
)
from tests.world import ACCOUNT, BUCKET, REGION, World

member = many.member  # the member fixture: a member account the central deployment serves


def member_ssm(account: str = MEMBER) -> Any:
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="test-setup"
    )["Credentials"]
    return boto3.client(
        "ssm",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def declare(account: str = MEMBER, **fields: Any) -> None:
    """What the member stack writes (member.yaml's MemberDeclaration parameter)."""
    document = {"version": 1, "training_buckets": [MEMBER_BUCKET], "reencrypt_kms_key": "", "training_principals": []}
    document.update(fields)
    member_ssm(account).put_parameter(Name=PARAMETER_NAME, Value=json.dumps(document), Type="String", Overwrite=True)


def outcomes(world: World) -> list[tuple[str, str, str]]:
    return [(f["finding_type"], f["outcome"], f["account"]) for f in world.findings()]


# --- break 1: a key is only used for objects of its own account --------------------------------------


def test_a_member_object_is_never_re_keyed_to_the_central_re_encryption_key(world: World, member: Member) -> None:
    # Given SSE_KMS with the central account's re-encryption key, a member that declares no key
    # of its own, and an unencrypted object in the member's training bucket
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=member.central_key)
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)

    # When its upload is verified
    assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}

    # Then the object is left as it is (no key of another account), and the finding is REPORTED
    # for the member, naming the fix: the member stack's own ReencryptKmsKey
    assert "ServerSideEncryption" not in member.world.head("images/a.jpg", bucket=MEMBER_BUCKET)
    assert outcomes(world) == [("OBJECT_UNENCRYPTED", "REPORTED", MEMBER)]
    assert "ReencryptKmsKey" in world.findings()[0]["detail"]


def test_a_member_object_is_re_encrypted_with_the_key_its_member_stack_declares(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given SSE_KMS with a central re-encryption key, and a member whose stack declares its own
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=member.central_key)
    declare(reencrypt_kms_key=member.key)
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)

    # When its upload is verified
    assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}

    # Then it is re-encrypted with the member's key, in the member, reported for the member; the
    # declaration was read (through the member role: one session for the whole batch)
    head = member.world.head("images/a.jpg", bucket=MEMBER_BUCKET)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == member.key
    assert outcomes(world) == [("OBJECT_UNENCRYPTED", "REMEDIATED", MEMBER)]
    assert calls.log.count("GetParameter") == 1
    assert calls.log.count("AssumeRole") == 1


def test_a_declaration_naming_another_account_s_key_is_ignored(world: World, member: Member) -> None:
    # Given a member whose parameter names the central account's key as its re-encryption key
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=member.central_key)
    declare(reencrypt_kms_key=member.central_key)
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)

    # When its upload is verified
    verify(upload_event(world, "images/a.jpg"))

    # Then the declaration is refused as a whole: nothing is re-keyed to another account's key
    assert "ServerSideEncryption" not in member.world.head("images/a.jpg", bucket=MEMBER_BUCKET)
    assert outcomes(world) == [("OBJECT_UNENCRYPTED", "REPORTED", MEMBER)]


# --- members declare, the centre discovers ------------------------------------------------------------


def test_what_a_member_declares_wins_for_its_own_resources(world: World, member: Member) -> None:
    # Given a member bucket the central stack does not list, which the member declares, with its
    # own trainer; and an object under the member's key in it
    world.env_set(TRAINING_BUCKETS="custom-labels-training")
    member.world.s3.create_bucket(Bucket="declared-only")
    declare(training_buckets=["declared-only"], training_principals=[MEMBER_TRAINER])
    member.world.put("images/k.jpg", bucket="declared-only", ServerSideEncryption="aws:kms", SSEKMSKeyId=member.key)
    event = world.object_created("images/k.jpg", bucket="declared-only")
    event["account"] = MEMBER

    # When its upload is verified
    verify(event)

    # Then the bucket is served, and the declared trainer is ensured on the member's key
    statement = member.world.statement(member.key, policy.TRAINING_DATA.sid)
    assert statement is not None
    assert statement["Principal"]["AWS"] == [MEMBER_TRAINER]
    assert outcomes(world) == [("KEY_ACCESS_MISSING", "REMEDIATED", MEMBER)]


# --- break 3: the member's own organization ---------------------------------------------------------------


def test_a_member_trainer_behind_its_own_organization_s_perimeter_is_granted(
    world: World, member: Member, calls: Boundary, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an organization with the central account as management account and the member in it,
    # and a member key whose policy denies kms:* outside that organization
    org_id = boto3.client("organizations", region_name=REGION).create_organization(FeatureSet="ALL")["Organization"][
        "Id"
    ]
    # the member joined it (moto keeps the membership outside its per-test state: undone after)
    monkeypatch.setitem(organizations_backends.master_accounts, MEMBER, (ACCOUNT, "aws"))
    document = key_policy("identity_perimeter_key_policy", MEMBER)
    document["Statement"][1]["Condition"]["StringNotEqualsIfExists"]["aws:PrincipalOrgID"] = org_id
    member.world.kms.put_key_policy(KeyId=member.key, PolicyName="default", Policy=json.dumps(document))

    # When the member trainer's CreateProjectVersion is handled
    grant(member_training_call(world, member))

    # Then the trainer is granted (the perimeter does not apply to it), not refused; the
    # organization was read once, as the member
    assert policy.is_allowed(member.world.policy(member.key), MEMBER_TRAINER, policy.COPIED_IMAGES_USE, member.key)
    assert ("KEY_ACCESS_MISSING", "REFUSED", MEMBER) not in outcomes(world)
    assert calls.log.count("DescribeOrganization") == 1


def test_a_member_outside_the_organization_is_not_lent_the_central_one(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given the central account's organization, a member that is in none, and a member key
    # whose policy denies kms:* outside the central organization
    org_id = boto3.client("organizations", region_name=REGION).create_organization(FeatureSet="ALL")["Organization"][
        "Id"
    ]
    document = key_policy("identity_perimeter_key_policy", MEMBER)
    document["Statement"][1]["Condition"]["StringNotEqualsIfExists"]["aws:PrincipalOrgID"] = org_id
    member.world.kms.put_key_policy(KeyId=member.key, PolicyName="default", Policy=json.dumps(document))

    # When the member trainer's CreateProjectVersion is handled
    grant(member_training_call(world, member))

    # Then nothing is granted: the Deny applies to the member's trainer, and is reported
    assert not policy.is_allowed(member.world.policy(member.key), MEMBER_TRAINER, policy.COPIED_IMAGES_USE, member.key)
    assert ("KEY_ACCESS_MISSING", "REFUSED", MEMBER) in outcomes(world)


# --- break 2: the audit acts in each member as that member; failure isolation ---------------------------

BROKEN = "444455556666"


def test_the_audit_reads_and_changes_member_buckets_only_as_the_member_and_isolates_a_broken_one(
    audited: World, member: Member, calls: Boundary
) -> None:
    # Given the central training bucket and a member that declares its bucket, each with an
    # unencrypted object; and a second member whose role is missing
    world = audited
    world.env_set(MEMBER_ACCOUNTS=f"{MEMBER},{BROKEN}")
    declare()
    world.put_legacy("old/central.jpg")
    member.world.put_legacy("old/member.jpg", bucket=MEMBER_BUCKET)
    audited.behaviour[AssumeRoleRefusals].refuse(f"arn:aws:iam::{BROKEN}:role/CustomLabelsGuardMember")
    s3_calls: list[tuple[str, str, str]] = []  # (operation, url, access key id)

    def who(model: Any, params: Any, request_signer: Any, **_: Any) -> None:
        s3_calls.append((model.name, str(params.get("url", "")), request_signer._credentials.access_key))

    calls.session.events.register("before-call.s3.*", who, unique_id="who-calls-s3")

    # When two scheduled audits run (and their messages are checked)
    run_audit(world)
    summary = run_audit(world)

    # Then both objects are fixed, each finding names the account that owns the resource
    assert world.head("old/central.jpg")["ServerSideEncryption"] == "AES256"
    assert member.world.head("old/member.jpg", bucket=MEMBER_BUCKET)["ServerSideEncryption"] == "AES256"
    found = {(f["finding_type"], f["outcome"], f["account"]) for f in findings(world)}
    assert ("OBJECT_UNENCRYPTED", "REMEDIATED", ACCOUNT) in found
    assert ("OBJECT_UNENCRYPTED", "REMEDIATED", MEMBER) in found
    member_objects = [f for f in findings(world) if f["resource"].get("bucket") == MEMBER_BUCKET]
    assert {f["account"] for f in member_objects} == {MEMBER}
    # ... the member's bucket was listed and changed only with member credentials
    credentials = boto3.session.Session().get_credentials()
    assert credentials is not None
    central_key = credentials.access_key
    on_member_bucket = [(op, key) for op, url, key in s3_calls if MEMBER_BUCKET in url]
    assert {"ListObjectsV2", "HeadObject", "CopyObject"} <= {op for op, _ in on_member_bucket}
    assert central_key not in {key for _, key in on_member_bucket}
    # ... and the broken member got one clear finding per run, naming it and its role
    broken = [f for f in findings(world) if f["finding_type"] == "MEMBER_UNREACHABLE"]
    assert [f["account"] for f in broken] == [BROKEN, BROKEN]
    assert BROKEN in broken[0]["detail"]
    assert broken[0]["resource"] == {"type": "iam-role", "arn": f"arn:aws:iam::{BROKEN}:role/CustomLabelsGuardMember"}
    assert summary["status"] == "listed"
    assert len(summaries(world)) == 2  # both runs completed, the broken member not waited for
    # ... and the report's data reads per account (the deployment's own first)
    data = report(world, summaries(world)[0])
    assert [(a["account"], a["buckets"], a["objects"]) for a in data["accounts"]] == [
        (ACCOUNT, [BUCKET], 1),
        (MEMBER, [MEMBER_BUCKET], 1),
    ]


# --- scale: one role session per member and container ------------------------------------------------------


def test_threads_that_need_a_member_session_together_share_one(world: World, member: Member, calls: Boundary) -> None:
    # Given a cold container and eight threads (the HeadObject prefetch window) that all need the
    # member's S3 client at the same moment
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415
    from threading import Barrier  # noqa: PLC0415

    from clguard.adapters import clients  # noqa: PLC0415

    target = clients.Member(MEMBER, f"arn:aws:iam::{MEMBER}:role/CustomLabelsGuardMember")
    barrier = Barrier(8)

    def use() -> None:
        barrier.wait()
        with clients.acting_in(target):
            clients.client("s3")

    # When they run
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(use) for _ in range(8)]:
            future.result()

    # Then the member role was assumed once
    assert calls.log.count("AssumeRole") == 1


def test_a_member_whose_declaration_is_invalid_is_one_clear_finding_per_run(audited: World, member: Member) -> None:
    # Given a member whose declaration names another account's key (refused whole)
    audited.env_set(TRAINING_BUCKETS=BUCKET)
    declare(reencrypt_kms_key=member.central_key)

    # When the audit runs
    run_audit(audited)

    # Then one MEMBER_UNREACHABLE names the member and what is wrong, and the run completes
    broken = [f for f in findings(audited) if f["finding_type"] == "MEMBER_UNREACHABLE"]
    assert [f["account"] for f in broken] == [MEMBER]
    assert "declaration is invalid" in broken[0]["detail"]
    assert len(summaries(audited)) == 1


# --- the failed-trainings audit, in each member ------------------------------------------------------------


def test_the_audit_diagnoses_a_member_s_failed_training_as_the_member_and_isolates_a_broken_one(
    audited: World, member: Member
) -> None:
    # Given a member that declares its trainer, whose training failed for access on a manifest
    # under the member's key; and a second member whose role is missing
    world = audited
    world.env_set(MEMBER_ACCOUNTS=f"{MEMBER},{BROKEN}")
    declare(training_principals=[MEMBER_TRAINER])
    world.behaviour[AssumeRoleRefusals].refuse(f"arn:aws:iam::{BROKEN}:role/CustomLabelsGuardMember")
    member.world.put(
        "train.manifest", b"{}", bucket=MEMBER_BUCKET, ServerSideEncryption="aws:kms", SSEKMSKeyId=member.key
    )
    rekognition = world.behaviour[RekognitionCustomLabels]
    project = rekognition.create_project("cats", account=MEMBER)
    failed = rekognition.create_project_version(
        project,
        "v1",
        status="TRAINING_FAILED",
        status_message="The S3 bucket permissions are incorrect for the training manifest.",
        training_manifests=[(MEMBER_BUCKET, "train.manifest")],
    )

    # When two scheduled audits run
    run_audit(world)
    run_audit(world)

    # Then the member's failed training is one finding naming the member, its key, and that the
    # guard granted the member's trainer on the member's key (through the member role)
    trainings = [f for f in findings(world) if f["finding_type"] == "TRAINING_FAILED"]
    assert [(f["resource"]["arn"], f["account"], f["outcome"]) for f in trainings] == [(failed, MEMBER, "REMEDIATED")]
    assert member.key in trainings[0]["detail"]
    assert policy.is_allowed(member.world.policy(member.key), MEMBER_TRAINER, policy.TRAINING_DATA, member.key)
    # ... and the broken member is one clear finding per run; both runs completed
    broken = [f for f in findings(world) if f["finding_type"] == "MEMBER_UNREACHABLE"]
    assert [f["account"] for f in broken] == [BROKEN, BROKEN]
    assert len(summaries(world)) == 2
