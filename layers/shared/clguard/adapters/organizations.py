"""AWS Organizations: the organization the deployment's own account belongs to.

Read only when a key policy's Deny depends on it (``aws:PrincipalOrgID``, ``aws:ResourceOrgID``:
the data-perimeter key policies), once per warm container.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

from clguard.adapters.clients import client, translated
from clguard.errors import Refused

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {"DescribeOrganization": ("organizations:DescribeOrganization",)}

NOT_IN_USE: Final = "AWSOrganizationsNotInUseException"
# A refused read is tried again after this long, not on every batch (an SCP may deny it for good).
UNKNOWN_FOR_SECONDS: Final = 60.0

_lock = threading.Lock()
_known: dict[str, str | None] = {}
_unknown: dict[str, tuple[float, str]] = {}  # "own" -> (until, why)


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
        if "own" in _known:
            return _known["own"]
        until, why = _unknown.get("own", (0.0, ""))
        if clock() < until:
            raise OrganizationUnknown(why)
    try:
        found = _describe()
    except OrganizationUnknown as unknown:
        with _lock:
            _unknown["own"] = (clock() + UNKNOWN_FOR_SECONDS, str(unknown))
        raise
    with _lock:
        _known["own"] = found
    return found


def forget() -> None:
    """Forget what was read (tests; a new container forgets by itself)."""
    with _lock:
        _known.clear()
        _unknown.clear()
