"""Accepted exceptions (docs/architecture.md §5b): parse and validate the document, match findings.

Pure: the document arrives as bytes (:mod:`clguard.reporting.exceptions` reads it from SSM or S3)
and the finding as its parts. An exception only ever mutes reporting; nothing here is consulted by
the remediator or the guardrails.

The rules a document must meet, each with a clear message naming where it fails:

- a JSON object (YAML accepted where PyYAML is installed) ``{"exceptions": [...]}``, at most
  :data:`MAX_DOCUMENT_BYTES` and :data:`MAX_EXCEPTIONS` entries, no other top-level field;
- each entry has ``id`` (unique, ``[A-Za-z0-9._-]{1,64}``), ``finding_types`` (known types, not
  ``EXCEPTIONS_INVALID``: a broken document cannot mute its own alarm), ``resources`` (globs),
  ``reason`` (1-400 characters: it becomes the Security Hub note, 512 at most), ``expires``
  (``YYYY-MM-DD``), optional ``principals`` (globs of principal ARNs) and ``owner``; nothing else
  (a misspelt ``expire`` must not silently mean "never");
- a resource glob names ``s3://<bucket>/<key glob>`` with a literal bucket, or an ARN glob
  ``arn:<partition>:<service>:<region>:<account>:...`` with a literal 12-digit account: a bare
  ``*`` (or ``s3://*``, ``arn:*``) would mute a whole class of findings everywhere;
- no control characters in any string (they are shown to people).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

MAX_DOCUMENT_BYTES: Final = 256 * 1024
MAX_EXCEPTIONS: Final = 1_000
MAX_GLOBS: Final = 100  # resources or principals of one exception
MAX_REASON: Final = 400
MAX_OWNER: Final = 128
MAX_GLOB: Final = 1_100  # s3:// + a 63-character bucket + a 1,024-byte key

_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ARN_GLOB = re.compile(r"^arn:[a-z-]+:[a-z0-9-]+:[a-z0-9-*?]*:[0-9]{12}:.+$")
_FIELDS: Final = frozenset({"id", "finding_types", "resources", "principals", "reason", "owner", "expires"})
_REQUIRED: Final = ("id", "finding_types", "resources", "reason", "expires")


class InvalidExceptions(ValueError):
    """The document breaks a rule; the message names where (``exceptions[2].expires: ...``)."""


@dataclass(frozen=True, slots=True)
class AcceptedException:
    id: str
    finding_types: frozenset[str]
    resources: tuple[str, ...]
    principals: tuple[str, ...]
    reason: str
    owner: str | None
    expires: date

    def expired(self, today: date) -> bool:
        """Valid through its ``expires`` day (UTC); from the next day on it mutes nothing."""
        return today > self.expires

    def covers(self, finding_type: str, resource: str, principal: str | None) -> bool:
        if finding_type not in self.finding_types:
            return False
        if not any(fnmatch.fnmatchcase(resource, glob) for glob in self.resources):
            return False
        if not self.principals:
            return True
        return principal is not None and any(fnmatch.fnmatchcase(principal, glob) for glob in self.principals)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the document says about one finding: the exception that mutes it, or none; and the
    expired exceptions that would have muted it (named in the finding, so people see why it alerts)."""

    muted_by: AcceptedException | None
    expired: tuple[AcceptedException, ...] = ()


NOT_MUTED: Final = Verdict(None)


@dataclass(frozen=True, slots=True)
class ExceptionsDocument:
    exceptions: tuple[AcceptedException, ...]

    def verdict(self, finding_type: str, resource: str, principal: str | None, today: date) -> Verdict:
        matching = [e for e in self.exceptions if e.covers(finding_type, resource, principal)]
        active = [e for e in matching if not e.expired(today)]
        return Verdict(active[0] if active else None, tuple(e for e in matching if e.expired(today)))


def parse(raw: bytes, known_types: Sequence[str]) -> ExceptionsDocument:
    """The validated document. Raises InvalidExceptions with a message naming the problem."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidExceptions(f"the document is {len(raw)} bytes; at most {MAX_DOCUMENT_BYTES} are read")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidExceptions(f"the document is not UTF-8 text (byte {error.start})") from None
    value = _load(text)
    if not isinstance(value, Mapping):
        raise InvalidExceptions('the document must be an object {"exceptions": [...]}')
    extra = sorted(str(k) for k in value if k != "exceptions")
    if extra:
        raise InvalidExceptions(f"unknown top-level field(s): {', '.join(extra)}")
    entries = value.get("exceptions")
    if not isinstance(entries, list):
        raise InvalidExceptions('"exceptions" must be a list')
    if len(entries) > MAX_EXCEPTIONS:
        raise InvalidExceptions(f'"exceptions" has {len(entries)} entries; at most {MAX_EXCEPTIONS}')
    allowed_types = frozenset(known_types) - {"EXCEPTIONS_INVALID"}
    out: list[AcceptedException] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        exception = _exception(entry, f"exceptions[{index}]", allowed_types)
        if exception.id in seen:
            raise InvalidExceptions(f"exceptions[{index}].id: {exception.id!r} is used twice")
        seen.add(exception.id)
        out.append(exception)
    return ExceptionsDocument(tuple(out))


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidExceptions("the document is nested too deeply") from None
    except ValueError as json_error:
        try:
            import yaml  # noqa: PLC0415 - optional: YAML is accepted where installed
        except ImportError:
            raise InvalidExceptions(f"the document is not JSON ({json_error})") from None
        try:
            return yaml.safe_load(text)
        except RecursionError:
            raise InvalidExceptions("the document is nested too deeply") from None
        except yaml.YAMLError as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise InvalidExceptions(f"the document is neither JSON ({json_error}) nor YAML ({first})") from None


def _text(entry: Mapping[str, Any], name: str, where: str, limit: int) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidExceptions(f"{where}.{name}: must be a non-empty string")
    if len(value) > limit:
        raise InvalidExceptions(f"{where}.{name}: {len(value)} characters; at most {limit}")
    if _CONTROL.search(value):
        raise InvalidExceptions(f"{where}.{name}: contains a control character")
    return value


def _strings(entry: Mapping[str, Any], name: str, where: str, *, required: bool) -> list[str]:
    value = entry.get(name, None if required else [])
    if not isinstance(value, list) or (required and not value):
        raise InvalidExceptions(f"{where}.{name}: must be a {'non-empty ' if required else ''}list of strings")
    if len(value) > MAX_GLOBS:
        raise InvalidExceptions(f"{where}.{name}: {len(value)} entries; at most {MAX_GLOBS}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise InvalidExceptions(f"{where}.{name}[{i}]: must be a non-empty string")
        if len(item) > MAX_GLOB or _CONTROL.search(item):
            raise InvalidExceptions(f"{where}.{name}[{i}]: too long or contains a control character")
    return [str(v) for v in value]


def resource_glob_problem(glob: str) -> str:
    """Why a resource glob is refused ("" when it is fine): it must name one bucket, or one account."""
    if set(glob) <= set("*?[]/:"):
        return "a glob of wildcards only would mute every finding of these types"
    if glob.startswith("s3://"):
        bucket, sep, key = glob[5:].partition("/")
        if not _BUCKET.fullmatch(bucket):
            return "an s3:// glob needs a literal bucket name (no wildcards) followed by /<key glob>"
        if not sep or not key:
            return "an s3:// glob needs a key part (s3://<bucket>/<key glob>, e.g. s3://b/archive/*)"
        return ""
    if _ARN_GLOB.fullmatch(glob):
        return ""
    return "not s3://<bucket>/<key glob> nor arn:<partition>:<service>:<region>:<12-digit account>:<resource glob>"


def _exception(entry: Any, where: str, allowed_types: frozenset[str]) -> AcceptedException:
    """One entry, checked field by field: ``_exception_id`` (shape, fields, id), then
    ``_finding_types``, ``_resources``, ``_principals``, the texts and ``_expires``."""
    exception_id = _exception_id(entry, where)
    where = f"{where} ({exception_id})"
    types = _finding_types(entry, where, allowed_types)
    resources = _resources(entry, where)
    principals = _principals(entry, where)
    owner = entry.get("owner")
    if owner is not None:
        owner = _text(entry, "owner", where, MAX_OWNER)
    return AcceptedException(
        id=exception_id,
        finding_types=frozenset(types),
        resources=tuple(resources),
        principals=tuple(principals),
        reason=_text(entry, "reason", where, MAX_REASON),
        owner=owner,
        expires=_expires(entry.get("expires"), where),
    )


def _exception_id(entry: Any, where: str) -> str:
    """An object with known fields only, every required one, and an id of [A-Za-z0-9._-]{1,64}."""
    if not isinstance(entry, Mapping):
        raise InvalidExceptions(f"{where}: must be an object")
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise InvalidExceptions(
            f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_FIELDS))})"
        )
    missing = [name for name in _REQUIRED if name not in entry]
    if missing:
        raise InvalidExceptions(f"{where}: missing required field(s) {', '.join(missing)}")
    exception_id = entry.get("id")
    if not isinstance(exception_id, str) or not _ID.fullmatch(exception_id):
        raise InvalidExceptions(f"{where}.id: must match [A-Za-z0-9._-]{{1,64}}")
    return exception_id


def _finding_types(entry: Mapping[str, Any], where: str, allowed_types: frozenset[str]) -> list[str]:
    types = _strings(entry, "finding_types", where, required=True)
    for i, finding_type in enumerate(types):
        if finding_type not in allowed_types:
            raise InvalidExceptions(
                f"{where}.finding_types[{i}]: {finding_type!r} is not a finding type that can be muted"
            )
    return types


def _resources(entry: Mapping[str, Any], where: str) -> list[str]:
    resources = _strings(entry, "resources", where, required=True)
    for i, glob in enumerate(resources):
        problem = resource_glob_problem(glob)
        if problem:
            raise InvalidExceptions(f"{where}.resources[{i}]: {glob!r}: {problem}")
    return resources


def _principals(entry: Mapping[str, Any], where: str) -> list[str]:
    principals = _strings(entry, "principals", where, required=False)
    for i, glob in enumerate(principals):
        if not _ARN_GLOB.fullmatch(glob):
            raise InvalidExceptions(
                f"{where}.principals[{i}]: {glob!r} is not a principal ARN glob with a literal account"
            )
    return principals


def _expires(value: Any, where: str) -> date:
    if isinstance(value, date):  # YAML reads an unquoted 2027-03-31 as a date
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise InvalidExceptions(f"{where}.expires: {value!r} is not a date YYYY-MM-DD (expiry is mandatory)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidExceptions(f"{where}.expires: {value!r} is not a calendar date") from None
