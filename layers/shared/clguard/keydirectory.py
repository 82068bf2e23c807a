"""What we know about KMS keys: DescribeKey, tags and policies, read once per batch.

Backed by a per-container cache with a short TTL, so a warm container processing batch after
batch of uploads under one key does not describe it and read its policy for every batch.
A stale view is safe: it can only make us think access is missing when it is not, and every
write re-reads the policy inside the key's lock first. (It could also hide, for at most one
TTL, a principal that someone removed by hand; the next batch after the TTL sees it.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from clguard import policy
from clguard.adapters import clients, kms
from clguard.adapters.kms import KeyLookup

TTL_SECONDS: Final = 60.0

_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, Any]] = {}


def _scoped(name: str) -> str:
    """Key ARNs are unique across accounts, but a key id or alias name is not: cache what a
    reference means per account acted in (docs/architecture.md §2, many accounts)."""
    member = clients.current_member()
    return name if member is None or name.startswith("arn:") else f"{member.account}/{name}"


def clear_cache() -> None:
    with _lock:
        _cache.clear()


class KeyDirectory:
    def __init__(self, *, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock

    def _get[T](self, kind: str, name: str, load: Callable[[], T]) -> T:
        now = self._clock()
        entry = _cache.get((kind, _scoped(name)))
        if entry is not None and now - entry[0] < self.ttl:
            value: T = entry[1]
            return value
        value = load()
        with _lock:
            _cache[(kind, _scoped(name))] = (now, value)
        return value

    def _put(self, kind: str, name: str, value: Any) -> None:
        with _lock:
            _cache[(kind, _scoped(name))] = (self._clock(), value)

    def lookup(self, reference: str) -> KeyLookup:
        found = self._get("describe", reference, lambda: kms.describe(reference))
        if found.key is not None and found.key.arn != reference:
            self._put("describe", found.key.arn, KeyLookup(found.key.arn, found.key))
        return found

    def policy(self, key_arn: str) -> dict[str, Any]:
        return self._get("policy", key_arn, lambda: policy.parse(kms.get_policy(key_arn)))

    def fresh_policy(self, key_arn: str) -> dict[str, Any]:
        document = policy.parse(kms.get_policy(key_arn))
        self._put("policy", key_arn, document)
        return document

    def remember_policy(self, key_arn: str, document: dict[str, Any]) -> None:
        self._put("policy", key_arn, document)

    def tags(self, key_arn: str) -> dict[str, str]:
        return self._get("tags", key_arn, lambda: kms.tags(key_arn))
