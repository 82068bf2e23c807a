"""Pure key-policy logic (docs/architecture.md §6). No I/O: every function takes and returns plain JSON values.

The remediator owns a few statements, found by ``Sid``. It only ever appends principals to
their ``Principal.AWS`` list; every statement it does not own stays exactly as it was.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Final, NamedTuple

from clguard.errors import DeniedByPolicy, GuardrailViolation, PolicyConflict
from clguard.rules.arns import PrincipalArn, account_of, parse_principal_arn, partition_of

MAX_POLICY_BYTES: Final = 32_768

type Json = Any
type Statement = dict[str, Json]


@dataclass(frozen=True, slots=True)
class StatementSpec:
    """One statement the remediator owns: its Sid, the actions it allows, its condition."""

    sid: str
    actions: tuple[str, ...]
    condition: Mapping[str, Json] | None = None
    # The services whose requests to KMS use this access on the principal's behalf (they decide
    # which Deny statements can apply: kms:ViaService is <service>.<region>.amazonaws.com).
    via: tuple[str, ...] = ("s3", "rekognition")

    def new_statement(self, principal: str) -> Statement:
        statement: Statement = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Principal": {"AWS": [principal]},
            "Action": list(self.actions),
            "Resource": "*",
        }
        if self.condition is not None:
            statement["Condition"] = copy.deepcopy(dict(self.condition))
        return statement


# Training data is read (and written) through S3, which calls KMS for the principal.
TRAINING_DATA: Final = StatementSpec(
    "CustomLabelsGuardTrainingData", ("kms:Decrypt", "kms:GenerateDataKey"), via=("s3",)
)
# CreateGrant only for grants that an AWS service (Rekognition) makes on the caller's behalf.
COPIED_IMAGES_GRANT: Final = StatementSpec(
    "CustomLabelsGuardCopiedImagesGrant",
    ("kms:CreateGrant",),
    {"Bool": {"kms:GrantIsForAWSResource": "true"}},
)
# The other three actions of the copied-images key, in their own statement so that the
# GrantIsForAWSResource condition does not switch them off.
COPIED_IMAGES_USE: Final = StatementSpec(
    "CustomLabelsGuardCopiedImagesUse", ("kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey")
)
OWNED_SIDS: Final = frozenset(spec.sid for spec in (TRAINING_DATA, COPIED_IMAGES_GRANT, COPIED_IMAGES_USE))


class AccessNeed(Enum):
    """What a principal needs a key for."""

    TRAINING_DATA = "training data (manifests and images)"
    COPIED_IMAGES = "copied training images (KmsKeyId)"

    @property
    def specs(self) -> tuple[StatementSpec, ...]:
        if self is AccessNeed.COPIED_IMAGES:
            return (COPIED_IMAGES_GRANT, COPIED_IMAGES_USE)
        return (TRAINING_DATA,)


def specs_for(needs: Iterable[AccessNeed]) -> tuple[StatementSpec, ...]:
    """Statement specs for a set of needs, copied-images first: its Use statement also covers
    training-data access, so a key needed for both grows by the fewest principals."""
    wanted = set(needs)
    ordered = [n for n in (AccessNeed.COPIED_IMAGES, AccessNeed.TRAINING_DATA) if n in wanted]
    return tuple(spec for need in ordered for spec in need.specs)


def actions_of(specs: Iterable[StatementSpec]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(action for spec in specs for action in spec.actions))


# --- reading a policy -------------------------------------------------------------------------


def as_list(value: Json) -> list[Json]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def statements(document: Mapping[str, Json]) -> list[Statement]:
    return [s for s in as_list(document.get("Statement")) if isinstance(s, dict)]


def _principal_covers(principal: Json, arn: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    aws = as_list(principal.get("AWS"))
    return "*" in aws or arn in aws


@lru_cache(maxsize=1024)
def _iam_glob(pattern: str) -> re.Pattern[str]:
    """IAM wildcards: ``*`` (any run) and ``?`` (one character); nothing else is special
    (unlike fnmatch, where ``[...]`` is a character class). Actions match case-insensitively."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def _action_covers(actions: Json, action: str) -> bool:
    return any(isinstance(a, str) and _iam_glob(a).fullmatch(action) for a in as_list(actions))


def _resource_covers(resource: Json, key_arn: str | None) -> bool:
    return any(r == "*" or (key_arn is not None and r == key_arn) for r in as_list(resource))


def _condition_ok(statement: Mapping[str, Json], condition: Mapping[str, Json] | None) -> bool:
    present = statement.get("Condition")
    if not present:
        return True
    return condition is not None and present == condition


def _allows(
    statement: Mapping[str, Json],
    arn: str,
    action: str,
    condition: Mapping[str, Json] | None,
    key_arn: str | None,
) -> bool:
    return (
        statement.get("Effect") == "Allow"
        and "NotPrincipal" not in statement
        and "NotAction" not in statement
        and "NotResource" not in statement
        and _principal_covers(statement.get("Principal"), arn)
        and _action_covers(statement.get("Action"), action)
        and _resource_covers(statement.get("Resource"), key_arn)
        and _condition_ok(statement, condition)
    )


def is_allowed(document: Mapping[str, Json], principal: str, spec: StatementSpec, key_arn: str | None = None) -> bool:
    """True when every action of ``spec`` is allowed to ``principal`` by some Allow statement
    without a condition (or with exactly the spec's own condition, which only narrows CreateGrant
    to AWS-service grants). Deny statements are not looked at: see :func:`is_granted`."""
    found = statements(document)
    return all(any(_allows(s, principal, action, spec.condition, key_arn) for s in found) for action in spec.actions)


# What the guard knows of a principal's requests beyond its ARN, by condition key (lower case):
# a value, or None for a key the requests do not carry. Empty: nothing more is known.
type RequestFacts = Mapping[str, str | None]
NO_FACTS: Final[RequestFacts] = {}
# The organization keys of a request; for a principal of the key's own account (the only kind the
# guard adds) the principal's and the key's organization are the account's.
ORGANIZATION_KEYS: Final = ("aws:principalorgid", "aws:resourceorgid")


def organization_facts(organization: str | None) -> RequestFacts:
    """The facts of a principal of the key's account whose organization is ``organization``
    (None: the account is in no organization, so its requests carry neither key)."""
    return dict.fromkeys(ORGANIZATION_KEYS, organization)


def depends_on_organization(document: Mapping[str, Json]) -> bool:
    """True when a Deny's condition names an organization key: only then is it worth learning."""
    for statement in statements(document):
        if statement.get("Effect") != "Deny" or not isinstance(statement.get("Condition"), dict):
            continue
        for keys in statement["Condition"].values():
            if isinstance(keys, dict) and any(str(k).lower() in ORGANIZATION_KEYS for k in keys):
                return True
    return False


def is_granted(
    document: Mapping[str, Json],
    principal: str,
    spec: StatementSpec,
    key_arn: str | None = None,
    *,
    facts: RequestFacts = NO_FACTS,
) -> bool:
    """Effective access: allowed (:func:`is_allowed`) and no Deny statement can cancel it for a
    request Rekognition makes on the principal's behalf (:func:`blocking_denies`)."""
    return is_allowed(document, principal, spec, key_arn) and not blocking_denies(
        document, principal, (spec,), key_arn, facts=facts
    )


def missing(
    document: Mapping[str, Json],
    principal: str,
    specs: Sequence[StatementSpec],
    key_arn: str | None = None,
    *,
    facts: RequestFacts = NO_FACTS,
) -> tuple[StatementSpec, ...]:
    """Specs not yet granted, evaluated in order as if the earlier ones had been added."""
    work = copy.deepcopy(dict(document))
    out = []
    for spec in specs:
        if not is_granted(work, principal, spec, key_arn, facts=facts):
            out.append(spec)
            work["Statement"] = [*as_list(work.get("Statement")), spec.new_statement(principal)]
    return tuple(out)


# --- explicit Deny ------------------------------------------------------------------------------
#
# An explicit Deny overrides every Allow. The guard never edits or removes a statement it does not
# own, so a Deny that can apply to the training principal makes an added Allow useless: access is
# then never reported as granted, and the finding says which Sid blocks it.
#
# Which Deny statements "can apply" is decided against the requests KMS receives when Rekognition
# trains for the principal: S3 reads the training objects for it (a forward access session,
# FAS: ``kms:ViaService`` = ``s3.<region>.amazonaws.com``; StatementSpec.via) and Rekognition
# itself uses the copied-images key (``rekognition.<region>.amazonaws.com``, or through S3).
# Such requests carry the principal's identity keys, ``aws:ViaAWSService=true``, TLS, and no VPC
# endpoint or VPC (a service request does not travel through the customer's VPC; the KMS
# Developer Guide warns that such Deny statements break integrated services). Any other key is
# unknown: it may be absent or hold any value (aws:SourceIp of a FAS request is the original
# caller's, which the guard cannot know), so a condition on it can match. An unknown operator
# can match too. When in doubt, the Deny applies.
#
# A value the guard cannot resolve can match: an IAM policy variable (``${aws:PrincipalTag/x}``) in a
# Deny's Resource, NotResource, Principal or condition value is taken to resolve to whatever makes
# the Deny apply. Where the documentation settles a request's context, the guard uses it: S3 calls
# KMS Decrypt/GenerateDataKey for SSE-KMS objects with the encryption context ``aws:s3:arn`` (the
# object ARN, or the bucket ARN under S3 Bucket Keys) plus what the uploader supplied, so that key is
# present (its value unknown) and the context is never empty.


class _Unknown(Enum):
    """A request value the guard cannot know."""

    ANY = "may be absent or hold any value"
    PRESENT = "present, with values the guard cannot know"


_ANY: Final = _Unknown.ANY
_SET_OPERATORS: Final = ("forallvalues:", "foranyvalue:")
# Each negated operator and the positive one it inverts.
_POSITIVE_OF: Final = {
    "stringnotequals": "stringequals",
    "stringnotequalsignorecase": "stringequalsignorecase",
    "stringnotlike": "stringlike",
    "arnnotequals": "arnequals",
    "arnnotlike": "arnlike",
}
_NEGATED: Final = frozenset(_POSITIVE_OF)
_STRING_OPERATORS: Final = frozenset(
    {
        "stringequals",
        "stringnotequals",
        "stringequalsignorecase",
        "stringnotequalsignorecase",
        "stringlike",
        "stringnotlike",
        "arnequals",
        "arnlike",
        "arnnotequals",
        "arnnotlike",
        "bool",
    }
)
# Keys a FAS request from S3/Rekognition to KMS never carries.
_ABSENT_KEYS: Final = frozenset(
    {
        "aws:sourcevpce",
        "aws:sourcevpc",
        "aws:vpcsourceip",
        "aws:sourcearn",
        "aws:sourceaccount",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:principalservicename",
        "aws:principalservicenameslist",
        "aws:sourceowner",
    }
)

type _Context = Mapping[str, tuple[str, ...] | _Unknown]
# The encryption-context condition keys of an SSE-KMS request S3 makes (S3 User Guide, "Encryption
# context"; KMS Developer Guide, kms:EncryptionContext:context-key and kms:EncryptionContextKeys).
_S3_CONTEXT_ACTIONS: Final = frozenset({"kms:decrypt", "kms:generatedatakey"})
_S3_CONTEXT_KEYS: Final = ("kms:encryptioncontext:aws:s3:arn", "kms:encryptioncontextkeys")


def _region_of(key_arn: str | None) -> str | None:
    parts = (key_arn or "").split(":")
    return parts[3] if len(parts) > 5 and parts[2] == "kms" and parts[3] else None


def request_contexts(
    principal: str,
    action: str,
    key_arn: str | None,
    via: Sequence[str] = ("s3", "rekognition"),
    facts: RequestFacts = NO_FACTS,
) -> list[_Context]:
    """The request contexts KMS can see when Rekognition trains for ``principal`` (keys lower
    case). One per service in ``via`` that calls KMS on the principal's behalf. ``facts``: what
    the caller learnt of the principal beyond its ARN (its organization), ``None`` for a key the
    request does not carry; they are facts of the key's account, so they count only for a
    principal of that account."""
    parsed = parse_principal_arn(principal)
    key_account = account_of(key_arn) if key_arn else None
    region = _region_of(key_arn)
    known = facts if parsed is not None and parsed.account == key_account else NO_FACTS
    return [
        {
            **_identity_keys(principal, parsed),
            **_service_keys(service, region),
            **_action_keys(service, action),
            **{name.lower(): () if value is None else (value,) for name, value in known.items()},
        }
        for service in via
    ]


# A request context is put together from what each of these settles (later ones never name a key
# an earlier one names; the facts come last):
#
#   _identity_keys   the principal: its ARN, account and type; a service request over TLS
#   _service_keys    the service calling KMS for it: kms:ViaService and the key's region
#   _action_keys     the action: CreateGrant's grant-for-AWS-resource, S3's encryption context


def _identity_keys(principal: str, parsed: PrincipalArn | None) -> dict[str, tuple[str, ...] | _Unknown]:
    keys: dict[str, tuple[str, ...] | _Unknown] = {
        "aws:principalarn": (principal,),
        "aws:viaawsservice": ("true",),
        "aws:securetransport": ("true",),
        "aws:principalisawsservice": ("false",),
    }
    if parsed is not None:
        keys["aws:principalaccount"] = (parsed.account,)
        keys["kms:calleraccount"] = (parsed.account,)
        keys["aws:principaltype"] = ("AssumedRole" if parsed.kind == "role" else "User",)
    return keys


def _service_keys(service: str, region: str | None) -> dict[str, tuple[str, ...] | _Unknown]:
    if region is None:
        return {}
    return {"kms:viaservice": (f"{service}.{region}.amazonaws.com",), "aws:requestedregion": (region,)}


def _action_keys(service: str, action: str) -> dict[str, tuple[str, ...] | _Unknown]:
    keys: dict[str, tuple[str, ...] | _Unknown] = {}
    if action.lower() == "kms:creategrant":
        keys["kms:grantisforawsresource"] = ("true",)
    if service == "s3" and action.lower() in _S3_CONTEXT_ACTIONS:
        keys.update(dict.fromkeys(_S3_CONTEXT_KEYS, _Unknown.PRESENT))
    return keys


def _lookup(context: _Context, key: str) -> tuple[str, ...] | _Unknown | None:
    """The request's values of ``key``; None when absent; an _Unknown when not known."""
    name = key.lower()
    if name in context:
        return context[name] or None  # () is a key the caller knows the request does not carry
    if name in _ABSENT_KEYS or name == "kms:grantisforawsresource":
        return None
    return _ANY


def _value_matches(positive: str, request: str, wanted: str) -> bool:
    """Whether one request value matches one policy value under a positive operator (a negated
    one is evaluated as its positive form, then inverted)."""
    if positive in ("bool", "stringequalsignorecase"):
        return request.lower() == wanted.lower()
    if positive == "stringequals":
        return request == wanted
    if positive == "stringlike":
        return _iam_glob_exact(wanted).fullmatch(request) is not None
    return _arn_matches(wanted, request)  # arnequals, arnlike: the same matching (IAM User Guide)


def _arn_matches(pattern: str, arn: str) -> bool:
    """ArnEquals/ArnLike (and their negations): IAM compares each of the six colon-separated
    components separately, each may hold ``*`` and ``?``; a pattern or value with fewer components
    matches nothing. A wildcard cannot cross a colon, except in the last (resource) component,
    which may itself contain colons."""
    wanted = pattern.split(":", 5)
    found = arn.split(":", 5)
    if len(wanted) != 6 or len(found) != 6:
        return False
    return all(_iam_glob_exact(w).fullmatch(f) is not None for w, f in zip(wanted, found, strict=True))


@lru_cache(maxsize=1024)
def _iam_glob_exact(pattern: str) -> re.Pattern[str]:
    """Condition-value wildcards (StringLike, ArnLike): ``*`` and ``?``, case-sensitive."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL)


# --- one condition entry ------------------------------------------------------------------------
#
# Whether one ``Operator: {key: [values]}`` entry of a Deny's Condition can be true for a request
# context. An operator reads ``[ForAllValues:|ForAnyValue:]<base>[IfExists]`` (_parse_operator);
# then these checks, in order, and the first that decides, decides:
#
#   _unresolvable           a value with a policy variable (``${...}``), which IAM substitutes
#                           per request: it can match
#   _null_can_match         ``Null``: the key's presence, as far as the guard knows it
#   _is_modelled            an operator (or a value type) not modelled: it can match
#   (an _Unknown value)     a key whose values the guard cannot know: it can match
#   _absent_key_can_match   a key the request does not carry: ``...IfExists``, ``ForAllValues``
#                           and the negated operators match; nothing else does
#   _values_can_match       the request's values against the policy's, per set qualifier
#                           (_value_can_match: one request value, a negated operator inverted)


class _Operator(NamedTuple):
    """A condition operator, lower case: its set qualifier, its base operator, ``IfExists``."""

    qualifier: str  # "forallvalues:", "foranyvalue:" or ""
    base: str  # without qualifier and IfExists ("stringnotlike"); a bare "IfExists" leaves ""
    if_exists: bool


def _parse_operator(operator: str) -> _Operator:
    op = operator.lower()
    qualifier = next((q for q in _SET_OPERATORS if op.startswith(q)), "")
    op = op.removeprefix(qualifier)
    return _Operator(qualifier, op.removesuffix("ifexists"), op.endswith("ifexists"))


def _condition_can_match(operator: str, key: str, wanted: Json, context: _Context) -> bool:
    """Whether one ``operator: {key: wanted}`` entry can be true for ``context``."""
    op = _parse_operator(operator)
    values = as_list(wanted)
    if any(_unresolvable(v) for v in values):
        return True  # an IAM policy variable (${aws:PrincipalAccount}, ...): IAM substitutes it; assume a match
    found = _lookup(context, key)
    if op.base == "null":
        return _null_can_match(found, values)
    if not _is_modelled(op.base, values) or isinstance(found, _Unknown):
        return True
    if found is None:
        return _absent_key_can_match(op)
    return _values_can_match(op, found, values)


def _null_can_match(found: tuple[str, ...] | _Unknown | None, values: Sequence[Json]) -> bool:
    """``Null: true`` matches an absent key, ``Null: false`` a present one; a key that may be
    absent or present (_ANY) can match either."""
    if found is _ANY:
        return True
    present = found is not None
    return any(str(v).lower() == ("false" if present else "true") for v in values)


def _is_modelled(base: str, values: Sequence[Json]) -> bool:
    """The string, ARN and Bool operators, over string (or JSON boolean) values."""
    return base in _STRING_OPERATORS and all(isinstance(v, (str, bool)) for v in values)


def _absent_key_can_match(op: _Operator) -> bool:
    """IAM: ...IfExists and negated operators match an absent key; ForAllValues matches an empty
    set; everything else does not."""
    return op.if_exists or op.qualifier == "forallvalues:" or (op.base in _NEGATED and op.qualifier == "")


def _values_can_match(op: _Operator, found: tuple[str, ...], values: Sequence[Json]) -> bool:
    """ForAllValues: every request value matches; otherwise (ForAnyValue, or a single-valued
    key): one does."""
    texts = ["true" if v is True else "false" if v is False else str(v) for v in values]
    matches = (_value_can_match(op.base, request, texts) for request in found)
    return all(matches) if op.qualifier == "forallvalues:" else any(matches)


def _value_can_match(base: str, request: str, texts: Sequence[str]) -> bool:
    """One request value against the policy's: a hit on any of them under the positive form of
    the operator, inverted for a negated one."""
    positive = _POSITIVE_OF.get(base, base)
    hit = any(_value_matches(positive, request, w) for w in texts)
    return not hit if base in _NEGATED else hit


def _unresolvable(value: Json) -> bool:
    """An IAM policy variable (``${...}``): its value depends on the request, so it can match."""
    return isinstance(value, str) and "${" in value


def _deny_condition_can_match(condition: Json, contexts: Sequence[_Context]) -> bool:
    if not condition:
        return True
    if not isinstance(condition, Mapping):
        return True  # malformed: KMS would not have stored it; assume it applies
    for context in contexts:
        ok = True
        for operator, block in condition.items():
            if not isinstance(block, Mapping):
                continue  # malformed block: ignore it, which keeps the Deny applicable
            if not all(_condition_can_match(str(operator), str(k), v, context) for k, v in block.items()):
                ok = False
                break
        if ok:
            return True
    return False


def _deny_principal_covers(statement: Mapping[str, Json], arn: str) -> bool:
    parsed = parse_principal_arn(arn)
    names = {arn}
    if parsed is not None:
        names |= {parsed.account, f"arn:{parsed.partition}:iam::{parsed.account}:root"}
    sessions = f"arn:{parsed.partition}:sts::{parsed.account}:assumed-role/{parsed.name}/" if parsed else None

    def named(block: Json) -> bool:
        if block == "*":
            return True
        if not isinstance(block, Mapping):
            return False
        aws = [a for a in as_list(block.get("AWS")) if isinstance(a, str)]
        return any(a == "*" or a in names or _unresolvable(a) or (sessions and a.startswith(sessions)) for a in aws)

    if "NotPrincipal" in statement:
        # Everyone but the listed principals. An exception holds only when every identity IAM
        # checks is listed: the account and the user; for a role, also the assumed-role session
        # Rekognition's request carries, which no policy can know in advance (IAM: "NotPrincipal
        # with Deny" — list the session ARN too). So for a role it applies; in doubt, it applies.
        block = statement.get("NotPrincipal")
        if not isinstance(block, Mapping) or parsed is None or parsed.kind == "role":
            return True
        aws = {a for a in as_list(block.get("AWS")) if isinstance(a, str)}
        account_listed = bool(aws & {parsed.account, f"arn:{parsed.partition}:iam::{parsed.account}:root"})
        return not (arn in aws and account_listed)
    return named(statement.get("Principal"))


def _deny_action_covers(statement: Mapping[str, Json], action: str) -> bool:
    if "NotAction" in statement:
        return not _action_covers(statement.get("NotAction"), action)
    return _action_covers(statement.get("Action"), action)


def _deny_resource_covers(statement: Mapping[str, Json], key_arn: str | None) -> bool:
    field_name = "NotResource" if "NotResource" in statement else "Resource"
    patterns = [r for r in as_list(statement.get(field_name)) if isinstance(r, str)]
    if key_arn is None:
        return True  # the key is not known: in doubt, the Deny applies
    # A pattern with a policy variable may resolve to the key's ARN or not: the Deny may apply.
    if field_name == "Resource":
        return any(_unresolvable(r) or _iam_glob_exact(r).fullmatch(key_arn) for r in patterns)
    return not any(not _unresolvable(r) and _iam_glob_exact(r).fullmatch(key_arn) for r in patterns)


def blocking_denies(
    document: Mapping[str, Json],
    principal: str,
    specs: Sequence[StatementSpec],
    key_arn: str | None = None,
    *,
    facts: RequestFacts = NO_FACTS,
) -> tuple[str, ...]:
    """Labels (``Sid``, or ``Statement[i]`` when it has none) of the Deny statements that can
    cancel any action of ``specs`` for ``principal``, in policy order."""
    requests = [(action, spec.via) for spec in specs for action in spec.actions]
    out: list[str] = []
    for index, statement in enumerate(statements(document)):
        if statement.get("Effect") != "Deny":
            continue
        if not _deny_principal_covers(statement, principal) or not _deny_resource_covers(statement, key_arn):
            continue
        for action, via in requests:
            if not _deny_action_covers(statement, action):
                continue
            contexts = request_contexts(principal, action, key_arn, via, facts)
            if _deny_condition_can_match(statement.get("Condition"), contexts):
                sid = statement.get("Sid")
                out.append(sid if isinstance(sid, str) and sid else f"Statement[{index}]")
                break
    return tuple(out)


_ACCOUNT_ID: Final = re.compile(r"[0-9]{12}")


def unwritable_principals(document: Mapping[str, Json]) -> tuple[str, ...]:
    """The ``Principal.AWS`` values KMS refuses in any PutKeyPolicy, in policy order: neither
    ``*``, an account id nor an ARN. In practice the unique id (``AROA…``, ``AIDA…``) a key
    policy shows for a principal that was deleted: until it is removed, no write of the policy
    can succeed, and the guard never removes what it did not add."""
    found: dict[str, None] = {}
    for statement in statements(document):
        principal = statement.get("Principal")
        if not isinstance(principal, Mapping):
            continue
        for value in as_list(principal.get("AWS")):
            named = isinstance(value, str) and (value == "*" or value.startswith("arn:"))
            if isinstance(value, str) and not named and not _ACCOUNT_ID.fullmatch(value):
                found[value] = None
    return tuple(found)


def owned_statement(document: Mapping[str, Json], sid: str) -> Statement | None:
    return next((s for s in statements(document) if s.get("Sid") == sid), None)


# --- writing ----------------------------------------------------------------------------------


def assert_addable(principal: str, key_account: str, key_partition: str = "aws") -> None:
    """The last line of defence, below every guardrail check: only an IAM role or user ARN of
    the key's own partition and account can ever be written. Raises GuardrailViolation otherwise."""
    parsed = parse_principal_arn(principal)
    if parsed is None:
        raise GuardrailViolation(f"refusing to add {principal[:300]!r}: not an IAM role/user ARN")
    if parsed.partition != key_partition:
        raise GuardrailViolation(
            f"refusing to add {principal!r}: partition {parsed.partition} is not the key's {key_partition}"
        )
    if parsed.account != key_account:
        raise GuardrailViolation(
            f"refusing to add {principal!r}: account {parsed.account} is not the key's {key_account}"
        )


def _check_owned_shape(statement: Mapping[str, Json], spec: StatementSpec) -> None:
    """Build on an owned statement only if it is exactly what we would have written: the same
    actions (no more: a hand-widened ``kms:*`` must not pass to every principal we add), every
    resource, only AWS principals, the same condition."""
    actions = {a.lower() for a in as_list(statement.get("Action")) if isinstance(a, str)}
    principal = statement.get("Principal")
    ok = (
        statement.get("Effect") == "Allow"
        and not {"NotPrincipal", "NotAction", "NotResource"} & statement.keys()
        and actions == {a.lower() for a in spec.actions}
        and len(as_list(statement.get("Action"))) == len(actions)
        and as_list(statement.get("Resource")) == ["*"]
        and statement.get("Condition") == (dict(spec.condition) if spec.condition else None)
        and isinstance(principal, Mapping)
        and set(principal) == {"AWS"}
    )
    if not ok:
        raise PolicyConflict(
            f"statement {spec.sid!r} is not the one the remediator writes (effect, actions, resource, "
            "principal type or condition changed by hand); not editing it"
        )


@dataclass(frozen=True, slots=True)
class Merge:
    """The result of merging grants into a policy."""

    document: dict[str, Json]
    added: tuple[tuple[str, str], ...] = ()  # (sid, principal)
    before: dict[str, Statement | None] = field(default_factory=dict)
    after: dict[str, Statement] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added)


type Grant = tuple[str, Sequence[StatementSpec]]  # (principal ARN, the specs it needs)


def merge_grants(
    document: Mapping[str, Json],
    grants: Sequence[Grant],
    *,
    key_account: str,
    key_arn: str | None = None,
    key_partition: str | None = None,
    facts: RequestFacts = NO_FACTS,
) -> Merge:
    """Add each principal to each spec it lacks: appended to the owned statement's
    ``Principal.AWS`` list, or a new owned statement when there is none. Pure and idempotent.
    Raises GuardrailViolation (a principal that may never be added), DeniedByPolicy (a Deny of
    the policy cancels a grant: writing it would be useless) or PolicyConflict."""
    new = copy.deepcopy(dict(document))
    added: list[tuple[str, str]] = []
    before: dict[str, Statement | None] = {}
    # The key's partition: from its ARN when known, else as given (default: the aws partition).
    partition = (partition_of(key_arn) if key_arn else None) or key_partition or "aws"
    for principal, _ in grants:  # the guardrails first, for every grant: nothing is merged otherwise
        assert_addable(principal, key_account, partition)
    for principal, specs in grants:
        denied = blocking_denies(document, principal, specs, key_arn, facts=facts)
        if denied:
            raise DeniedByPolicy(principal, denied)
    for principal, specs in grants:
        for spec in specs:
            if is_allowed(new, principal, spec, key_arn):
                continue
            statement = owned_statement(new, spec.sid)
            if spec.sid not in before:
                before[spec.sid] = copy.deepcopy(statement)
            if statement is None:
                new["Statement"] = [*as_list(new.get("Statement")), spec.new_statement(principal)]
            else:
                _check_owned_shape(statement, spec)
                block = statement["Principal"]
                aws = as_list(block.get("AWS"))
                if principal not in aws:
                    block["AWS"] = [*aws, principal]
            added.append((spec.sid, principal))
    after = {sid: copy.deepcopy(s) for sid in before if (s := owned_statement(new, sid)) is not None}
    return Merge(document=new, added=tuple(added), before=before, after=after)


def serialize(document: Mapping[str, Json]) -> str:
    """The exact form sent to PutKeyPolicy: compact JSON, every non-ASCII character escaped
    (``\\uXXXX``). KMS accepts only printable ASCII, Latin-1, tab, LF and CR in a key policy, so a
    value that GetKeyPolicy returned escaped (CJK, emoji) must be sent escaped again; an escaped
    lone surrogate stays an escape instead of failing to encode."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True)


def size_in_bytes(document: Mapping[str, Json]) -> int:
    """The size KMS counts against its 32,768-byte limit: the bytes of exactly what is sent."""
    return len(serialize(document).encode("ascii"))


def parse(text: str) -> dict[str, Json]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a key policy is a JSON object")  # noqa: TRY004 - callers catch ValueError
    return value
