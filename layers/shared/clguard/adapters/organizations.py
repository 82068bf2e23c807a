"""AWS Organizations: the organization the deployment's own account belongs to.

Read only when a key policy's Deny depends on it (``aws:PrincipalOrgID``, ``aws:ResourceOrgID``:
the data-perimeter key policies), once per warm container.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from clguard.adapters.clients import client, translated
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
_memo = _Memo()


class OrganizationUnknown(Exception):
    """The organization could not be read (access denied, or another refusal): unknown."""


def _describe() -> str | None:
    try:
        with translated():
            response = client("organizations").describe_organization()
    except Refused as error:
        if error.code == NOT_IN_USE:
            return None  # the account is in no organization
        raise OrganizationUnknown(f"{error.code}: {error.message}") from error
    return str(response["Organization"]["Id"])


def own_organization(*, clock: Callable[[], float] = time.monotonic) -> str | None:
    """The id (``o-…``) of the own account's organization; None when it is in none. Raises
    OrganizationUnknown when it cannot be read (and, for a minute after, without asking again),
    and transient errors as they are (never cached)."""
    with _lock:
        if _memo.read:
            return _memo.organization
        if clock() < _memo.unknown_until:
            raise OrganizationUnknown(_memo.unknown_why)
    try:
        found = _describe()
    except OrganizationUnknown as unknown:
        with _lock:
            _memo.unknown_until, _memo.unknown_why = clock() + UNKNOWN_FOR_SECONDS, str(unknown)
        raise
    with _lock:
        _memo.read, _memo.organization = True, found
    return found


def forget() -> None:
    """Forget what was read (tests; a new container forgets by itself)."""
    global _memo  # noqa: PLW0603 - one memo per container, replaced whole
    with _lock:
        _memo = _Memo()
