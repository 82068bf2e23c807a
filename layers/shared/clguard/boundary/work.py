"""One object to verify: what every source of work (S3 events, the fan-out, the audit, the grant
path) turns into, and what the verify use case takes."""

from __future__ import annotations

from dataclasses import dataclass

from clguard.boundary.s3ref import S3ObjectRef
from clguard.rules.encryption import ObservedEncryption


@dataclass(frozen=True, slots=True)
class ObjectWork:
    """One object to verify."""

    ref: S3ObjectRef  # the object (pinned to a version when the source named one)
    source_event_id: str
    reason: str  # PutObject, CopyObject, CompleteMultipartUpload, manifest image, ...
    principals: tuple[str, ...] = ()  # principals to ensure beyond TRAINING_PRINCIPALS
    anywhere: bool = False  # checked wherever it is (the grant path points at it), not only training buckets
    origin: str = ""  # what asked, for finding details
    observed: ObservedEncryption | None = None  # what a CloudTrail data event says S3 applied
    account: str | None = None  # the account whose object it is (the event's); None = the deployment's own
    audit_run: str = ""  # the audit run that listed it (verify-objects v2), else ""
    state: str = ""  # the listed ETag@LastModified (audit): its findings are scoped by it
