"""A member's two MEMBER_UNREACHABLE conditions are two Security Hub findings, each with its own
lifecycle (docs/architecture.md §5a): a refused bucket claim (its declaration names a bucket S3
says is another account's) and a member the audit cannot act in (its role, or its declaration
through it). Before, both had the Id of the member role alone, so one overwrote the other in
Security Hub, and nothing ever closed either.

The member's declaration is read once per 5 minutes and warm container, and its role session
once per hour: each run here is a later run in a new container (``_later``)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from clguard.adapters import clients
from clguard.usecases import accounts
from localaws.doubles import SecurityHubFindings
from tests.auditrun import findings, run_audit
from tests.awscalls import Boundary
from tests.integration import test_many_accounts as many
from tests.integration.test_many_accounts import MEMBER, MEMBER_BUCKET, Member
from tests.integration.test_organization import declare
from tests.integration.test_securityhub_members import _enable_hub_in
from tests.world import BUCKET, REGION, World

member = many.member  # the member fixture: a member account the central deployment serves

OPEN = ("NEW", "ACTIVE", "FAILED")
CLOSED = ("RESOLVED", "ARCHIVED", "PASSED")


@pytest.fixture
def hub(audited: World, member: Member) -> World:
    """Security Hub on, central and member; the central TRAINING_BUCKETS is BUCKET alone, and the
    member's declaration names its own bucket and the central one (a claim S3 refuses)."""
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    _enable_hub_in(MEMBER)
    audited.env_set(SECURITY_HUB="on", TRAINING_BUCKETS=BUCKET)
    declare(training_buckets=[MEMBER_BUCKET, BUCKET])
    return audited


def _later(calls: Boundary) -> None:
    """A later run, in a new container: the member's declaration and role are read afresh."""
    clients.reset(calls.session)
    accounts.forget()


def _member_findings() -> dict[str, dict[str, Any]]:
    """The member's MEMBER_UNREACHABLE findings in its own Security Hub, by Id."""
    return {
        f["Id"]: f
        for f in SecurityHubFindings.findings(MEMBER, REGION)
        if f["ProductFields"]["CustomLabelsGuard/finding_type"] == "MEMBER_UNREACHABLE"
    }


def _lifecycle(finding: dict[str, Any]) -> tuple[str, str, str]:
    return finding["Workflow"]["Status"], finding["RecordState"], finding["Compliance"]["Status"]


def _claimed(finding: dict[str, Any]) -> list[str]:
    return [r["Id"] for r in finding["Resources"] if r["Type"] == "AwsS3Bucket"]


def test_a_refused_claim_and_an_unreachable_member_are_two_findings_each_closed_by_its_own_fix(
    hub: World, calls: Boundary
) -> None:
    # Given a run that refuses the member's claim on the central bucket
    run_audit(hub)
    (claim,) = _member_findings().values()
    assert claim["ProductFields"]["CustomLabelsGuard/outcome"] == "REFUSED"
    assert _claimed(claim) == [f"arn:aws:s3:::{BUCKET}"]
    assert _lifecycle(claim) == OPEN

    # When a later run cannot read the member's declaration through its role (AccessDenied)
    _later(calls)
    calls.faults.add("GetParameter", "AccessDeniedException")
    run_audit(hub)

    # Then the member has two open findings: the claim, untouched, and the unreachable member
    both = _member_findings()
    assert len(both) == 2, [f["Title"] for f in both.values()]
    unreachable = next(f for i, f in both.items() if i != claim["Id"])
    assert unreachable["ProductFields"]["CustomLabelsGuard/outcome"] == "REPORTED"
    assert "could not be read" in unreachable["Description"]
    assert _claimed(unreachable) == []
    assert both[claim["Id"]]["Description"] == claim["Description"]
    assert [_lifecycle(f) for f in both.values()] == [OPEN, OPEN]
    # (on SNS, the claim names its buckets in the optional claimed_buckets; the other has none)
    on_sns = [(f["outcome"], f.get("claimed_buckets")) for f in findings(hub) if f["account"] == MEMBER]
    assert on_sns == [("REFUSED", [BUCKET]), ("REPORTED", None)]

    # When a later run reads the declaration again, and the claim is still refused
    _later(calls)
    calls.faults.faults.clear()
    run_audit(hub)

    # Then the unreachable member's finding is closed, and the claim's stays open
    after = _member_findings()
    assert _lifecycle(after[unreachable["Id"]]) == CLOSED
    assert _lifecycle(after[claim["Id"]]) == OPEN
    assert after[claim["Id"]]["ProductFields"]["CustomLabelsGuard/outcome"] == "REFUSED"

    # When the member stops claiming the central bucket
    _later(calls)
    declare(training_buckets=[MEMBER_BUCKET])
    run_audit(hub)

    # Then the claim's finding is closed too, and no other was opened
    final = _member_findings()
    assert set(final) == {claim["Id"], unreachable["Id"]}
    assert [_lifecycle(f) for f in final.values()] == [CLOSED, CLOSED]


def test_a_claim_s3_cannot_settle_in_a_run_keeps_its_finding_open(hub: World, calls: Boundary) -> None:
    # Given a run that refused the member's claim on the central bucket
    run_audit(hub)
    (claim,) = _member_findings().values()

    # When a later run's probes of who owns the bucket get no answer from S3 (503 SlowDown)
    _later(calls)
    calls.faults.add("ListObjectsV2", "SlowDown", status=503, times=2)
    run_audit(hub)

    # Then the claim is not taken as withdrawn: its finding stays open (no claim refused without
    # S3's word, none closed without it either)
    assert _lifecycle(_member_findings()[claim["Id"]]) == OPEN


def test_a_claim_on_other_buckets_is_a_new_finding_and_closes_the_old_one(hub: World, calls: Boundary) -> None:
    # Given a run that refused the member's claim on the central bucket
    run_audit(hub)
    (first,) = _member_findings().values()

    # When the member's declaration names another account's bucket as well, and a run refuses both
    other = "other-central-bucket"
    hub.s3.create_bucket(Bucket=other)
    hub.env_set(TRAINING_BUCKETS=f"{BUCKET},{other}")
    _later(calls)
    declare(training_buckets=[MEMBER_BUCKET, BUCKET, other])
    run_audit(hub)

    # Then the claim on both buckets is one open finding naming both, and the claim on the one
    # bucket alone, which no longer holds as it was, is closed
    now = _member_findings()
    (second,) = (f for i, f in now.items() if i != first["Id"])
    assert sorted(_claimed(second)) == sorted([f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{other}"])
    assert (_lifecycle(now[first["Id"]]), _lifecycle(second)) == (CLOSED, OPEN)
