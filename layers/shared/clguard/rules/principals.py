"""Who may be added to a key policy (guardrails, docs/architecture.md §6) and who called
(CloudTrail ``userIdentity``, docs/architecture.md §7)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from clguard.boundary.parsing import said_text
from clguard.rules.arns import parse_principal_arn


def matches_patterns(arn: str, patterns: Iterable[str]) -> bool:
    """Shell-style globs, case-sensitive on every platform (fnmatchcase, not fnmatch)."""
    return any(fnmatchcase(arn, pattern) for pattern in patterns)


def refusal_reason(arn: str | None, *, key_account: str, key_partition: str, patterns: Iterable[str]) -> str | None:
    """None when ``arn`` may be added to a policy of a key in ``key_account`` of ``key_partition``;
    else why not.

    The hard rules come first and hold whatever the patterns say: no wildcard, no root or
    account principal, no service principal, nothing but an IAM role/user ARN, same partition,
    same account.
    """
    if not arn:
        return "the caller has no IAM principal that a key policy can name (root or unresolvable)"
    if "*" in arn or "?" in arn:
        return f"{arn!r} is a wildcard"
    if arn.endswith(":root") or arn.isdigit():
        return f"{arn!r} is an account root principal"
    if arn.endswith(".amazonaws.com") or arn.endswith(".amazonaws.com.cn"):
        return f"{arn!r} is a service principal"
    parsed = parse_principal_arn(arn)
    if parsed is None:
        return f"{arn[:300]!r} is not an IAM role or user ARN"
    if parsed.partition != key_partition:
        return f"{arn!r} is in partition {parsed.partition}, not the key's partition {key_partition}"
    if parsed.account != key_account:
        return f"{arn!r} belongs to account {parsed.account}, not the key's account {key_account}"
    if not matches_patterns(arn, patterns):
        return f"{arn!r} matches none of ALLOWED_PRINCIPAL_PATTERNS"
    return None


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal a CloudTrail record's caller needs in a key policy, if any."""

    identity_type: str
    principal_arn: str | None
    note: str


def _issuer_role(identity: Mapping[str, Any]) -> str | None:
    context = identity.get("sessionContext")
    if not isinstance(context, Mapping):
        return None
    issuer = context.get("sessionIssuer")
    if not isinstance(issuer, Mapping):
        return None
    arn = said_text(issuer.get("arn"))
    if arn is None or str(issuer.get("type", "Role")) != "Role":
        return None
    return arn


def resolve_caller(identity: Any) -> Caller:
    """docs/architecture.md §7. AssumedRole → the session issuer role ARN *with its path* (never the sts ARN)."""
    if not isinstance(identity, Mapping):
        return Caller("missing", None, "the record has no userIdentity")
    kind = said_text(identity.get("type")) or "unknown"
    if kind == "AssumedRole":
        role = _issuer_role(identity)
        note = "session issuer role" if role else "assumed role without a session issuer"
        return Caller(kind, role, note)
    if kind == "IAMUser":
        arn = said_text(identity.get("arn"))
        return Caller(kind, arn, "IAM user")
    if kind == "Root":
        return Caller(kind, None, "root user: never added to a key policy")
    role = _issuer_role(identity)
    if role:
        return Caller(kind, role, f"session issuer role of a {kind} identity")
    return Caller(kind, None, f"{kind} identity without a session issuer role")
