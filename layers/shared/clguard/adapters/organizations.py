"""AWS Organizations: the organization the account acted in belongs to.

Read only when a key policy's Deny depends on it (``aws:PrincipalOrgID``, ``aws:ResourceOrgID``:
the data-perimeter key policies), once per account and warm container. A member account's is
read with that member's own role (DescribeOrganization answers for the caller's account): the
organization is proven by the account itself, never lent from the central account's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from clguard.adapters.clients import Member, client, member_client, translated
from clguard.errors import Refused

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {"DescribeOrganization": ("organizations:DescribeOrganization",)}

NOT_IN_USE: Final = "AWSOrganizationsNotInUseException"
# A refused read is tried again after this long, not on every batch (an SCP may deny it for good).
UNKNOWN_FOR_SECONDS: Final = 60.0


@dataclass(slots=True)
class _Memo:
    """What this container learnt: the organization (once read), or why it is unknown, until when."""

    read: bool = False
    organization: str | None = None
    unknown_until: float = 0.0
    unknown_why: str = ""


_lock = threading.Lock()
_memos: dict[str, _Memo] = {}  # "" = the own account; else a member's (bounded by the accounts served)


class OrganizationUnknown(Exception):
    """The organization could not be read (access denied, or another refusal): unknown."""


def _describe(member: Member | None) -> str | None:
    service = client("organizations") if member is None else member_client(member, "organizations")
    try:
        with translated():
            response = service.describe_organization()
    except Refused as error:
        if error.code == NOT_IN_USE:
            return None  # the account is in no organization
        raise OrganizationUnknown(f"{error.code}: {error.message}") from error
    return str(response["Organization"]["Id"])


def own_organization(*, member: Member | None = None, clock: Callable[[], float] = time.monotonic) -> str | None:
    """The id (``o-…``) of the organization of the own account (or of ``member``'s, read with its
    role); None when it is in none. Raises OrganizationUnknown when it cannot be read (and, for a
    minute after, without asking again), and transient errors as they are (never cached)."""
    name = member.account if member is not None else ""
    with _lock:
        memo = _memos.setdefault(name, _Memo())
        if memo.read:
            return memo.organization
        if clock() < memo.unknown_until:
            raise OrganizationUnknown(memo.unknown_why)
    try:
        found = _describe(member)
    except OrganizationUnknown as unknown:
        with _lock:
            memo.unknown_until, memo.unknown_why = clock() + UNKNOWN_FOR_SECONDS, str(unknown)
        raise
    with _lock:
        memo.read, memo.organization = True, found
    return found


def forget() -> None:
    """Forget what was read (tests; a new container forgets by itself)."""
    with _lock:
        _memos.clear()
