"""A member account's findings land in the member's own Security Hub (docs/architecture.md §5a:
"into the account and region of the resource"), imported through the member role; a member whose
Security Hub refuses never blocks SNS."""

from __future__ import annotations

import boto3

from localaws.doubles import SecurityHubFindings
from tests.awscalls import Boundary
from tests.integration import test_many_accounts as many
from tests.integration.test_many_accounts import MEMBER, MEMBER_BUCKET, Member, upload_event, verify
from tests.world import ACCOUNT, REGION, World

member = many.member  # the member fixture: a member account the central deployment serves


def _enable_hub_in(account: str) -> None:
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="test-setup"
    )["Credentials"]
    boto3.client(
        "securityhub",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    ).enable_security_hub()


def test_a_member_finding_is_imported_into_the_members_own_security_hub(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given Security Hub on (central and member) and an unencrypted object in a member's bucket
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    _enable_hub_in(MEMBER)
    world.env_set(SECURITY_HUB="on", REMEDIATION_MODE="report")
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)
    # When the central verify function handles its upload
    assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}
    # Then the finding is in the member's Security Hub, on the member's default product, and
    # none is in the central account's
    (finding,) = SecurityHubFindings.findings(MEMBER, REGION)
    assert finding["AwsAccountId"] == MEMBER
    assert finding["ProductArn"] == f"arn:aws:securityhub:{REGION}:{MEMBER}:product/{MEMBER}/default"
    assert (finding["Workflow"]["Status"], finding["RecordState"]) == ("NEW", "ACTIVE")
    assert SecurityHubFindings.findings(ACCOUNT, REGION) == []
    # and it was imported through the one member role session
    assert calls.log.count("AssumeRole") == 1
    # When the object is then uploaded again, encrypted, and verified
    member.world.put("images/a.jpg", bucket=MEMBER_BUCKET, ServerSideEncryption="AES256")
    assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}
    # Then the member's finding is closed in the member's Security Hub
    (closed,) = SecurityHubFindings.findings(MEMBER, REGION)
    assert closed["Id"] == finding["Id"]
    assert (closed["Workflow"]["Status"], closed["RecordState"], closed["Compliance"]["Status"]) == (
        "RESOLVED",
        "ARCHIVED",
        "PASSED",
    )


def test_a_member_whose_security_hub_is_off_never_blocks_sns(world: World, member: Member) -> None:
    # Given SECURITY_HUB=on but Security Hub not enabled in the member account
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(SECURITY_HUB="on", REMEDIATION_MODE="report")
    member.world.put_legacy("images/b.jpg", bucket=MEMBER_BUCKET)
    # When the member's upload is verified
    response = verify(upload_event(world, "images/b.jpg"))
    # Then the batch succeeds and SNS carried the finding; nothing was imported anywhere
    assert response == {"batchItemFailures": []}
    assert [(f["finding_type"], f["account"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", MEMBER)]
    assert SecurityHubFindings.findings(MEMBER, REGION) == []
    assert SecurityHubFindings.findings(ACCOUNT, REGION) == []
