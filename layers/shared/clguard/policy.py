"""Pure key-policy logic (design §6). No I/O: every function takes and returns plain JSON values.

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
from typing import Any, Final

from clguard.arns import parse_principal_arn
from clguard.errors import GuardrailViolation, PolicyConflict

MAX_POLICY_BYTES: Final = 32_768

type Json = Any
type Statement = dict[str, Json]


@dataclass(frozen=True, slots=True)
class StatementSpec:
    """One statement the remediator owns: its Sid, the actions it allows, its condition."""

    sid: str
    actions: tuple[str, ...]
    condition: Mapping[str, Json] | None = None

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


TRAINING_DATA: Final = StatementSpec("CustomLabelsGuardTrainingData", ("kms:Decrypt", "kms:GenerateDataKey"))
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


def is_granted(document: Mapping[str, Json], principal: str, spec: StatementSpec, key_arn: str | None = None) -> bool:
    """True when every action of ``spec`` is allowed to ``principal`` by some Allow statement
    without a condition (or with exactly the spec's own condition, which only narrows CreateGrant
    to AWS-service grants)."""
    found = statements(document)
    return all(any(_allows(s, principal, action, spec.condition, key_arn) for s in found) for action in spec.actions)


def missing(
    document: Mapping[str, Json],
    principal: str,
    specs: Sequence[StatementSpec],
    key_arn: str | None = None,
) -> tuple[StatementSpec, ...]:
    """Specs not yet granted, evaluated in order as if the earlier ones had been added."""
    work = copy.deepcopy(dict(document))
    out = []
    for spec in specs:
        if not is_granted(work, principal, spec, key_arn):
            out.append(spec)
            work.setdefault("Statement", [])
            work["Statement"] = [*as_list(work["Statement"]), spec.new_statement(principal)]
    return tuple(out)


def owned_statement(document: Mapping[str, Json], sid: str) -> Statement | None:
    return next((s for s in statements(document) if s.get("Sid") == sid), None)


# --- writing ----------------------------------------------------------------------------------


def assert_addable(principal: str, key_account: str) -> None:
    """The last line of defence, below every guardrail check: only an IAM role or user ARN of
    the key's own account can ever be written. Raises GuardrailViolation otherwise."""
    parsed = parse_principal_arn(principal)
    if parsed is None:
        raise GuardrailViolation(f"refusing to add {principal[:300]!r}: not an IAM role/user ARN")
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
) -> Merge:
    """Add each principal to each spec it lacks: appended to the owned statement's
    ``Principal.AWS`` list, or a new owned statement when there is none. Pure and idempotent."""
    new = copy.deepcopy(dict(document))
    added: list[tuple[str, str]] = []
    before: dict[str, Statement | None] = {}
    for principal, specs in grants:
        assert_addable(principal, key_account)
        for spec in specs:
            if is_granted(new, principal, spec, key_arn):
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
    """The exact form sent to PutKeyPolicy: compact JSON (non-ASCII kept as UTF-8)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def size_in_bytes(document: Mapping[str, Json]) -> int:
    return len(serialize(document).encode("utf-8"))


def parse(text: str) -> dict[str, Json]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a key policy is a JSON object")  # noqa: TRY004 - callers catch ValueError
    return value
