"""Example tests of the key-policy logic (docs/architecture.md §6): what counts as granted, the owned statements,
their order, and the hand modifications the remediator refuses to build on."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from clguard.errors import GuardrailViolation, PolicyConflict
from clguard.rules import policy
from clguard.rules.policy import (
    COPIED_IMAGES_GRANT,
    COPIED_IMAGES_USE,
    OWNED_SIDS,
    TRAINING_DATA,
    AccessNeed,
)

ACCOUNT = "111122223333"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
OTHER = f"arn:aws:iam::{ACCOUNT}:role/Other"
GRANT_CONDITION = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
ROOT_STATEMENT = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Id": "key-default-1", "Statement": [copy.deepcopy(ROOT_STATEMENT), *statements]}


def _allow(principal: Any, action: Any, **extra: Any) -> dict[str, Any]:
    return {
        "Sid": "Hand written",
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": "*",
        **extra,
    }


def _merge(document: dict[str, Any], *grants: tuple[str, tuple[policy.StatementSpec, ...]]) -> policy.Merge:
    return policy.merge_grants(document, list(grants), key_account=ACCOUNT, key_arn=KEY_ARN)


# --- the owned statements ---------------------------------------------------------------------


def test_owned_statements_have_the_actions_and_condition_of_the_design() -> None:
    # Given the three statement specs the remediator owns
    # Then training data needs Decrypt + GenerateDataKey, and the copied-images key needs
    # CreateGrant (for AWS resources only) plus DescribeKey/Decrypt/GenerateDataKey unconditionally
    assert set(TRAINING_DATA.actions) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert TRAINING_DATA.condition is None
    assert COPIED_IMAGES_GRANT.actions == ("kms:CreateGrant",)
    assert COPIED_IMAGES_GRANT.condition == GRANT_CONDITION
    assert set(COPIED_IMAGES_USE.actions) == {"kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey"}
    assert COPIED_IMAGES_USE.condition is None
    assert len(OWNED_SIDS) == 3


def test_create_grant_statement_carries_the_grant_is_for_aws_resource_condition() -> None:
    # Given an empty policy
    # When the caller is granted the copied-images key
    merge = _merge(_policy(), (TRAINER, AccessNeed.COPIED_IMAGES.specs))
    # Then the CreateGrant statement carries the condition and the other actions do not
    grant = policy.owned_statement(merge.document, COPIED_IMAGES_GRANT.sid)
    use = policy.owned_statement(merge.document, COPIED_IMAGES_USE.sid)
    assert grant is not None
    assert use is not None
    assert grant["Condition"] == GRANT_CONDITION
    assert grant["Action"] == ["kms:CreateGrant"]
    assert "Condition" not in use
    assert grant["Principal"] == {"AWS": [TRAINER]}
    assert grant["Effect"] == use["Effect"] == "Allow"


def test_new_statement_does_not_share_the_spec_condition() -> None:
    # Given a statement built from the CreateGrant spec
    statement = COPIED_IMAGES_GRANT.new_statement(TRAINER)
    # When its condition is modified
    statement["Condition"]["Bool"]["kms:GrantIsForAWSResource"] = "false"
    # Then the spec (shared by every caller) is unchanged
    assert COPIED_IMAGES_GRANT.condition == GRANT_CONDITION


def test_specs_for_puts_copied_images_first() -> None:
    # Given a key needed both for copied images and for training data
    # When its specs are computed (in either order of needs)
    specs = policy.specs_for([AccessNeed.TRAINING_DATA, AccessNeed.COPIED_IMAGES])
    # Then the copied-images statements come first, training data last
    assert [s.sid for s in specs] == [COPIED_IMAGES_GRANT.sid, COPIED_IMAGES_USE.sid, TRAINING_DATA.sid]
    assert policy.specs_for([AccessNeed.TRAINING_DATA]) == (TRAINING_DATA,)
    assert policy.specs_for([]) == ()


def test_a_key_needed_for_both_grows_by_the_fewest_statements() -> None:
    # Given an empty policy and a key needed for copied images and training data
    specs = policy.specs_for({AccessNeed.COPIED_IMAGES, AccessNeed.TRAINING_DATA})
    # When the caller is granted it
    merge = _merge(_policy(), (TRAINER, specs))
    # Then the training-data statement is not added: the copied-images Use statement covers it
    assert [sid for sid, _ in merge.added] == [COPIED_IMAGES_GRANT.sid, COPIED_IMAGES_USE.sid]
    assert policy.owned_statement(merge.document, TRAINING_DATA.sid) is None
    assert policy.is_granted(merge.document, TRAINER, TRAINING_DATA, KEY_ARN)
    # And `missing` predicts the same
    assert policy.missing(_policy(), TRAINER, specs, KEY_ARN) == (COPIED_IMAGES_GRANT, COPIED_IMAGES_USE)


def test_actions_of_deduplicates_in_order() -> None:
    # Given the copied-images and training-data specs
    # When their actions are listed
    actions = policy.actions_of(policy.specs_for({AccessNeed.COPIED_IMAGES, AccessNeed.TRAINING_DATA}))
    # Then each action appears once, in spec order
    assert actions == ("kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey")


# --- what counts as granted -------------------------------------------------------------------


def test_principal_already_granted_by_a_foreign_statement_changes_nothing() -> None:
    # Given a hand-written Allow statement without condition granting the trainer both actions
    document = _policy(_allow({"AWS": [OTHER, TRAINER]}, ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"]))
    # When the trainer is granted training-data access
    merge = _merge(document, (TRAINER, (TRAINING_DATA,)))
    # Then nothing changes
    assert not merge.changed
    assert merge.document == document
    assert merge.before == {}
    assert merge.after == {}


def test_principal_granted_only_under_a_condition_is_not_granted() -> None:
    # Given a foreign Allow statement that grants the trainer only via kms:ViaService
    condition = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    document = _policy(_allow({"AWS": TRAINER}, "kms:*", Condition=condition))
    # When access is checked
    # Then the conditional statement does not count
    assert not policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN)
    # And the merge adds the trainer to its own statement, leaving the conditional one alone
    merge = _merge(document, (TRAINER, (TRAINING_DATA,)))
    assert merge.added == ((TRAINING_DATA.sid, TRAINER),)
    assert merge.document["Statement"][1] == document["Statement"][1]


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["*"]}, {"AWS": [OTHER, "*"]}])
def test_star_principal_without_condition_counts_as_granted(principal: Any) -> None:
    # Given a foreign Allow statement for everyone, without a condition
    document = _policy(_allow(principal, ["kms:Decrypt", "kms:GenerateDataKey"]))
    # When access is checked for the trainer
    # Then it is granted, and merging changes nothing
    assert policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN)
    assert not _merge(document, (TRAINER, (TRAINING_DATA,))).changed


@pytest.mark.parametrize(
    ("action", "granted"),
    [
        ("kms:*", True),
        ("*", True),
        ("kms:Gen*", False),  # Decrypt missing
        (["kms:Gen*", "kms:Decrypt"], True),
        (["KMS:DECRYPT", "kms:generatedatakey"], True),  # action names are case-insensitive
        (["kms:Decrypt", "kms:GenerateDataKey?"], False),  # "?" needs exactly one more character
        (["kms:Decrypt", "kms:GenerateDataKey*"], True),
        (["kms:Decrypt"], False),
        (["kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext"], False),
        (["s3:*", "kms:Decrypt"], False),
    ],
)
def test_action_wildcards(action: Any, granted: bool) -> None:
    # Given a foreign Allow statement for the trainer with these actions
    document = _policy(_allow({"AWS": TRAINER}, action))
    # When training-data access is checked
    # Then it is granted only when every needed action matches
    assert policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN) is granted


@pytest.mark.parametrize("action", ["kms:[DG]*", "kms:Decryp[t]", "kms:Decrypt.*", "kms:.*", "kms:Decrypt|kms:Gen.*"])
def test_only_star_and_question_mark_are_wildcards(action: str) -> None:
    # Given a foreign statement whose action has characters special to fnmatch or regexes
    # (IAM matches them literally)
    document = _policy(_allow({"AWS": TRAINER}, [action, "kms:GenerateDataKey"]))
    # When training-data access is checked
    # Then it is not granted: the action names no KMS action in IAM
    assert not policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN)


@pytest.mark.parametrize(
    "statement",
    [
        {**_allow({"AWS": TRAINER}, "kms:*"), "Effect": "Deny"},
        {**_allow({"AWS": TRAINER}, "kms:*"), "NotResource": "arn:aws:kms:*:*:key/other"},
        {"Sid": "x", "Effect": "Allow", "NotPrincipal": {"AWS": OTHER}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "x", "Effect": "Allow", "Principal": {"AWS": TRAINER}, "NotAction": "kms:Encrypt", "Resource": "*"},
        _allow({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "kms:*"),  # delegates to IAM, grants nobody directly
        _allow({"AWS": ACCOUNT}, "kms:*"),
        _allow({"Service": "rekognition.amazonaws.com"}, "kms:*"),
        _allow({"AWS": OTHER}, "kms:*"),
        _allow({"AWS": TRAINER + "2"}, "kms:*"),
        {**_allow({"AWS": TRAINER}, "kms:*"), "Resource": "arn:aws:kms:us-east-1:111122223333:key/other"},
    ],
    ids=[
        "deny",
        "not-resource",
        "not-principal",
        "not-action",
        "root",
        "account-id",
        "service",
        "someone-else",
        "prefix-of-arn",
        "other-resource",
    ],
)
def test_statements_that_do_not_grant(statement: dict[str, Any]) -> None:
    # Given a foreign statement that does not allow the trainer the actions directly
    document = _policy(statement)
    # When training-data access is checked
    # Then it is not granted
    assert not policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN)


def test_empty_condition_is_no_condition() -> None:
    # Given a foreign Allow statement with an empty Condition block
    document = _policy({**_allow({"AWS": TRAINER}, "kms:*"), "Condition": {}})
    # When training-data access is checked
    # Then it counts as unconditional
    assert policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN)


def test_resource_must_name_the_key_or_star() -> None:
    # Given a foreign statement scoped to the key's ARN
    document = _policy({**_allow({"AWS": TRAINER}, "kms:*"), "Resource": [KEY_ARN]})
    # When access is checked with and without the key ARN
    # Then it counts only when the key ARN is known and equal
    assert policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN)
    assert not policy.is_granted(document, TRAINER, TRAINING_DATA, None)


def test_create_grant_counts_only_without_condition_or_with_its_own_condition() -> None:
    # Given foreign statements granting CreateGrant under various conditions
    own = _policy(_allow({"AWS": TRAINER}, "kms:CreateGrant", Condition=copy.deepcopy(GRANT_CONDITION)))
    none = _policy(_allow({"AWS": TRAINER}, "kms:CreateGrant"))
    other = _policy(
        _allow({"AWS": TRAINER}, "kms:CreateGrant", Condition={"Bool": {"kms:GrantIsForAWSResource": "false"}})
    )
    # When the CreateGrant spec is checked
    # Then the spec's own condition and no condition count; any other condition does not
    assert policy.is_granted(own, TRAINER, COPIED_IMAGES_GRANT, KEY_ARN)
    assert policy.is_granted(none, TRAINER, COPIED_IMAGES_GRANT, KEY_ARN)
    assert not policy.is_granted(other, TRAINER, COPIED_IMAGES_GRANT, KEY_ARN)
    # And the GrantIsForAWSResource condition does not grant the unconditional Use actions
    use_under_condition = _policy(
        _allow({"AWS": TRAINER}, "kms:*", Condition=copy.deepcopy(GRANT_CONDITION)),
    )
    assert not policy.is_granted(use_under_condition, TRAINER, COPIED_IMAGES_USE, KEY_ARN)


# --- merging ----------------------------------------------------------------------------------


def test_first_grant_creates_the_owned_statement() -> None:
    # Given the default key policy
    document = _policy()
    # When the trainer is granted training-data access
    merge = _merge(document, (TRAINER, (TRAINING_DATA,)))
    # Then one owned statement is appended and the snapshots say it did not exist before
    assert merge.changed
    assert merge.document["Statement"][0] == ROOT_STATEMENT
    assert merge.document["Statement"][1] == TRAINING_DATA.new_statement(TRAINER)
    assert merge.before == {TRAINING_DATA.sid: None}
    assert merge.after == {TRAINING_DATA.sid: TRAINING_DATA.new_statement(TRAINER)}
    # And the input is unchanged
    assert document == _policy()


def test_second_principal_is_appended_to_the_existing_statement() -> None:
    # Given a policy in which the remediator already granted one principal
    first = _merge(_policy(), (TRAINER, (TRAINING_DATA,))).document
    # When a second principal is granted
    merge = _merge(first, (OTHER, (TRAINING_DATA,)))
    # Then it joins the same statement's Principal.AWS list
    statements = policy.statements(merge.document)
    assert len(statements) == 2
    assert statements[1]["Principal"] == {"AWS": [TRAINER, OTHER]}
    assert merge.before[TRAINING_DATA.sid] == TRAINING_DATA.new_statement(TRAINER)
    assert merge.after[TRAINING_DATA.sid]["Principal"]["AWS"] == [TRAINER, OTHER]
    # And the policy grew by the ARN, a comma and two quotes
    assert policy.size_in_bytes(merge.document) - policy.size_in_bytes(first) == len(OTHER) + 3


def test_single_string_principal_becomes_a_list() -> None:
    # Given an owned statement whose Principal.AWS is a single string (as some editors write it)
    owned = TRAINING_DATA.new_statement(TRAINER)
    owned["Principal"]["AWS"] = TRAINER
    # When another principal is granted
    merge = _merge(_policy(owned), (OTHER, (TRAINING_DATA,)))
    # Then both are in the list, the old one first
    assert policy.owned_statement(merge.document, TRAINING_DATA.sid) == {
        **owned,
        "Principal": {"AWS": [TRAINER, OTHER]},
    }


def test_statement_given_as_a_single_dict() -> None:
    # Given a policy whose Statement is one object, not a list
    document = {"Version": "2012-10-17", "Statement": copy.deepcopy(ROOT_STATEMENT)}
    # When the trainer is granted
    merge = _merge(document, (TRAINER, (TRAINING_DATA,)))
    # Then the result holds the old statement unchanged, then the new one
    assert merge.document["Statement"] == [ROOT_STATEMENT, TRAINING_DATA.new_statement(TRAINER)]
    assert policy.is_granted(merge.document, TRAINER, TRAINING_DATA, KEY_ARN)


def test_statement_given_as_a_single_owned_dict_is_edited_in_place() -> None:
    # Given a policy whose only statement is the remediator's own, as a single object
    document = {"Version": "2012-10-17", "Statement": TRAINING_DATA.new_statement(TRAINER)}
    # When another principal is granted
    merge = _merge(document, (OTHER, (TRAINING_DATA,)))
    # Then that statement gains the principal
    assert policy.statements(merge.document) == [
        {**TRAINING_DATA.new_statement(TRAINER), "Principal": {"AWS": [TRAINER, OTHER]}}
    ]
    assert policy.is_granted(merge.document, OTHER, TRAINING_DATA, KEY_ARN)


def test_policy_without_statements() -> None:
    # Given a policy with no Statement at all
    # When the trainer is granted
    merge = _merge({"Version": "2012-10-17"}, (TRAINER, (TRAINING_DATA,)))
    # Then a Statement list with the owned statement is created
    assert merge.document == {"Version": "2012-10-17", "Statement": [TRAINING_DATA.new_statement(TRAINER)]}


def test_several_grants_in_one_merge() -> None:
    # Given an empty policy
    # When two principals with different needs are merged at once
    merge = _merge(
        _policy(),
        (TRAINER, policy.specs_for({AccessNeed.COPIED_IMAGES})),
        (OTHER, (TRAINING_DATA,)),
    )
    # Then each got exactly what it asked for
    assert merge.added == (
        (COPIED_IMAGES_GRANT.sid, TRAINER),
        (COPIED_IMAGES_USE.sid, TRAINER),
        (TRAINING_DATA.sid, OTHER),
    )
    assert not policy.is_granted(merge.document, OTHER, COPIED_IMAGES_USE, KEY_ARN)
    assert policy.is_granted(merge.document, TRAINER, TRAINING_DATA, KEY_ARN)  # via the Use statement


def test_duplicate_grant_in_one_call_is_added_once() -> None:
    # Given the same principal twice in one call
    # When merged
    merge = _merge(_policy(), (TRAINER, (TRAINING_DATA,)), (TRAINER, (TRAINING_DATA,)))
    # Then it is added once
    assert merge.added == ((TRAINING_DATA.sid, TRAINER),)
    assert policy.owned_statement(merge.document, TRAINING_DATA.sid) == TRAINING_DATA.new_statement(TRAINER)


# --- hand-modified owned statements ------------------------------------------------------------


def _owned_with(**changes: Any) -> dict[str, Any]:
    statement = TRAINING_DATA.new_statement(OTHER)
    for key, value in changes.items():
        if value is None:
            statement.pop(key, None)
        else:
            statement[key] = value
    return statement


@pytest.mark.parametrize(
    "statement",
    [
        _owned_with(Effect="Deny"),
        _owned_with(Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}),
        _owned_with(Action=["kms:Decrypt"]),
        _owned_with(Action="kms:Encrypt"),
        _owned_with(Principal=None, NotPrincipal={"AWS": OTHER}),
        _owned_with(NotAction=["kms:Encrypt"]),
        _owned_with(NotResource="*"),
        _owned_with(Resource=KEY_ARN),
        _owned_with(Principal="*", Condition={"Bool": {"aws:SecureTransport": "true"}}),
    ],
    ids=[
        "deny",
        "condition",
        "narrowed",
        "replaced",
        "not-principal",
        "not-action",
        "not-resource",
        "resource",
        "star-with-condition",
    ],
)
def test_hand_modified_owned_statement_raises_policy_conflict(statement: dict[str, Any]) -> None:
    # Given an owned statement someone modified by hand
    document = _policy(statement)
    original = copy.deepcopy(document)
    # When a principal that lacks access is granted
    # Then the remediator refuses to build on it
    with pytest.raises(PolicyConflict, match=TRAINING_DATA.sid):
        _merge(document, (TRAINER, (TRAINING_DATA,)))
    assert document == original


def test_hand_modified_grant_condition_raises_policy_conflict() -> None:
    # Given the CreateGrant statement with its condition removed by hand
    statement = COPIED_IMAGES_GRANT.new_statement(OTHER)
    del statement["Condition"]
    statement["Condition"] = {"Bool": {"kms:GrantIsForAWSResource": "false"}}
    # When another principal needs CreateGrant
    # Then PolicyConflict
    with pytest.raises(PolicyConflict):
        _merge(_policy(statement), (TRAINER, (COPIED_IMAGES_GRANT,)))


def test_hand_modified_statement_is_ignored_when_the_principal_is_already_granted() -> None:
    # Given a tampered owned statement and a foreign statement that already grants the trainer
    document = _policy(_owned_with(Effect="Deny"), _allow({"AWS": TRAINER}, "kms:*"))
    # When the trainer is granted
    merge = _merge(document, (TRAINER, (TRAINING_DATA,)))
    # Then there is nothing to do and no conflict
    assert not merge.changed


def test_widened_owned_statement_is_not_built_on() -> None:
    # Given an owned statement whose actions were widened to kms:* by hand (for an admin, say)
    owned = _owned_with(Action="kms:*")
    # When another principal is to be granted
    # Then the merge refuses: the new principal would get kms:* (PutKeyPolicy, ScheduleKeyDeletion…)
    with pytest.raises(PolicyConflict):
        _merge(_policy(owned), (TRAINER, (TRAINING_DATA,)))


# --- guardrails -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "principal",
    [
        "*",
        f"arn:aws:iam::{ACCOUNT}:role/*",
        f"arn:aws:iam::{ACCOUNT}:root",
        "rekognition.amazonaws.com",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/CustomLabelsTrainer/session-1",
        "arn:aws:iam::444455556666:role/ml/CustomLabelsTrainer",
        "x" * 5000,
    ],
)
def test_assert_addable_refuses(principal: str) -> None:
    # Given a principal that is not a same-account IAM role/user ARN
    # When checked as the last line of defence
    # Then GuardrailViolation, with a bounded message
    with pytest.raises(GuardrailViolation) as raised:
        policy.assert_addable(principal, ACCOUNT)
    assert len(str(raised.value)) < 600


def test_assert_addable_takes_the_aws_partition_by_default_and_names_what_differs() -> None:
    # Given a role of the key's account in the aws partition, and the same role in aws-cn
    china = f"arn:aws-cn:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
    other = "arn:aws:iam::444455556666:role/ml/CustomLabelsTrainer"
    # When checked without naming the key's partition
    # Then the aws role may be added, the aws-cn one may not (a key of the aws partition)
    policy.assert_addable(TRAINER, ACCOUNT)
    with pytest.raises(GuardrailViolation) as by_partition:
        policy.assert_addable(china, ACCOUNT)
    with pytest.raises(GuardrailViolation) as by_account:
        policy.assert_addable(other, ACCOUNT)
    with pytest.raises(GuardrailViolation) as not_an_arn:
        policy.assert_addable("*", ACCOUNT)
    # And each refusal says why, in words the finding can show
    assert str(by_partition.value) == f"refusing to add {china!r}: partition aws-cn is not the key's aws"
    assert str(by_account.value) == f"refusing to add {other!r}: account 444455556666 is not the key's {ACCOUNT}"
    assert str(not_an_arn.value) == "refusing to add '*': not an IAM role/user ARN"
    # And a principal from outside is quoted to its first 300 characters, never whole
    with pytest.raises(GuardrailViolation) as long_one:
        policy.assert_addable("x" * 5000, ACCOUNT)
    assert str(long_one.value) == f"refusing to add {'x' * 300!r}: not an IAM role/user ARN"


def test_guardrail_holds_even_when_a_star_statement_already_allows_everyone() -> None:
    # Given a policy that allows everyone
    document = _policy(_allow("*", "kms:*"))
    # When the wildcard itself is merged
    # Then it is still refused (the check is not skipped because "nothing would change")
    with pytest.raises(GuardrailViolation):
        _merge(document, ("*", (TRAINING_DATA,)))


# --- serialization ----------------------------------------------------------------------------


def test_serialize_is_compact_and_escapes_non_ascii() -> None:
    # Given a policy with a non-ASCII statement id
    document = _policy({**_allow({"AWS": TRAINER}, "kms:*"), "Sid": "Zugriff für Ärzte"})
    # When serialized
    text = policy.serialize(document)
    # Then it is compact JSON with the characters escaped (what KMS accepts for any character),
    # and the size counts exactly the bytes sent
    assert ", " not in text.replace("Zugriff f\\u00fcr \\u00c4rzte", "")
    assert '": ' not in text
    assert "Zugriff f\\u00fcr \\u00c4rzte" in text
    assert text.isascii()
    assert policy.size_in_bytes(document) == len(text.encode()) == len(text)
    assert json.loads(text) == document


def test_parse_rejects_non_object_json() -> None:
    # Given JSON that is not an object
    # When parsed as a key policy
    # Then ValueError (invalid JSON too)
    with pytest.raises(ValueError, match="object"):
        policy.parse("[]")
    with pytest.raises(ValueError):  # noqa: PT011 - json.JSONDecodeError is a ValueError
        policy.parse("{")
    assert policy.parse('{"Version":"2012-10-17"}') == {"Version": "2012-10-17"}


def test_max_policy_bytes_is_the_kms_limit() -> None:
    # Given the limit constant
    # Then it is KMS's 32 KiB
    assert policy.MAX_POLICY_BYTES == 32_768


@pytest.mark.parametrize(
    "extra", [{"NotPrincipal": {"AWS": "*"}}, {"NotAction": "kms:Encrypt"}, {"NotResource": "x"}, {"Effect": "Deny"}]
)
def test_an_owned_statement_with_a_not_element_added_by_hand_is_not_built_on(extra: dict[str, Any]) -> None:
    # Given the owned training-data statement with a NotPrincipal, NotAction or NotResource added by hand
    owned = {**policy.TRAINING_DATA.new_statement(f"arn:aws:iam::{ACCOUNT}:role/Other"), **extra}
    # When another principal is granted training data
    # Then the remediator refuses to build on it (it no longer means what it wrote), and says why
    reason = (
        r"^statement 'CustomLabelsGuardTrainingData' is not the one the remediator writes \(effect, actions, "
        r"resource, principal type or condition changed by hand\); not editing it$"
    )
    with pytest.raises(PolicyConflict, match=reason):
        policy.merge_grants(
            {"Statement": [owned]}, [(TRAINER, (policy.TRAINING_DATA,))], key_account=ACCOUNT, key_arn=None
        )


# --- what the merge takes from its arguments (each one a fail-open or a false refusal if dropped) --


def test_a_key_of_a_sovereign_partition_takes_its_partition_from_its_arn_or_as_given() -> None:
    # Given a key in aws-cn, and a role of its account in aws-cn and in aws
    china_key = f"arn:aws-cn:kms:cn-north-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    china_trainer = f"arn:aws-cn:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
    grant = [(china_trainer, (policy.TRAINING_DATA,))]
    # When the aws-cn role is merged, the partition known from the key's ARN, or given without it
    by_arn = policy.merge_grants(_policy(), grant, key_account=ACCOUNT, key_arn=china_key)
    by_name = policy.merge_grants(_policy(), grant, key_account=ACCOUNT, key_partition="aws-cn")
    # Then it is added both ways
    assert by_arn.added == by_name.added == (("CustomLabelsGuardTrainingData", china_trainer),)
    # And a role of the aws partition may not be added to that key, however the partition is known
    ways: list[dict[str, Any]] = [{"key_arn": china_key}, {"key_partition": "aws-cn"}]
    for known in ways:
        with pytest.raises(GuardrailViolation, match="partition aws is not the key's aws-cn"):
            policy.merge_grants(_policy(), [(TRAINER, (policy.TRAINING_DATA,))], key_account=ACCOUNT, **known)


def test_the_merge_reads_the_denies_for_this_key_and_this_principal_s_organization() -> None:
    # Given a Deny on another key only, and an identity perimeter of the key's organization
    other_key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0000abcd-12ab-34cd-56ef-1234567890ab"
    on_other_key = {"Sid": "OtherKey", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": other_key}
    organization = "o-a1b2c3d4e5"
    perimeter = {
        "Sid": "Perimeter",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": organization}},
    }
    # When the trainer is merged, knowing the key's ARN and the organization of its account
    merged = policy.merge_grants(
        _policy(on_other_key, perimeter),
        [(TRAINER, (policy.TRAINING_DATA,))],
        key_account=ACCOUNT,
        key_arn=KEY_ARN,
        facts=policy.organization_facts(organization),
    )
    # Then neither Deny stops it: one names another key, the other exempts the key's organization
    assert merged.added == (("CustomLabelsGuardTrainingData", TRAINER),)


def test_the_statements_after_a_merge_are_a_snapshot_of_what_it_wrote() -> None:
    # Given a merge that added the trainer to the owned statement
    merged = _merge(_policy(), (TRAINER, (policy.TRAINING_DATA,)))
    sid = "CustomLabelsGuardTrainingData"
    # When the caller goes on changing the merged document
    policy.owned_statement(merged.document, sid)["Principal"]["AWS"].append(OTHER)  # type: ignore[index]
    # Then the merge's record of the statement it wrote is unchanged
    assert merged.after[sid]["Principal"]["AWS"] == [TRAINER]


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}, id="no Principal"),
        pytest.param(
            {"Effect": "Allow", "Principal": TRAINER, "Action": "kms:*", "Resource": "*"}, id="Principal a bare ARN"
        ),
        pytest.param(
            {
                "Effect": "Allow",
                "Principal": {"AWS": TRAINER},
                "NotPrincipal": {"AWS": OTHER},
                "Action": "kms:*",
                "Resource": "*",
            },
            id="Principal and NotPrincipal",
        ),
        pytest.param(
            {
                "Effect": "Allow",
                "Principal": {"AWS": TRAINER},
                "Action": "kms:*",
                "NotAction": "kms:Encrypt",
                "Resource": "*",
            },
            id="Action and NotAction",
        ),
        pytest.param(
            {"Effect": "Allow", "Principal": {"AWS": TRAINER}, "Action": "kms:*", "Resource": "*", "NotResource": "x"},
            id="Resource and NotResource",
        ),
    ],
)
def test_a_malformed_allow_is_never_counted_as_access(statement: dict[str, Any]) -> None:
    # Given an Allow that IAM would reject (no principal, a bare ARN as Principal, or both a field
    # and its Not- form): KMS never stored it, so a hand-edited policy read back cannot hold it
    document = {"Version": "2012-10-17", "Statement": [statement]}
    # When the trainer's access is evaluated
    # Then it is not counted as a grant: the guard adds its own statement rather than trust it
    assert not policy.is_allowed(document, TRAINER, policy.TRAINING_DATA, KEY_ARN)
    assert policy.missing(document, TRAINER, (policy.TRAINING_DATA,), KEY_ARN) == (policy.TRAINING_DATA,)


def test_an_allow_on_the_key_s_own_arn_counts_and_the_merge_adds_nothing() -> None:
    # Given a hand-written Allow for the trainer whose Resource is the key's own ARN (in a key policy
    # "*" means this key; naming it is equivalent, and common in IaC-generated policies)
    document = _policy(_allow({"AWS": TRAINER}, ["kms:Decrypt", "kms:GenerateDataKey"], Resource=KEY_ARN))
    # When the trainer is merged for the key
    merged = _merge(document, (TRAINER, (policy.TRAINING_DATA,)))
    # Then the access is already there: nothing is added, the document is unchanged
    assert merged.added == ()
    assert merged.document == document
