"""Classifying HeadObject responses and deciding what the configuration requires (docs/architecture.md §5, §8)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

from clguard.boundary.config import Settings, load_settings
from clguard.boundary.declaration import Declaration
from clguard.rules.encryption import (
    Assessment,
    Encryption,
    Method,
    ObjectEncryption,
    Remediation,
    UnknownEncryption,
    assess,
    classify,
)

ACCOUNT = "123456789012"
K1 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
K2 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222"
K3 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/33333333-3333-3333-3333-333333333333"

NONE = ObjectEncryption(Encryption.NONE)
SSE_S3 = ObjectEncryption(Encryption.SSE_S3)
SSE_C = ObjectEncryption(Encryption.SSE_C)


def kms(key: str | None) -> ObjectEncryption:
    return ObjectEncryption(Encryption.SSE_KMS, key)


def dsse(key: str | None) -> ObjectEncryption:
    return ObjectEncryption(Encryption.DSSE_KMS, key)


def _settings(
    requirement: str = "SSE_S3_OR_KMS", allowed: tuple[str, ...] = (), reencrypt: str | None = None
) -> Settings:
    env = {
        "AWS_REGION": "us-east-1",
        "ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts",
        "TRAINING_BUCKETS": "custom-labels-training",
        "STATE_TABLE": "custom-labels-guard-state",
        "ENCRYPTION_REQUIREMENT": requirement,
        "ALLOWED_KMS_KEYS": ",".join(allowed),
        "REENCRYPT_KMS_KEY": reencrypt or "",
    }
    return load_settings(env, account_id=ACCOUNT)


# --- classify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ({}, NONE),
        ({"ContentLength": 3, "ETag": '"x"'}, NONE),
        ({"ServerSideEncryption": "AES256"}, SSE_S3),
        ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": K1}, kms(K1)),
        ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": K1, "BucketKeyEnabled": True}, kms(K1)),
        ({"ServerSideEncryption": "aws:kms"}, kms(None)),
        ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": ""}, kms(None)),
        ({"ServerSideEncryption": "aws:kms:dsse", "SSEKMSKeyId": K2}, dsse(K2)),
        ({"SSECustomerAlgorithm": "AES256", "SSECustomerKeyMD5": "abc"}, SSE_C),
        ({"SSECustomerAlgorithm": "AES256", "ServerSideEncryption": "AES256"}, SSE_C),
    ],
)
def test_classify(head: dict[str, Any], expected: ObjectEncryption) -> None:
    # Given a HeadObject response
    # When classified
    # Then the kind (and KMS key) is as S3 reports it
    assert classify(head) == expected


@pytest.mark.parametrize("value", ["aws:fsx", "", "aes256", "AWS:KMS", "aws:kms:dsse:v2"])
def test_classify_unknown_value_raises(value: str) -> None:
    # Given a ServerSideEncryption value this version does not know
    # When classified
    # Then UnknownEncryption (a ValueError) names it
    with pytest.raises(UnknownEncryption, match="ServerSideEncryption"):
        classify({"ServerSideEncryption": value})
    assert issubclass(UnknownEncryption, ValueError)


def test_kms_kinds() -> None:
    # Given the encryption kinds
    # Then SSE-KMS and DSSE-KMS are KMS encryption, the others are not
    assert {kind for kind in Encryption if kind.is_kms} == {Encryption.SSE_KMS, Encryption.DSSE_KMS}


def test_describe() -> None:
    # Given encryptions and remediations
    # When described
    # Then the text names the kind, the key and the method
    assert kms(K1).describe() == f"SSE-KMS with {K1}"
    assert NONE.describe() == "none"
    # (the README's finding example: "...; re-encrypted in place with SSE-S3 (CopyObject)")
    assert Remediation(Method.COPY, SSE_S3).describe() == "re-encrypted in place with SSE-S3 (CopyObject)"
    assert Remediation(Method.UPDATE, kms(K1)).describe() == (
        f"encryption updated in place with SSE-KMS with {K1} (UpdateObjectEncryption)"
    )


# --- assess: the contract's corner cases ------------------------------------------------------


def test_unencrypted_object_is_copied_with_sse_s3_by_default() -> None:
    # Given the default configuration and an unencrypted object
    result = assess(NONE, _settings())
    # Then OBJECT_UNENCRYPTED, fixed by CopyObject with SSE-S3
    assert result.finding_type == "OBJECT_UNENCRYPTED"
    assert result.remediation == Remediation(Method.COPY, SSE_S3)
    assert not result.compliant


def test_unencrypted_object_is_copied_with_the_reencrypt_key() -> None:
    # Given REENCRYPT_KMS_KEY and an unencrypted object
    result = assess(NONE, _settings(reencrypt=K1))
    # Then CopyObject with that key
    assert result.remediation == Remediation(Method.COPY, kms(K1))


def test_sse_kms_required_without_reencrypt_key_has_no_remediation() -> None:
    # Given ENCRYPTION_REQUIREMENT=SSE_KMS and no REENCRYPT_KMS_KEY
    settings = _settings("SSE_KMS")
    # When an unencrypted or an SSE-S3 object is assessed
    for encryption, finding in ((NONE, "OBJECT_UNENCRYPTED"), (SSE_S3, "OBJECT_WRONG_ENCRYPTION")):
        result = assess(encryption, settings)
        # Then it is a finding with nothing safe to do, and says why
        assert result.finding_type == finding
        assert result.remediation is None
        assert "REENCRYPT_KMS_KEY" in result.why_not


def test_sse_s3_to_kms_uses_update() -> None:
    # Given SSE_KMS required with a re-encryption key
    # When an SSE-S3 object is assessed
    result = assess(SSE_S3, _settings("SSE_KMS", reencrypt=K1))
    # Then the encryption is updated in place (no copy, no new event)
    assert result.finding_type == "OBJECT_WRONG_ENCRYPTION"
    assert result.remediation == Remediation(Method.UPDATE, kms(K1))


def test_key_outside_allowed_keys_without_reencrypt_key_has_no_remediation() -> None:
    # Given ALLOWED_KMS_KEYS without REENCRYPT_KMS_KEY
    # When an object under another key is assessed
    result = assess(kms(K3), _settings(allowed=(K1,)))
    # Then it is OBJECT_WRONG_ENCRYPTION with nothing safe to do
    assert result.finding_type == "OBJECT_WRONG_ENCRYPTION"
    assert result.remediation is None
    assert "REENCRYPT_KMS_KEY" in result.why_not
    assert K3 in result.problem


def test_dsse_counts_as_kms() -> None:
    # Given SSE_KMS required and an allowed key
    settings = _settings("SSE_KMS", allowed=(K1,), reencrypt=K1)
    # When a DSSE-KMS object under the allowed key is assessed
    # Then it is compliant
    assert assess(dsse(K1), settings).compliant


def test_dsse_with_a_disallowed_key_is_copied() -> None:
    # Given ALLOWED_KMS_KEYS and a re-encryption key
    settings = _settings(allowed=(K1,), reencrypt=K1)
    # When a DSSE-KMS object under another key is assessed
    result = assess(dsse(K3), settings)
    # Then it is rewritten with CopyObject (UpdateObjectEncryption cannot leave DSSE)
    assert result.remediation == Remediation(Method.COPY, kms(K1))
    # And an SSE-KMS object under another key is updated in place
    assert assess(kms(K3), settings).remediation == Remediation(Method.UPDATE, kms(K1))


def test_sse_c_is_never_remediated() -> None:
    # Given any configuration with a re-encryption key
    # When an SSE-C object is assessed
    result = assess(SSE_C, _settings(reencrypt=K1))
    # Then OBJECT_SSE_C with no remediation (the customer's key is needed)
    assert result.finding_type == "OBJECT_SSE_C"
    assert result.remediation is None
    assert result.why_not


def test_kms_object_without_a_key_id_fails_a_key_allow_list() -> None:
    # Given ALLOWED_KMS_KEYS
    # When a KMS object whose key S3 did not report is assessed
    result = assess(kms(None), _settings(allowed=(K1,)))
    # Then it is not assumed compliant
    assert result.finding_type == "OBJECT_WRONG_ENCRYPTION"
    assert "(unknown)" in result.problem


# --- assess: every combination ----------------------------------------------------------------


def _expected(requirement: str, allowed: tuple[str, ...], reencrypt: str | None, enc: ObjectEncryption):
    """The table of docs/architecture.md §4, §5, §8, written out independently: (finding_type, remediation)."""
    reencrypt_target = kms(reencrypt) if reencrypt else None
    if enc.kind is Encryption.SSE_C:
        return "OBJECT_SSE_C", None
    if enc.kind is Encryption.NONE:
        target = reencrypt_target or (SSE_S3 if requirement == "SSE_S3_OR_KMS" else None)
        return "OBJECT_UNENCRYPTED", Remediation(Method.COPY, target) if target else None
    if enc.kind is Encryption.SSE_S3:
        if requirement == "SSE_S3_OR_KMS":
            return None, None
        return "OBJECT_WRONG_ENCRYPTION", Remediation(Method.UPDATE, reencrypt_target) if reencrypt_target else None
    # SSE-KMS / DSSE-KMS
    if not allowed or enc.kms_key_arn in allowed:
        return None, None
    method = Method.UPDATE if enc.kind is Encryption.SSE_KMS else Method.COPY
    return "OBJECT_WRONG_ENCRYPTION", Remediation(method, reencrypt_target) if reencrypt_target else None


REQUIREMENTS = ("SSE_S3_OR_KMS", "SSE_KMS")
ALLOWED = ((), (K1,), (K1, K2))
REENCRYPT = (None, K1, K2, K3)
ENCRYPTIONS = (NONE, SSE_S3, SSE_C, kms(K1), kms(K2), kms(K3), kms(None), dsse(K1), dsse(K3), dsse(None))
COMBINATIONS = [
    (requirement, allowed, reencrypt, enc)
    for requirement, allowed, reencrypt, enc in itertools.product(REQUIREMENTS, ALLOWED, REENCRYPT, ENCRYPTIONS)
    if reencrypt is None or not allowed or reencrypt in allowed  # other combinations fail at load time
]


@pytest.mark.parametrize(("requirement", "allowed", "reencrypt", "encryption"), COMBINATIONS)
def test_assess_every_combination(
    requirement: str, allowed: tuple[str, ...], reencrypt: str | None, encryption: ObjectEncryption
) -> None:
    # Given a valid configuration and an object's encryption
    settings = _settings(requirement, allowed, reencrypt)
    # When assessed
    result: Assessment = assess(encryption, settings)
    # Then the finding and remediation are those of the contract's table
    finding, remediation = _expected(requirement, allowed, reencrypt, encryption)
    assert (result.finding_type, result.remediation) == (finding, remediation)
    assert result.encryption == encryption
    assert result.compliant is (finding is None)
    # And a finding always says what is wrong, and why nothing is done when nothing is
    if finding is not None:
        assert result.problem
    if finding is not None and remediation is None:
        assert result.why_not
    # And a remediation's result is compliant on the second pass (the CopyObject echo does not loop)
    if result.remediation is not None:
        assert assess(result.remediation.target, settings).compliant


def test_every_combination_is_covered() -> None:
    # Given the table of combinations
    # Then it covers both requirements, every allow list, every kind and the invalid pairs are excluded
    assert {c[0] for c in COMBINATIONS} == set(REQUIREMENTS)
    assert {c[3].kind for c in COMBINATIONS} == set(Encryption)
    assert (REQUIREMENTS[0], (K1,), K3, NONE) not in COMBINATIONS
    assert len(COMBINATIONS) == 2 * (4 + 2 + 3) * len(ENCRYPTIONS)


# --- assess: what a person reads, and the keys that must never be used -----------------------

MEMBER = "210987654321"
FOREIGN = f"arn:aws:kms:us-east-1:{MEMBER}:key/44444444-4444-4444-4444-444444444444"
AWS_MANAGED = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/55555555-5555-5555-5555-555555555555"  # e.g. aws/s3
NO_KEY = "REENCRYPT_KMS_KEY is not set: nothing safe to do"
MEMBER_NO_KEY = (
    f", and member account {MEMBER} declares no re-encryption key of its own (a key is only used for objects "
    "of its own account): set ReencryptKmsKey in its member stack (member.yaml); nothing safe to do"
)


def _member(requirement: str = "SSE_S3_OR_KMS", allowed: tuple[str, ...] = ()) -> Settings:
    """The settings of a member account that declares no re-encryption key (Settings.for_account)."""
    home = _settings(requirement, allowed)
    served = replace(home, member_accounts=frozenset({MEMBER}))
    member = served.for_account(MEMBER)
    assert member is not None
    assert member.is_member
    assert member.reencrypt_kms_key is None
    return member


def test_a_key_of_another_account_is_never_used_to_re_encrypt() -> None:
    # Given settings whose re-encryption key belongs to another account than the objects'
    # (a misconfigured REENCRYPT_KMS_KEY, or a member declaring a key that is not its own)
    declared = Declaration(account=MEMBER, reencrypt_kms_key=K1)
    member = replace(_settings(), member_accounts=frozenset({MEMBER})).for_account(MEMBER, declared)
    assert member is not None
    assert member.reencrypt_kms_key == K1
    for settings, requirement in (
        (_settings(reencrypt=FOREIGN), "SSE_S3_OR_KMS"),
        (_settings("SSE_KMS", reencrypt=FOREIGN), "SSE_KMS"),
        (member, "SSE_S3_OR_KMS"),
    ):
        # When objects of the acted-on account are assessed
        results = [assess(e, settings) for e in (NONE, SSE_S3, kms(K3), dsse(K3))]
        # Then no remediation ever targets that key: SSE-S3 where it is enough, otherwise nothing
        targets = {r.remediation.target for r in results if r.remediation}
        assert targets == ({SSE_S3} if requirement == "SSE_S3_OR_KMS" else set())


@pytest.mark.parametrize(
    ("settings", "encryption", "aws_managed", "expected"),
    [
        pytest.param(
            _settings(reencrypt=K1),
            SSE_C,
            False,
            Assessment(
                SSE_C,
                "OBJECT_SSE_C",
                "object uses SSE-C (customer-provided key): Rekognition cannot read it",
                why_not="it cannot be re-encrypted without the customer's key",
            ),
            id="SSE-C",
        ),
        pytest.param(
            _settings("SSE_KMS"),
            NONE,
            False,
            Assessment(
                NONE,
                "OBJECT_UNENCRYPTED",
                "object had no server-side encryption",
                why_not=f"ENCRYPTION_REQUIREMENT is SSE_KMS and {NO_KEY}",
            ),
            id="unencrypted, SSE_KMS, no key",
        ),
        pytest.param(
            _settings("SSE_KMS"),
            SSE_S3,
            False,
            Assessment(
                SSE_S3,
                "OBJECT_WRONG_ENCRYPTION",
                "object uses SSE-S3 where ENCRYPTION_REQUIREMENT is SSE_KMS",
                why_not=f"ENCRYPTION_REQUIREMENT is SSE_KMS and {NO_KEY}",
            ),
            id="SSE-S3, SSE_KMS, no key",
        ),
        pytest.param(
            _settings(allowed=(K1,)),
            kms(K3),
            False,
            Assessment(
                kms(K3),
                "OBJECT_WRONG_ENCRYPTION",
                f"object is encrypted with KMS key {K3}, which is not in ALLOWED_KMS_KEYS",
                why_not=NO_KEY,
            ),
            id="key not allowed, no key",
        ),
        pytest.param(
            _settings(allowed=(K1,)),
            kms(None),
            False,
            Assessment(
                kms(None),
                "OBJECT_WRONG_ENCRYPTION",
                "object is encrypted with KMS key (unknown), which is not in ALLOWED_KMS_KEYS",
                why_not=NO_KEY,
            ),
            id="key not reported",
        ),
        pytest.param(
            _settings("SSE_KMS", reencrypt=K1),
            kms(AWS_MANAGED),
            True,
            Assessment(
                kms(AWS_MANAGED),
                "OBJECT_WRONG_ENCRYPTION",
                f"object is encrypted with the AWS managed key {AWS_MANAGED}, where ENCRYPTION_REQUIREMENT is SSE_KMS",
                Remediation(Method.UPDATE, kms(K1)),
            ),
            id="AWS managed key, SSE_KMS",
        ),
        pytest.param(
            _settings("SSE_KMS", reencrypt=K1),
            dsse(AWS_MANAGED),
            True,
            Assessment(
                dsse(AWS_MANAGED),
                "OBJECT_WRONG_ENCRYPTION",
                f"object is encrypted with the AWS managed key {AWS_MANAGED}, where ENCRYPTION_REQUIREMENT is SSE_KMS",
                Remediation(Method.COPY, kms(K1)),
            ),
            id="DSSE-KMS under an AWS managed key, SSE_KMS",
        ),
        pytest.param(
            _settings(), kms(AWS_MANAGED), True, Assessment(kms(AWS_MANAGED)), id="AWS managed key, SSE_S3_OR_KMS"
        ),
        pytest.param(
            _member(allowed=(K1,)),
            kms(K3),
            False,
            Assessment(
                kms(K3),
                "OBJECT_WRONG_ENCRYPTION",
                f"object is encrypted with KMS key {K3}, which is not in ALLOWED_KMS_KEYS",
                why_not="the key is not allowed" + MEMBER_NO_KEY,
            ),
            id="member, key not allowed, no key of its own",
        ),
        pytest.param(
            _member("SSE_KMS"),
            NONE,
            False,
            Assessment(
                NONE,
                "OBJECT_UNENCRYPTED",
                "object had no server-side encryption",
                why_not="ENCRYPTION_REQUIREMENT is SSE_KMS" + MEMBER_NO_KEY,
            ),
            id="member, unencrypted, SSE_KMS, no key of its own",
        ),
    ],
)
def test_a_finding_says_exactly_what_is_wrong_and_why_nothing_is_done(
    settings: Settings, encryption: ObjectEncryption, aws_managed: bool, expected: Assessment
) -> None:
    # Given a configuration and an object's encryption (its key AWS managed or not)
    # When assessed
    result = assess(encryption, settings, aws_managed_key=aws_managed)
    # Then the finding, the problem, the remediation and why there is none are exactly what the finding's
    # detail shows people (problem; remediation or "nothing safe to do", naming the setting to fix)
    assert result == expected
