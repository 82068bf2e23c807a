"""Names people know, added to a finding before it is delivered (docs/architecture.md §5):
the owning team (the ``OWNER_TAG_KEY`` tag of the object's bucket, or of the key) and the key's
alias (shown next to its ARN in every human rendering; the machine document keeps the ARN).

Each bucket's tags and each key's tags and aliases are read at most once per :data:`TTL_SECONDS`
per warm container (a retagged bucket or a new alias shows within 5 minutes, like the accepted
exceptions' reload), and at most :data:`MAX_CACHED` of each are kept (the oldest read is dropped
first). A lookup that fails leaves the field empty (logged) and is cached too, for the same time:
names never stop a finding, and a denied lookup is not retried for every finding. Each entry is
the account acted in's own (``clients.scoped``): a member's denied lookup of a central key never
hides the central key's owner or alias from the central account's findings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from clguard.adapters import clients, kms, s3
from clguard.boundary.config import Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import AwsError, MemberUnreachable, RetryableError
from clguard.observability import logger
from clguard.reporting.findings import Finding, KmsKeyResource

MAX_CACHED: Final = 1_000
TTL_SECONDS: Final = 300.0
OWNER_MAX: Final = 256  # a tag value's limit
clock = time.monotonic  # what the TTL is measured with (a test moves it)


class _Memo[V]:
    """A bounded per-container memo: an entry lives TTL_SECONDS; at most MAX_CACHED entries (the
    oldest read is dropped first)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, V | None]] = {}

    def get(self, name: str, read: Callable[[str], V], what: str) -> V | None:
        """``read(name)``'s answer, remembered for the account acted in only (another account
        may see the same bucket or key ARN differently, or not at all)."""
        key = clients.scoped(name)
        now = clock()
        cached = self._values.get(key)
        if cached is not None and now - cached[0] < TTL_SECONDS:
            return cached[1]
        value: V | None
        try:
            value = read(name)
        except (AwsError, MemberUnreachable, RetryableError) as error:  # names never stop a finding
            logger.info(
                f"could not read the {what}; left out of the finding", extra={"resource": name, "error": str(error)}
            )
            value = None
        self._values.pop(key, None)  # re-read: now the newest entry
        while len(self._values) >= MAX_CACHED:
            self._values.pop(next(iter(self._values)), None)  # insertion order: the oldest read
        self._values[key] = (now, value)
        return value

    def __len__(self) -> int:
        return len(self._values)


_bucket_tags: _Memo[dict[str, str]] = _Memo()
_key_tags: _Memo[dict[str, str]] = _Memo()
_key_aliases: _Memo[list[str]] = _Memo()


def forget() -> None:
    for memo in (_bucket_tags, _key_tags, _key_aliases):
        memo._values.clear()


def owner_of(finding: Finding, tag_key: str) -> str | None:
    resource = finding.resource
    tags: dict[str, str] | None = None
    if isinstance(resource, S3ObjectRef):
        tags = _bucket_tags.get(resource.bucket, s3.bucket_tags, "bucket's tags")
    elif isinstance(resource, KmsKeyResource):
        tags = _key_tags.get(resource.arn, kms.tags, "key's tags")
    value = (tags or {}).get(tag_key, "").strip()
    return value[:OWNER_MAX] or None


def alias_of(key_arn: str | None) -> str | None:
    """The key's first alias (sorted), or None."""
    if not key_arn:
        return None
    aliases = _key_aliases.get(key_arn, kms.aliases, "key's aliases")
    return aliases[0] if aliases else None


def labelled_in_its_account(finding: Finding, settings: Settings) -> Finding:
    """``labelled``, read as the account the finding names: a member's bucket and key only
    through that member's role (design §11), whatever the caller acts in (the audit report's
    rows are labelled after the member's work is done)."""
    account = finding.account
    member = None if account == settings.home else clients.Member(account, settings.member_role_arn(account))
    with clients.acting_in(member):
        return labelled(finding, settings.owner_tag_key)


def labelled(finding: Finding, tag_key: str) -> Finding:
    """The finding with its owner and key alias (fields already set are kept)."""
    owner = finding.owner if finding.owner is not None else owner_of(finding, tag_key)
    key_arn = finding.resource.arn if isinstance(finding.resource, KmsKeyResource) else finding.kms_key_arn
    alias = finding.key_alias or alias_of(key_arn)
    if owner == finding.owner and alias == finding.key_alias:
        return finding
    return replace(finding, owner=owner, key_alias=alias)
