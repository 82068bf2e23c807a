"""Explicit Deny statements of a key policy (docs/architecture.md §6): access that a Deny can
cancel for the requests Rekognition makes on the principal's behalf is not granted, and the
merge refuses to write an Allow that could not help."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.errors import DeniedByPolicy
from clguard.rules import policy
from clguard.rules.policy import COPIED_IMAGES_GRANT, COPIED_IMAGES_USE, TRAINING_DATA, StatementSpec
from tests.fixtures import key_policy
from tests.unit.test_policy_merge_properties import key_policies

ACCOUNT = "111122223333"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0000abcd-12ab-34cd-56ef-1234567890ab"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ml/Someone"
SPECS = (TRAINING_DATA, COPIED_IMAGES_GRANT, COPIED_IMAGES_USE)
VPCE_SID = "Restrict usage to my VPC endpoint"


def granted_policy(*extra: dict[str, Any]) -> dict[str, Any]:
    """The trainer allowed every owned spec, plus ``extra`` statements."""
    document = policy.merge_grants({"Statement": []}, [(TRAINER, SPECS)], key_account=ACCOUNT, key_arn=KEY_ARN)
    return {**document.document, "Statement": [*document.document["Statement"], *extra]}


def deny(**fields: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    statement.update(fields)
    return {k: v for k, v in statement.items() if v is not None}


def test_the_kms_guide_vpc_endpoint_policy_cancels_an_allow_of_the_trainer() -> None:
    # Given the KMS Developer Guide's VPC-endpoint key policy, with the trainer allowed too
    document = key_policy("kms_guide_vpce_key_policy", ACCOUNT)
    allowed = policy.merge_grants(document, [], key_account=ACCOUNT).document
    allowed["Statement"].append(TRAINING_DATA.new_statement(TRAINER))
    # When the trainer's access is evaluated
    # Then the Allow is there, but the Deny (no VPC endpoint on a request S3 makes for it) cancels it
    assert policy.is_allowed(allowed, TRAINER, TRAINING_DATA, KEY_ARN)
    assert not policy.is_granted(allowed, TRAINER, TRAINING_DATA, KEY_ARN)
    assert policy.blocking_denies(allowed, TRAINER, (TRAINING_DATA,), KEY_ARN) == (VPCE_SID,)
    assert policy.missing(allowed, TRAINER, (TRAINING_DATA,), KEY_ARN) == (TRAINING_DATA,)


def test_merge_refuses_to_write_an_allow_that_a_deny_cancels() -> None:
    # Given the guide's VPC-endpoint policy
    document = key_policy("kms_guide_vpce_key_policy", ACCOUNT)
    before = copy.deepcopy(document)
    # When the trainer is merged in
    # Then DeniedByPolicy names the blocking Sid, and the input is untouched
    with pytest.raises(DeniedByPolicy) as raised:
        policy.merge_grants(document, [(TRAINER, (TRAINING_DATA,))], key_account=ACCOUNT, key_arn=KEY_ARN)
    assert raised.value.sids == (VPCE_SID,)
    assert raised.value.principal == TRAINER
    assert document == before


@pytest.mark.parametrize(
    ("statement", "blocks"),
    [
        # unconditional, by principal
        (deny(), True),
        (deny(Principal={"AWS": TRAINER}), True),
        (deny(Principal={"AWS": [OTHER_ROLE]}), False),
        (deny(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}), True),  # every principal of the account
        (deny(Principal={"AWS": ACCOUNT}), True),
        (deny(Principal={"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/Trainer/any-session"}), True),
        (deny(Principal={"Service": "rekognition.amazonaws.com"}), False),
        # NotPrincipal: a role is never excluded (IAM also needs its assumed-role session listed,
        # which no policy can know in advance), even with the role and its account listed
        (deny(Principal=None, NotPrincipal={"AWS": [TRAINER, f"arn:aws:iam::{ACCOUNT}:root"]}), True),
        (deny(Principal=None, NotPrincipal={"AWS": [TRAINER]}), True),
        (deny(Principal=None, NotPrincipal={"AWS": [OTHER_ROLE, ACCOUNT]}), True),
        # actions
        (deny(Action="kms:Encrypt"), False),
        (deny(Action=["kms:Encrypt", "kms:Decr*"]), True),
        (deny(Action=None, NotAction=["kms:Decrypt", "kms:GenerateDataKey"]), False),
        (deny(Action=None, NotAction="kms:Decrypt"), True),
        # resources
        (deny(Resource=OTHER_KEY_ARN), False),
        (deny(Resource=f"arn:aws:kms:*:{ACCOUNT}:key/*"), True),
        (deny(Resource=None, NotResource=OTHER_KEY_ARN), True),
        (deny(Resource=None, NotResource=KEY_ARN), False),
        # conditions on keys such a request carries
        (deny(Condition={"StringNotEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}), False),
        (deny(Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}), True),
        (deny(Condition={"StringNotEquals": {"kms:CallerAccount": ACCOUNT}}), False),
        (deny(Condition={"StringNotEquals": {"aws:PrincipalAccount": [ACCOUNT, "444455556666"]}}), False),
        (deny(Condition={"StringNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ml/*"}}), False),
        (deny(Condition={"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ml/*"}}), True),
        (deny(Condition={"ArnNotEquals": {"aws:PrincipalArn": TRAINER}}), False),
        (deny(Condition={"Bool": {"aws:ViaAWSService": "false"}}), False),
        (deny(Condition={"Bool": {"aws:ViaAWSService": True}}), True),
        (deny(Condition={"Bool": {"aws:SecureTransport": "false"}}), False),
        # keys such a request lacks: negated operators, IfExists, Null and ForAllValues match
        (deny(Condition={"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}), True),
        (deny(Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}}), False),
        (deny(Condition={"StringNotEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}), True),
        (deny(Condition={"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}), True),
        (deny(Condition={"Null": {"aws:SourceVpce": "true"}}), True),
        (deny(Condition={"Null": {"aws:SourceVpce": "false"}}), False),
        (deny(Condition={"ForAllValues:StringEquals": {"aws:SourceVpce": ["vpce-1"]}}), True),
        (deny(Condition={"ForAnyValue:StringEquals": {"aws:SourceVpce": ["vpce-1"]}}), False),
        # unknown keys and operators: in doubt, the Deny applies
        (deny(Condition={"StringEquals": {"aws:PrincipalTag/team": "other"}}), True),
        (deny(Condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}), True),
        (deny(Condition={"SomeFutureOperator": {"kms:ViaService": "x"}}), True),
        # every condition block must match
        (
            deny(
                Condition={
                    "StringNotEquals": {"aws:SourceVpce": "vpce-1"},
                    "Bool": {"aws:ViaAWSService": "false"},
                }
            ),
            False,
        ),
    ],
)
def test_which_deny_statements_cancel_training_data_access(statement: dict[str, Any], blocks: bool) -> None:
    # Given the trainer allowed training data, and one Deny statement
    document = granted_policy(statement)
    # When its training-data access is evaluated
    # Then the Deny blocks it exactly when it can apply to a request S3 makes for the trainer
    assert (policy.blocking_denies(document, TRAINER, (TRAINING_DATA,), KEY_ARN) == ("D",)) is blocks
    assert policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN) is not blocks


def test_the_copied_images_key_is_also_used_by_rekognition_itself() -> None:
    # Given a Deny of everything not through S3 (fine for training data, read through S3)
    document = granted_policy(deny(Condition={"StringNotEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}))
    # When the copied-images access (used by Rekognition directly) is evaluated
    # Then that Deny cancels it
    assert policy.is_granted(document, TRAINER, TRAINING_DATA, KEY_ARN)
    assert not policy.is_granted(document, TRAINER, COPIED_IMAGES_USE, KEY_ARN)
    assert policy.blocking_denies(document, TRAINER, (COPIED_IMAGES_GRANT, COPIED_IMAGES_USE), KEY_ARN) == ("D",)


def test_a_deny_without_sid_is_named_by_its_position() -> None:
    statement = deny()
    del statement["Sid"]
    document = granted_policy(statement)
    position = len(document["Statement"]) - 1
    assert policy.blocking_denies(document, TRAINER, (TRAINING_DATA,), KEY_ARN) == (f"Statement[{position}]",)


# --- properties -------------------------------------------------------------------------------

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
spec_choice = st.sampled_from(SPECS)
key_arns = st.sampled_from([None, KEY_ARN])


def _with(document: dict[str, Any], statement: dict[str, Any]) -> dict[str, Any]:
    return {**document, "Statement": [*policy.statements(document), statement]}


applicable_denies = st.builds(
    lambda principal, action, condition: deny(Principal=principal, Action=action, Condition=condition),
    st.sampled_from(["*", {"AWS": TRAINER}, {"AWS": [OTHER_ROLE, f"arn:aws:iam::{ACCOUNT}:root"]}, {"AWS": "*"}]),
    st.sampled_from(["kms:*", "kms:Decrypt", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey", "*"]),
    st.sampled_from(
        [
            None,
            {"StringNotEquals": {"aws:SourceVpce": "vpce-1234abcdf5678c90a"}},
            {"Null": {"aws:SourceVpc": "true"}},
            {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}},
            {"StringEquals": {"aws:PrincipalTag/project": "x"}},
        ]
    ),
)
unrelated_denies = st.one_of(
    # another principal
    st.builds(lambda a: deny(Principal={"AWS": OTHER_ROLE}, Action=a), st.sampled_from(["kms:*", "kms:Decrypt"])),
    # an action no spec needs
    st.builds(lambda p: deny(Principal=p, Action=["kms:Encrypt", "kms:ScheduleKeyDeletion"]), st.just("*")),
    # a condition no such request can satisfy
    st.just(deny(Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})),
    st.just(deny(Condition={"Bool": {"aws:ViaAWSService": "false"}})),
)


def _needs(spec: StatementSpec, statement: dict[str, Any]) -> bool:
    """Whether the Deny's action covers one of the spec's actions (ground truth by hand)."""
    action = statement["Action"]
    return action in ("kms:*", "*") or any(
        action == a or (action.endswith("*") and a.startswith(action[:-1])) for a in spec.actions
    )


@PROPERTY
@given(drawn=key_policies(), spec=spec_choice, statement=applicable_denies, key_arn=key_arns)
def test_adding_an_applicable_deny_never_makes_access_granted(drawn: Any, spec, statement, key_arn) -> None:
    # Given any key policy, and a Deny that applies to the trainer for one of the spec's actions
    if not _needs(spec, statement):
        return
    # When it is added to the policy
    document = _with(drawn.document, statement)
    # Then the trainer is not granted the spec, whatever the Allow statements say
    assert not policy.is_granted(document, TRAINER, spec, key_arn)
    assert "D" in policy.blocking_denies(document, TRAINER, (spec,), key_arn)


@PROPERTY
@given(drawn=key_policies(), spec=spec_choice, statement=unrelated_denies, key_arn=key_arns)
def test_a_deny_for_another_principal_action_or_request_changes_nothing(drawn: Any, spec, statement, key_arn) -> None:
    # Given any key policy, and a Deny for another principal, action, or a request Rekognition never makes
    # When it is added
    document = _with(drawn.document, statement)
    # Then the trainer's access is exactly what it was
    assert policy.is_granted(document, TRAINER, spec, key_arn) == policy.is_granted(
        drawn.document, TRAINER, spec, key_arn
    )
    assert "D" not in policy.blocking_denies(document, TRAINER, (spec,), key_arn)


@PROPERTY
@given(
    drawn=key_policies(), spec=spec_choice, statement=st.one_of(applicable_denies, unrelated_denies), key_arn=key_arns
)
def test_adding_any_deny_never_grants(drawn: Any, spec, statement, key_arn) -> None:
    # Given any key policy where the trainer is not granted the spec
    if policy.is_granted(drawn.document, TRAINER, spec, key_arn):
        return
    # When any Deny is added
    # Then it is still not granted (a Deny only takes away)
    assert not policy.is_granted(_with(drawn.document, statement), TRAINER, spec, key_arn)


# --- IAM policy variables and NotPrincipal (adversarial review) --------------------------------

_TRAINER = "arn:aws:iam::111122223333:role/ml/CustomLabelsTrainer"
_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _policy_with(statement: dict[str, Any]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Root",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {"Sid": "Trainer", "Effect": "Allow", "Principal": {"AWS": _TRAINER}, "Action": "kms:*", "Resource": "*"},
            statement,
        ],
    }


def test_a_deny_whose_condition_uses_a_policy_variable_is_assumed_to_apply() -> None:
    # Given a Deny on ml roles written with an IAM policy variable (IAM substitutes it per request)
    deny = {
        "Sid": "DenyMlRoles",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:role/ml/*"}},
    }
    # When the trainer's access is evaluated
    denies = policy.blocking_denies(_policy_with(deny), _TRAINER, (TRAINING_DATA,), _KEY)
    # Then the Deny is taken to apply (it does, once substituted), so the Allow does not count
    assert denies == ("DenyMlRoles",)
    assert not policy.is_granted(_policy_with(deny), _TRAINER, TRAINING_DATA, _KEY)


def test_a_notprincipal_deny_is_not_an_exception_for_a_role() -> None:
    # Given a Deny to everyone but the trainer role and its account (IAM also needs the assumed-role
    # session listed, which no policy can know in advance)
    deny = {
        "Sid": "DenyAllButTrainer",
        "Effect": "Deny",
        "NotPrincipal": {"AWS": [_TRAINER, "arn:aws:iam::111122223333:root"]},
        "Action": "kms:*",
        "Resource": "*",
    }
    # When the trainer's access is evaluated
    # Then the Deny applies to the role's sessions: not granted
    assert policy.blocking_denies(_policy_with(deny), _TRAINER, (TRAINING_DATA,), _KEY) == ("DenyAllButTrainer",)
    assert not policy.is_granted(_policy_with(deny), _TRAINER, TRAINING_DATA, _KEY)


# --- the organization (data-perimeter Denies) ------------------------------------------------

ORG = "o-a1b2c3d4e5"


def perimeter(org: str = ORG) -> dict[str, Any]:
    document = key_policy("identity_perimeter_key_policy", ACCOUNT)
    document["Statement"][1]["Condition"]["StringNotEqualsIfExists"]["aws:PrincipalOrgID"] = org
    return document


def test_a_perimeter_deny_does_not_apply_to_a_principal_of_the_keys_organization() -> None:
    # Given the identity-perimeter policy of the key's organization, and what the guard learnt of it
    facts = policy.organization_facts(ORG)
    # When a role of the key's account is evaluated with it, and without it
    principal = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    known = policy.blocking_denies(perimeter(), principal, (TRAINING_DATA,), KEY_ARN, facts=facts)
    unknown = policy.blocking_denies(perimeter(), principal, (TRAINING_DATA,), KEY_ARN)
    # Then the Deny does not apply when the organization is known, and is taken to apply when not
    assert known == ()
    assert unknown == ("EnforceIdentityPerimeter",)


def test_an_account_in_no_organization_is_outside_every_perimeter() -> None:
    # Given an account the guard knows is in no organization
    facts = policy.organization_facts(None)
    # Then the perimeter Deny applies (its requests carry no aws:PrincipalOrgID: IfExists matches)
    principal = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    assert policy.blocking_denies(perimeter(), principal, (TRAINING_DATA,), KEY_ARN, facts=facts) == (
        "EnforceIdentityPerimeter",
    )


def test_the_organization_is_never_lent_to_a_principal_of_another_account() -> None:
    # Given the key's organization known, and a principal of another account
    facts = policy.organization_facts(ORG)
    stranger = "arn:aws:iam::999988887777:role/ml/Trainer"
    # Then its requests are evaluated without it: the perimeter is taken to apply
    assert policy.blocking_denies(perimeter(), stranger, (TRAINING_DATA,), KEY_ARN, facts=facts) == (
        "EnforceIdentityPerimeter",
    )
    contexts = policy.request_contexts(stranger, "kms:Decrypt", KEY_ARN, facts=facts)
    assert all("aws:principalorgid" not in c for c in contexts)


def test_a_perimeter_on_another_organization_still_applies() -> None:
    # Given a key whose perimeter names another organization than the account's
    facts = policy.organization_facts(ORG)
    principal = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    # Then it applies
    assert policy.blocking_denies(perimeter("o-zzzzzzzzzz"), principal, (TRAINING_DATA,), KEY_ARN, facts=facts)


@pytest.mark.parametrize(
    ("document", "depends"),
    [
        (perimeter(), True),
        (key_policy("identity_perimeter_key_policy", ACCOUNT) | {"Statement": []}, False),
        ({"Statement": [{"Effect": "Deny", "Condition": {"StringEquals": {"aws:ResourceOrgID": ORG}}}]}, True),
        ({"Statement": [{"Effect": "Allow", "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG}}}]}, False),
        ({"Statement": {"Effect": "Deny", "Condition": {"Bool": {"aws:ViaAWSService": "false"}}}}, False),
        ({"Statement": [{"Effect": "Deny", "Condition": "not a mapping"}]}, False),
    ],
)
def test_the_organization_is_learnt_only_for_a_deny_that_names_it(document: dict[str, Any], depends: bool) -> None:
    # Given a key policy
    # Then it is worth learning the organization only when a Deny's condition names an organization key
    assert policy.depends_on_organization(document) is depends


# --- what each request context holds (pinned to the documented request) -------------------------


def test_a_principal_known_to_be_in_no_organization_meets_a_deny_on_a_missing_org_id() -> None:
    # Given a Deny of every principal whose request carries no aws:PrincipalOrgID
    no_org = deny(Condition={"Null": {"aws:PrincipalOrgID": "true"}})
    principal = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
    # When the guard knows the key's account is in no organization
    facts = policy.organization_facts(None)
    # Then the request carries no org id, and the Deny applies (known, not merely assumed)
    assert all(
        "aws:principalorgid" in c and not c["aws:principalorgid"]
        for c in policy.request_contexts(principal, "kms:Decrypt", KEY_ARN, facts=facts)
    )
    assert policy.blocking_denies(granted_policy(no_org), principal, (TRAINING_DATA,), KEY_ARN, facts=facts) == ("D",)
    # And in an organization it does not
    known = policy.organization_facts(ORG)
    assert policy.blocking_denies(granted_policy(no_org), principal, (TRAINING_DATA,), KEY_ARN, facts=known) == ()


def test_create_grant_for_an_aws_resource_carries_the_lower_case_true_that_string_operators_compare() -> None:
    # Given a Deny of CreateGrant whenever the grant is for an AWS resource, written with StringEquals
    # (the key's value in the request is the string "true", KMS Developer Guide, kms:GrantIsForAWSResource)
    statement = deny(Action="kms:CreateGrant", Condition={"StringEquals": {"kms:GrantIsForAWSResource": "true"}})
    # Then the copied-images grant (Rekognition's CreateGrant for an AWS resource) is blocked by it
    assert policy.blocking_denies(granted_policy(statement), TRAINER, (COPIED_IMAGES_GRANT,), KEY_ARN) == ("D",)


@pytest.mark.parametrize("action", ["kms:Decrypt", "kms:GenerateDataKey"])
def test_only_s3_s_decrypt_and_generate_data_key_carry_the_s3_encryption_context(action: str) -> None:
    # Given the requests KMS sees for a training (S3 on the object's behalf, Rekognition itself)
    s3, rekognition = policy.request_contexts(TRAINER, action, KEY_ARN)
    grant_via_s3, _ = policy.request_contexts(TRAINER, "kms:CreateGrant", KEY_ARN)
    # Then only S3's data-key requests carry aws:s3:arn in their encryption context (S3 User Guide,
    # "Encryption context"); Rekognition's and a CreateGrant do not
    assert "kms:encryptioncontext:aws:s3:arn" in s3
    assert "kms:encryptioncontext:aws:s3:arn" not in rekognition
    assert "kms:encryptioncontext:aws:s3:arn" not in grant_via_s3
    assert "kms:encryptioncontextkeys" not in grant_via_s3


def test_a_malformed_condition_block_is_skipped_and_the_blocks_after_it_still_decide() -> None:
    # Given a Deny whose first condition block is malformed and whose second can never match the
    # trainer's requests (they are made over TLS)
    statement = deny(Condition={"StringEquals": "not a block", "Bool": {"aws:SecureTransport": "false"}})
    # Then the Deny cannot apply: the malformed block is ignored, not the rest of the condition
    assert policy.blocking_denies(granted_policy(statement), TRAINER, (TRAINING_DATA,), KEY_ARN) == ()


def test_a_deny_whose_sid_is_not_a_string_is_named_by_its_position() -> None:
    # Given a Deny with a number for its Sid (KMS rejects it; a policy read from a file may hold it)
    document = granted_policy(deny(Sid=7))
    position = len(document["Statement"]) - 1
    # Then it is named by its position, never by the stray value
    assert policy.blocking_denies(document, TRAINER, (TRAINING_DATA,), KEY_ARN) == (f"Statement[{position}]",)
