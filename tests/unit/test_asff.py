"""Security Hub findings (docs/architecture.md §5a): the ASFF the guard sends, checked against the
documented required attributes and limits (moto checks almost none)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.boundary.declaration import MAX_BUCKETS
from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting import asff
from clguard.reporting.findings import (
    ExceptionsResource,
    Finding,
    FindingType,
    KmsKeyResource,
    MemberRoleResource,
    Outcome,
    ProjectVersionResource,
    Suppression,
)
from clguard.state import openfindings

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = "2026-12-07T13:00:00Z"


def _finding(**changes: object) -> Finding:
    finding = Finding(
        finding_type=FindingType.OBJECT_UNENCRYPTED,
        outcome=Outcome.REPORTED,
        resource=S3ObjectRef("train-data", "images/a.jpg"),
        detail="object had no server-side encryption",
        source_event_id="evt-1",
        account=ACCOUNT,
        region="us-east-1",
        observed_at="2026-12-07T12:00:00Z",
    )
    return replace(finding, **changes)  # type: ignore[arg-type]


RESOURCES = [
    (S3ObjectRef("train-data", "images/a.jpg"), "AwsS3Object", "arn:aws:s3:::train-data/images/a.jpg"),
    (KmsKeyResource(KEY), "AwsKmsKey", KEY),
    (ProjectVersionResource(f"arn:aws:rekognition:us-east-1:{ACCOUNT}:project/p/version/v/1"), "Other", None),
    (ExceptionsResource("ssm:/guard/exceptions"), "Other", "ssm:/guard/exceptions"),
]


@pytest.mark.parametrize("finding_type", list(FindingType))
@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_finding_is_valid_asff_with_the_contract_fields(finding_type: FindingType, outcome: Outcome) -> None:
    # Given any finding type and outcome
    finding = _finding(finding_type=finding_type, outcome=outcome)
    # When its ASFF is built
    document = asff.asff(finding, NOW)
    # Then it meets the documented rules and carries the contract's fields
    assert asff.problems(document) == []
    assert document["SchemaVersion"] == "2018-10-08"
    assert document["ProductArn"] == f"arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default"
    assert document["GeneratorId"] == f"custom-labels-guard/{finding_type.value}"
    assert document["AwsAccountId"] == ACCOUNT
    assert document["Severity"] == {"Label": finding.severity.value}
    assert document["ProductFields"]["CustomLabelsGuard/outcome"] == outcome.value
    assert document["ProductFields"]["CustomLabelsGuard/source_event_id"] == "evt-1"
    assert document["Remediation"]["Recommendation"]["Text"]


@pytest.mark.parametrize(("resource", "kind", "arn"), RESOURCES)
def test_resources_are_typed_as_the_contract_says(resource: object, kind: str, arn: str | None) -> None:
    document = asff.asff(_finding(resource=resource), NOW)
    (first,) = document["Resources"]
    assert first["Type"] == kind
    assert first["Id"] == (arn or resource.arn)  # type: ignore[attr-defined]


def test_open_fixed_and_muted_findings_have_the_contract_lifecycle() -> None:
    # Given the same condition open, fixed, and muted by an exception
    open_ = asff.asff(_finding(outcome=Outcome.REFUSED), NOW)
    fixed = asff.asff(_finding(outcome=Outcome.REMEDIATED), NOW)
    muted = asff.asff(_finding(suppressed=Suppression("archive", "vendor archive", "ml", "2027-03-31")), NOW)
    # Then each has the lifecycle of §5a, and the muted one the exception in its note
    assert (open_["Compliance"], open_["Workflow"], open_["RecordState"]) == (
        {"Status": "FAILED"},
        {"Status": "NEW"},
        "ACTIVE",
    )
    assert (fixed["Compliance"], fixed["Workflow"], fixed["RecordState"]) == (
        {"Status": "PASSED"},
        {"Status": "RESOLVED"},
        "ARCHIVED",
    )
    assert muted["Workflow"] == {"Status": "SUPPRESSED"}
    assert "archive" in muted["Note"]["Text"]
    assert "vendor archive" in muted["Note"]["Text"]


def test_the_id_is_one_per_condition_and_resource() -> None:
    # Given one condition seen by two events, fixed later, and the same type for another principal
    first = _finding(source_event_id="evt-1", outcome=Outcome.REPORTED)
    again = _finding(source_event_id="evt-2", outcome=Outcome.REMEDIATED, detail="fixed", observed_at=NOW)
    other_principal = _finding(principal_arn=f"arn:aws:iam::{ACCOUNT}:role/Other")
    # Then the first two are one Security Hub finding (updated, never duplicated), the third another
    assert asff.finding_id(first) == asff.finding_id(again)
    assert asff.finding_id(first) != asff.finding_id(other_principal)
    assert len(asff.finding_id(first)) <= asff.MAX_ID


def test_a_finding_without_claimed_buckets_keeps_the_id_it_always_had() -> None:
    # Given findings of every kind of resource, with and without a principal (recorded open
    # under their Ids by earlier versions of the guard)
    for resource, _, _ in RESOURCES:
        for principal in (None, f"arn:aws:iam::{ACCOUNT}:role/Trainer"):
            finding = _finding(resource=resource, principal_arn=principal)
            # Then the Id is still the hash of type, resource and principal alone
            identity = [finding.finding_type.value, finding.resource.to_json(), principal]
            digest = hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=True).encode()).hexdigest()
            assert asff.finding_id(finding) == f"custom-labels-guard/{ACCOUNT}/us-east-1/OBJECT_UNENCRYPTED/{digest}"


ROLE = MemberRoleResource("arn:aws:iam::444455556666:role/CustomLabelsGuardMember")
BUCKET_NAMES = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True)


def _member(outcome: Outcome, claimed: tuple[str, ...] = ()) -> Finding:
    return _finding(
        finding_type=FindingType.MEMBER_UNREACHABLE,
        outcome=outcome,
        resource=ROLE,
        account="444455556666",
        source_event_id="audit-run-1",
        claimed_buckets=claimed,
    )


@given(first=st.lists(BUCKET_NAMES, min_size=1, max_size=40), second=st.lists(BUCKET_NAMES, min_size=1, max_size=40))
def test_a_refused_claim_is_its_own_condition_named_by_the_buckets_it_claims(
    first: list[str], second: list[str]
) -> None:
    # Given one member's reachability finding and two refused claims of one run (any bucket
    # names, in any order, repeated)
    unreachable = _member(Outcome.REPORTED)
    claim, other = _member(Outcome.REFUSED, tuple(first)), _member(Outcome.REFUSED, tuple(reversed(second)))
    # Then a claim is never the member's reachability finding, and two claims are one finding
    # exactly when they name the same buckets
    assert asff.finding_id(claim) != asff.finding_id(unreachable)
    assert (asff.finding_id(claim) == asff.finding_id(other)) == (set(first) == set(second))
    assert asff.finding_id(claim) == asff.condition_id(
        claim.account, claim.region, claim.finding_type, ROLE, claimed=first
    )
    # and its ASFF is valid: the member role first, then the buckets it names (as many as fit)
    document = asff.asff(claim, NOW)
    assert asff.problems(document) == []
    assert document["Resources"][0]["Id"] == ROLE.arn
    buckets = [r["Id"].removeprefix("arn:aws:s3:::") for r in document["Resources"][1:]]
    assert buckets == sorted(set(first))[: asff.MAX_RESOURCES - 1]
    assert {r["Type"] for r in document["Resources"][1:]} <= {"AwsS3Bucket"}
    # and a claim read back from its SNS document (the findings outbox) is the same condition
    assert asff.finding_id(Finding.from_document(claim.document())) == asff.finding_id(claim)


def test_the_largest_claim_is_valid_asff_and_small_enough_to_be_recorded_open() -> None:
    # Given a claim on as many buckets as a declaration may name, each with the longest name S3 allows
    buckets = tuple(f"{i:03d}" + "b" * 60 for i in range(MAX_BUCKETS))
    claim = _member(Outcome.REFUSED, buckets)
    claim = replace(claim, detail="d" * 2000, source_event_id="audit-" + "x" * 60)
    # When its ASFF is built
    document = asff.asff(claim, NOW)
    # Then it is valid (32 resources: the role and the first 31 buckets), and the record of open
    # findings keeps it (so a later run can close it)
    assert asff.problems(document) == []
    assert len(document["Resources"]) == asff.MAX_RESOURCES
    body = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert len(body.encode()) <= openfindings.DOC_BYTES


@given(key=st.text(min_size=1, max_size=1024), detail=st.text(max_size=5000), reason=st.text(min_size=1, max_size=400))
def test_any_key_detail_or_reason_still_makes_valid_asff(key: str, detail: str, reason: str) -> None:
    # Given hostile or huge object keys, details and exception reasons
    finding = _finding(
        resource=S3ObjectRef("train-data", key),
        detail=detail,
        suppressed=Suppression("x", reason, None, "2027-01-01"),
    )
    # When its ASFF is built
    document = asff.asff(finding, NOW)
    # Then the documented limits still hold
    assert asff.problems(document) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"Title": "x" * 257}, "Title"),
        ({"Description": "x" * 1025}, "Description"),
        ({"Types": ["Nonsense"]}, "Types"),
        ({"Types": []}, "Types"),
        ({"Severity": {"Label": "SEVERE"}}, "Severity"),
        ({"Resources": []}, "Resources"),
        ({"Workflow": {"Status": "DONE"}}, "Workflow"),
        ({"RecordState": "DELETED"}, "RecordState"),
        ({"AwsAccountId": "12345"}, "AwsAccountId"),
        ({"Note": {"Text": "x" * 513}}, "Note"),
    ],
)
def test_the_checker_finds_what_breaks_the_documented_rules(change: dict[str, object], problem: str) -> None:
    # Given a valid ASFF finding with one attribute broken
    document = {**asff.asff(_finding(), NOW), **change}
    # Then the check names it
    assert any(problem in p for p in asff.problems(document))


@pytest.mark.parametrize("name", asff.REQUIRED)
def test_the_checker_finds_a_missing_required_attribute(name: str) -> None:
    document = asff.asff(_finding(), NOW)
    del document[name]
    assert f"missing required attribute {name}" in asff.problems(document)
