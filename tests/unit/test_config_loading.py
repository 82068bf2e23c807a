"""Configuration (docs/architecture.md §4): validation names the variable, defaults, and the per-env cache."""

from __future__ import annotations

from typing import Any

import pytest

from clguard.boundary import config
from clguard.boundary.config import (
    DEFAULT_MANAGED_KEY_TAG,
    EncryptionRequirement,
    RemediationMode,
    current_settings,
    load_settings,
)
from clguard.errors import ConfigError

ACCOUNT = "123456789012"
KEY_1 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
KEY_2 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"


def _env(**overrides: str | None) -> dict[str, str]:
    env = {
        "AWS_REGION": "us-east-1",
        "ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-1:{ACCOUNT}:custom-labels-guard-alerts",
        "TRAINING_BUCKETS": "custom-labels-training",
        "STATE_TABLE": "custom-labels-guard-state",
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _error(env: dict[str, str], account_id: str = ACCOUNT) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_settings(env, account_id=account_id)
    return raised.value


# --- defaults ---------------------------------------------------------------------------------


def test_defaults() -> None:
    # Given only the required variables
    # When loaded
    settings = load_settings(_env(), account_id=ACCOUNT)
    # Then every optional variable has its documented default (docs/architecture.md §4)
    assert settings.encryption_requirement is EncryptionRequirement.SSE_S3_OR_KMS
    assert settings.allowed_kms_keys == frozenset()
    assert settings.remediation_mode is RemediationMode.ENFORCE
    assert settings.enforce
    assert settings.reencrypt_kms_key is None
    assert settings.training_principals == ()
    assert settings.allowed_principal_patterns == (f"arn:aws:iam::{ACCOUNT}:role/*",)
    assert settings.managed_key_tag == DEFAULT_MANAGED_KEY_TAG == ("custom-labels-guard", "managed")
    assert settings.verify_queue_url is None
    assert settings.account_id == ACCOUNT
    assert settings.region == "us-east-1"
    assert settings.training_buckets == frozenset({"custom-labels-training"})


@pytest.mark.parametrize(
    ("region", "partition"),
    [("us-east-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_default_patterns_use_the_region_partition(region: str, partition: str) -> None:
    # Given a region of a given partition
    # When loaded without ALLOWED_PRINCIPAL_PATTERNS
    settings = load_settings(_env(AWS_REGION=region), account_id=ACCOUNT)
    # Then the default pattern allows this account's roles in that partition
    assert settings.allowed_principal_patterns == (f"arn:{partition}:iam::{ACCOUNT}:role/*",)


def test_region_falls_back_to_aws_default_region() -> None:
    # Given only AWS_DEFAULT_REGION
    # When loaded
    settings = load_settings(_env(AWS_REGION=None, AWS_DEFAULT_REGION="eu-west-1"), account_id=ACCOUNT)
    # Then it is used
    assert settings.region == "eu-west-1"


def test_lists_are_trimmed_and_deduplicated() -> None:
    # Given comma-separated lists with spaces, empty items and duplicates
    env = _env(
        TRAINING_BUCKETS=" a-bucket , b.bucket,,a-bucket ",
        ALLOWED_KMS_KEYS=f"{KEY_1}, {KEY_2},{KEY_1}",
        TRAINING_PRINCIPALS=f" {TRAINER} ,{TRAINER}",
    )
    # When loaded
    settings = load_settings(env, account_id=ACCOUNT)
    # Then each value appears once, trimmed
    assert settings.training_buckets == frozenset({"a-bucket", "b.bucket"})
    assert settings.allowed_kms_keys == frozenset({KEY_1, KEY_2})
    assert settings.training_principals == (TRAINER,)


@pytest.mark.parametrize(
    ("raw", "expected"), [("SSE_KMS", EncryptionRequirement.SSE_KMS), ("sse_kms", EncryptionRequirement.SSE_KMS)]
)
def test_encryption_requirement_is_case_insensitive(raw: str, expected: EncryptionRequirement) -> None:
    # Given ENCRYPTION_REQUIREMENT in any case
    # When loaded
    # Then it is recognised
    assert load_settings(_env(ENCRYPTION_REQUIREMENT=raw), account_id=ACCOUNT).encryption_requirement is expected


def test_report_mode() -> None:
    # Given REMEDIATION_MODE=REPORT
    settings = load_settings(_env(REMEDIATION_MODE="REPORT"), account_id=ACCOUNT)
    # Then nothing is enforced
    assert settings.remediation_mode is RemediationMode.REPORT
    assert not settings.enforce


def test_key_allowed_is_an_exact_match_of_arns() -> None:
    # Given ALLOWED_KMS_KEYS with one key
    settings = load_settings(_env(ALLOWED_KMS_KEYS=KEY_1), account_id=ACCOUNT)
    # Then only that exact ARN is allowed (no substring or key-id match)
    assert settings.key_allowed(KEY_1)
    assert not settings.key_allowed(KEY_2)
    assert not settings.key_allowed(KEY_1.rsplit("/", maxsplit=1)[-1])
    assert not settings.key_allowed(KEY_1 + "0")
    # And an empty list allows any key
    assert load_settings(_env(), account_id=ACCOUNT).key_allowed(KEY_2)


def test_reencrypt_key_in_allowed_keys() -> None:
    # Given REENCRYPT_KMS_KEY among ALLOWED_KMS_KEYS
    settings = load_settings(_env(ALLOWED_KMS_KEYS=f"{KEY_1},{KEY_2}", REENCRYPT_KMS_KEY=KEY_2), account_id=ACCOUNT)
    # Then it is accepted
    assert settings.reencrypt_kms_key == KEY_2


def test_managed_key_tag_and_patterns_and_queue() -> None:
    # Given custom optional variables
    env = _env(
        MANAGED_KEY_TAG="team=ml",
        ALLOWED_PRINCIPAL_PATTERNS=f"arn:aws:iam::{ACCOUNT}:role/ml/*, arn:aws:iam::{ACCOUNT}:user/*",
        TRAINING_PRINCIPALS=f"{TRAINER},arn:aws:iam::{ACCOUNT}:user/ml-engineer",
        VERIFY_QUEUE_URL=f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/custom-labels-guard-verify",
    )
    # When loaded
    settings = load_settings(env, account_id=ACCOUNT)
    # Then they are parsed
    assert settings.managed_key_tag == ("team", "ml")
    assert settings.allowed_principal_patterns == (
        f"arn:aws:iam::{ACCOUNT}:role/ml/*",
        f"arn:aws:iam::{ACCOUNT}:user/*",
    )
    assert settings.training_principals == (TRAINER, f"arn:aws:iam::{ACCOUNT}:user/ml-engineer")
    assert settings.verify_queue_url == f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/custom-labels-guard-verify"


# --- validation: the error names the variable ---------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"ALERT_TOPIC_ARN": None}, "ALERT_TOPIC_ARN"),
        ({"ALERT_TOPIC_ARN": "  "}, "ALERT_TOPIC_ARN"),
        ({"ALERT_TOPIC_ARN": "custom-labels-guard-alerts"}, "ALERT_TOPIC_ARN"),
        ({"ALERT_TOPIC_ARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:queue"}, "ALERT_TOPIC_ARN"),
        ({"TRAINING_BUCKETS": None}, "TRAINING_BUCKETS"),
        ({"TRAINING_BUCKETS": "Upper Case"}, "TRAINING_BUCKETS"),
        ({"TRAINING_BUCKETS": "ok-bucket,a/b"}, "TRAINING_BUCKETS"),
        ({"TRAINING_BUCKETS": "ab"}, "TRAINING_BUCKETS"),
        ({"TRAINING_BUCKETS": "s3://bucket"}, "TRAINING_BUCKETS"),
        ({"TRAINING_BUCKETS": "b" * 256}, "TRAINING_BUCKETS"),
        ({"ENCRYPTION_REQUIREMENT": "SSE_C"}, "ENCRYPTION_REQUIREMENT"),
        ({"ENCRYPTION_REQUIREMENT": "KMS"}, "ENCRYPTION_REQUIREMENT"),
        ({"ALLOWED_KMS_KEYS": "alias/custom-labels-training"}, "ALLOWED_KMS_KEYS"),
        ({"ALLOWED_KMS_KEYS": f"{KEY_1},11111111-1111-1111-1111-111111111111"}, "ALLOWED_KMS_KEYS"),
        ({"REMEDIATION_MODE": "fix"}, "REMEDIATION_MODE"),
        ({"REENCRYPT_KMS_KEY": "alias/custom-labels-training"}, "REENCRYPT_KMS_KEY"),
        ({"REENCRYPT_KMS_KEY": KEY_2, "ALLOWED_KMS_KEYS": KEY_1}, "REENCRYPT_KMS_KEY"),
        ({"ALLOWED_PRINCIPAL_PATTERNS": "*"}, "ALLOWED_PRINCIPAL_PATTERNS"),
        ({"ALLOWED_PRINCIPAL_PATTERNS": "role/*"}, "ALLOWED_PRINCIPAL_PATTERNS"),
        ({"TRAINING_PRINCIPALS": "*"}, "TRAINING_PRINCIPALS"),
        ({"TRAINING_PRINCIPALS": f"arn:aws:iam::{ACCOUNT}:root"}, "TRAINING_PRINCIPALS"),
        ({"TRAINING_PRINCIPALS": "rekognition.amazonaws.com"}, "TRAINING_PRINCIPALS"),
        ({"TRAINING_PRINCIPALS": f"arn:aws:sts::{ACCOUNT}:assumed-role/R/s"}, "TRAINING_PRINCIPALS"),
        ({"TRAINING_PRINCIPALS": f"arn:aws:iam::{ACCOUNT}:role/*"}, "TRAINING_PRINCIPALS"),
        ({"TRAINING_PRINCIPALS": "arn:aws:iam::210987654321:role/PartnerTrainer"}, "TRAINING_PRINCIPALS"),
        ({"TRAINING_PRINCIPALS": f"arn:aws:iam::{ACCOUNT}:user/ml-engineer"}, "TRAINING_PRINCIPALS"),
        (
            {"TRAINING_PRINCIPALS": TRAINER, "ALLOWED_PRINCIPAL_PATTERNS": f"arn:aws:iam::{ACCOUNT}:role/other/*"},
            "TRAINING_PRINCIPALS",
        ),
        ({"MANAGED_KEY_TAG": "no-equals-sign"}, "MANAGED_KEY_TAG"),
        ({"MANAGED_KEY_TAG": "=value"}, "MANAGED_KEY_TAG"),
        ({"MANAGED_KEY_TAG": "k" * 129 + "=v"}, "MANAGED_KEY_TAG"),
        ({"MANAGED_KEY_TAG": "k=" + "v" * 257}, "MANAGED_KEY_TAG"),
        ({"STATE_TABLE": None}, "STATE_TABLE"),
        ({"STATE_TABLE": "ab"}, "STATE_TABLE"),
        ({"STATE_TABLE": "bad table"}, "STATE_TABLE"),
        ({"VERIFY_QUEUE_URL": "custom-labels-guard-verify"}, "VERIFY_QUEUE_URL"),
        ({"VERIFY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123/q"}, "VERIFY_QUEUE_URL"),
        ({"AWS_REGION": None}, "AWS_REGION"),
        ({"MEMBER_ACCOUNTS": "11112222333"}, "MEMBER_ACCOUNTS"),
        ({"MEMBER_ACCOUNTS": "111122223333,o-abc"}, "MEMBER_ACCOUNTS"),
        ({"MEMBER_ROLE_NAME": "path/Role"}, "MEMBER_ROLE_NAME"),
        ({"MEMBER_ROLE_NAME": "r" * 65}, "MEMBER_ROLE_NAME"),
        ({"MEMBER_OU": "r-ab12"}, "MEMBER_OU"),
        ({"MEMBER_OU": "ou-ab12-cd34ef56,ou-ab12-11111111"}, "MEMBER_OU"),
        ({"MEMBER_OU": "ou-AB12-CD34EF56"}, "MEMBER_OU"),
        (
            {"MEMBER_ACCOUNTS": "111122223333", "TRAINING_PRINCIPALS": "arn:aws:iam::210987654321:role/T"},
            "TRAINING_PRINCIPALS",
        ),
    ],
)
def test_invalid_variable_is_named(overrides: dict[str, Any], variable: str) -> None:
    # Given an environment with one bad variable
    env = _env(**overrides)
    # When loaded
    error = _error(env)
    # Then ConfigError names that variable, in its attribute and its message
    assert error.variable == variable
    assert str(error).startswith(f"{variable}: ")


def test_training_buckets_must_name_a_bucket() -> None:
    # Given TRAINING_BUCKETS that is set but names no bucket
    # When loaded
    # Then it is rejected like an empty value (otherwise every S3 event is silently ignored)
    assert _error(_env(TRAINING_BUCKETS=" , ")).variable == "TRAINING_BUCKETS"


@pytest.mark.parametrize("account_id", ["", "12345", "1234567890123", "abcdefghijkl"])
def test_invalid_account_id(account_id: str) -> None:
    # Given a malformed account id from the Lambda context
    # When loaded
    # Then ConfigError names it
    assert _error(_env(), account_id=account_id).variable == "account id"


def test_reencrypt_key_outside_allowed_keys_explains_why() -> None:
    # Given REENCRYPT_KMS_KEY not in ALLOWED_KMS_KEYS
    # When loaded
    error = _error(_env(ALLOWED_KMS_KEYS=KEY_1, REENCRYPT_KMS_KEY=KEY_2))
    # Then the message says re-encrypted objects would be violations again
    assert "ALLOWED_KMS_KEYS" in str(error)


def test_training_principal_of_another_account_names_this_account() -> None:
    # Given a training principal of another account
    error = _error(_env(TRAINING_PRINCIPALS="arn:aws:iam::210987654321:role/PartnerTrainer"))
    # Then the message names this account
    assert ACCOUNT in str(error)


# --- current_settings cache --------------------------------------------------------------------


@pytest.fixture
def counted_loads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """Records each real load_settings call made by current_settings."""
    calls: list[dict[str, str]] = []
    real = config.load_settings

    def counting(env: Any, *, account_id: str) -> config.Settings:
        calls.append(dict(env))
        return real(env, account_id=account_id)

    monkeypatch.setattr(config, "load_settings", counting)
    monkeypatch.setattr(config, "_cache", {})
    return calls


def test_current_settings_is_cached_per_environment(counted_loads: list[dict[str, str]]) -> None:
    # Given an environment
    env = _env()
    # When settings are requested twice (the second time from an equal copy, plus unrelated variables)
    first = current_settings(env, account_id=ACCOUNT)
    second = current_settings({**env, "PATH": "/usr/bin", "HOME": "/root"}, account_id=ACCOUNT)
    # Then they were validated once and are the same object
    assert second is first
    assert len(counted_loads) == 1


def test_current_settings_rebuilds_when_the_environment_changes(counted_loads: list[dict[str, str]]) -> None:
    # Given settings for one environment
    first = current_settings(_env(), account_id=ACCOUNT)
    # When a configuration variable changes
    changed = current_settings(_env(REMEDIATION_MODE="report"), account_id=ACCOUNT)
    # Then they are rebuilt and reflect the change
    assert changed is not first
    assert not changed.enforce
    assert first.enforce
    # And switching back rebuilds again (equal to the first, freshly validated)
    back = current_settings(_env(), account_id=ACCOUNT)
    assert back == first
    assert len(counted_loads) == 3


@pytest.mark.parametrize(
    "change",
    [
        {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": None},
        {"TRAINING_PRINCIPALS": TRAINER},
        {"VERIFY_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/q"},
    ],
)
def test_current_settings_sees_every_variable(counted_loads: list[dict[str, str]], change: dict[str, Any]) -> None:
    # Given settings for one environment
    first = current_settings(_env(), account_id=ACCOUNT)
    # When any variable that load_settings reads changes
    second = current_settings(_env(**change), account_id=ACCOUNT)
    # Then the settings are rebuilt
    assert second is not first
    assert second != first


def test_current_settings_rebuilds_for_another_account(counted_loads: list[dict[str, str]]) -> None:
    # Given settings for one account
    first = current_settings(_env(), account_id=ACCOUNT)
    # When requested for another account
    other = current_settings(_env(), account_id="210987654321")
    # Then the default pattern follows the account
    assert other is not first
    assert other.allowed_principal_patterns == ("arn:aws:iam::210987654321:role/*",)


def test_current_settings_does_not_cache_errors(counted_loads: list[dict[str, str]]) -> None:
    # Given an invalid environment
    env = _env(REMEDIATION_MODE="fix")
    # When settings are requested twice
    # Then both fail naming the variable
    for _ in range(2):
        with pytest.raises(ConfigError) as raised:
            current_settings(env, account_id=ACCOUNT)
        assert raised.value.variable == "REMEDIATION_MODE"
    assert len(counted_loads) == 2


# --- many accounts -----------------------------------------------------------------------------

MEMBER = "111122223333"
MEMBER_TRAINER = f"arn:aws:iam::{MEMBER}:role/ml/Trainer"


def test_an_unserved_account_gets_no_settings() -> None:
    # Given a central deployment serving one member
    settings = load_settings(_env(MEMBER_ACCOUNTS=MEMBER), account_id=ACCOUNT)
    # When settings are asked for its own, the member's and a stranger's account
    # Then its own and the member's exist, and a stranger's do not
    assert settings.for_account(ACCOUNT) is settings
    assert settings.for_account(MEMBER) is not None
    assert settings.for_account("999988887777") is None


def test_member_settings_follow_the_member_account() -> None:
    # Given default principal patterns and trainers in both accounts
    env = _env(MEMBER_ACCOUNTS=MEMBER, TRAINING_PRINCIPALS=f"{TRAINER},{MEMBER_TRAINER}")
    settings = load_settings(env, account_id=ACCOUNT)
    # When the member's settings are derived
    member = settings.for_account(MEMBER)
    assert member is not None
    # Then the guardrails are the member's: its roles, its trainers, its account; the deployment's
    # own settings keep only its own trainer
    assert member.account_id == MEMBER
    assert member.home == ACCOUNT
    assert member.allowed_principal_patterns == (f"arn:aws:iam::{MEMBER}:role/*",)
    assert member.training_principals == (MEMBER_TRAINER,)
    assert settings.training_principals == (TRAINER,)
    assert member.member_role_arn(MEMBER) == f"arn:aws:iam::{MEMBER}:role/CustomLabelsGuardMember"


def test_explicit_principal_patterns_are_kept_for_members() -> None:
    # Given explicit patterns that name both accounts' ml roles
    patterns = f"arn:aws:iam::{ACCOUNT}:role/ml/*,arn:aws:iam::{MEMBER}:role/ml/*"
    settings = load_settings(_env(MEMBER_ACCOUNTS=MEMBER, ALLOWED_PRINCIPAL_PATTERNS=patterns), account_id=ACCOUNT)
    # When the member's settings are derived
    member = settings.for_account(MEMBER)
    # Then the patterns are the configured ones (the key-account rule still applies per key)
    assert member is not None
    assert member.allowed_principal_patterns == tuple(patterns.split(","))


def test_the_deployments_own_account_is_not_a_member() -> None:
    # Given MEMBER_ACCOUNTS that also lists the deployment's own account
    settings = load_settings(_env(MEMBER_ACCOUNTS=f"{ACCOUNT},{MEMBER}"), account_id=ACCOUNT)
    # Then only the other account is a member (its own events never assume a role)
    assert settings.member_accounts == frozenset({MEMBER})


@pytest.mark.parametrize(
    "value",
    ["custom-labels-guard= managed", "custom-labels-guard=managed ", " custom-labels-guard=managed", "team =ml"],
)
def test_managed_key_tag_with_surrounding_whitespace_is_rejected(value: str) -> None:
    # Given MANAGED_KEY_TAG whose key or value starts or ends with whitespace (IAM's tag condition
    # compares the exact value, so stripping it would make the code and IAM disagree)
    env = _env(MANAGED_KEY_TAG=value)
    # When loaded
    # Then a clear ConfigError names MANAGED_KEY_TAG
    with pytest.raises(ConfigError) as raised:
        load_settings(env, account_id=ACCOUNT)
    assert raised.value.variable == "MANAGED_KEY_TAG"
    assert "whitespace" in str(raised.value)
