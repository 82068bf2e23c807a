"""What we know about KMS keys: DescribeKey, tags and policies, read once per batch.

Backed by a per-container cache with a short TTL, so a warm container processing batch after
batch of uploads under one key does not describe it and read its tags for every batch.
A stale view that says access is missing is safe: every write re-reads the policy and the tags
inside the key's lock first. A stale view that says "already granted" is not: someone (an
infrastructure-as-code redeploy, above all) may have replaced the key policy since, and the
trainer would stay locked out. So a remembered policy is never believed for "already granted":
it is confirmed from KMS once per unit of work (:meth:`KeyDirectory.confirmed`,
docs/architecture.md §6 "Drift"). The grant path reads every key fresh anyway
(``KeyDirectory(fresh=True)``: a training call happens once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from clguard.adapters import clients, kms, organizations
from clguard.adapters.kms import KeyLookup
from clguard.errors import KeyUnreadable, Refused
from clguard.observability import logger
from clguard.rules import policy
from clguard.rules.arns import account_of
from clguard.rules.policy import NO_FACTS, RequestFacts, depends_on_organization, organization_facts

TTL_SECONDS: Final = 60.0

_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, Any]] = {}


def _scoped(name: str) -> str:
    """What a reference means, and what KMS answers about it, depends on the account acted in: a
    key id or alias name is per account, and even a key ARN may be described by its own account
    and refused to a member (NotFound, AccessDenied). Every entry is that account's alone, ARNs
    included (docs/architecture.md §2, many accounts)."""
    return clients.scoped(name)


def _read[T](operation: str, key_arn: str, load: Callable[[], T]) -> T:
    """A KMS read of one key. Transient errors propagate as they are (the unit is retried, or a
    caller that expects them handles them); any other error (AccessDenied above all) is this
    key's alone: KeyUnreadable."""
    try:
        return load()
    except Refused as error:
        raise KeyUnreadable(key_arn, operation, error.code, error.message[:300]) from error


def clear_cache() -> None:
    with _lock:
        _cache.clear()
    organizations.forget()


class KeyDirectory:
    """``fresh=True`` (the grant path: a one-shot training call must be decided on what KMS says
    now): every key is read from KMS the first time this directory is asked about it, never
    from the per-container cache, and remembered only for this directory's own unit of work.
    The hot S3 path uses the shared cache (``fresh=False``)."""

    def __init__(
        self, *, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic, fresh: bool = False
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self.fresh = fresh
        self._own: dict[tuple[str, str], tuple[float, Any]] = {}
        self._confirmed: set[str] = set()  # keys whose policy this unit of work read from KMS (scoped)

    @property
    def _store(self) -> dict[tuple[str, str], tuple[float, Any]]:
        return self._own if self.fresh else _cache

    def _get[T](self, kind: str, name: str, load: Callable[[], T]) -> T:
        now = self._clock()
        entry = self._store.get((kind, _scoped(name)))
        if entry is not None and (self.fresh or now - entry[0] < self.ttl):
            value: T = entry[1]
            return value
        value = load()
        self._put(kind, name, value, now)
        return value

    def _put(self, kind: str, name: str, value: Any, now: float | None = None) -> None:
        stamp = self._clock() if now is None else now
        with _lock:
            self._store[(kind, _scoped(name))] = (stamp, value)
            if self.fresh:  # what was just read is the freshest view for the shared cache too
                _cache[(kind, _scoped(name))] = (stamp, value)

    def lookup(self, reference: str) -> KeyLookup:
        found = self._get("describe", reference, lambda: kms.describe(reference))
        if found.key is not None and found.key.arn != reference:
            self._put("describe", found.key.arn, KeyLookup(found.key.arn, found.key))
        return found

    def policy(self, key_arn: str) -> dict[str, Any]:
        return self._get("policy", key_arn, lambda: self._read_confirmed(key_arn))

    def _read_confirmed(self, key_arn: str) -> dict[str, Any]:
        document = self._read_policy(key_arn)
        self._confirmed.add(_scoped(key_arn))
        return document

    def confirmed(self, key_arn: str) -> bool:
        """Whether this unit of work has the key's policy from KMS (read, or written and read back),
        rather than from what the container remembers of earlier batches."""
        return _scoped(key_arn) in self._confirmed

    @staticmethod
    def remembered_policy(key_arn: str) -> dict[str, Any] | None:
        """The policy this container last saw for the key, however old (None: never seen)."""
        with _lock:
            entry = _cache.get(("policy", _scoped(key_arn)))
        return None if entry is None else dict(entry[1])

    @staticmethod
    def _read_policy(key_arn: str) -> dict[str, Any]:
        return policy.parse(_read("GetKeyPolicy", key_arn, lambda: kms.get_policy(key_arn)))

    def fresh_policy(self, key_arn: str) -> dict[str, Any]:
        document = self._read_confirmed(key_arn)
        self._put("policy", key_arn, document)
        return document

    def remember_policy(self, key_arn: str, document: dict[str, Any]) -> None:
        self._put("policy", key_arn, document)

    def tags(self, key_arn: str) -> dict[str, str]:
        return self._get("tags", key_arn, lambda: _read("ListResourceTags", key_arn, lambda: kms.tags(key_arn)))

    def fresh_tags(self, key_arn: str) -> dict[str, str]:
        """The key's tags as KMS has them now (read inside the key's lock before every write)."""
        found = _read("ListResourceTags", key_arn, lambda: kms.tags(key_arn))
        self._put("tags", key_arn, found)
        return found

    @staticmethod
    def request_facts(key_arn: str, document: dict[str, Any], *, home_account: str) -> RequestFacts:
        """What the key policy's Denies need to know of a training principal's requests beyond
        its ARN: the organization, for a data-perimeter Deny on ``aws:PrincipalOrgID`` (the guard
        only adds principals of the key's own account, so it is that account's organization).
        Learnt (DescribeOrganization, once per account and container) only when a Deny names it,
        and only for keys of the account acted in, read as that account (a member's with its own
        role); otherwise, or when it cannot be read, nothing is known and such a Deny is taken to
        apply (docs/architecture.md §6)."""
        if not depends_on_organization(document):
            return NO_FACTS
        member = clients.current_member()
        if account_of(key_arn) != (member.account if member is not None else home_account):
            return NO_FACTS
        try:
            return organization_facts(organizations.own_organization(member=member))
        except organizations.OrganizationUnknown as unknown:
            logger.warning("the organization is unknown; a Deny on it is taken to apply", extra={"error": str(unknown)})
            return NO_FACTS
