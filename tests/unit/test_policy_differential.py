"""The guard's key-policy evaluator against an independent reading of IAM (tests/iamoracle.py),
over generated Deny statements and generated requests (docs/architecture.md §6).

What the guard knows of a request Rekognition's training causes (S3 reading the training data for
the principal, with the principal's identity, ``kms:ViaService`` = S3, ``aws:ViaAWSService``, TLS,
no VPC endpoint, and for SSE-KMS the encryption context ``aws:s3:arn``) is fixed; every other key
is drawn: absent, or one of values chosen to match the generated statements. Soundness: whenever
the oracle says a drawn request is denied, the guard never reports the access granted (a false
REMEDIATED). Precision: where every key a statement names is known, both agree exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.rules import policy
from clguard.rules.policy import COPIED_IMAGES_USE, TRAINING_DATA, StatementSpec
from tests import iamoracle
from tests.iamoracle import Request

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
OTHER_KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0000abcd-12ab-34cd-56ef-1234567890ab"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
USER = f"arn:aws:iam::{ACCOUNT}:user/ml/alice"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/Trainer/training-session"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/admin/Admin"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- requests -----------------------------------------------------------------------------------

# Keys whose value in such a request the documentation settles (lower case), by principal.
KNOWN_KEYS = (
    "aws:principalarn",
    "aws:principalaccount",
    "kms:calleraccount",
    "aws:principaltype",
    "kms:viaservice",
    "aws:viaawsservice",
    "aws:securetransport",
    "aws:principalisawsservice",
    "aws:requestedregion",
    "aws:sourcevpce",
    "aws:sourcevpc",
    "kms:grantisforawsresource",
)
# Keys the guard cannot know: drawn per request.
UNKNOWN_KEYS = ("aws:principaltag/team", "aws:principaltag/key-id", "aws:sourceip", "kms:encryptioncontext:department")
UNKNOWN_VALUES = ("ml", "other", KEY_ID, "192.0.2.1", TRAINER, ACCOUNT)
S3_ARNS = ("arn:aws:s3:::training/images/1.jpg", "arn:aws:s3:::training")


def documented_context(principal: str, service: str) -> dict[str, tuple[str, ...]]:
    """The request context of KMS Decrypt that ``service`` sends for ``principal`` (a forward
    access session): IAM User Guide (global condition keys), KMS Developer Guide (kms:ViaService,
    kms:CallerAccount), S3 User Guide (SSE-KMS encryption context)."""
    kind = "AssumedRole" if ":role/" in principal else "User"
    return {
        "aws:principalarn": (principal,),
        "aws:principalaccount": (ACCOUNT,),
        "kms:calleraccount": (ACCOUNT,),
        "aws:principaltype": (kind,),
        "kms:viaservice": (f"{service}.us-east-1.amazonaws.com",),
        "aws:viaawsservice": ("true",),
        "aws:securetransport": ("true",),
        "aws:principalisawsservice": ("false",),
        "aws:requestedregion": ("us-east-1",),
    }


@st.composite
def requests(draw: st.DrawFn, principal: str = TRAINER, service: str = "s3", action: str = "kms:Decrypt") -> Request:
    """Any request KMS may receive for ``principal`` through ``service``: the documented keys as
    they are, the others drawn."""
    context = documented_context(principal, service)
    for key in UNKNOWN_KEYS:
        if draw(st.booleans()):
            context[key] = (draw(st.sampled_from(UNKNOWN_VALUES)),)
    if action.lower() == "kms:creategrant":  # Rekognition's grants are for an AWS resource
        context["kms:grantisforawsresource"] = ("true",)
    keys = ["aws:s3:arn"] + (["department"] if "kms:encryptioncontext:department" in context else [])
    s3_read = service == "s3" and action.lower() in ("kms:decrypt", "kms:generatedatakey")
    # S3 always sends aws:s3:arn; Rekognition's own requests: a context the guard does not know
    if s3_read or (action.lower() != "kms:creategrant" and draw(st.booleans())):
        context["kms:encryptioncontext:aws:s3:arn"] = (draw(st.sampled_from(S3_ARNS)),)
        context["kms:encryptioncontextkeys"] = tuple(keys)
    account = frozenset({ACCOUNT, ROOT})  # the account, named by its id or its root ARN
    chain: tuple[frozenset[str], ...] = (frozenset({principal}), account)
    identities = frozenset({principal}) | account
    if ":role/" in principal:
        session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{principal.rsplit('/', 1)[1]}/training-session"
        identities |= {session}
        chain = (*chain, frozenset({session}))
    return Request(identities, chain, action, KEY_ARN, context)


# --- Deny statements ---------------------------------------------------------------------------

OPERATORS = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Bool",
)
CONDITION_KEYS = (
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "kms:CallerAccount",
    "aws:PrincipalType",
    "kms:ViaService",
    "aws:ViaAWSService",
    "aws:SecureTransport",
    "aws:SourceVpce",
    "aws:RequestedRegion",
    "kms:GrantIsForAWSResource",
    "aws:PrincipalTag/team",
    "aws:SourceIp",
    "kms:EncryptionContext:aws:s3:arn",
    "kms:EncryptionContext:department",
    "kms:EncryptionContextKeys",
)
CONDITION_VALUES = (
    TRAINER,
    TRAINER.upper(),
    OTHER_ROLE,
    USER,
    ACCOUNT,
    OTHER_ACCOUNT,
    "arn:aws:iam::*",
    "arn:aws:iam::*:role/ml/*",
    "arn:aws:iam::*:role/ml/Tr?iner",
    f"arn:aws:iam::{ACCOUNT}:role/admin/*",
    "arn:aws:iam:*:role/ml/Trainer",
    "arn:*:iam::*:*",
    "*",
    "true",
    "TRUE",
    "false",
    "s3.us-east-1.amazonaws.com",
    "rekognition.us-east-1.amazonaws.com",
    "AssumedRole",
    "User",
    "us-east-1",
    "vpce-1",
    "ml",
    "aws:s3:arn",
    "arn:aws:s3:::training*",
    "${aws:PrincipalTag/team}",
    "arn:aws:iam::${aws:PrincipalAccount}:role/ml/*",
)


@st.composite
def conditions(draw: st.DrawFn, keys: tuple[str, ...] = CONDITION_KEYS) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from(keys))
        value: Any
        if draw(st.integers(0, 5)) == 0:
            operator, value = "Null", draw(st.sampled_from(["true", "false"]))
        else:
            qualifier = draw(st.sampled_from(["", "", "ForAllValues:", "ForAnyValue:"]))
            suffix = draw(st.sampled_from(["", "", "IfExists"]))
            operator = qualifier + draw(st.sampled_from(OPERATORS)) + suffix
            value = draw(st.lists(st.sampled_from(CONDITION_VALUES), min_size=1, max_size=2))
        out.setdefault(operator, {})[key] = value
    return out


PRINCIPALS = (
    "*",
    {"AWS": "*"},
    {"AWS": TRAINER},
    {"AWS": USER},
    {"AWS": OTHER_ROLE},
    {"AWS": ACCOUNT},
    {"AWS": ROOT},
    {"AWS": SESSION},
    {"AWS": "arn:aws:iam::${aws:PrincipalAccount}:role/ml/Trainer"},
)
NOT_PRINCIPALS = (
    {"AWS": [TRAINER, ROOT]},
    {"AWS": [TRAINER, SESSION, ACCOUNT]},
    {"AWS": [USER, ROOT]},
    {"AWS": [USER]},
    {"AWS": [OTHER_ROLE, ACCOUNT]},
)
RESOURCES = (
    "*",
    KEY_ARN,
    OTHER_KEY_ARN,
    f"arn:aws:kms:*:{ACCOUNT}:key/*",
    "arn:aws:kms:*:*:key/${aws:PrincipalTag/key-id}",
    [OTHER_KEY_ARN, "arn:aws:kms:us-east-1:*"],
)


@st.composite
def denies(draw: st.DrawFn, keys: tuple[str, ...] = CONDITION_KEYS, variables: bool = True) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": "D", "Effect": "Deny"}
    if draw(st.integers(0, 3)) == 0:
        statement["NotPrincipal"] = draw(st.sampled_from(NOT_PRINCIPALS))
    else:
        statement["Principal"] = draw(st.sampled_from(PRINCIPALS if variables else PRINCIPALS[:-1]))
    actions = st.sampled_from(["kms:*", "kms:Decrypt", "kms:GenerateDataKey*", "kms:Encrypt", "*", "KMS:decrypt"])
    statement["NotAction" if draw(st.integers(0, 4)) == 0 else "Action"] = draw(actions)
    resources = RESOURCES if variables else tuple(r for r in RESOURCES if "${" not in str(r))
    statement["NotResource" if draw(st.integers(0, 4)) == 0 else "Resource"] = draw(st.sampled_from(resources))
    if draw(st.integers(0, 5)) > 0:
        statement["Condition"] = draw(conditions(keys))
    return statement


def granted_document(principal: str, *extra: dict[str, Any]) -> dict[str, Any]:
    merge = policy.merge_grants(
        {"Statement": []}, [(principal, (TRAINING_DATA, COPIED_IMAGES_USE))], key_account=ACCOUNT, key_arn=KEY_ARN
    )
    return {"Statement": [*merge.document["Statement"], *extra]}


def _has_variable(statement: dict[str, Any]) -> bool:
    return "${" in str(statement)


# --- properties --------------------------------------------------------------------------------


@PROPERTY
@given(
    statement=denies(),
    data=st.data(),
    principal=st.sampled_from([TRAINER, USER]),
    case=st.sampled_from([(TRAINING_DATA, "s3"), (COPIED_IMAGES_USE, "s3"), (COPIED_IMAGES_USE, "rekognition")]),
)
def test_the_guard_never_reports_granted_what_iam_denies(statement, data, principal, case) -> None:
    # Given a key policy granting the principal, plus any Deny statement
    spec, service = case
    document = granted_document(principal, statement)
    # And any request KMS may receive for it through `service`, consistent with what the guard knows
    action = data.draw(st.sampled_from(spec.actions))
    request = data.draw(requests(principal, service, action))
    # When the independent reading says the Deny applies to that request
    if not iamoracle.denied_by(statement, request):
        return
    # Then the guard does not report the access granted, and names the Deny
    assert not policy.is_granted(document, principal, spec, KEY_ARN), (statement, request.context)
    assert "D" in policy.blocking_denies(document, principal, (spec,), KEY_ARN)


KNOWN_CONDITION_KEYS = tuple(k for k in CONDITION_KEYS if k.lower() in KNOWN_KEYS)


@PROPERTY
@given(
    statement=denies(KNOWN_CONDITION_KEYS, variables=False),
    data=st.data(),
    principal=st.sampled_from([TRAINER, USER]),
)
def test_where_every_key_is_known_the_guard_and_iam_agree(statement, data, principal) -> None:
    # Given a Deny without policy variables whose conditions name only keys the documentation
    # settles for a training-data read through S3, and a principal that is not excluded by a
    # NotPrincipal through an assumed-role session the guard cannot know in advance
    if _has_variable(statement.get("Condition", {})):
        return
    # When the guard and the independent reading decide it for each action of the spec
    request = data.draw(requests(principal, "s3", "kms:Decrypt"))
    oracle = any(
        iamoracle.denied_by(statement, Request(request.identities, request.chain, action, KEY_ARN, request.context))
        for action in TRAINING_DATA.actions
    )
    guard = policy.blocking_denies(granted_document(principal, statement), principal, (TRAINING_DATA,), KEY_ARN)
    # Then they agree (the guard's only deliberate over-caution: a NotPrincipal Deny for a role)
    if "NotPrincipal" in statement and ":role/" in principal:
        assert guard == ("D",) or not oracle
        return
    assert (guard == ("D",)) is oracle, (statement, request.context)


@PROPERTY
@given(data=st.data(), principal=st.sampled_from([TRAINER, USER]))
def test_without_a_deny_the_granted_principal_is_allowed_by_iam_too(data, principal) -> None:
    # Given the policy the guard writes for a principal
    document = granted_document(principal)
    # Then IAM allows every action of both specs on any request, as the guard says
    for spec, service in ((TRAINING_DATA, "s3"), (COPIED_IMAGES_USE, "rekognition")):
        assert policy.is_granted(document, principal, spec, KEY_ARN)
        for action in spec.actions:
            assert iamoracle.allowed(document, data.draw(requests(principal, service, action)))


def check_granted_means_allowed(document: dict[str, Any], principal: str, spec: StatementSpec, data: Any) -> None:
    """The independent oracle of the merge properties: a spec the guard calls granted is allowed
    by IAM for any request consistent with what the guard knows."""
    for service in spec.via:
        for action in spec.actions:
            request = data.draw(requests(principal, service, action))
            assert iamoracle.allowed(document, request), (spec.sid, action, service, request.context)
