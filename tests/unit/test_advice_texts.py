"""The advice people get is true of today's AWS (issue 24): S3 has encrypted every new object since
January 2023, and a cross-account trainer is not fixed by a principal pattern."""

from __future__ import annotations

from dataclasses import replace

from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome
from clguard.reporting.rendering import next_steps

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def finding(finding_type: FindingType, outcome: Outcome) -> Finding:
    resource = KmsKeyResource(KEY) if finding_type is FindingType.PRINCIPAL_NOT_ALLOWED else S3ObjectRef("b-1", "k")
    return Finding(
        finding_type=finding_type,
        outcome=outcome,
        resource=resource,
        detail="d",
        source_event_id="e",
        account="123456789012",
        region="us-east-1",
    )


def test_unencrypted_object_advice_says_when_it_still_happens_and_not_what_s3_already_does() -> None:
    # Given an unencrypted object, fixed or only reported
    for outcome in (Outcome.REMEDIATED, Outcome.REPORTED):
        # When people read what to do
        text = " ".join(next_steps(finding(FindingType.OBJECT_UNENCRYPTED, outcome)))
        # Then it says such objects predate January 2023, and never asks for bucket default encryption
        assert "January 2023" in text
        assert "default encryption" not in text.lower()
    assert "RemediationMode=enforce" in " ".join(next_steps(finding(FindingType.OBJECT_UNENCRYPTED, Outcome.REPORTED)))


def test_principal_not_allowed_advice_is_right_for_a_cross_account_trainer() -> None:
    # Given a refused principal
    text = " ".join(next_steps(finding(FindingType.PRINCIPAL_NOT_ALLOWED, Outcome.REFUSED)))
    # Then the advice names the template parameter for this account's roles, and for another
    # account's principal says the guard never adds it and what both sides must allow
    assert "AllowedPrincipalPatterns" in text
    assert "another account: the guard never adds one" in text
    assert "key policy" in text
    assert "IAM policy" in text


def test_a_refused_principal_gets_the_one_step_that_applies_to_it() -> None:
    # Given refused principals of each kind (the finding names the principal and the key's account)
    refused = finding(FindingType.PRINCIPAL_NOT_ALLOWED, Outcome.REFUSED)

    def steps(principal: str) -> tuple[str, ...]:
        return next_steps(replace(refused, principal_arn=principal))

    # When people read what to do, Then each gets one step, the one for its kind
    [own] = steps("arn:aws:iam::123456789012:role/ml/Outsider")
    assert "AllowedPrincipalPatterns" in own
    [other] = steps("arn:aws:iam::210987654321:role/PartnerTrainer")
    assert "another account: the guard never adds one" in other
    [never] = steps("arn:aws:iam::123456789012:root")
    assert "never granted" in never
