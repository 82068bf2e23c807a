"""The split of the key-policy condition logic into small named checks (issue 22) keeps every
decision identical: the evaluator as it was before the split (kept here, verbatim but for names)
against the split one, on generated operators, keys, values and request contexts.

``legacy_request_contexts`` and ``legacy_condition_can_match`` are ``rules/policy.py``'s
``request_contexts`` and ``_condition_can_match`` at commit c31aea6. The properties hold for every
draw: the same request contexts, and the same answer of every condition entry in every context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.rules import policy
from clguard.rules.arns import account_of, parse_principal_arn
from clguard.rules.policy import NO_FACTS, RequestFacts
from clguard.rules.policy import _Context as Context
from clguard.rules.policy import _Unknown as Unknown

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
ORG = "o-a1b2c3d4e5"
PRINCIPALS = (
    f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer",
    f"arn:aws:iam::{ACCOUNT}:user/ml/alice",
    f"arn:aws:iam::{OTHER_ACCOUNT}:role/Other",
    f"arn:aws-cn:iam::{ACCOUNT}:role/China",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/Trainer/session",
    f"arn:aws:iam::{ACCOUNT}:root",
    "not-an-arn",
    "",
)
KEY_ARNS = (
    f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    f"arn:aws:kms:eu-west-1:{OTHER_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    f"arn:aws:kms::{ACCOUNT}:key/no-region",
    "arn:aws:s3:::not-a-key",
    None,
)
ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "KMS:CREATEGRANT", "kms:decrypt", "kms:DescribeKey")
SERVICES = ("s3", "rekognition", "other")
FACTS: tuple[RequestFacts, ...] = (
    NO_FACTS,
    policy.organization_facts(ORG),
    policy.organization_facts(None),
    {"AWS:PrincipalOrgID": ORG, "aws:PrincipalTag/team": "ml", "aws:principalarn": None},
)
BASES = (
    *sorted(policy._STRING_OPERATORS),
    "null",
    "numericequals",
    "datelessthan",
    "ipaddress",
    "binaryequals",
    "",
)
KEYS = (
    "aws:PrincipalArn",
    "aws:principalaccount",
    "kms:CallerAccount",
    "aws:PrincipalType",
    "kms:ViaService",
    "aws:ViaAWSService",
    "aws:SecureTransport",
    "aws:PrincipalIsAWSService",
    "aws:RequestedRegion",
    "kms:GrantIsForAWSResource",
    "kms:EncryptionContext:aws:s3:arn",
    "kms:EncryptionContextKeys",
    "aws:SourceVpce",
    "aws:SourceArn",
    "aws:PrincipalOrgID",
    "aws:ResourceOrgID",
    "aws:PrincipalTag/team",
    "aws:SourceIp",
)
VALUES = (
    *PRINCIPALS[:3],
    ACCOUNT,
    OTHER_ACCOUNT,
    ORG,
    "true",
    "false",
    "TRUE",
    "AssumedRole",
    "User",
    "s3.us-east-1.amazonaws.com",
    "rekognition.*.amazonaws.com",
    "us-east-1",
    "arn:aws:iam::*:role/*",
    "arn:aws:iam::111122223333:*",
    "arn:aws:iam::*",
    "ml",
    "${aws:PrincipalAccount}",
    "*",
    "?",
    "",
)

# Contexts no training request makes (several values a key, a key known empty), so that the set
# qualifiers' difference shows.
synthetic_contexts = st.dictionaries(
    st.sampled_from(KEYS).map(str.lower),
    st.one_of(
        st.lists(st.sampled_from([v for v in VALUES if v]), max_size=3).map(tuple),
        st.sampled_from((Unknown.ANY, Unknown.PRESENT)),
    ),
    max_size=6,
)

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cased(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from((text, text.lower(), text.upper(), text.title()))


operators = st.builds(
    lambda qualifier, base, suffix: f"{qualifier}{base}{suffix}",
    st.sampled_from(("", "ForAllValues:", "ForAnyValue:", "forallvalues:", "FORANYVALUE:")),
    st.one_of(st.sampled_from(sorted(policy._STRING_OPERATORS)), st.sampled_from(BASES)).flatmap(_cased),
    st.sampled_from(("", "IfExists", "ifexists")),
)
keys = st.sampled_from(KEYS).flatmap(_cased)
# Values that match each other under some operator (equal, equal but for case, a glob of another).
MATCHING = (ACCOUNT, OTHER_ACCOUNT, "true", "TRUE", "false", PRINCIPALS[0], "arn:aws:iam::*:role/*", "*")
texts = st.one_of(st.sampled_from(MATCHING), st.sampled_from(VALUES), st.booleans())
odd = st.one_of(st.integers(-1, 2), st.none(), st.just({"a": 1}))
wanted = st.one_of(texts, st.lists(texts, min_size=1, max_size=3), odd, st.lists(st.one_of(texts, odd), max_size=3))
requests = st.tuples(
    st.sampled_from(PRINCIPALS),
    st.sampled_from(ACTIONS),
    st.sampled_from(KEY_ARNS),
    st.lists(st.sampled_from(SERVICES), max_size=3),
    st.sampled_from(FACTS),
)


# --- the evaluator before the split (rules/policy.py at c31aea6) ---------------------------------


def legacy_request_contexts(
    principal: str,
    action: str,
    key_arn: str | None,
    via: Sequence[str] = ("s3", "rekognition"),
    facts: RequestFacts = NO_FACTS,
) -> list[Context]:
    """The request contexts KMS can see when Rekognition trains for ``principal`` (keys lower
    case). One per service in ``via`` that calls KMS on the principal's behalf. ``facts``: what
    the caller learnt of the principal beyond its ARN (its organization), ``None`` for a key the
    request does not carry."""
    parsed = parse_principal_arn(principal)
    account = parsed.account if parsed else None
    key_account = account_of(key_arn) if key_arn else None
    region = policy._region_of(key_arn)
    out: list[Context] = []
    for service in via:
        context: dict[str, tuple[str, ...] | Unknown] = {
            "aws:principalarn": (principal,),
            "aws:viaawsservice": ("true",),
            "aws:securetransport": ("true",),
            "aws:principalisawsservice": ("false",),
        }
        if account is not None:
            context["aws:principalaccount"] = (account,)
            context["kms:calleraccount"] = (account,)
        if parsed is not None:
            context["aws:principaltype"] = ("AssumedRole" if parsed.kind == "role" else "User",)
        if region is not None:
            context["kms:viaservice"] = (f"{service}.{region}.amazonaws.com",)
            context["aws:requestedregion"] = (region,)
        if action.lower() == "kms:creategrant":
            context["kms:grantisforawsresource"] = ("true",)
        if service == "s3" and action.lower() in policy._S3_CONTEXT_ACTIONS:
            for name in policy._S3_CONTEXT_KEYS:
                context[name] = Unknown.PRESENT
        if account is not None and account == key_account:  # facts are of the key's account
            for name, value in facts.items():
                context[name.lower()] = () if value is None else (value,)
        out.append(context)
    return out


def legacy_condition_can_match(operator: str, key: str, wanted: Any, context: Context) -> bool:
    """Whether one ``operator: {key: wanted}`` entry can be true for ``context``."""
    op = operator.lower()
    qualifier = next((q for q in policy._SET_OPERATORS if op.startswith(q)), "")
    op = op.removeprefix(qualifier)
    if_exists = op.endswith("ifexists")  # a bare "IfExists" leaves no operator: not modelled below
    base = op.removesuffix("ifexists")
    values = policy.as_list(wanted)
    if any(policy._unresolvable(v) for v in values):
        return True  # an IAM policy variable (${aws:PrincipalAccount}, ...): IAM substitutes it; assume a match
    found = policy._lookup(context, key)
    if base == "null":
        if found is policy._ANY:
            return True
        present = found is not None
        return any(str(v).lower() == ("false" if present else "true") for v in values)
    if base not in policy._STRING_OPERATORS or not all(isinstance(v, (str, bool)) for v in values):
        return True  # an operator (or value type) we do not model: assume it can match
    if isinstance(found, Unknown):
        return True
    if found is None:
        # IAM: ...IfExists and negated operators match an absent key; ForAllValues matches an
        # empty set; everything else does not.
        return if_exists or qualifier == "forallvalues:" or (base in policy._NEGATED and qualifier == "")
    assert isinstance(found, tuple)
    texts = ["true" if v is True else "false" if v is False else str(v) for v in values]
    positive = policy._POSITIVE_OF.get(base, base)

    def one(request: str) -> bool:
        hit = any(policy._value_matches(positive, request, w) for w in texts)
        return not hit if base in policy._NEGATED else hit

    if qualifier == "forallvalues:":
        return all(one(r) for r in found)
    return any(one(r) for r in found)


@PROPERTY
@given(request=requests)
def test_request_contexts_are_the_ones_of_the_evaluator_before_the_split(
    request: tuple[str, str, str | None, list[str], RequestFacts],
) -> None:
    # Given a principal, an action, a key, the services calling KMS and what is known of the principal
    principal, action, key_arn, via, facts = request
    # When both evaluators put the request contexts together
    # Then they are the same contexts, key for key
    assert policy.request_contexts(principal, action, key_arn, via, facts) == legacy_request_contexts(
        principal, action, key_arn, via, facts
    )


@PROPERTY
@given(
    operator=operators,
    key=keys,
    value=wanted,
    context=synthetic_contexts,
    carried=st.lists(st.sampled_from(MATCHING), max_size=3).map(tuple),
    carry=st.integers(0, 3),
)
def test_each_condition_entry_reads_as_before_the_split_in_any_context(
    *,
    operator: str,
    key: str,
    value: Any,
    context: dict[str, tuple[str, ...] | Unknown],
    carried: tuple[str, ...],
    carry: int,
) -> None:
    # Given a condition entry and any request context (several values a key, unknown ones), most
    # often one that carries the entry's key
    if carry:  # three draws in four
        context = {**context, key.lower(): carried}
    # When both evaluators read the entry against it
    # Then they answer alike
    assert policy._condition_can_match(operator, key, value, context) == legacy_condition_can_match(
        operator, key, value, context
    )


@PROPERTY
@given(operator=operators, key=keys, value=wanted, request=requests)
def test_each_condition_entry_reads_as_before_the_split(
    operator: str, key: str, value: Any, request: tuple[str, str, str | None, list[str], RequestFacts]
) -> None:
    # Given a condition entry and the request contexts of a training request
    principal, action, key_arn, via, facts = request
    contexts: Sequence[Context] = legacy_request_contexts(principal, action, key_arn, via or ["s3"], facts)
    for context in contexts:
        # When both evaluators read the entry against a context
        # Then they answer alike
        assert policy._condition_can_match(operator, key, value, context) == legacy_condition_can_match(
            operator, key, value, context
        )


def test_every_operator_reads_as_before_the_split_on_a_grid() -> None:
    # Given every operator (each set qualifier, base operator and IfExists), a known, an absent, an
    # unknown and a several-valued key, and values equal, equal but for case, a glob, or other
    grid_operators = [
        f"{qualifier}{base}{suffix}"
        for qualifier in ("", "ForAllValues:", "ForAnyValue:")
        for base in BASES
        for suffix in ("", "IfExists")
    ]
    context: Context = {
        "aws:principalarn": (PRINCIPALS[0],),
        "aws:securetransport": ("true",),
        "aws:principalorgid": (),
        "aws:tags": (ACCOUNT, OTHER_ACCOUNT),
        "kms:encryptioncontext:aws:s3:arn": Unknown.PRESENT,
    }
    grid_keys = (*context, "aws:sourcevpce", "aws:sourceip")
    grid_values: tuple[Any, ...] = (
        PRINCIPALS[0],
        "arn:aws:iam::*:role/*",
        "TRUE",
        True,
        ACCOUNT,
        [ACCOUNT, "x"],
        "x",
        1,
    )
    # When both evaluators read each entry
    differ = [
        (operator, key, value)
        for operator in grid_operators
        for key in grid_keys
        for value in grid_values
        if policy._condition_can_match(operator, key, value, context)
        != legacy_condition_can_match(operator, key, value, context)
    ]
    # Then they answer alike, every time
    assert differ == []


def test_the_draws_reach_every_branch_of_the_entry() -> None:
    # Given contexts in which a key is known, absent, unknown, and known not to be carried
    context = legacy_request_contexts(
        PRINCIPALS[0], "kms:Decrypt", KEY_ARNS[0], ["s3"], policy.organization_facts(None)
    )[0]
    cases = {
        ("StringEquals", "aws:PrincipalTag/team", "${aws:x}"): True,  # policy variable
        ("Null", "aws:SourceIp", "true"): True,  # Null on an unknown key
        ("Null", "aws:SourceVpce", "false"): False,  # Null: absent
        ("Null", "aws:PrincipalArn", "false"): True,  # Null: present
        ("NumericEquals", "aws:PrincipalArn", "1"): True,  # not modelled
        ("StringEquals", "aws:PrincipalArn", 1): True,  # value type not modelled
        ("StringEquals", "aws:SourceIp", "x"): True,  # unknown value
        ("StringEquals", "kms:EncryptionContext:aws:s3:arn", "x"): True,  # present, value unknown
        ("StringEqualsIfExists", "aws:SourceVpce", "x"): True,  # absent, IfExists
        ("ForAllValues:StringEquals", "aws:PrincipalOrgID", "x"): True,  # absent (a fact), empty set
        ("StringNotEquals", "aws:SourceVpce", "x"): True,  # absent, negated
        ("ForAnyValue:StringNotEquals", "aws:SourceVpce", "x"): False,  # absent, negated, set
        ("StringEquals", "aws:SourceVpce", "x"): False,  # absent
        ("StringNotLike", "aws:PrincipalArn", "arn:aws:iam::*:role/*"): False,  # negated hit
        ("ForAllValues:StringLike", "aws:PrincipalArn", "arn:*"): True,
        ("Bool", "aws:SecureTransport", False): False,
    }
    # When both evaluators read each entry
    # Then each answers as documented, and both alike
    for (operator, key, value), expected in cases.items():
        assert legacy_condition_can_match(operator, key, value, context) is expected, (operator, key, value)
        assert policy._condition_can_match(operator, key, value, context) is expected, (operator, key, value)
