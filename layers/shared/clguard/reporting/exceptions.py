"""The accepted-exceptions document in use (docs/architecture.md §5b): read from SSM or S3,
validated (:mod:`clguard.rules.exceptions`), cached, and applied to findings.

- Read at most once per :data:`RELOAD_SECONDS` per warm container: a changed document takes effect
  within 5 minutes, without a redeploy, and a busy batch does not read it per finding.
- A document that cannot be read or is invalid mutes nothing. Its version (the hash of its bytes,
  or of the read error) becomes the ``source_event_id`` of one ``EXCEPTIONS_INVALID`` finding, so
  the publisher's once-per-condition rule publishes it once per version of the document.
- Applying changes reporting only: a muted finding carries ``suppressed``; a finding that an
  expired exception would have muted says so in its ``detail``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from clguard.adapters import s3, ssm
from clguard.boundary.config import Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import AwsError, InvalidEvent
from clguard.observability import count, logger
from clguard.reporting.findings import (
    ExceptionsResource,
    Finding,
    FindingType,
    Outcome,
    Suppression,
)
from clguard.rules.exceptions import MAX_DOCUMENT_BYTES, ExceptionsDocument, InvalidExceptions, parse

RELOAD_SECONDS: Final = 300.0
EXPIRED_MARK: Final = "alerting again:"
KNOWN_TYPES: Final = tuple(t.value for t in FindingType)


@dataclass(frozen=True, slots=True)
class Loaded:
    """The document as last read: valid (``document``) or not (``problem``), and its version."""

    location: str
    version: str
    document: ExceptionsDocument | None
    problem: str = ""


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def read(location: str) -> bytes:
    """The document's bytes. Raises AwsError (unreadable) or ValueError (too large)."""
    if location.startswith("ssm:"):
        return ssm.parameter(location[4:]).encode()
    bucket, _, key = location.removeprefix("s3://").partition("/")
    return s3.get_bytes(bucket, key, limit=MAX_DOCUMENT_BYTES)


def load(location: str) -> Loaded:
    """Read and validate once; never raises (a failure is a document that mutes nothing)."""
    try:
        data = read(location)
    except (AwsError, ValueError) as error:
        problem = f"the document could not be read: {error}"
        return Loaded(location, "unreadable-" + _version(problem.encode()), None, problem)
    try:
        return Loaded(location, _version(data), parse(data, KNOWN_TYPES))
    except InvalidExceptions as error:
        return Loaded(location, _version(data), None, str(error))


clock = time.monotonic  # what "5 minutes" is measured with (a test moves it)
_cache: dict[str, tuple[float, Loaded]] = {}  # one entry per location (bounded by the settings)


def current(location: str, *, now: float | None = None) -> Loaded:
    """The document, read again when the cached copy is older than RELOAD_SECONDS."""
    now = clock() if now is None else now
    cached = _cache.get(location)
    if cached is not None and now - cached[0] < RELOAD_SECONDS:
        return cached[1]
    loaded = load(location)
    _cache.clear()
    _cache[location] = (now, loaded)
    if loaded.document is None:
        count("ExceptionsInvalid")
        logger.warning(
            "accepted exceptions: the document is invalid; nothing is muted", extra={"problem": loaded.problem}
        )
    return loaded


def forget() -> None:
    """Drop the cached document (tests; a deployment reloads on its own within RELOAD_SECONDS)."""
    _cache.clear()


def resource_name(finding: Finding) -> str:
    """What resource globs match: ``s3://<bucket>/<key>`` or the resource's ARN."""
    resource = finding.resource
    if isinstance(resource, S3ObjectRef):
        return f"s3://{resource.bucket}/{resource.key}"
    if isinstance(resource, ExceptionsResource):
        return resource.location
    return resource.arn


def invalid_finding(loaded: Loaded, settings: Settings) -> Finding:
    """The one ``EXCEPTIONS_INVALID`` finding of this version of the document."""
    return Finding(
        finding_type=FindingType.EXCEPTIONS_INVALID,
        outcome=Outcome.REPORTED,
        resource=ExceptionsResource(loaded.location),
        detail=f"the accepted-exceptions document is invalid; no finding is muted until it is fixed: {loaded.problem}",
        source_event_id=f"exceptions-{loaded.version}",
        account=settings.home,
        region=settings.region,
    )


def apply(finding: Finding, loaded: Loaded, *, today: str | None = None) -> Finding:
    """The finding as the document judges it: muted (``suppressed``), told that the exception
    that would have muted it expired, or unchanged."""
    if loaded.document is None or finding.finding_type is FindingType.EXCEPTIONS_INVALID:
        return finding
    if finding.suppressed is not None or EXPIRED_MARK in finding.detail:
        return finding  # judged already (a finding back from the outbox)
    day = datetime.now(UTC).date() if today is None else datetime.fromisoformat(today).date()
    verdict = loaded.document.verdict(finding.finding_type.value, resource_name(finding), finding.principal_arn, day)
    if verdict.muted_by is not None:
        muted = verdict.muted_by
        count("FindingsSuppressed")
        return replace(finding, suppressed=Suppression(muted.id, muted.reason, muted.owner, muted.expires.isoformat()))
    if verdict.expired:
        names = ", ".join(f"{e.id} (expired {e.expires.isoformat()})" for e in verdict.expired)
        return replace(finding, detail=f"{finding.detail} [{EXPIRED_MARK} accepted exception {names} has expired]")
    return finding


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What a document would do before it is deployed: its problem (empty when valid), and which
    of the given findings it would mute, or would have muted but for an expired exception."""

    problem: str
    muted: tuple[tuple[str, Finding], ...] = ()  # (exception id, finding)
    expired: tuple[tuple[str, Finding], ...] = ()
    unreadable: int = 0  # finding documents that are not findings


def check(raw: bytes, finding_documents: Sequence[Mapping[str, Any]], *, today: str | None = None) -> CheckReport:
    """Validate ``raw`` exactly as the functions do, then judge each finding document with it."""
    try:
        document = parse(raw, KNOWN_TYPES)
    except InvalidExceptions as error:
        return CheckReport(str(error))
    loaded = Loaded("check", _version(raw), document)
    muted: list[tuple[str, Finding]] = []
    expired: list[tuple[str, Finding]] = []
    unreadable = 0
    for value in finding_documents:
        try:
            finding = replace(Finding.from_document(value), suppressed=None)
        except (InvalidEvent, ValueError, TypeError, KeyError):
            unreadable += 1
            continue
        judged = apply(finding, loaded, today=today)
        if judged.suppressed is not None:
            muted.append((judged.suppressed.exception_id, judged))
        elif judged.detail != finding.detail:
            day = datetime.now(UTC).date() if today is None else datetime.fromisoformat(today).date()
            verdict = document.verdict(finding.finding_type.value, resource_name(finding), finding.principal_arn, day)
            expired.extend((e.id, finding) for e in verdict.expired)
    return CheckReport("", tuple(muted), tuple(expired), unreadable)
