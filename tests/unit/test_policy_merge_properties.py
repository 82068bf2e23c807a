"""Property tests of the key-policy merge (docs/architecture.md §6): add, never remove; owned statements only
gain principals; idempotent; guardrails hold for any document.

The generators build arbitrary *valid* key policies: foreign statements of every shape, the
remediator's own statements as it writes them (plus extra principals), and owned statements that
someone modified by hand. The generator records which owned statements it tampered with, so the
PolicyConflict property is checked against ground truth, not against the code under test.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clguard.errors import DeniedByPolicy, GuardrailViolation, PolicyConflict
from clguard.rules import policy
from clguard.rules.arns import parse_principal_arn
from clguard.rules.policy import COPIED_IMAGES_GRANT, COPIED_IMAGES_USE, OWNED_SIDS, TRAINING_DATA, StatementSpec
from tests.unit.test_policy_differential import check_granted_means_allowed

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0000abcd-12ab-34cd-56ef-1234567890ab"
SPECS = (TRAINING_DATA, COPIED_IMAGES_GRANT, COPIED_IMAGES_USE)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -------------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9_+=,.@-]{1,24}", fullmatch=True)
paths = st.sampled_from(["/", "/ml/", "/aws-reserved/sso.amazonaws.com/us-east-1/", "/a/b.c/", "/service-role/"])


@st.composite
def principal_arns(draw: st.DrawFn, account: str = ACCOUNT) -> str:
    kind = draw(st.sampled_from(["role", "user"]))
    return f"arn:aws:iam::{account}:{kind}{draw(paths)}{draw(names)}"


good_principals = principal_arns()
any_principal_value = st.one_of(
    good_principals,
    st.just("*"),
    st.just(f"arn:aws:iam::{ACCOUNT}:root"),
    st.just(ACCOUNT),
    principal_arns(OTHER_ACCOUNT),
)


def one_or_list(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A policy element given as one value or as a list of values."""
    return st.one_of(values, st.lists(values, min_size=1, max_size=4))


principal_blocks = st.one_of(
    st.just("*"),
    st.fixed_dictionaries({"AWS": one_or_list(any_principal_value)}),
    st.fixed_dictionaries({"Service": one_or_list(st.sampled_from(["rekognition.amazonaws.com", "s3.amazonaws.com"]))}),
    st.fixed_dictionaries(
        {"AWS": one_or_list(any_principal_value), "Service": st.just("rekognition.amazonaws.com")},
    ),
)
actions = st.sampled_from(
    [
        "kms:*",
        "kms:Gen*",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
        "kms:Describe?ey",
        "kms:CreateGrant",
        "kms:Encrypt",
        "kms:ReEncrypt*",
        "kms:Put*",
        "KMS:decrypt",
        "*",
    ]
)
resources = st.one_of(
    st.just("*"),
    st.lists(st.sampled_from(["*", KEY_ARN, OTHER_KEY_ARN]), min_size=1, max_size=3, unique=True),
    st.just(KEY_ARN),
)
GRANT_CONDITION = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
conditions = st.sampled_from(
    [
        {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
        {"Bool": {"aws:SecureTransport": "true"}},
        GRANT_CONDITION,
        {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}},
    ]
)
foreign_sids = st.one_of(st.text(max_size=30), st.sampled_from(["Enable IAM User Permissions", "Allow use"])).filter(
    lambda s: s not in OWNED_SIDS
)


@st.composite
def foreign_statements(draw: st.DrawFn) -> dict[str, Any]:
    """A statement the remediator does not own, of any valid shape."""
    statement: dict[str, Any] = {}
    if draw(st.booleans()):
        statement["Sid"] = draw(foreign_sids)
    statement["Effect"] = draw(st.sampled_from(["Allow", "Deny"]))
    if draw(st.integers(0, 9)) == 0:
        statement["NotPrincipal"] = draw(principal_blocks.filter(lambda p: p != "*"))
    else:
        statement["Principal"] = draw(principal_blocks)
    action_key = "NotAction" if draw(st.integers(0, 9)) == 0 else "Action"
    statement[action_key] = draw(one_or_list(actions))
    statement["Resource"] = draw(resources)
    if draw(st.integers(0, 3)) == 0:
        statement["Condition"] = copy.deepcopy(draw(conditions))
    return statement


def _tamper(statement: dict[str, Any], spec: StatementSpec, how: str) -> None:
    """Modify an owned statement by hand so that it no longer means what the remediator wrote."""
    if how == "deny":
        statement["Effect"] = "Deny"
    elif how == "condition":
        statement["Condition"] = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    elif how == "narrow-actions":
        statement["Action"] = list(spec.actions[1:]) or ["kms:DescribeKey"]
    elif how == "not-principal":
        statement["NotPrincipal"] = statement.pop("Principal")
    elif how == "not-action":
        statement["NotAction"] = statement.pop("Action")
    elif how == "narrow-resource":
        statement["Resource"] = [OTHER_KEY_ARN]
    elif how == "widen-actions":  # kms:* must not pass to every principal added later
        statement["Action"] = ["kms:*"]
    elif how == "change-grant-condition":
        statement.pop("Condition", None)
        statement["Condition"] = {"Bool": {"kms:GrantIsForAWSResource": "false"}}
    else:  # pragma: no cover - strategy and helper disagree
        raise AssertionError(how)


TAMPERS = ("deny", "condition", "narrow-actions", "widen-actions", "not-principal", "not-action", "narrow-resource")


@st.composite
def owned_statements(draw: st.DrawFn, spec: StatementSpec, *, allow_tamper: bool) -> tuple[dict[str, Any], bool]:
    """The remediator's own statement, built via spec.new_statement plus extra principals;
    sometimes modified harmlessly (a single principal as a string, Resource as a list), sometimes
    tampered with (widening the actions is tampering: they would pass to every principal added).
    Returns the statement and whether it was tampered with."""
    first = draw(good_principals)
    statement = spec.new_statement(first)
    extra = draw(st.lists(good_principals, max_size=4))
    statement["Principal"]["AWS"] = list(dict.fromkeys([first, *extra]))
    harmless = draw(st.sampled_from(["none", "none", "string-principal", "resource-list"]))
    if harmless == "string-principal" and len(statement["Principal"]["AWS"]) == 1:
        statement["Principal"]["AWS"] = first
    elif harmless == "resource-list":
        statement["Resource"] = ["*"]
    tampered = allow_tamper and draw(st.integers(0, 3)) == 0
    if tampered:
        hows = [*TAMPERS, "change-grant-condition"] if spec.condition else list(TAMPERS)
        _tamper(statement, spec, draw(st.sampled_from(hows)))
    return statement, tampered


@dataclass
class Drawn:
    document: dict[str, Any]
    tampered: frozenset[str]  # Sids of owned statements modified by hand
    owned: frozenset[str]  # Sids of owned statements present


@st.composite
def key_policies(draw: st.DrawFn, *, allow_tamper: bool = True, all_owned: bool = False) -> Drawn:
    statements: list[dict[str, Any]] = draw(st.lists(foreign_statements(), max_size=6))
    tampered: set[str] = set()
    owned: set[str] = set()
    for spec in SPECS:
        if all_owned or draw(st.booleans()):
            statement, was_tampered = draw(owned_statements(spec, allow_tamper=allow_tamper))
            position = draw(st.integers(0, len(statements)))
            statements.insert(position, statement)
            owned.add(spec.sid)
            if was_tampered:
                tampered.add(spec.sid)
    document: dict[str, Any] = {"Version": "2012-10-17"}
    if draw(st.booleans()):
        document["Id"] = draw(st.sampled_from(["key-default-1", "key-consolepolicy-3", "ünïcode-id"]))
    if len(statements) == 1 and draw(st.booleans()):
        document["Statement"] = statements[0]  # a single statement, not a list
    else:
        document["Statement"] = statements
    return Drawn(document, frozenset(tampered), frozenset(owned))


spec_sets = st.lists(st.sampled_from(SPECS), min_size=1, max_size=3, unique_by=lambda s: s.sid).map(tuple)
grant_lists = st.lists(st.tuples(good_principals, spec_sets), min_size=1, max_size=4)
key_arns = st.sampled_from([None, KEY_ARN])


# --- helpers ----------------------------------------------------------------------------------


def _stmts(document: dict[str, Any]) -> list[dict[str, Any]]:
    value = document.get("Statement")
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _aws(statement: dict[str, Any]) -> list[Any]:
    block = statement.get("Principal")
    if not isinstance(block, dict):
        return []
    value = block.get("AWS")
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _merge_or_conflict(drawn: Drawn, grants: list[tuple[str, tuple[StatementSpec, ...]]], key_arn: str | None):
    try:
        return policy.merge_grants(drawn.document, grants, key_account=ACCOUNT, key_arn=key_arn)
    except PolicyConflict:
        return None


# --- properties -------------------------------------------------------------------------------


@PROPERTY
@given(drawn=key_policies(), grants=grant_lists, key_arn=key_arns)
def test_foreign_statements_are_kept_unchanged_and_in_order(drawn: Drawn, grants, key_arn) -> None:
    # Given an arbitrary valid key policy and arbitrary grants
    original = copy.deepcopy(drawn.document)
    # When the grants are merged
    merge = _merge_or_conflict(drawn, grants, key_arn)
    # Then the input document was not mutated
    assert drawn.document == original
    if merge is None:
        return
    # And every statement the remediator does not own is in the result, equal and in the same order
    before, after = _stmts(original), _stmts(merge.document)
    foreign_before = [s for s in before if s.get("Sid") not in OWNED_SIDS]
    foreign_after = [s for s in after if s.get("Sid") not in OWNED_SIDS]
    assert foreign_after == foreign_before
    # And statements keep their positions: new ones are only ever appended
    assert len(after) >= len(before)
    for old, new in zip(before, after, strict=False):
        assert old.get("Sid") == new.get("Sid")
    # And the rest of the document (Version, Id) is untouched
    assert {k: v for k, v in merge.document.items() if k != "Statement"} == {
        k: v for k, v in original.items() if k != "Statement"
    }


@PROPERTY
@given(drawn=key_policies(), grants=grant_lists, key_arn=key_arns)
def test_owned_statements_only_gain_principals(drawn: Drawn, grants, key_arn) -> None:
    # Given an arbitrary valid key policy and arbitrary grants
    # When they are merged
    merge = _merge_or_conflict(drawn, grants, key_arn)
    if merge is None:
        return
    before, after = _stmts(drawn.document), _stmts(merge.document)
    granted = {p for p, _ in grants}
    # Then each pre-existing owned statement has the same keys and values except Principal.AWS,
    # whose values are a superset of the old ones, and only granted principals were added
    for old, new in zip(before, after, strict=False):
        if old.get("Sid") not in OWNED_SIDS:
            continue
        assert {k: v for k, v in new.items() if k != "Principal"} == {k: v for k, v in old.items() if k != "Principal"}
        if isinstance(old.get("Principal"), dict):
            assert {k: v for k, v in new["Principal"].items() if k != "AWS"} == {
                k: v for k, v in old["Principal"].items() if k != "AWS"
            }
        else:
            assert new.get("Principal") == old.get("Principal")
        old_aws, new_aws = _aws(old), _aws(new)
        assert set(old_aws) <= set(new_aws)
        assert new_aws[: len(old_aws)] == old_aws
        assert set(new_aws) - set(old_aws) <= granted
    # And every appended statement is an owned statement as the remediator writes it
    specs_by_sid = {spec.sid: spec for spec in SPECS}
    for new in after[len(before) :]:
        spec = specs_by_sid[new["Sid"]]
        aws = _aws(new)
        assert aws
        assert set(aws) <= granted
        assert new == {**spec.new_statement(aws[0]), "Principal": {"AWS": aws}}


@PROPERTY
@given(drawn=key_policies(), grants=grant_lists, key_arn=key_arns, data=st.data())
def test_after_a_merge_every_grant_is_granted(drawn: Drawn, grants, key_arn, data) -> None:
    # Given an arbitrary valid key policy and arbitrary grants
    # When they are merged without a conflict
    merge = _merge_or_conflict(drawn, grants, key_arn)
    if merge is None:
        return
    # Then every granted principal is granted every spec it asked for
    for principal, specs in grants:
        for spec in specs:
            assert policy.is_granted(merge.document, principal, spec, key_arn), (principal, spec.sid)
            # And an independent reading of IAM (not the code under test) allows every request
            # KMS may receive for it
            check_granted_means_allowed(merge.document, principal, spec, data)
    # And `added` only names grants that were missing before the merge, each once
    specs_by_sid = {spec.sid: spec for spec in SPECS}
    assert len(set(merge.added)) == len(merge.added)
    for sid, principal in merge.added:
        assert principal in {p for p, _ in grants}
        assert not policy.is_granted(drawn.document, principal, specs_by_sid[sid], key_arn)


@PROPERTY
@given(drawn=key_policies(), grants=grant_lists, key_arn=key_arns)
def test_merge_is_idempotent(drawn: Drawn, grants, key_arn) -> None:
    # Given a policy into which grants were merged
    merge = _merge_or_conflict(drawn, grants, key_arn)
    if merge is None:
        return
    # When the same grants are merged into the result again
    again = policy.merge_grants(merge.document, grants, key_account=ACCOUNT, key_arn=key_arn)
    # Then nothing changes
    assert not again.changed
    assert again.added == ()
    assert again.document == merge.document
    # And `missing` agrees that nothing is missing any more
    for principal, specs in grants:
        assert policy.missing(merge.document, principal, specs, key_arn) == ()


@PROPERTY
@given(drawn=key_policies(), grants=grant_lists, key_arn=key_arns)
def test_result_serializes_to_json_of_the_reported_size(drawn: Drawn, grants, key_arn) -> None:
    # Given a merged policy (or, on a conflict, the original one)
    merge = _merge_or_conflict(drawn, grants, key_arn)
    document = drawn.document if merge is None else merge.document
    # When it is serialized the way PutKeyPolicy receives it
    text = policy.serialize(document)
    # Then it is valid JSON equal to the document, and size_in_bytes is its UTF-8 length
    assert json.loads(text) == document
    assert policy.parse(text) == document
    assert policy.size_in_bytes(document) == len(text.encode("utf-8"))


@PROPERTY
@given(
    drawn=key_policies(allow_tamper=False, all_owned=True),
    fresh=st.lists(names, min_size=1, max_size=5, unique=True),
    specs=spec_sets,
    key_arn=key_arns,
)
def test_each_new_principal_costs_at_most_its_arn_plus_four_bytes(drawn: Drawn, fresh, specs, key_arn) -> None:
    # Given a policy that already has all three owned statements (Principal.AWS as a list)
    for statement in _stmts(drawn.document):
        if statement.get("Sid") in OWNED_SIDS:
            statement["Principal"]["AWS"] = _aws(statement)
    # And principals that no statement names yet
    principals = [f"arn:aws:iam::{ACCOUNT}:role/fresh/{name}" for name in fresh]
    size_before = policy.size_in_bytes(drawn.document)
    # (and no Deny of the drawn policy cancels their access: then nothing is merged at all)
    assume(not any(policy.blocking_denies(drawn.document, p, specs, key_arn) for p in principals))
    # When they are granted
    merge = policy.merge_grants(drawn.document, [(p, specs) for p in principals], key_account=ACCOUNT, key_arn=key_arn)
    # Then the policy grows by one ARN per added (statement, principal), not by a statement
    assert len(_stmts(merge.document)) == len(_stmts(drawn.document))
    growth = policy.size_in_bytes(merge.document) - size_before
    assert growth <= sum(len(principal) + 4 for _, principal in merge.added)


BAD_PRINCIPALS = [
    "*",
    "",
    f"arn:aws:iam::{ACCOUNT}:role/*",
    f"arn:aws:iam::{ACCOUNT}:role/ml/Train?r",
    f"arn:aws:iam::{ACCOUNT}:role/ml/*",
    f"arn:aws:iam::{ACCOUNT}:root",
    f"arn:aws:iam::{ACCOUNT}:*",
    ACCOUNT,
    "rekognition.amazonaws.com",
    "s3.amazonaws.com",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/CustomLabelsTrainer/session-1",
    f"arn:aws:iam::{OTHER_ACCOUNT}:role/ml/CustomLabelsTrainer",
    f"arn:aws:iam::{OTHER_ACCOUNT}:user/someone",
    f"arn:aws:iam::{ACCOUNT}:group/trainers",
    f"arn:aws:iam::{ACCOUNT}:role/Trainer ",
    f"arn:aws-cn:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer",  # the key's account id, another partition
    f"arn:aws-us-gov:iam::{ACCOUNT}:user/someone",
]
bad_principals = st.one_of(
    st.sampled_from(BAD_PRINCIPALS),
    principal_arns(OTHER_ACCOUNT),
    st.text(max_size=60).filter(lambda s: (p := parse_principal_arn(s)) is None or p.account != ACCOUNT),
)


@PROPERTY
@given(drawn=key_policies(), bad=bad_principals, specs=spec_sets, key_arn=key_arns)
def test_guardrails_hold_for_any_document(drawn: Drawn, bad, specs, key_arn) -> None:
    # Given any key policy (even one whose "*" statement already allows everyone)
    original = copy.deepcopy(drawn.document)
    # When a wildcard, root, service, session, malformed or other-account principal is merged
    # Then the merge refuses with GuardrailViolation
    with pytest.raises(GuardrailViolation):
        policy.merge_grants(drawn.document, [(bad, specs)], key_account=ACCOUNT, key_arn=key_arn)
    # And the input is untouched
    assert drawn.document == original


@PROPERTY
@given(
    drawn=key_policies(allow_tamper=False),
    grants=grant_lists,
    bad=bad_principals,
    position=st.integers(0, 4),
    key_arn=key_arns,
)
def test_one_bad_principal_anywhere_fails_the_whole_merge(drawn: Drawn, grants, bad, position, key_arn) -> None:
    # Given valid grants with one forbidden principal inserted anywhere among them
    grants = list(grants)
    grants.insert(min(position, len(grants)), (bad, (TRAINING_DATA,)))
    # When they are merged
    # Then nothing is merged: the whole call raises GuardrailViolation
    with pytest.raises(GuardrailViolation):
        policy.merge_grants(drawn.document, grants, key_account=ACCOUNT, key_arn=key_arn)


@PROPERTY
@given(drawn=key_policies(), grants=grant_lists, key_arn=key_arns)
def test_policy_conflict_only_when_an_owned_statement_was_modified_by_hand(drawn: Drawn, grants, key_arn) -> None:
    # Given an arbitrary key policy whose owned statements may have been modified by hand
    # When grants are merged
    denied: DeniedByPolicy | None = None
    try:
        policy.merge_grants(drawn.document, grants, key_account=ACCOUNT, key_arn=key_arn)
    except DeniedByPolicy as error:
        denied = error
    except PolicyConflict:
        # Then a conflict means one of the owned statements was tampered with
        assert drawn.tampered, "PolicyConflict without a hand-modified owned statement"
        return
    if denied is not None:
        # Then a refusal for a Deny names a Deny that really blocks that principal (for any of the
        # specs it was granted: a principal may appear in several grants)
        asked = tuple(spec for principal, specs in grants if principal == denied.principal for spec in specs)
        assert policy.blocking_denies(drawn.document, denied.principal, asked, key_arn)
    # (no conflict: nothing to check beyond the other properties)


@PROPERTY
@given(drawn=key_policies(), spec=st.sampled_from(SPECS), principal=good_principals, key_arn=key_arns)
def test_a_tampered_owned_statement_that_must_grow_raises_policy_conflict(drawn: Drawn, spec, principal, key_arn):
    # Given a policy whose owned statement for `spec` was modified by hand
    # And a principal that no statement grants yet
    if spec.sid not in drawn.tampered or policy.is_granted(drawn.document, principal, spec, key_arn):
        return
    # When that principal is granted `spec`
    # Then the remediator refuses to build on the modified statement
    with pytest.raises(PolicyConflict):
        policy.merge_grants(drawn.document, [(principal, (spec,))], key_account=ACCOUNT, key_arn=key_arn)


@PROPERTY
@given(drawn=key_policies(allow_tamper=False), grants=grant_lists, key_arn=key_arns)
def test_untampered_policies_never_conflict(drawn: Drawn, grants, key_arn) -> None:
    # Given a policy whose owned statements are as the remediator wrote them (or harmlessly widened)
    # (whose Deny statements, if any, block none of the grants)
    assume(not any(policy.blocking_denies(drawn.document, p, specs, key_arn) for p, specs in grants))
    # When grants are merged
    merge = policy.merge_grants(drawn.document, grants, key_account=ACCOUNT, key_arn=key_arn)
    # Then no PolicyConflict is raised and the before/after snapshots describe the owned statements
    for sid, statement in merge.after.items():
        assert statement["Sid"] == sid
        assert sid in merge.before
    assert {sid for sid, _ in merge.added} == set(merge.after)
