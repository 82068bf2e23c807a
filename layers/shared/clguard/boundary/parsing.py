"""The one helper family for reading untrusted JSON (events, messages, request parameters,
finding documents): each helper returns a typed value or raises InvalidEvent naming the field
(``where.name``), so every boundary rejects a bad field the same way.

Two readings of a field:

- *strict* (``required_*``, ``optional_*``, ``*_value``): the field makes the input; a wrong type
  is an error;
- *lenient* (:func:`said_text`): the field only informs; anything but a non-empty string counts
  as "not said".

Also the one S3 object-key rule (:func:`object_key`), shared by every source of a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from clguard.errors import InvalidEvent

MAX_KEY_BYTES: Final = 1024  # S3's limit for an object key


def optional_field[T](mapping: Mapping[str, Any], name: str, kind: type[T], where: str) -> T | None:
    """``mapping[name]`` when it is a ``kind`` (a bool is no int), None when absent or null."""
    value = mapping.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidEvent(f"{where}.{name} must be {kind.__name__}, got {type(value).__name__}")
    return value


def required_field[T](mapping: Mapping[str, Any], name: str, kind: type[T], where: str) -> T:
    """``mapping[name]``, which must be present, not null, and a ``kind``."""
    value = optional_field(mapping, name, kind, where)
    if value is None:
        raise InvalidEvent(f"{where}.{name} is missing")
    return value


def required_value(mapping: Mapping[str, Any], name: str, where: str) -> Any:
    """``mapping[name]`` of any type (the caller converts it); it must be present."""
    if name not in mapping:
        raise InvalidEvent(f"{where}.{name} is missing")
    return mapping[name]


def optional_text(mapping: Mapping[str, Any], name: str, where: str) -> str | None:
    """A string field; None when absent, null or empty."""
    return optional_field(mapping, name, str, where) or None


def required_text(mapping: Mapping[str, Any], name: str, where: str) -> str:
    """A required, non-empty string field."""
    value = required_field(mapping, name, str, where)
    if not value:
        raise InvalidEvent(f"{where}.{name} is empty")
    return value


def optional_object(mapping: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    """A JSON-object field; ``{}`` when absent or null."""
    value: dict[str, Any] | None = optional_field(mapping, name, dict, where)
    return value or {}


def required_object(mapping: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    """A required JSON-object field (it may be empty)."""
    value: dict[str, Any] = required_field(mapping, name, dict, where)
    return value


def text_value(value: Any, where: str) -> str | None:
    """A value already taken out of its container (e.g. the first of several spellings): a
    string, or None when null or empty."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{where} must be a string")
    return value or None


def object_value(value: Any, where: str) -> dict[str, Any]:
    """A value already taken out of its container: a JSON object, ``{}`` when null."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(f"{where} must be an object")
    return value


def optional_account_id(mapping: Mapping[str, Any], where: str = "event") -> str | None:
    """An ``account`` field: a 12-digit account id, None when absent. In an EventBridge envelope it
    is the account the event came from (EventBridge sets it; a rule forwarding to another
    account's bus keeps it)."""
    account = optional_text(mapping, "account", where)
    if account is not None and not (len(account) == 12 and account.isdigit()):
        raise InvalidEvent(f"{where}.account {account[:40]!r} is not a 12-digit account id")
    return account


def said_text(value: Any) -> str | None:
    """The lenient reading: a non-empty string, else None ("not said"); never raises."""
    return value if isinstance(value, str) and value else None


def object_key(value: str, where: str) -> str:
    """An S3 object key: valid UTF-8 (no lone surrogate), at most 1024 bytes, no NUL. Any other
    string is a key S3 may hold, used exactly as written."""
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{where} is not valid UTF-8 (lone surrogate)") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidEvent(f"{where} is longer than S3's {MAX_KEY_BYTES}-byte key limit")
    if "\x00" in value:
        raise InvalidEvent(f"{where} contains a NUL character")
    return value
