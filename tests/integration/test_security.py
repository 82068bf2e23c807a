"""No code path can add ``*``, a root, a service principal or another account's principal to a
key policy — whatever the configuration says (docs/architecture.md §6, §11)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.boundary.config import load_settings
from clguard.errors import ConfigError, GuardrailViolation
from clguard.reporting.publisher import Publisher
from clguard.rules import policy
from clguard.rules.arns import parse_principal_arn
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases.keyaccess import ensure_access
from clguard.usecases.keydecision import Context
from tests.world import ACCOUNT, World

OTHER = "210987654321"
HOSTILE = st.one_of(
    st.sampled_from(
        [
            "*",
            f"arn:aws:iam::{ACCOUNT}:root",
            ACCOUNT,
            "rekognition.amazonaws.com",
            "s3.amazonaws.com",
            f"arn:aws:iam::{OTHER}:role/ml/Trainer",
            f"arn:aws:iam::{ACCOUNT}:role/*",
            f"arn:aws:iam::{ACCOUNT}:role/ml/Train?r",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/Trainer/session",
            f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer\n",
            f'arn:aws:iam::{ACCOUNT}:role/x","Effect":"Allow","Principal":"*',
            f"arn:aws:iam::{ACCOUNT}:group/admins",
            "",
            # the key's own account id, in another partition
            f"arn:aws-cn:iam::{ACCOUNT}:role/x",
            f"arn:aws-us-gov:iam::{ACCOUNT}:role/ml/Trainer",
            f"arn:aws-iso-b:iam::{ACCOUNT}:user/u",
        ]
    ),
    st.builds(
        lambda partition, name: f"arn:{partition}:iam::{ACCOUNT}:role/{name}",
        st.sampled_from(["aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-eusc"]),
        st.from_regex(r"[A-Za-z0-9_+=,.@-]{1,20}", fullmatch=True),
    ),
    st.text(max_size=80),
    st.builds(lambda s: f"arn:aws:iam::{ACCOUNT}:role/{s}", st.text(max_size=40)),
    st.builds(
        lambda a, s: f"arn:aws:iam::{a}:role/{s}", st.from_regex(r"[0-9]{12}", fullmatch=True), st.text(max_size=10)
    ),
)
PERMISSIVE_PATTERNS = ("arn:*", f"arn:aws:iam::{ACCOUNT}:*", "arn:aws:iam::*:role/*", "arn:aws:iam::*", "arn:aws-*")


def safe(principal: str) -> bool:
    parsed = parse_principal_arn(principal)
    return (
        parsed is not None
        and parsed.partition == "aws"
        and parsed.account == ACCOUNT
        and "*" not in principal
        and "?" not in principal
    )


@pytest.fixture
def ctx(world: World) -> tuple[World, str, Context]:
    # Settings as permissive as the configuration can be made
    env = world.env(ALLOWED_PRINCIPAL_PATTERNS=",".join(PERMISSIVE_PATTERNS))
    settings_ = load_settings(env | {"AWS_REGION": "us-east-1"}, account_id=ACCOUNT)
    key = world.key()
    context = Context(settings_, Publisher(settings_, idempotent=False), KeyDirectory(ttl=0), "evt", "security test")
    return world, key, context


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(principal=HOSTILE)
def test_hostile_principals_never_reach_a_key_policy(ctx: tuple[World, str, Context], principal: str) -> None:
    # Given the most permissive configuration, a managed key, and a hostile principal
    world, key, context = ctx

    # When the principal is to be granted on the key
    ensure_access(context, key, {principal: (policy.TRAINING_DATA,)})

    # Then every principal in the guard's statements is a safe one of the key's account
    for statement in world.policy(key)["Statement"]:
        if statement.get("Sid") in policy.OWNED_SIDS:
            for added in policy.as_list(statement["Principal"]["AWS"]):
                assert safe(added), added


@given(principal=HOSTILE.filter(lambda p: not safe(p)))
@settings(max_examples=200, deadline=None)
def test_the_lowest_layer_refuses_them_too(principal: str) -> None:
    # Given an unsafe principal
    # When it is merged into a policy directly
    # Then, even if every check above it were bypassed, the merge itself raises
    with pytest.raises(GuardrailViolation):
        policy.merge_grants({"Statement": []}, [(principal, (policy.TRAINING_DATA,))], key_account=ACCOUNT)


@pytest.mark.parametrize(
    "principal",
    [
        "*",
        f"arn:aws:iam::{ACCOUNT}:root",
        "rekognition.amazonaws.com",
        f"arn:aws:iam::{OTHER}:role/x",
        f"arn:aws:iam::{ACCOUNT}:role/*",
    ],
)
def test_configuration_cannot_name_them_as_training_principals(world: World, principal: str) -> None:
    # Given TRAINING_PRINCIPALS naming an unsafe principal, with every pattern allowed
    env = world.env(TRAINING_PRINCIPALS=principal, ALLOWED_PRINCIPAL_PATTERNS="arn:*") | {"AWS_REGION": "us-east-1"}

    # When the settings are loaded
    # Then they are refused, naming the variable
    with pytest.raises(ConfigError) as raised:
        load_settings(env, account_id=ACCOUNT)
    assert raised.value.variable == "TRAINING_PRINCIPALS"


def test_a_key_without_the_opt_in_tag_is_never_edited(ctx: tuple[World, str, Context]) -> None:
    # Given a key without the opt-in tag, and a principal the configuration allows
    world, _, context = ctx
    untagged = world.key(managed=False)
    world.role("Trainer", "/ml/")
    before = world.policy(untagged)

    # When the principal is to be granted on it
    result = ensure_access(context, untagged, {f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer": (policy.TRAINING_DATA,)})

    # Then the policy is unchanged, and KEY_NOT_MANAGED is reported
    assert world.policy(untagged) == before
    assert [f.finding_type.value for f in result.published] == ["KEY_NOT_MANAGED"]
