"""An organizational unit as member source (issue 21, docs/architecture.md §2 "Organizations"):
with MEMBER_OU the members are the active accounts of the OU and of its child OUs, listed by the
central account (the organization's management account here) once per warm container; an
account of the OU without a member stack is one MEMBER_UNREACHABLE per audit run."""

from __future__ import annotations

import logging
from typing import Any

import boto3
import moto.organizations.utils as moto_org_utils
import pytest

from clguard.usecases import accounts
from localaws.doubles import AssumeRoleRefusals
from tests.auditrun import findings, run_audit
from tests.awscalls import Boundary
from tests.integration import test_many_accounts as many
from tests.integration.test_many_accounts import MEMBER, MEMBER_BUCKET, Member, upload_event, verify
from tests.integration.test_organization import declare
from tests.world import ACCOUNT, REGION, World

member = many.member  # the member fixture: a member account (its role, bucket, key)
NO_STACK = "444455556666"  # an account of the OU that never deployed member.yaml


def organization(monkeypatch: pytest.MonkeyPatch, *in_child_ou: str) -> dict[str, str]:
    """The central account creates the organization (so it is the management account), an OU
    ``training`` and a child OU ``training/vision``; ``in_child_ou`` accounts join the child OU."""
    org = boto3.client("organizations", region_name=REGION)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    unit = org.create_organizational_unit(ParentId=root, Name="training")["OrganizationalUnit"]["Id"]
    child = org.create_organizational_unit(ParentId=unit, Name="vision")["OrganizationalUnit"]["Id"]
    ids = {}
    for account in in_child_ou:
        # moto makes up new accounts' ids: this one gets the id the test world already has
        monkeypatch.setattr(moto_org_utils, "make_random_account_id", lambda account=account: account)
        created = org.create_account(AccountName=f"acct-{account}", Email=f"{account}@example.com")
        ids[account] = created["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=child)
    return {"root": root, "unit": unit, "child": child, **ids}


def test_an_account_of_a_child_ou_is_served_as_a_member_without_being_listed(
    world: World, member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no MEMBER_ACCOUNTS, and MEMBER_OU naming an OU whose child OU holds the member
    ou = organization(monkeypatch, MEMBER)
    world.env_set(MEMBER_ACCOUNTS="", MEMBER_OU=ou["unit"])
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)

    # When the member's upload is verified
    assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}

    # Then it is handled in the member, through its role, and the finding names the member
    assert member.world.head("images/a.jpg", bucket=MEMBER_BUCKET)["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"], f["account"]) for f in world.findings()] == [
        ("OBJECT_UNENCRYPTED", "REMEDIATED", MEMBER)
    ]


def test_the_ou_is_listed_once_per_warm_container_and_only_when_needed(
    world: World, member: Member, monkeypatch: pytest.MonkeyPatch, calls: Boundary
) -> None:
    # Given MEMBER_OU holding the member
    ou = organization(monkeypatch, MEMBER)
    world.env_set(MEMBER_ACCOUNTS="", MEMBER_OU=ou["unit"])
    for n in range(3):
        member.world.put_legacy(f"images/{n}.jpg", bucket=MEMBER_BUCKET)
    world.put_legacy("images/own.jpg")
    calls.log.clear()

    # When the central account's own upload is verified, then three member uploads in three batches
    assert verify(world.object_created("images/own.jpg")) == {"batchItemFailures": []}
    own_only = calls.log.count("ListAccountsForParent")
    for n in range(3):
        assert verify(upload_event(world, f"images/{n}.jpg")) == {"batchItemFailures": []}

    # Then the own account's work listed nothing; the member's listed the OU once (its two OUs:
    # one ListAccountsForParent and one ListChildren each), and the later batches used the listing
    assert own_only == 0
    assert calls.log.count("ListAccountsForParent") == 2
    assert calls.log.count("ListChildren") == 2
    assert {f["account"] for f in world.findings()} == {ACCOUNT, MEMBER}


def test_a_suspended_account_and_an_account_outside_the_ou_are_not_served(
    world: World, member: Member, monkeypatch: pytest.MonkeyPatch, calls: Boundary
) -> None:
    # Given MEMBER_OU holding the member, whose account was then closed (suspended)
    ou = organization(monkeypatch, MEMBER)
    boto3.client("organizations", region_name=REGION).close_account(AccountId=MEMBER)
    world.env_set(MEMBER_ACCOUNTS="", MEMBER_OU=ou["unit"])
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)
    calls.log.clear()

    # When its upload event arrives
    assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}

    # Then nothing is assumed, changed or reported: the account is not a member
    assert calls.log.count("AssumeRole") == 0
    assert "ServerSideEncryption" not in member.world.head("images/a.jpg", bucket=MEMBER_BUCKET)
    assert world.findings() == []


def test_an_ou_the_centre_cannot_list_serves_member_accounts_alone_and_says_so(
    world: World, member: Member, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given MEMBER_OU, but the central account is in no organization (not the management account
    # nor a delegated administrator: Organizations refuses the listing), and MEMBER_ACCOUNTS
    world.env_set(MEMBER_ACCOUNTS=MEMBER, MEMBER_OU="ou-ab12-cd34ef56")
    member.world.put_legacy("images/a.jpg", bucket=MEMBER_BUCKET)
    other = "777788889999"

    # When an event of an account not in MEMBER_ACCOUNTS arrives, then the member's
    with caplog.at_level(logging.ERROR):
        assert verify(upload_event(world, "images/x.jpg", account=other)) == {"batchItemFailures": []}
    assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}

    # Then the listing's failure is an ERROR naming what the centre must be, and counted
    errors = [r for r in caplog.records if "organizational unit could not be listed" in r.getMessage()]
    assert len(errors) == 1
    assert "management account or a delegated administrator" in errors[0].getMessage()
    assert '"MemberUnitUnreadable"' in capsys.readouterr().out
    # And MEMBER_ACCOUNTS are still served
    assert [(f["finding_type"], f["account"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", MEMBER)]


def test_an_ou_larger_than_the_bound_is_refused_clearly_not_kept_in_part(
    world: World, member: Member, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an OU of two active accounts, and a bound of one account per listing
    ou = organization(monkeypatch, MEMBER, NO_STACK)
    monkeypatch.setattr(accounts, "MAX_OU_ACCOUNTS", 1)
    world.env_set(MEMBER_ACCOUNTS="", MEMBER_OU=ou["unit"])

    # When a member's event needs the listing
    with caplog.at_level(logging.ERROR):
        assert verify(upload_event(world, "images/a.jpg")) == {"batchItemFailures": []}

    # Then the listing stops at the bound with an ERROR naming it, and no account of it is served
    assert any("more than 1 active accounts" in str(r.__dict__.get("error", "")) for r in caplog.records)
    assert world.findings() == []


def test_the_audit_covers_the_ou_s_members_and_names_one_without_a_member_stack_once_per_run(
    audited: World, member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given MEMBER_OU holding the member (which declares its bucket) and an account that has no
    # member stack (no role to assume), and an unencrypted object in the member's bucket
    world = audited
    ou = organization(monkeypatch, MEMBER, NO_STACK)
    world.env_set(MEMBER_ACCOUNTS="", MEMBER_OU=ou["unit"])
    declare()
    member.world.put_legacy("old/member.jpg", bucket=MEMBER_BUCKET)
    world.behaviour[AssumeRoleRefusals].refuse(f"arn:aws:iam::{NO_STACK}:role/CustomLabelsGuardMember")

    # When two scheduled audits run
    run_audit(world)
    run_audit(world)

    # Then the member's object was fixed in the member, and the account without a member stack
    # is one MEMBER_UNREACHABLE per run, naming its role
    assert member.world.head("old/member.jpg", bucket=MEMBER_BUCKET)["ServerSideEncryption"] == "AES256"
    unreachable: list[dict[str, Any]] = [f for f in findings(world) if f["finding_type"] == "MEMBER_UNREACHABLE"]
    assert [f["account"] for f in unreachable] == [NO_STACK, NO_STACK]
    assert unreachable[0]["resource"]["arn"] == f"arn:aws:iam::{NO_STACK}:role/CustomLabelsGuardMember"
    assert ("OBJECT_UNENCRYPTED", MEMBER) in {(f["finding_type"], f["account"]) for f in findings(world)}
