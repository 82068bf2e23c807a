"""Who may be added to a key policy (docs/architecture.md §6) and who called (docs/architecture.md §7)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.rules.arns import parse_principal_arn
from clguard.rules.principals import matches_patterns, refusal_reason, resolve_caller
from tests.eventsamples import load_event

ACCOUNT = "123456789012"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
SSO_ROLE = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_MLTrainers_0123456789abcdef"
)
DEFAULT_PATTERNS = (f"arn:aws:iam::{ACCOUNT}:role/*",)


def _identity(name: str) -> Any:
    return load_event(name)["detail"]["userIdentity"]


# --- refusal_reason ---------------------------------------------------------------------------


@pytest.mark.parametrize("arn", [TRAINER, SSO_ROLE, f"arn:aws:iam::{ACCOUNT}:role/Plain"])
def test_same_account_role_matching_the_patterns_is_allowed(arn: str) -> None:
    # Given a role of the key's account and the default patterns
    # When checked
    # Then there is no reason to refuse
    assert refusal_reason(arn, key_account=ACCOUNT, key_partition="aws", patterns=DEFAULT_PATTERNS) is None


HARD_REFUSALS = [
    None,
    "",
    "*",
    f"arn:aws:iam::{ACCOUNT}:role/*",
    f"arn:aws:iam::{ACCOUNT}:role/ml/Train?r",
    f"arn:aws:iam::{ACCOUNT}:root",
    ACCOUNT,
    "rekognition.amazonaws.com",
    "s3.amazonaws.com.cn",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/CustomLabelsTrainer/session-1",
    f"arn:aws:sts::{ACCOUNT}:federated-user/bob",
    f"arn:aws:iam::{ACCOUNT}:group/trainers",
    "arn:aws:iam::210987654321:role/PartnerTrainer",
    "arn:aws:iam::210987654321:user/partner",
    f" {TRAINER}",
    "x" * 3000,
]


@pytest.mark.parametrize("arn", HARD_REFUSALS)
@pytest.mark.parametrize("patterns", [DEFAULT_PATTERNS, ("*",), ("arn:*",), ("arn:aws:iam::*:*", "*root*")])
def test_hard_rules_hold_whatever_the_patterns_say(arn: str | None, patterns: tuple[str, ...]) -> None:
    # Given a wildcard, root, service, session, group, other-account or malformed principal
    # And patterns that would match anything
    # When checked
    reason = refusal_reason(arn, key_account=ACCOUNT, key_partition="aws", patterns=patterns)
    # Then it is refused, with a short reason
    assert reason is not None
    assert len(reason) < 500


def test_trailing_newline_is_refused() -> None:
    # Given a role ARN followed by a newline (e.g. pasted from a file)
    arn = f"{TRAINER}\n"
    # When checked against patterns that allow every role
    # Then it is refused: KMS would reject it, and it is not the caller's ARN
    assert refusal_reason(arn, key_account=ACCOUNT, key_partition="aws", patterns=("*",)) is not None


def test_user_outside_the_default_role_patterns_is_refused() -> None:
    # Given an IAM user and the default patterns (roles only)
    # When checked
    reason = refusal_reason(
        f"arn:aws:iam::{ACCOUNT}:user/ml-engineer", key_account=ACCOUNT, key_partition="aws", patterns=DEFAULT_PATTERNS
    )
    # Then the reason names the patterns
    assert reason is not None
    assert "ALLOWED_PRINCIPAL_PATTERNS" in reason


def test_other_account_reason_names_both_accounts() -> None:
    # Given a role of another account
    # When checked
    reason = refusal_reason(
        "arn:aws:iam::210987654321:role/R", key_account=ACCOUNT, key_partition="aws", patterns=("*",)
    )
    # Then the reason says whose it is
    assert reason is not None
    assert "210987654321" in reason
    assert ACCOUNT in reason


def test_patterns_are_case_sensitive_globs() -> None:
    # Given a pattern for the ml/ path
    patterns = (f"arn:aws:iam::{ACCOUNT}:role/ml/*",)
    # When roles inside and outside it are matched
    # Then only the exact-case path matches
    assert matches_patterns(TRAINER, patterns)
    assert not matches_patterns(f"arn:aws:iam::{ACCOUNT}:role/ML/CustomLabelsTrainer", patterns)
    assert not matches_patterns(f"arn:aws:iam::{ACCOUNT}:role/Other", patterns)
    assert not matches_patterns(TRAINER, ())


PATTERN_SETS = st.sampled_from(
    [
        ("*",),
        ("arn:*",),
        DEFAULT_PATTERNS,
        (f"arn:aws:iam::{ACCOUNT}:role/ml/*",),
        (f"arn:aws:iam::{ACCOUNT}:user/*", "arn:aws:iam::*:role/aws-reserved/*"),
        (),
    ]
)
arnish = st.builds(
    lambda partition, service, account, kind, path, name: f"arn:{partition}:{service}::{account}:{kind}{path}{name}",
    st.sampled_from(["aws", "aws-cn", "aws-us-gov", "awx"]),
    st.sampled_from(["iam", "iam", "sts"]),
    st.sampled_from([ACCOUNT, ACCOUNT, "210987654321", "12345", "*"]),
    st.sampled_from(["role", "user", "group", "assumed-role", "root", "role/"]),
    st.sampled_from(["/", "/ml/", "/aws-reserved/sso.amazonaws.com/us-east-1/", "/*/", "//", ""]),
    st.from_regex(r"[A-Za-z0-9_+=,.@*?:/ -]{0,20}", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(arn=st.one_of(arnish, st.text(max_size=80)), patterns=PATTERN_SETS)
def test_refusal_reason_is_none_only_for_parsed_same_account_matching_arns(arn: str, patterns) -> None:
    # Given any string and any patterns
    # When checked
    reason = refusal_reason(arn, key_account=ACCOUNT, key_partition="aws", patterns=patterns)
    # Then "allowed" implies: it parses as an IAM role/user ARN, of the key's account,
    # without "*" or "?", and matching a pattern
    if reason is None:
        parsed = parse_principal_arn(arn)
        assert parsed is not None
        assert parsed.account == ACCOUNT
        assert "*" not in arn
        assert "?" not in arn
        assert matches_patterns(arn, patterns)
    else:
        assert isinstance(reason, str)
        assert reason


# --- resolve_caller ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "identity_type", "principal"),
    [
        ("cloudtrail_create_project_version", "AssumedRole", TRAINER),
        ("cloudtrail_create_project_version_sso", "AssumedRole", SSO_ROLE),
        ("cloudtrail_create_project_version_iam_user", "IAMUser", f"arn:aws:iam::{ACCOUNT}:user/ml-engineer"),
        ("cloudtrail_create_project_version_root", "Root", None),
        (
            "cloudtrail_create_project_version_other_account",
            "AssumedRole",
            "arn:aws:iam::210987654321:role/PartnerTrainer",
        ),
    ],
)
def test_resolve_caller_on_the_samples(sample: str, identity_type: str, principal: str | None) -> None:
    # Given the userIdentity of a sample CloudTrail record
    identity = _identity(sample)
    # When the caller is resolved
    caller = resolve_caller(identity)
    # Then the principal is the role with its path (never the sts session ARN), the user, or none
    assert caller.identity_type == identity_type
    assert caller.principal_arn == principal
    assert caller.note
    if caller.principal_arn:
        assert ":sts:" not in caller.principal_arn


def test_assumed_role_never_uses_the_sts_arn() -> None:
    # Given an AssumedRole identity without a session issuer
    identity = _identity("cloudtrail_create_project_version")
    del identity["sessionContext"]["sessionIssuer"]
    # When resolved
    caller = resolve_caller(identity)
    # Then there is no principal (the sts ARN drops the path and must not be used)
    assert caller.principal_arn is None
    assert caller.identity_type == "AssumedRole"


@pytest.mark.parametrize(
    ("issuer_type", "resolved"),
    [(None, True), ("Role", True), ("role", False), ("User", False), ("", False)],
)
def test_a_session_issuer_is_used_only_when_it_is_a_role(issuer_type: str | None, resolved: bool) -> None:
    # Given an AssumedRole identity whose session issuer has no type (CloudTrail then means a role),
    # or a type that is exactly "Role", or anything else
    identity = _identity("cloudtrail_create_project_version")
    issuer = identity["sessionContext"]["sessionIssuer"]
    if issuer_type is None:
        del issuer["type"]
    else:
        issuer["type"] = issuer_type

    # When resolved
    caller = resolve_caller(identity)

    # Then the issuer's ARN (with its path) is the principal only for a role
    assert caller.principal_arn == (issuer["arn"] if resolved else None)


def test_sso_role_keeps_its_identity_center_path() -> None:
    # Given the IAM Identity Center sample
    caller = resolve_caller(_identity("cloudtrail_create_project_version_sso"))
    # When its principal is parsed
    assert caller.principal_arn is not None
    parsed = parse_principal_arn(caller.principal_arn)
    # Then the path is the Identity Center one, and the default patterns allow it
    assert parsed is not None
    assert parsed.path == "/aws-reserved/sso.amazonaws.com/us-east-1/"
    assert (
        refusal_reason(caller.principal_arn, key_account=ACCOUNT, key_partition="aws", patterns=DEFAULT_PATTERNS)
        is None
    )


def test_root_is_never_a_principal_even_with_an_issuer() -> None:
    # Given a Root identity that (oddly) carries a session issuer role
    identity = _identity("cloudtrail_create_project_version_root")
    identity["sessionContext"]["sessionIssuer"] = {"type": "Role", "arn": TRAINER}
    # When resolved
    # Then none
    assert resolve_caller(identity).principal_arn is None


@pytest.mark.parametrize("kind", ["FederatedUser", "WebIdentityUser", "SAMLUser", "AWSService", "AWSAccount", "Odd"])
def test_other_identity_types_use_the_issuer_role_if_present(kind: str) -> None:
    # Given an identity of another type with a session issuer role
    identity = _identity("cloudtrail_create_project_version")
    identity["type"] = kind
    # When resolved
    # Then the issuer role is the principal
    assert resolve_caller(identity).principal_arn == TRAINER
    # And without an issuer, or with a non-role issuer, there is none
    user_issuer = copy.deepcopy(identity)
    user_issuer["sessionContext"]["sessionIssuer"]["type"] = "IAMUser"
    assert resolve_caller(user_issuer).principal_arn is None
    del identity["sessionContext"]
    caller = resolve_caller(identity)
    assert caller.principal_arn is None
    assert caller.identity_type == kind


def test_identity_without_type_is_unknown() -> None:
    # Given an identity with no type but a session issuer role
    identity = _identity("cloudtrail_create_project_version")
    del identity["type"]
    # When resolved
    caller = resolve_caller(identity)
    # Then it is "unknown" and uses the issuer role
    assert caller.identity_type == "unknown"
    assert caller.principal_arn == TRAINER


def test_iam_user_without_arn_has_no_principal() -> None:
    # Given an IAMUser identity whose arn is missing or not a string
    identity = _identity("cloudtrail_create_project_version_iam_user")
    identity["arn"] = 42
    # When resolved
    # Then none
    assert resolve_caller(identity).principal_arn is None


@pytest.mark.parametrize(
    "identity",
    [
        None,
        "AssumedRole",
        ["AssumedRole"],
        42,
        {},
        {"type": None},
        {"type": 7},
        {"type": "AssumedRole"},
        {"type": "AssumedRole", "sessionContext": "x"},
        {"type": "AssumedRole", "sessionContext": {"sessionIssuer": ["Role", TRAINER]}},
        {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role", "arn": ["x"]}}},
        {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role", "arn": ""}}},
        {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": None, "arn": TRAINER}}},
        {"type": "IAMUser"},
        {"type": "IAMUser", "arn": None},
        {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root"},
        {"type": "FederatedUser", "sessionContext": None},
    ],
)
def test_malformed_identities_never_raise(identity: Any) -> None:
    # Given a malformed userIdentity
    # When resolved
    caller = resolve_caller(identity)
    # Then there is no principal, and the identity type is a string
    assert caller.principal_arn is None
    assert isinstance(caller.identity_type, str)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10,
)
issuers = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(["Role", "IAMUser", "Root"]), json_values),
            "arn": st.one_of(st.sampled_from([TRAINER, SSO_ROLE, ""]), json_values),
        },
    ),
)
identities = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(
                st.sampled_from(
                    ["AssumedRole", "IAMUser", "Root", "FederatedUser", "WebIdentityUser", "SAMLUser", "AWSService"]
                ),
                json_values,
            ),
            "arn": st.one_of(st.sampled_from([f"arn:aws:iam::{ACCOUNT}:user/u", "arn:aws:sts::1:x"]), json_values),
            "sessionContext": st.one_of(
                json_values,
                st.fixed_dictionaries({}, optional={"sessionIssuer": issuers, "attributes": json_values}),
            ),
        },
    ),
)


@settings(max_examples=300, deadline=None)
@given(identity=identities)
def test_resolve_caller_never_raises_and_only_returns_issuer_or_arn(identity: Any) -> None:
    # Given any JSON-ish userIdentity
    # When resolved
    caller = resolve_caller(identity)
    # Then it never raises, and the principal is None or taken from sessionIssuer.arn / arn
    principal = caller.principal_arn
    if principal is None:
        return
    assert isinstance(principal, str)
    assert principal
    assert isinstance(identity, dict)
    context = identity.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
    issuer_arn = issuer.get("arn") if isinstance(issuer, dict) else None
    assert principal in (issuer_arn, identity.get("arn"))
    # And an AssumedRole only ever resolves to its issuer, a Root never resolves
    assert identity.get("type") != "Root"
    if identity.get("type") == "AssumedRole":
        assert principal == issuer_arn
    if identity.get("type") != "IAMUser":
        assert principal == issuer_arn


@pytest.mark.parametrize("partition", ["aws-cn", "aws-us-gov", "aws-iso", "aws-eusc"])
def test_a_principal_of_another_partition_is_refused_whatever_the_patterns(partition: str) -> None:
    # Given a role of the key's own account id, but in another partition, and a pattern that matches it
    arn = f"arn:{partition}:iam::{ACCOUNT}:role/x"
    # When it is checked against a key of the aws partition
    reason = refusal_reason(arn, key_account=ACCOUNT, key_partition="aws", patterns=("arn:*",))
    # Then it is refused, naming the partition
    assert reason is not None
    assert partition in reason
    # And the same role is fine for a key of its own partition
    assert refusal_reason(arn, key_account=ACCOUNT, key_partition=partition, patterns=("arn:*",)) is None


NO_PRINCIPAL = "the caller has no IAM principal that a key policy can name (root or unresolvable)"


@pytest.mark.parametrize(
    ("arn", "reason"),
    [
        (None, NO_PRINCIPAL),
        ("", NO_PRINCIPAL),
        ("*", "'*' is a wildcard"),
        (f"arn:aws:iam::{ACCOUNT}:role/*", f"'arn:aws:iam::{ACCOUNT}:role/*' is a wildcard"),
        (f"arn:aws:iam::{ACCOUNT}:role/ml/Train?r", f"'arn:aws:iam::{ACCOUNT}:role/ml/Train?r' is a wildcard"),
        ("arn:aws:iam::210987654321:role/*", "'arn:aws:iam::210987654321:role/*' is a wildcard"),
        (f"arn:aws:iam::{ACCOUNT}:root", f"'arn:aws:iam::{ACCOUNT}:root' is an account root principal"),
        (ACCOUNT, f"'{ACCOUNT}' is an account root principal"),
        ("rekognition.amazonaws.com", "'rekognition.amazonaws.com' is a service principal"),
        ("s3.amazonaws.com.cn", "'s3.amazonaws.com.cn' is a service principal"),
        (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/CustomLabelsTrainer/session-1",
            f"'arn:aws:sts::{ACCOUNT}:assumed-role/CustomLabelsTrainer/session-1' is not an IAM role or user ARN",
        ),
        (
            f"arn:aws:iam::{ACCOUNT}:group/trainers",
            f"'arn:aws:iam::{ACCOUNT}:group/trainers' is not an IAM role or user ARN",
        ),
        (f" {TRAINER}", f"' {TRAINER}' is not an IAM role or user ARN"),
        ("x" * 3000, f"'{'x' * 300}' is not an IAM role or user ARN"),
        (
            f"arn:aws-cn:iam::{ACCOUNT}:role/ml/T",
            f"'arn:aws-cn:iam::{ACCOUNT}:role/ml/T' is in partition aws-cn, not the key's partition aws",
        ),
        (
            "arn:aws:iam::210987654321:user/partner",
            "'arn:aws:iam::210987654321:user/partner' belongs to account 210987654321, not the key's account "
            f"{ACCOUNT}",
        ),
        (
            f"arn:aws:iam::{ACCOUNT}:role/Other",
            f"'arn:aws:iam::{ACCOUNT}:role/Other' matches none of ALLOWED_PRINCIPAL_PATTERNS",
        ),
    ],
)
def test_each_hard_rule_refuses_with_its_own_reason(arn: str | None, reason: str) -> None:
    # Given a principal that breaks one rule (the first that applies, in the documented order:
    # no principal, wildcard, root/account, service, not a role/user ARN, partition, account, patterns)
    # When checked against patterns that match only the trainer's path
    # Then the reason names exactly that rule
    assert (
        refusal_reason(arn, key_account=ACCOUNT, key_partition="aws", patterns=("arn:aws*:iam::*:role/ml/*",)) == reason
    )


@pytest.mark.parametrize(
    ("change", "note"),
    [
        ({}, "session issuer role"),
        ({"sessionContext": {}}, "assumed role without a session issuer"),
        ({"sessionContext": {"sessionIssuer": "not a mapping"}}, "assumed role without a session issuer"),
        ({"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/u"}, "IAM user"),
        ({"type": "Root"}, "root user: never added to a key policy"),
        ({"type": "FederatedUser"}, "session issuer role of a FederatedUser identity"),
        ({"type": "AWSService", "sessionContext": None}, "AWSService identity without a session issuer role"),
    ],
)
def test_each_caller_kind_is_explained(change: dict[str, Any], note: str) -> None:
    # Given an identity of each kind (the sample AssumedRole identity, changed)
    identity = {**_identity("cloudtrail_create_project_version"), **change}
    # When resolved, Then the note says which rule chose the principal (it reaches logs and findings)
    assert resolve_caller(identity).note == note


def test_a_record_without_a_user_identity_is_explained() -> None:
    caller = resolve_caller(None)
    assert (caller.identity_type, caller.principal_arn, caller.note) == (
        "missing",
        None,
        "the record has no userIdentity",
    )
