"""AWS Organizations: the organization the account acted in belongs to; the accounts of an OU.

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

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "DescribeOrganization": ("organizations:DescribeOrganization",),
    # MEMBER_OU: the member accounts of an organizational unit (the management account or a
    # delegated administrator only; granted by the template only when the OU is set).
    "ListAccountsForParent": ("organizations:ListAccountsForParent",),
    "ListChildren": ("organizations:ListChildren",),
}

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


class UnitTooLarge(Exception):
    """The organizational unit holds more accounts (or child OUs) than one listing may keep."""


def active_accounts_under(unit: str, *, max_accounts: int, max_units: int) -> list[str]:
    """The ACTIVE accounts of organizational unit ``unit`` and of every OU below it (the whole
    subtree, as a StackSet's auto-deployment to the OU covers it), with the function's own
    credentials. Raises UnitTooLarge past ``max_accounts`` accounts or ``max_units`` OUs (the
    listing is kept in memory), the project's errors for AWS's refusals (the OU does not exist,
    the caller is neither the management account nor a delegated administrator)."""
    service = client("organizations")
    accounts: list[str] = []
    pending, units = [unit], 0
    with translated():
        while pending:
            parent = pending.pop()
            units += 1
            if units > max_units:
                raise UnitTooLarge(f"more than {max_units} organizational units under {unit}")
            for page in service.get_paginator("list_accounts_for_parent").paginate(ParentId=parent):
                for account in page.get("Accounts", []):
                    if str(account.get("State") or account.get("Status") or "") != "ACTIVE":
                        continue
                    accounts.append(str(account["Id"]))
                    if len(accounts) > max_accounts:
                        raise UnitTooLarge(f"more than {max_accounts} active accounts under {unit}")
            for page in service.get_paginator("list_children").paginate(
                ParentId=parent, ChildType="ORGANIZATIONAL_UNIT"
            ):
                pending += [str(child["Id"]) for child in page.get("Children", [])]
    return accounts


def forget() -> None:
    """Forget what was read (tests; a new container forgets by itself)."""
    with _lock:
        _memos.clear()
