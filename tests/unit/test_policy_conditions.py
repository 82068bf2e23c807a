"""Each condition operator, special condition key and policy element of a Deny, pinned to the
answer of the IAM User Guide ("Condition operators", "Policy variables", "NotPrincipal") and of the
KMS and S3 guides for the request S3 or Rekognition sends KMS for the trainer (docs/architecture.md
§6). True: the Deny can apply, so access is not granted (the guard must never say REMEDIATED).
"""

from __future__ import annotations

from typing import Any

import pytest

from clguard.rules import policy
from clguard.rules.policy import COPIED_IMAGES_GRANT, COPIED_IMAGES_USE, TRAINING_DATA, StatementSpec

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0000abcd-12ab-34cd-56ef-1234567890ab"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
USER = f"arn:aws:iam::{ACCOUNT}:user/ml/alice"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/admin/Admin"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
SPECS = (TRAINING_DATA, COPIED_IMAGES_GRANT, COPIED_IMAGES_USE)
ORG = "o-a1b2c3d4e5"


def deny(**fields: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    statement.update(fields)
    return {k: v for k, v in statement.items() if v is not None}


def document_with(principal: str, *extra: dict[str, Any]) -> dict[str, Any]:
    merge = policy.merge_grants({"Statement": []}, [(principal, SPECS)], key_account=ACCOUNT, key_arn=KEY_ARN)
    return {"Statement": [*merge.document["Statement"], *extra]}


def blocks(statement: dict[str, Any], principal: str = TRAINER, spec: StatementSpec = TRAINING_DATA) -> bool:
    document = document_with(principal, statement)
    denied = policy.blocking_denies(document, principal, (spec,), KEY_ARN) == ("D",)
    assert policy.is_granted(document, principal, spec, KEY_ARN) is not denied
    return denied


def when(operator: str, key: str, value: Any) -> dict[str, Any]:
    return deny(Condition={operator: {key: value}})


# --- (10) ARN operators compare the six components separately --------------------------------

ARN_CASES = [
    # a pattern with fewer than six components matches nothing
    ("ArnNotLike", "arn:aws:iam::*", True),
    ("ArnLike", "arn:aws:iam::*", False),
    ("ArnNotEquals", "arn:aws:iam::*", True),
    ("ArnEquals", "arn:aws:iam::*", False),
    # a wildcard does not cross a colon: "*" is the region here, the account is missing
    ("ArnLike", "arn:aws:iam:*:role/ml/Trainer", False),
    ("ArnNotLike", "arn:aws:iam:*:role/ml/Trainer", True),
    # each component may hold wildcards
    ("ArnLike", "arn:aws:iam::*:role/ml/*", True),
    ("ArnLike", "arn:*:iam::1111*3333:role/ml/Tr?iner", True),
    ("ArnLike", "arn:aws:iam::*:*", True),
    ("ArnNotLike", f"arn:aws:iam::{ACCOUNT}:role/admin/*", True),  # everyone but the admins
    ("ArnNotLike", f"arn:aws:iam::{ACCOUNT}:role/ml/*", False),
    # ArnEquals takes the same wildcards as ArnLike (IAM User Guide: the two behave alike)
    ("ArnEquals", "arn:aws:iam::*:role/ml/*", True),
    ("ArnNotEquals", "arn:aws:iam::*:role/ml/*", False),
    ("ArnEquals", TRAINER, True),
    ("ArnNotEquals", OTHER_ROLE, True),
    # case-sensitive
    ("ArnEquals", TRAINER.upper(), False),
    ("ArnNotEquals", TRAINER.upper(), True),
    ("ArnLike", "arn:aws:iam::*:role/ML/*", False),
    # IfExists on a key the request carries changes nothing
    ("ArnNotLikeIfExists", "arn:aws:iam::*", True),
    ("ArnLikeIfExists", "arn:aws:iam::*", False),
]


@pytest.mark.parametrize(("operator", "pattern", "applies"), ARN_CASES)
def test_arn_operators_compare_each_component(operator: str, pattern: str, applies: bool) -> None:
    # Given a Deny conditioned on the caller's ARN with an ARN operator
    # Then it applies exactly when IAM's component-wise comparison says so
    assert blocks(when(operator, "aws:PrincipalArn", pattern)) is applies


@pytest.mark.parametrize(
    ("pattern", "arn", "match"),
    [
        ("arn:aws:logs:*:*:log-group:*", "arn:aws:logs:us-east-1:111122223333:log-group:a:b", True),
        ("arn:aws:logs:*:*:log-group:a:*", "arn:aws:logs:us-east-1:111122223333:log-group:a:b", True),
        ("arn:aws:logs:*:*:*", "arn:aws:logs:us-east-1:111122223333:log-group:a:b", True),
        ("arn:aws:logs:*:*", "arn:aws:logs:us-east-1:111122223333:log-group:a", False),
        ("arn:aws:s3:::b/*", "arn:aws:s3:::b/k", True),
        ("arn:aws:s3:::b/*", "arn:aws:s3:::c/k", False),
        ("arn:aws:iam::*:role/x", "arn:aws:iam::1:role/x:extra", False),
        ("arn:aws:iam::*:role/x", "not-an-arn", False),
        ("arn:aws:iam::?:role/x", "arn:aws:iam::12:role/x", False),
    ],
)
def test_the_resource_component_may_hold_colons(pattern: str, arn: str, match: bool) -> None:
    # Given an ARN pattern and an ARN, Then only the sixth (resource) component spans colons
    assert policy._arn_matches(pattern, arn) is match


# --- string, Bool and Null operators ---------------------------------------------------------

OPERATOR_CASES = [
    ("StringEquals", "aws:PrincipalAccount", ACCOUNT, True),
    ("StringEquals", "aws:PrincipalAccount", OTHER_ACCOUNT, False),
    ("StringEquals", "aws:PrincipalArn", TRAINER.upper(), False),  # case-sensitive
    ("StringNotEquals", "aws:PrincipalArn", TRAINER.upper(), True),
    ("StringNotEquals", "aws:PrincipalArn", [OTHER_ROLE, TRAINER], False),
    ("StringEqualsIgnoreCase", "aws:PrincipalArn", TRAINER.upper(), True),
    ("StringEqualsIgnoreCase", "aws:PrincipalArn", OTHER_ROLE.upper(), False),
    ("StringNotEqualsIgnoreCase", "aws:PrincipalArn", TRAINER.upper(), False),
    ("StringNotEqualsIgnoreCase", "aws:PrincipalArn", OTHER_ROLE.upper(), True),
    ("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/ml/Tr?iner", True),
    ("StringLike", "aws:PrincipalArn", "*/TRAINER", False),  # case-sensitive
    ("StringLike", "aws:PrincipalArn", "*:role/admin/*", False),
    ("StringLike", "aws:PrincipalArn", "arn:aws:iam:*", True),  # a string glob crosses colons
    ("StringNotLike", "aws:PrincipalArn", "*:role/admin/*", True),
    ("StringNotLike", "aws:PrincipalArn", "*:role/ml/*", False),
    ("StringNotLike", "aws:PrincipalArn", "arn:aws:iam::?", True),  # "?" is one character
    # Bool: case-insensitive "true"/"false", or a JSON boolean
    ("Bool", "aws:SecureTransport", "TRUE", True),
    ("Bool", "aws:SecureTransport", "False", False),
    ("Bool", "aws:ViaAWSService", True, True),
    ("Bool", "aws:ViaAWSService", False, False),
    ("Bool", "aws:PrincipalIsAWSService", "true", False),
    ("BoolIfExists", "aws:SecureTransport", "false", False),
    # a JSON boolean is read as the text "true"/"false" by every operator
    ("StringEquals", "aws:SecureTransport", True, True),
    ("StringEquals", "aws:PrincipalIsAWSService", False, True),
    ("StringNotEquals", "aws:SecureTransport", True, False),
    ("StringEquals", "aws:SecureTransport", False, False),
    # Null: "true" means the key is absent
    ("Null", "aws:PrincipalArn", "true", False),
    ("Null", "aws:PrincipalArn", "false", True),
    ("Null", "aws:PrincipalArn", "FALSE", True),
    ("Null", "aws:SourceVpce", "true", True),
    ("Null", "aws:SourceVpce", "false", False),
    # Null on a key the guard cannot know: it may be absent or present
    ("Null", "aws:PrincipalTag/team", "true", True),
    ("Null", "aws:PrincipalTag/team", "false", True),
    # IfExists: an absent key matches; a present one is compared
    ("StringEqualsIfExists", "aws:SourceVpce", "vpce-1", True),
    ("StringEqualsIfExists", "aws:PrincipalAccount", OTHER_ACCOUNT, False),
    ("StringNotEqualsIfExists", "aws:PrincipalAccount", ACCOUNT, False),
    ("StringNotEqualsIfExists", "aws:PrincipalAccount", OTHER_ACCOUNT, True),
    ("StringLikeIfExists", "aws:SourceVpc", "vpc-*", True),
    # absent key without IfExists: only negated operators match
    ("StringEquals", "aws:SourceVpce", "vpce-1", False),
    ("StringNotLike", "aws:SourceVpce", "vpce-*", True),
    ("ArnNotEquals", "aws:SourceArn", "arn:aws:s3:::b", True),
    ("ArnEquals", "aws:SourceArn", "arn:aws:s3:::b", False),
    # set operators: ForAllValues is true on an absent key, ForAnyValue false
    ("ForAllValues:StringEquals", "aws:PrincipalAccount", [OTHER_ACCOUNT], False),
    ("ForAllValues:StringEquals", "aws:PrincipalAccount", [OTHER_ACCOUNT, ACCOUNT], True),
    ("ForAllValues:StringNotEquals", "aws:PrincipalAccount", [OTHER_ACCOUNT], True),
    ("ForAllValues:StringEquals", "aws:SourceVpce", ["vpce-1"], True),
    ("ForAnyValue:StringEquals", "aws:PrincipalAccount", [ACCOUNT], True),
    ("ForAnyValue:StringEquals", "aws:PrincipalAccount", [OTHER_ACCOUNT], False),
    ("ForAnyValue:StringNotEquals", "aws:SourceVpce", ["vpce-1"], False),
    ("ForAnyValue:StringEquals", "aws:SourceVpce", ["vpce-1"], False),
    # operators the guard does not model, and values it cannot read: the Deny may apply
    ("NumericLessThan", "aws:MultiFactorAuthAge", "3600", True),
    ("StringEquals", "aws:PrincipalAccount", 111122223333, True),
    ("SomeFutureOperator", "kms:ViaService", "x", True),
]


@pytest.mark.parametrize(("operator", "key", "value", "applies"), OPERATOR_CASES)
def test_each_condition_operator_reads_as_iam_documents(operator: str, key: str, value: Any, applies: bool) -> None:
    # Given a Deny with one condition, When the trainer's training-data access is evaluated
    # Then the Deny applies exactly as IAM's documented operator semantics say
    assert blocks(when(operator, key, value)) is applies


def test_condition_keys_and_operators_are_case_insensitive() -> None:
    # Given a Deny whose operator and key are written in another case
    # Then they are read as IAM reads them (operator and key names are not case-sensitive)
    assert blocks(when("stringnotequals", "AWS:PRINCIPALACCOUNT", OTHER_ACCOUNT))
    assert not blocks(when("STRINGEQUALS", "Aws:PrincipalAccount", OTHER_ACCOUNT))


def test_each_condition_block_and_each_key_must_match() -> None:
    # Given a Deny with two keys in one block, one of which cannot match
    statement = deny(Condition={"StringEquals": {"aws:PrincipalAccount": ACCOUNT, "kms:CallerAccount": OTHER_ACCOUNT}})
    # Then it does not apply (keys of a block are ANDed)
    assert not blocks(statement)
    # And with both matching, it applies
    statement = deny(Condition={"StringEquals": {"aws:PrincipalAccount": ACCOUNT, "kms:CallerAccount": ACCOUNT}})
    assert blocks(statement)


def test_a_malformed_condition_keeps_the_deny_applicable() -> None:
    # Given a Deny whose condition KMS could not have stored as written
    # Then it is taken to apply (in doubt, the Deny applies)
    assert blocks(deny(Condition="StringEquals"))
    assert blocks(deny(Condition={"StringEquals": "not a block"}))


# --- special keys: what such a request carries ----------------------------------------------

# Keys a request an AWS service makes on the principal's behalf never carries (IAM User Guide,
# global condition keys: network and source keys are not set on forward access sessions).
ABSENT_KEYS = [
    "aws:SourceVpce",
    "aws:SourceVpc",
    "aws:VpcSourceIp",
    "aws:SourceArn",
    "aws:SourceAccount",
    "aws:SourceOrgID",
    "aws:SourceOrgPaths",
    "aws:PrincipalServiceName",
    "aws:PrincipalServiceNamesList",
    "aws:SourceOwner",
]


@pytest.mark.parametrize("key", ABSENT_KEYS)
def test_keys_a_service_request_never_carries_are_absent(key: str) -> None:
    # Given a Deny that needs the key present, and one that needs it absent
    # Then only the second applies
    assert not blocks(when("StringEquals", key, "x"))
    assert blocks(when("Null", key, "true"))
    assert not blocks(when("Null", key, "false"))


@pytest.mark.parametrize(
    ("key", "value", "applies"),
    [
        ("aws:PrincipalArn", TRAINER, True),
        ("aws:PrincipalAccount", ACCOUNT, True),
        ("kms:CallerAccount", ACCOUNT, True),
        ("aws:ViaAWSService", "true", True),
        ("aws:SecureTransport", "true", True),
        ("aws:PrincipalIsAWSService", "false", True),
        ("aws:RequestedRegion", "us-east-1", True),
        ("aws:RequestedRegion", "eu-west-1", False),
        ("kms:ViaService", "s3.us-east-1.amazonaws.com", True),
        ("kms:ViaService", "rekognition.us-east-1.amazonaws.com", False),
        ("aws:PrincipalType", "AssumedRole", True),
        ("aws:PrincipalType", "User", False),
    ],
)
def test_the_keys_a_training_data_read_carries(key: str, value: str, applies: bool) -> None:
    # Given a Deny conditioned on one value of a key the documentation settles
    # Then it applies exactly when a read of the training data through S3 carries that value
    assert blocks(when("StringEquals", key, value)) is applies


def test_the_principal_type_of_a_user_is_user() -> None:
    # Given an IAM user granted access, and Denies on each principal type
    # Then only the Deny on "User" applies to it
    assert blocks(when("StringEquals", "aws:PrincipalType", "User"), USER)
    assert not blocks(when("StringEquals", "aws:PrincipalType", "AssumedRole"), USER)


def test_rekognition_uses_the_copied_images_key_itself() -> None:
    # Given a Deny of requests through Rekognition
    statement = when("StringEquals", "kms:ViaService", "rekognition.us-east-1.amazonaws.com")
    # Then it cancels the copied-images use (Rekognition calls KMS) but not training-data reads
    assert blocks(statement, spec=COPIED_IMAGES_USE)
    assert not blocks(statement, spec=TRAINING_DATA)


def test_only_creategrant_carries_grant_is_for_aws_resource() -> None:
    # Given Denies on kms:GrantIsForAWSResource
    # Then CreateGrant (made by Rekognition for an AWS resource) carries it as true...
    assert not blocks(when("Bool", "kms:GrantIsForAWSResource", "false"), spec=COPIED_IMAGES_GRANT)
    assert blocks(when("Bool", "kms:GrantIsForAWSResource", "true"), spec=COPIED_IMAGES_GRANT)
    # ...and no other request carries it
    assert blocks(when("Null", "kms:GrantIsForAWSResource", "true"), spec=TRAINING_DATA)
    assert not blocks(when("Null", "kms:GrantIsForAWSResource", "true"), spec=COPIED_IMAGES_GRANT)


def test_a_deny_on_grant_is_for_aws_resource_leaves_training_data_reads_alone() -> None:
    # Given a Deny of every KMS action when kms:GrantIsForAWSResource is true (or present)
    # When the trainer's training-data reads (Decrypt, GenerateDataKey through S3) are evaluated
    # Then it cannot apply: the KMS Developer Guide sets that key only on CreateGrant, ListGrants
    # and RevokeGrant, so a Decrypt request lacks it (known absent, not unknown)
    assert not blocks(when("Bool", "kms:GrantIsForAWSResource", "true"), spec=TRAINING_DATA)
    assert not blocks(when("Null", "kms:GrantIsForAWSResource", "false"), spec=TRAINING_DATA)
    assert not blocks(when("Null", "KMS:GrantIsForAWSResource", "false"), spec=COPIED_IMAGES_USE)


def test_a_request_context_without_a_region_is_unknown_in_region() -> None:
    # Given the key's ARN unknown (no region to tell which service endpoint calls)
    statement = when("StringEquals", "kms:ViaService", "rekognition.us-east-1.amazonaws.com")
    document = document_with(TRAINER, statement)
    # Then a Deny on the service endpoint is taken to apply
    assert policy.blocking_denies(document, TRAINER, (TRAINING_DATA,), None) == ("D",)
    assert policy.request_contexts(TRAINER, "kms:Decrypt", None, ("s3",))[0].get("kms:viaservice") is None


@pytest.mark.parametrize(
    "key_arn",
    [
        f"arn:aws:kms::{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",  # an empty region
        f"arn:aws:kms:us-east-1:{ACCOUNT}",  # five components: no key
        f"arn:aws:s3:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",  # not a KMS ARN
    ],
)
def test_a_key_arn_that_names_no_kms_region_leaves_the_calling_endpoint_unknown(key_arn: str) -> None:
    # Given a Deny of requests through S3 in another region, and a key ARN that names no KMS region
    statement = when("StringEquals", "kms:ViaService", "s3.eu-west-1.amazonaws.com")
    document = document_with(TRAINER, statement)
    # When the trainer's training-data reads are evaluated against that key
    # Then the endpoint S3 calls KMS from is unknown (kms:ViaService is <service>.<region>...), so
    # the Deny may apply
    assert policy.blocking_denies(document, TRAINER, (TRAINING_DATA,), key_arn) == ("D",)
    assert policy.request_contexts(TRAINER, "kms:Decrypt", key_arn, ("s3",))[0].get("kms:viaservice") is None


# --- (11) the encryption context S3 sends for SSE-KMS ------------------------------------------


@pytest.mark.parametrize(
    ("operator", "key", "value", "applies"),
    [
        # S3 always sends aws:s3:arn: a Deny of requests without it cannot match a read through S3
        ("Null", "kms:EncryptionContext:aws:s3:arn", "true", False),
        ("Null", "kms:EncryptionContextKeys", "true", False),
        ("Null", "kms:EncryptionContext:aws:s3:arn", "false", True),
        # its value (the object's or the bucket's ARN) is not known to the guard
        ("StringNotLike", "kms:EncryptionContext:aws:s3:arn", "arn:aws:s3:::training/*", True),
        ("StringEquals", "kms:EncryptionContext:aws:s3:arn", "arn:aws:s3:::training", True),
        # what the uploader supplied is not known either
        ("StringEquals", "kms:EncryptionContext:department", "ml", True),
        ("StringNotEquals", "kms:EncryptionContext:department", "ml", True),
        ("Null", "kms:EncryptionContext:department", "true", True),
        ("ForAnyValue:StringEquals", "kms:EncryptionContextKeys", ["department"], True),
    ],
)
def test_the_encryption_context_of_an_s3_read(operator: str, key: str, value: Any, applies: bool) -> None:
    # Given a Deny of Decrypt/GenerateDataKey conditioned on the encryption context
    statement = deny(Action=["kms:Decrypt", "kms:GenerateDataKey"], Condition={operator: {key: value}})
    # Then for training data (read through S3) it applies exactly when S3's documented context can match
    assert blocks(statement) is applies


def test_rekognition_own_requests_have_no_known_encryption_context() -> None:
    # Given a Deny of requests without an S3 encryption context
    statement = when("Null", "kms:EncryptionContext:aws:s3:arn", "true")
    # Then it cancels the copied-images use (Rekognition also calls KMS itself) and CreateGrant
    assert blocks(statement, spec=COPIED_IMAGES_USE)
    assert blocks(statement, spec=COPIED_IMAGES_GRANT)
    # but not training-data reads through S3
    assert not blocks(statement, spec=TRAINING_DATA)


# --- (9) policy variables and values the guard cannot resolve ----------------------------------

VARIABLE_KEY = "arn:aws:kms:*:*:key/${aws:PrincipalTag/key-id}"


@pytest.mark.parametrize(
    ("fields", "applies"),
    [
        ({"Resource": VARIABLE_KEY}, True),
        ({"Resource": [OTHER_KEY_ARN, VARIABLE_KEY]}, True),
        ({"Resource": None, "NotResource": VARIABLE_KEY}, True),
        ({"Resource": None, "NotResource": [VARIABLE_KEY, KEY_ARN]}, False),
        ({"Resource": None, "NotResource": [VARIABLE_KEY, OTHER_KEY_ARN]}, True),
        ({"Principal": {"AWS": "arn:aws:iam::${aws:PrincipalAccount}:role/ml/Trainer"}}, True),
        ({"Principal": {"AWS": ["${aws:PrincipalArn}"]}}, True),
        ({"Principal": None, "NotPrincipal": {"AWS": ["${aws:PrincipalArn}", ROOT]}}, True),
        ({"Condition": {"StringEquals": {"aws:PrincipalArn": "${aws:PrincipalTag/owner}"}}}, True),
        ({"Condition": {"StringNotEquals": {"aws:PrincipalAccount": "${aws:ResourceAccount}"}}}, True),
        ({"Condition": {"ArnNotLike": {"aws:PrincipalArn": ["x", "arn:aws:iam::${aws:PrincipalAccount}:*"]}}}, True),
    ],
)
def test_a_value_the_guard_cannot_resolve_may_make_the_deny_apply(fields: dict[str, Any], applies: bool) -> None:
    # Given a Deny with an IAM policy variable in Resource, NotResource, Principal or a condition
    # Then the Deny is taken to apply unless a value the guard can read proves it cannot
    assert blocks(deny(**fields)) is applies
    assert blocks(deny(**fields), USER) is applies


# --- principals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "principal", "applies"),
    [
        # NotPrincipal excludes an IAM user only when the user and its account are both listed
        ({"NotPrincipal": {"AWS": [USER, ROOT]}}, USER, False),
        ({"NotPrincipal": {"AWS": [USER, ACCOUNT]}}, USER, False),
        ({"NotPrincipal": {"AWS": [USER]}}, USER, True),
        ({"NotPrincipal": {"AWS": [ROOT]}}, USER, True),
        ({"NotPrincipal": {"AWS": [OTHER_ROLE, ROOT]}}, USER, True),
        ({"NotPrincipal": {"AWS": USER}}, USER, True),
        ({"NotPrincipal": "*"}, USER, True),
        # and never a role (its assumed-role session would have to be listed too)
        ({"NotPrincipal": {"AWS": [TRAINER, ROOT]}}, TRAINER, True),
        # Principal: the principal, its account, or everyone
        ({"Principal": {"AWS": USER}}, USER, True),
        ({"Principal": {"AWS": ACCOUNT}}, USER, True),
        ({"Principal": {"AWS": ROOT}}, USER, True),
        ({"Principal": {"AWS": [OTHER_ROLE, "*"]}}, USER, True),
        ({"Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}}, USER, False),
        ({"Principal": {"AWS": TRAINER}}, USER, False),
        ({"Principal": {"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/Trainer/s"}}, TRAINER, True),
        ({"Principal": {"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/Trainer2/s"}}, TRAINER, False),
        ({"Principal": {"Service": "s3.amazonaws.com"}}, TRAINER, False),
        ({"Principal": "arn:aws:iam::111122223333:root"}, TRAINER, False),
    ],
)
def test_which_principals_a_deny_names(fields: dict[str, Any], principal: str, applies: bool) -> None:
    statement = deny(**{"Principal": None, **fields}) if "NotPrincipal" in fields else deny(**fields)
    assert blocks(statement, principal) is applies


def test_an_unparsable_principal_is_denied_by_any_notprincipal_deny() -> None:
    # Given a principal the guard cannot parse (a session ARN), and a NotPrincipal naming it
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/Trainer/s"
    statement = deny(Principal=None, NotPrincipal={"AWS": [session, ROOT]})
    document = {"Statement": [statement]}
    # Then the Deny is taken to apply
    assert policy.blocking_denies(document, session, (TRAINING_DATA,), KEY_ARN) == ("D",)


# --- is_granted and missing ----------------------------------------------------------------


def test_missing_evaluates_later_needs_against_the_original_statements() -> None:
    # Given a policy that already grants CreateGrant, and not the training data
    document = {"Statement": [COPIED_IMAGES_GRANT.new_statement(TRAINER)]}
    # When the missing specs of both needs are asked
    # Then only the training data is missing: the original statements count for every need
    assert policy.missing(document, TRAINER, (TRAINING_DATA, COPIED_IMAGES_GRANT), KEY_ARN) == (TRAINING_DATA,)


def test_missing_counts_the_earlier_specs_as_added() -> None:
    # Given an empty policy, When two needs are asked, Then both are missing (each once)
    assert policy.missing({"Statement": []}, TRAINER, SPECS, KEY_ARN) == SPECS
    # And the caller's document is not changed
    document: dict[str, Any] = {"Statement": []}
    policy.missing(document, TRAINER, SPECS, KEY_ARN)
    assert document == {"Statement": []}


def perimeter() -> dict[str, Any]:
    return deny(Condition={"StringNotEqualsIfExists": {"aws:PrincipalOrgID": ORG}})


def test_organization_facts_reach_is_granted_and_missing() -> None:
    # Given a granted trainer and an organization-perimeter Deny
    document = document_with(TRAINER, perimeter())
    facts = policy.organization_facts(ORG)
    # Then with the organization known, the trainer is granted and nothing is missing
    assert policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN, facts=facts)
    assert policy.missing(document, TRAINER, (TRAINING_DATA,), KEY_ARN, facts=facts) == ()
    # And without it, the Deny is taken to apply
    assert not policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN)
    assert policy.missing(document, TRAINER, (TRAINING_DATA,), KEY_ARN) == (TRAINING_DATA,)
    # And facts of another organization do not help
    other = policy.organization_facts("o-zzzzzzzzzz")
    assert not policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN, facts=other)


def test_both_organization_keys_are_facts() -> None:
    assert policy.organization_facts(ORG) == {"aws:principalorgid": ORG, "aws:resourceorgid": ORG}
    assert policy.organization_facts(None) == {"aws:principalorgid": None, "aws:resourceorgid": None}
    resource_perimeter = deny(Condition={"StringNotEquals": {"aws:ResourceOrgID": ORG}})
    document = document_with(TRAINER, resource_perimeter)
    assert policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN, facts=policy.organization_facts(ORG))
    assert not policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN, facts=policy.organization_facts(None))


# --- unwritable principals ---------------------------------------------------------------------


def test_unwritable_principals_are_the_unique_ids_of_deleted_principals() -> None:
    # Given a policy whose statements name ids of deleted principals among valid principals
    document = {
        "Statement": [
            {"Effect": "Allow", "Principal": "*"},
            {"Effect": "Allow", "Principal": {"AWS": [TRAINER, "AROAEXAMPLEID1", ACCOUNT, "*"]}},
            {"Effect": "Allow", "Principal": {"AWS": "AIDAEXAMPLEID2"}},
            {"Effect": "Deny", "Principal": {"AWS": ["AROAEXAMPLEID1", ROOT, "12345"]}},
            {"Effect": "Allow", "Principal": "*"},
            {"Effect": "Allow", "Principal": {"Service": "AROAEXAMPLEID3"}},
            {"Effect": "Allow", "Principal": {"AWS": [7, None]}},
            "not a statement",
        ]
    }
    # Then each value KMS refuses is named once, in policy order (an account id has exactly 12 digits)
    assert policy.unwritable_principals(document) == ("AROAEXAMPLEID1", "AIDAEXAMPLEID2", "12345")


def test_a_policy_of_writable_principals_has_none() -> None:
    document = {"Statement": [{"Principal": {"AWS": [TRAINER, ACCOUNT, "*", ROOT, "1111222233334"[:12]]}}]}
    assert policy.unwritable_principals(document) == ()
    assert policy.unwritable_principals({}) == ()


# --- the contract of the owned statements (docs/architecture.md §6) --------------------------


def test_the_owned_statements_are_the_documented_ones() -> None:
    # Then the three statements the remediator owns are exactly those the contract names
    assert (TRAINING_DATA.sid, TRAINING_DATA.actions, TRAINING_DATA.condition, TRAINING_DATA.via) == (
        "CustomLabelsGuardTrainingData",
        ("kms:Decrypt", "kms:GenerateDataKey"),
        None,
        ("s3",),
    )
    assert (COPIED_IMAGES_GRANT.sid, COPIED_IMAGES_GRANT.actions, COPIED_IMAGES_GRANT.condition) == (
        "CustomLabelsGuardCopiedImagesGrant",
        ("kms:CreateGrant",),
        {"Bool": {"kms:GrantIsForAWSResource": "true"}},
    )
    assert (COPIED_IMAGES_USE.sid, COPIED_IMAGES_USE.actions, COPIED_IMAGES_USE.condition) == (
        "CustomLabelsGuardCopiedImagesUse",
        ("kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey"),
        None,
    )
    assert COPIED_IMAGES_GRANT.via == COPIED_IMAGES_USE.via == ("s3", "rekognition")
    assert {spec.sid for spec in SPECS} == policy.OWNED_SIDS
    assert policy.AccessNeed.TRAINING_DATA.value == "training data (manifests and images)"
    assert policy.AccessNeed.COPIED_IMAGES.value == "copied training images (KmsKeyId)"
    assert policy.AccessNeed.COPIED_IMAGES.specs == (COPIED_IMAGES_GRANT, COPIED_IMAGES_USE)
    assert policy.AccessNeed.TRAINING_DATA.specs == (TRAINING_DATA,)


def test_a_new_owned_statement_is_written_as_documented() -> None:
    assert COPIED_IMAGES_GRANT.new_statement(TRAINER) == {
        "Sid": "CustomLabelsGuardCopiedImagesGrant",
        "Effect": "Allow",
        "Principal": {"AWS": [TRAINER]},
        "Action": ["kms:CreateGrant"],
        "Resource": "*",
        "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
    }
    assert "Condition" not in TRAINING_DATA.new_statement(TRAINER)


def test_missing_works_on_a_policy_without_statements() -> None:
    # Given a policy document without a Statement element
    # Then every spec is missing (and nothing raises)
    assert policy.missing({}, TRAINER, SPECS, KEY_ARN) == SPECS
    assert policy.missing({"Version": "2012-10-17"}, TRAINER, (TRAINING_DATA,), KEY_ARN) == (TRAINING_DATA,)


def test_parse_accepts_only_a_json_object() -> None:
    assert policy.parse('{"Statement": []}') == {"Statement": []}
    with pytest.raises(ValueError, match=r"^a key policy is a JSON object$"):
        policy.parse("[]")
