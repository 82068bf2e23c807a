"""S3ObjectRef: the one reference to an S3 object, wherever one is named.

A training manifest's ``source-ref``, a ``GroundTruthManifest.S3Object`` of a training call, an
object an event announces, the object a unit of work verifies, and the ``s3-object`` resource of
a finding (docs/architecture.md §5) are all this one frozen value: bucket, key and, when the
reference is pinned to one version, its version id. Parsing it (the S3 key rule, the bucket-name
rule) happens at the boundary that reads it (``parsing``, ``manifest``, ``events``); here it is
only the value and its two written forms, ``s3://bucket/key`` and the finding document.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

RESOURCE_TYPE: Final = "s3-object"


@dataclass(frozen=True, slots=True)
class S3ObjectRef:
    """One S3 object: ``bucket``, ``key`` (exactly as S3 stores it, not URL-encoded) and
    ``version_id`` (``None``: whatever version is current when it is read)."""

    bucket: str
    key: str
    version_id: str | None = None

    @property
    def uri(self) -> str:
        """``s3://bucket/key``: how people and manifests write an object (the version is not part of it)."""
        return f"s3://{self.bucket}/{self.key}"

    def label(self) -> str:
        """The finding resource's one-line name (the same for every version of the object)."""
        return self.uri

    def at(self, version_id: str | None) -> S3ObjectRef:
        """The same object, pinned to ``version_id`` (``None``: the current version)."""
        return self if version_id == self.version_id else replace(self, version_id=version_id)

    def to_json(self) -> dict[str, Any]:
        """The finding contract's ``s3-object`` resource (docs/architecture.md §5)."""
        return {"type": RESOURCE_TYPE, "bucket": self.bucket, "key": self.key, "version_id": self.version_id}
