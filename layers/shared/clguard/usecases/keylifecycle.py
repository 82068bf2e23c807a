"""A KMS key disabled or scheduled for deletion closes its open Security Hub findings at once
(docs/architecture.md §5a), not when the key is next used or when their record expires (90 days).

Two ways in, one closing path: ``Publisher.key_unusable`` (``SecurityHubOutput.key_unusable``), the
one the grant path uses when a training call meets such a key. A key's access findings (per
principal) are archived; its KEY_UNUSABLE, when one is open, stays open (it is still true).

- **The event.** A CloudTrail ``ScheduleKeyDeletion`` or ``DisableKey`` (``KeyLifecycleRule``,
  to the grant function; a member's is forwarded by its member stack, as its training calls are).
  The record is not believed: the key is re-read (DescribeKey, never from a cache) as the event's
  account -- a member's through its role -- and only a key KMS says is pending deletion, disabled
  or gone closes anything; a key still enabled (a failed or forged call) closes nothing. A key
  named in another account than the event's, or another region than the deployment's, is never
  read (ignored, counted). ``CancelKeyDeletion`` and ``EnableKey`` are not routed: a cancelled
  deletion leaves the key Disabled (nothing more to close), and a key enabled again is decided
  afresh by the next event or audit that meets it (its KEY_UNUSABLE closed by ``key_decided``,
  an access finding raised again, and reopened in Security Hub, if the access is still missing).
- **The audit's sweep.** When a run finalizes, the keys with open findings (the per-account index
  of :mod:`clguard.state.openfindings`) that the run's checks did not meet are re-read and closed
  the same way: at most MAX_SWEPT keys a run over all accounts, a window of each account's sorted
  index starting at a point derived from the run id (so successive runs cover different keys of
  an index larger than the bound). A key whose record has expired leaves the index unread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters import clients
from clguard.boundary.config import Settings
from clguard.boundary.events import parse_key_state_change
from clguard.errors import AwsError, MemberUnreachable, RetryableError
from clguard.observability import count, logger
from clguard.reporting.publisher import Publisher
from clguard.rules.arns import KEY_ID_RE, parse_key_arn, partition_of_region
from clguard.state import openfindings
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases.accounts import member_of, settings_for

MAX_SWEPT: Final = 100  # keys re-read by one audit run's sweep, over all accounts


@dataclass(frozen=True, slots=True)
class KeySeen:
    """A key as KMS shows it now, and whether its open findings are closed for it."""

    key: str
    state: str  # KeyState, "deleted", or why it could not be told
    closing: bool


def _key_arn(reference: str, account: str, region: str) -> str | None:
    """The ARN a reference names in ``account``: itself, or a bare key id's; None for an alias."""
    if parse_key_arn(reference) is not None:
        return reference
    if KEY_ID_RE.fullmatch(reference):
        return f"arn:{partition_of_region(region)}:kms:{region}:{account}:key/{reference}"
    return None


def reread_and_close(publisher: Publisher, reference: str, *, account: str, region: str) -> KeySeen:
    """Re-read the key (DescribeKey, fresh, in the account acted in) and, when KMS says it is
    pending deletion, disabled or gone, close its open findings at the publisher's flush. Raises
    transient errors (the caller retries)."""
    lookup = KeyDirectory(fresh=True).lookup(reference)
    key = lookup.key
    if key is None:
        arn = _key_arn(reference, account, region) if lookup.not_found else None
        if arn is None:
            return KeySeen(reference, f"not told: {lookup.problem}", False)
        return KeySeen(
            arn, "deleted", publisher.key_unusable(arn, None, not_found=True, account=account, region=region)
        )
    if key.account != account:
        return KeySeen(key.arn, f"a key of account {key.account}", False)
    closing = publisher.key_unusable(key.arn, key.state, not_found=False, account=account, region=region)
    return KeySeen(key.arn, key.state, closing)


def _seen(seen: KeySeen, **where: str) -> None:
    extra = {"key": seen.key, "state": seen.state, **where}
    if seen.closing:
        count("KeysFoundUnusable")
        logger.info("key unusable: its open findings are closed", extra=extra)
    elif seen.state.startswith("not told"):  # KMS refused to describe it (not transiently): its findings stay open
        count("KeysUnreadable")
        logger.warning("key could not be re-read: its open findings stay open", extra=extra)
    else:
        logger.info("key re-read: nothing to close", extra=extra)


# --- the event ---------------------------------------------------------------------------------


def handle_key_event(event: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """A ``ScheduleKeyDeletion`` or ``DisableKey`` CloudTrail event -> a JSON-serialisable summary."""
    change = parse_key_state_change(event)
    logger.set_correlation_id(change.event_id)
    summary: dict[str, Any] = {
        "event_id": change.event_id,
        "event_name": change.event_name,
        "status": "ignored",
        "key": change.key,
        "state": None,
        "closed": 0,
    }
    named = parse_key_arn(change.key)
    reason = None
    account_settings = None
    # What the event itself says is checked first: nothing is read or assumed for a key that is
    # not the event's account's, in this region.
    if not settings.security_hub:
        reason = "SECURITY_HUB is off: there are no Security Hub findings to close"
    elif change.region != settings.region or (named is not None and named.region != settings.region):
        reason = f"the key is not in this deployment's region {settings.region}"
    elif named is not None and named.account != change.account:
        reason = f"the key belongs to account {named.account}, not to the event's account {change.account}"
        count("EventsForeignAccount")
    elif (account_settings := settings_for(settings, change.account)) is None:
        reason = f"account {change.account} is neither this deployment's nor one of MEMBER_ACCOUNTS"
        count("EventsForeignAccount")
    if reason is not None or account_settings is None:
        logger.warning("key event ignored: nothing read, nothing closed", extra={"reason": reason, "key": change.key})
        count("EventsIgnored")
        return {**summary, "reason": reason}
    with clients.acting_in(member_of(account_settings)):
        publisher = Publisher(account_settings)
        seen = reread_and_close(publisher, change.key, account=change.account, region=settings.region)
        publisher.flush()
    _seen(seen, event_name=change.event_name, account=change.account)
    closed = publisher.security_hub.closed if publisher.security_hub is not None else 0
    return {**summary, "status": "processed", "key": seen.key, "state": seen.state, "closed": closed, "reason": ""}


# --- the audit's sweep ---------------------------------------------------------------------------


@dataclass(slots=True)
class Sweep:
    """What one run's sweep did (for its report's notes)."""

    reread: int = 0
    unusable: int = 0
    closed: int = 0
    expired: int = 0  # indexed keys whose record had expired: left the index unread
    left: int = 0  # keys with open findings beyond MAX_SWEPT: for the next runs
    notes: list[str] = field(default_factory=list)

    def note(self) -> str | None:
        if not (self.reread or self.left or self.notes):
            return None
        text = (
            f"Security Hub: {self.reread} key(s) with open findings that this run did not meet were re-read; "
            f"{self.unusable} pending deletion, disabled or deleted, {self.closed} finding(s) closed"
        )
        if self.left:
            text += f"; {self.left} more beyond the bound of {MAX_SWEPT} a run, for the next runs"
        return "; ".join([text, *self.notes])


def _window(keys: list[str], run_id: str, size: int) -> list[str]:
    """``size`` consecutive keys of the sorted ``keys`` (wrapping), from a start the run id picks."""
    if len(keys) <= size:
        return keys
    start = int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) % len(keys)
    return (keys[start:] + keys[:start])[:size]


def sweep(settings: Settings, run_id: str, met: Iterable[str]) -> Sweep:
    """The keys with open findings the run did not meet, re-read (bounded), closed when unusable.
    Never raises: an account or key that cannot be read is noted and counted."""
    out = Sweep()
    if not settings.security_hub:
        return out
    publisher = Publisher(settings)
    met_keys = frozenset(met)
    budget = MAX_SWEPT
    for account in [settings.home, *sorted(settings.member_accounts - {settings.home})]:
        try:
            indexed = openfindings.indexed_keys(settings.state_table, account, settings.region)
            candidates = sorted(k for k in indexed - met_keys if (p := parse_key_arn(k)) and p.account == account)
            window = _window(candidates, run_id, budget)
            out.left += len(candidates) - len(window)
            recorded = openfindings.open_findings_of(
                settings.state_table, [(account, settings.region, k) for k in window]
            )
        except AwsError as error:
            out.notes.append(f"the keys of account {account} could not be swept ({str(error)[:200]})")
            continue
        live = [k for k in window if (account, settings.region, k) in recorded]
        expired = [k for k in window if k not in live]
        if expired:
            out.expired += len(expired)
            try:
                openfindings.unindex(settings.state_table, account, settings.region, expired)
            except AwsError as error:
                logger.warning("security hub: could not unindex expired keys", extra={"error": str(error)})
        budget -= len(live)
        member = None if account == settings.home else clients.Member(account, settings.member_role_arn(account))
        try:
            with clients.acting_in(member):
                for key in live:
                    out.reread += 1
                    try:
                        seen = reread_and_close(publisher, key, account=account, region=settings.region)
                    except (AwsError, RetryableError) as error:
                        out.notes.append(f"{key} could not be re-read ({str(error)[:200]})")
                        continue
                    out.unusable += seen.closing
                    _seen(seen, run_id=run_id, account=account)
        except MemberUnreachable as error:
            out.notes.append(f"the keys of member account {account} could not be swept ({str(error)[:200]})")
    publisher.flush()
    out.closed = publisher.security_hub.closed if publisher.security_hub is not None else 0
    count("KeysSwept", out.reread)
    logger.info(
        "audit: keys with open findings swept",
        extra={
            "run_id": run_id,
            "reread": out.reread,
            "unusable": out.unusable,
            "closed": out.closed,
            "left": out.left,
        },
    )
    return out
