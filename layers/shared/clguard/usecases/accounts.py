"""Many accounts, one guard (docs/architecture.md §2): which account a unit of work acts in, and
with which settings.

A central deployment serves its own account and ``MEMBER_ACCOUNTS``. Work for a member runs
inside ``clients.acting_in(member_of(settings))``: its S3, KMS and Rekognition calls use the
member role (assumed once per member and warm container), with the member's guardrails
(``Settings.for_account``) and what the member declares about itself in its member stack
(``clguard.boundary.declaration``: its buckets, its own re-encryption key, its trainers), read
through that member role once per ``DECLARATION_SECONDS`` and warm container. Work for any other
account changes nothing and assumes nothing.

With ``MEMBER_OU`` the members are also the active accounts of that organizational unit and of
every OU below it (``with_organization``): listed with the function's own role (the central
account must be the organization's management account or a delegated administrator), once per
``OU_LISTING_SECONDS`` and warm container, and only when needed (an account not otherwise served,
the audit's run). A listing that fails keeps the last good one (for ``OU_UNREADABLE_SECONDS``),
or serves MEMBER_ACCOUNTS alone, with an ERROR line and ``MemberUnitUnreadable``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from clguard.adapters import declarations, organizations
from clguard.adapters.clients import Member
from clguard.boundary.config import Settings
from clguard.boundary.declaration import PARAMETER_NAME, Declaration, InvalidDeclaration, parse_declaration
from clguard.errors import Refused
from clguard.observability import count, logger

# A changed declaration takes effect within this long, without a redeploy of the centre.
DECLARATION_SECONDS: Final = 300.0


def member_of(settings: Settings) -> Member | None:
    """The member role to act through for ``settings``' account; None for the deployment's own."""
    if settings.account_id == settings.home:
        return None
    return Member(settings.account_id, settings.member_role_arn(settings.account_id))


@dataclass(frozen=True, slots=True)
class _Read:
    declaration: Declaration | None
    until: float
    problem: str = ""  # why there is none: the declaration is invalid or unreadable


_lock = threading.Lock()
_declarations: dict[str, _Read] = {}  # bounded: one entry per account served (MEMBER_ACCOUNTS)


def declared(settings: Settings, account: str, *, clock: Callable[[], float] = time.monotonic) -> Declaration | None:
    """What member ``account`` declares about itself (None: nothing, or nothing valid; the reason
    is logged and counted). Raises MemberUnreachable when its role cannot be assumed, and
    transient errors as they are (never cached)."""
    with _lock:
        found = _declarations.get(account)
    if found is not None and clock() < found.until:
        return found.declaration
    member = Member(account, settings.member_role_arn(account))
    declaration: Declaration | None = None
    problem = ""
    try:
        raw = declarations.read(member)
        if raw is not None:
            declaration = parse_declaration(raw, account)
    except InvalidDeclaration as invalid:
        problem = f"its declaration is invalid: {invalid}"
        logger.error("member declaration ignored: invalid", extra={"account": account, "problem": str(invalid)})
        count("MemberDeclarationsInvalid")
    except Refused as refused:
        problem = f"its declaration ({PARAMETER_NAME}) could not be read: {refused.code}"
        logger.warning(
            "member declaration unreadable; its central settings apply",
            extra={"account": account, "code": refused.code},
        )
        count("MemberDeclarationsUnreadable")
    with _lock:
        if len(_declarations) > 4 * (len(settings.member_accounts) + 1):
            _declarations.clear()  # accounts no longer served: never grows without bound
        _declarations[account] = _Read(declaration, clock() + DECLARATION_SECONDS, problem)
    return declaration


def declaration_problem(account: str) -> str:
    """Why the last read of ``account``'s declaration gave none ("" when it was read, or absent)."""
    with _lock:
        found = _declarations.get(account)
    return found.problem if found is not None else ""


# MEMBER_OU: a new account of the OU is served within this long (per warm container); a listing
# that fails is tried again after OU_UNREADABLE_SECONDS. The listing is bounded (in memory).
OU_LISTING_SECONDS: Final = 900.0
OU_UNREADABLE_SECONDS: Final = 60.0
MAX_OU_ACCOUNTS: Final = 10_000
MAX_OU_UNITS: Final = 1_000


@dataclass(frozen=True, slots=True)
class _Listing:
    unit: str
    accounts: frozenset[str]
    until: float


_listing: list[_Listing] = []  # at most one: the configured OU's last listing


def organization_members(settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> frozenset[str]:
    """The active accounts of MEMBER_OU and its child OUs, the deployment's own left out (empty
    without MEMBER_OU). Transient errors are raised as they are (the unit of work retries)."""
    unit = settings.member_ou
    if not unit:
        return frozenset()
    with _lock:
        last = next((found for found in _listing if found.unit == unit), None)
    if last is not None and clock() < last.until:
        return last.accounts
    try:
        listed = organizations.active_accounts_under(unit, max_accounts=MAX_OU_ACCOUNTS, max_units=MAX_OU_UNITS)
        found = _Listing(unit, frozenset(listed) - {settings.home}, clock() + OU_LISTING_SECONDS)
    except (Refused, organizations.UnitTooLarge) as error:
        kept = last.accounts if last is not None else frozenset()
        logger.error(
            "the member organizational unit could not be listed: its accounts are not served "
            "(the central account must be the management account or a delegated administrator, "
            "with organizations:ListAccountsForParent and organizations:ListChildren)",
            extra={"member_ou": unit, "error": str(error), "accounts_kept": len(kept)},
        )
        count("MemberUnitUnreadable")
        found = _Listing(unit, kept, clock() + OU_UNREADABLE_SECONDS)
    with _lock:
        _listing[:] = [found]
    return found.accounts


def with_organization(settings: Settings) -> Settings:
    """``settings`` serving MEMBER_OU's accounts too (unchanged without MEMBER_OU)."""
    members = organization_members(settings)
    if members <= settings.member_accounts:
        return settings
    return replace(settings, member_accounts=settings.member_accounts | members)


def settings_for(settings: Settings, account: str) -> Settings | None:
    """The settings for work in ``account`` (None: not served): the member's declaration applied."""
    if not settings.serves(account) and settings.member_ou:
        settings = with_organization(settings)  # an account of MEMBER_OU, perhaps
    if not settings.serves(account):
        return None
    if account == settings.home:
        return settings.for_account(account)
    return settings.for_account(account, declared(settings, account))


def forget() -> None:
    """Forget the declarations read (tests; a new container forgets by itself)."""
    with _lock:
        _declarations.clear()
        _listing.clear()
