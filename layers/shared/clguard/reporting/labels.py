"""Names people know, added to a finding before it is delivered (docs/architecture.md §5):
the owning team (the ``OWNER_TAG_KEY`` tag of the object's bucket, or of the key) and the key's
alias (shown next to its ARN in every human rendering; the machine document keeps the ARN).

Each bucket's tags and each key's tags and aliases are read once per warm container (at most
:data:`MAX_CACHED` of each, then the cache starts again). A lookup that fails leaves the field
empty (logged): names never stop a finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final

from clguard.adapters import kms, s3
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import AwsError
from clguard.observability import logger
from clguard.reporting.findings import Finding, KmsKeyResource

MAX_CACHED: Final = 1_000
OWNER_MAX: Final = 256  # a tag value's limit


class _Memo[V]:
    """A bounded per-container memo: at most MAX_CACHED entries, then it starts again."""

    def __init__(self) -> None:
        self._values: dict[str, V | None] = {}

    def get(self, key: str, read: Callable[[str], V], what: str) -> V | None:
        if key in self._values:
            return self._values[key]
        value: V | None
        try:
            value = read(key)
        except AwsError as error:
            logger.info(
                f"could not read the {what}; left out of the finding", extra={"resource": key, "error": str(error)}
            )
            value = None
        if len(self._values) >= MAX_CACHED:
            self._values.clear()
        self._values[key] = value
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


def labelled(finding: Finding, tag_key: str) -> Finding:
    """The finding with its owner and key alias (fields already set are kept)."""
    owner = finding.owner if finding.owner is not None else owner_of(finding, tag_key)
    key_arn = finding.resource.arn if isinstance(finding.resource, KmsKeyResource) else finding.kms_key_arn
    alias = finding.key_alias or alias_of(key_arn)
    if owner == finding.owner and alias == finding.key_alias:
        return finding
    return replace(finding, owner=owner, key_alias=alias)
