"""A member's declaration (clguard.boundary.declaration) is data from another account: only its
own keys and principals, only the documented shape; and Settings.for_account applies it so that
a member never gets another account's re-encryption key."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.boundary.config import Settings, load_settings
from clguard.boundary.declaration import Declaration, InvalidDeclaration, parse_declaration

MEMBER = "111122223333"
CENTRAL = "123456789012"
ACCOUNTS = st.sampled_from([MEMBER, CENTRAL, "999988887777"])


def key_of(account: str) -> str:
    return f"arn:aws:kms:us-east-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def document(**fields: object) -> str:
    value: dict[str, object] = {"version": 1, "training_buckets": ["member-training-data"]}
    value.update(fields)
    return json.dumps(value)


def central(**env: str) -> Settings:
    values = {
        "AWS_REGION": "us-east-1",
        "ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-1:{CENTRAL}:alerts",
        "TRAINING_BUCKETS": "custom-labels-training",
        "STATE_TABLE": "state",
        "MEMBER_ACCOUNTS": MEMBER,
        "ENCRYPTION_REQUIREMENT": "SSE_KMS",
        "REENCRYPT_KMS_KEY": key_of(CENTRAL),
    }
    values.update(env)
    return load_settings(values, account_id=CENTRAL)


@given(account=ACCOUNTS)
def test_a_declared_key_is_accepted_only_when_it_is_the_declaring_account_s(account: str) -> None:
    # Given a declaration naming a re-encryption key of some account
    raw = document(reencrypt_kms_key=key_of(account))
    # When member MEMBER's declaration is parsed
    # Then it is accepted exactly when the key is MEMBER's own
    if account == MEMBER:
        assert parse_declaration(raw, MEMBER).reencrypt_kms_key == key_of(MEMBER)
    else:
        with pytest.raises(InvalidDeclaration, match="reencrypt_kms_key"):
            parse_declaration(raw, MEMBER)


@given(account=ACCOUNTS)
def test_a_declared_principal_is_accepted_only_when_it_is_the_declaring_account_s(account: str) -> None:
    raw = document(training_principals=[f"arn:aws:iam::{account}:role/ml/Trainer"])
    if account == MEMBER:
        assert parse_declaration(raw, MEMBER).training_principals == (f"arn:aws:iam::{MEMBER}:role/ml/Trainer",)
    else:
        with pytest.raises(InvalidDeclaration, match="training_principals"):
            parse_declaration(raw, MEMBER)


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        json.dumps({"version": 2, "training_buckets": []}),
        json.dumps({"version": 1}),
        json.dumps({"version": 1, "training_buckets": "b"}),
        json.dumps({"version": 1, "training_buckets": ["x/y"]}),
        json.dumps({"version": 1, "training_buckets": ["ok-bucket"], "training_principals": ["*"]}),
        json.dumps({"version": 1, "training_buckets": [f"b-{n:04d}" for n in range(101)]}),
    ],
)
def test_anything_but_the_documented_shape_is_refused_naming_the_member(raw: str) -> None:
    with pytest.raises(InvalidDeclaration, match=MEMBER):
        parse_declaration(raw, MEMBER)


def test_a_member_never_gets_the_central_re_encryption_key() -> None:
    # Given a central deployment with its own re-encryption key
    settings = central()
    # When the settings of a member that declares nothing, and of one that declares its key, are derived
    bare = settings.for_account(MEMBER)
    declared = settings.for_account(MEMBER, Declaration(MEMBER, frozenset({"b-1"}), key_of(MEMBER)))
    # Then the first has no key at all, the second its own, and its own buckets
    assert bare is not None
    assert bare.reencrypt_kms_key is None
    assert declared is not None
    assert declared.reencrypt_kms_key == key_of(MEMBER)
    assert declared.training_buckets == frozenset({"b-1"})
    assert settings.reencrypt_kms_key == key_of(CENTRAL)


def test_a_declaration_for_another_account_is_not_applied() -> None:
    settings = central()
    member = settings.for_account(MEMBER, Declaration("999988887777", frozenset({"b-1"}), None))
    assert member is not None
    assert member.training_buckets == settings.training_buckets
