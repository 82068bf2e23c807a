"""An independent reading of IAM's evaluation of one key policy for one concrete request, written
from the IAM User Guide ("Policy evaluation logic", "IAM JSON policy elements: Condition
operators", "Policy variables") without using clguard.rules: the oracle the key-policy tests
compare the guard's evaluator against.

The guard reasons about requests it cannot fully know (a key may be absent or hold any value);
this oracle decides one fully known request. A test draws concrete requests consistent with what
the guard knows and checks: whenever the oracle says KMS denies, the guard never says granted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

type Values = tuple[str, ...]


@dataclass(frozen=True)
class Request:
    """One request KMS authorizes: who (with every identity IAM matches a Principal against),
    what, on which key, and its request context (condition keys in lower case; a key not in
    ``context`` is absent)."""

    identities: frozenset[str]  # e.g. the role ARN, its session ARN, the account id and root ARN
    # What a NotPrincipal must list to exclude the caller (IAM User Guide, NotPrincipal with Deny):
    # one name of each group (the user; or the role and its session; and the account).
    chain: tuple[frozenset[str], ...]
    action: str
    resource: str
    context: Mapping[str, Values] = field(default_factory=dict)


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def substitute(text: str, context: Mapping[str, Values]) -> str | None:
    """A policy string with its ``${...}`` variables replaced from the request; None when a
    variable names a key the request lacks or holds several values (then the element does not
    match). ``${*}``, ``${?}`` and ``${$}`` stand for the literal characters."""
    missing = False

    def one(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1).strip()
        if name in ("*", "?", "$"):
            return "\0" + name  # a literal character, protected from the wildcard reading below
        values = context.get(name.lower())
        if not values or len(values) != 1:
            missing = True
            return ""
        return values[0].replace("*", "\0*").replace("?", "\0?")

    out = _VARIABLE.sub(one, text)
    return None if missing else out


def glob(pattern: str, text: str, *, case: bool = True, colon: bool = True) -> bool:
    """IAM wildcards: ``*`` any run, ``?`` one character (a ``\\0``-protected one is literal).
    ``colon=False``: a wildcard does not match ``:``."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\0" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            parts.append(".*" if colon else "[^:]*")
        elif c == "?":
            parts.append("." if colon else "[^:]")
        else:
            parts.append(re.escape(c))
        i += 1
    flags = re.DOTALL | (0 if case else re.IGNORECASE)
    return re.fullmatch("".join(parts), text, flags) is not None


def arn_like(pattern: str, arn: str) -> bool:
    """ArnEquals and ArnLike alike: six colon-separated components, each compared on its own."""
    p, a = pattern.split(":", 5), arn.split(":", 5)
    if len(p) != 6 or len(a) != 6:
        return False
    return all(glob(x, y, colon=i < 5) for i, (x, y) in enumerate(zip(p, a, strict=True)))


_POSITIVE = {
    "stringequals": lambda want, got: want == got,
    "stringequalsignorecase": lambda want, got: want.lower() == got.lower(),
    "stringlike": glob,
    "arnequals": arn_like,
    "arnlike": arn_like,
    "bool": lambda want, got: want.lower() == got.lower(),
}
_NEGATIONS = {
    "stringnotequals": "stringequals",
    "stringnotequalsignorecase": "stringequalsignorecase",
    "stringnotlike": "stringlike",
    "arnnotequals": "arnequals",
    "arnnotlike": "arnlike",
}


class Unmodelled(Exception):
    """An operator this oracle does not read: the test must not generate it."""


def condition_entry(operator: str, key: str, wanted: Any, context: Mapping[str, Values]) -> bool:
    op = operator.lower()
    qualifier = ""
    for q in ("forallvalues:", "foranyvalue:"):
        if op.startswith(q):
            qualifier, op = q, op[len(q) :]
    if_exists = op.endswith("ifexists")
    op = op.removesuffix("ifexists")
    got = context.get(key.lower())
    wants = [str(w).lower() if isinstance(w, bool) else str(w) for w in _listed(wanted)]
    if op == "null":
        return any((w.lower() == "true") == (got is None) for w in wants)
    negated = op in _NEGATIONS
    compare = _POSITIVE.get(_NEGATIONS.get(op, op))
    if compare is None:
        raise Unmodelled(operator)
    if got is None:  # the key is absent from the request
        if if_exists or qualifier == "forallvalues:":
            return True
        return negated and qualifier == ""

    def value_ok(value: str) -> bool:
        hit = False
        for w in wants:
            resolved = substitute(w, context)
            if resolved is not None and compare(resolved, value):
                hit = True
        return not hit if negated else hit

    if qualifier == "forallvalues:":
        return all(value_ok(v) for v in got)
    return any(value_ok(v) for v in got)


def conditions_hold(condition: Any, context: Mapping[str, Values]) -> bool:
    if not condition:
        return True
    return all(
        condition_entry(operator, key, wanted, context)
        for operator, block in condition.items()
        for key, wanted in block.items()
    )


def _principal_names(block: Any) -> list[str]:
    if block == "*":
        return ["*"]
    if isinstance(block, Mapping):
        return [a for a in _listed(block.get("AWS")) if isinstance(a, str)]
    return []


def applies(statement: Mapping[str, Any], request: Request) -> bool:
    """Whether a statement matches the request (its effect aside)."""
    if "NotPrincipal" in statement:
        listed = set(_principal_names(statement["NotPrincipal"]))
        if "*" in listed or all(group & listed for group in request.chain):
            return False
    else:
        names = _principal_names(statement.get("Principal"))
        if "*" not in names and not request.identities & set(names):
            return False
    if "NotAction" in statement:
        if any(glob(a, request.action, case=False) for a in _listed(statement["NotAction"])):
            return False
    elif not any(glob(a, request.action, case=False) for a in _listed(statement.get("Action"))):
        return False
    field_name = "NotResource" if "NotResource" in statement else "Resource"
    hit = False
    for pattern in _listed(statement.get(field_name)):
        resolved = substitute(pattern, request.context)
        if resolved is not None and glob(resolved, request.resource):
            hit = True
    if hit != (field_name == "Resource"):
        return False
    return conditions_hold(statement.get("Condition"), request.context)


def allowed(document: Mapping[str, Any], request: Request) -> bool:
    """IAM's answer for a key policy alone: an explicit Deny wins; else an Allow is needed."""
    found = [s for s in _listed(document.get("Statement")) if isinstance(s, Mapping)]
    if any(s.get("Effect") == "Deny" and applies(s, request) for s in found):
        return False
    return any(s.get("Effect") == "Allow" and applies(s, request) for s in found)


def denied_by(statement: Mapping[str, Any], request: Request) -> bool:
    return statement.get("Effect") == "Deny" and applies(statement, request)
