"""Security Hub findings (docs/architecture.md §5a): the ASFF the guard sends, checked against the
documented required attributes and limits (moto checks almost none)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting import asff
from clguard.reporting.findings import (
    ExceptionsResource,
    Finding,
    FindingType,
    KmsKeyResource,
    Outcome,
    ProjectVersionResource,
    Suppression,
)

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
