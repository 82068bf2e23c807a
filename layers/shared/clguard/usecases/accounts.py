"""Many accounts, one guard (docs/architecture.md §2): which account a unit of work acts in.

A central deployment serves its own account and ``MEMBER_ACCOUNTS``. Work for a member runs
inside ``clients.acting_in(member_of(settings))``: its S3, KMS and Rekognition calls use the
member role (assumed once per member and warm container), with the member's guardrails
(``Settings.for_account``). Work for any other account changes nothing and assumes nothing.
"""

from __future__ import annotations

from clguard.adapters.clients import Member
from clguard.boundary.config import Settings


def member_of(settings: Settings) -> Member | None:
    """The member role to act through for ``settings``' account; None for the deployment's own."""
    if settings.account_id == settings.home:
        return None
    return Member(settings.account_id, settings.member_role_arn(settings.account_id))
