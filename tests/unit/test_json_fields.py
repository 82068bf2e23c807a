"""The one helper family for untrusted JSON (``clguard.boundary.parsing``): every field is read to its type
or rejected with InvalidEvent naming it, never another error; and the one S3 object-key rule,
which manifests and events share."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.boundary import parsing
from clguard.boundary.manifest import parse_source_ref
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import InvalidEvent

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def _outcome(read: Any, *args: Any) -> tuple[str, Any]:
    """("ok", what it returned) or ("error", the InvalidEvent's message)."""
    try:
        return "ok", read(*args)
    except InvalidEvent as error:
        return "error", str(error)


@given(value=json_values)
def test_a_required_text_is_a_non_empty_string_or_an_error_naming_the_field(value: Any) -> None:
    # Given a JSON value under "name"
    # When it is read as required text
    outcome = _outcome(parsing.required_text, {"name": value}, "name", "detail")
    # Then it is the value when that is a non-empty string, else an error naming the field's path
    if isinstance(value, str) and value:
        assert outcome == ("ok", value)
    else:
        assert outcome[0] == "error"
        assert outcome[1].startswith("detail.name ")


@given(value=json_values)
def test_an_optional_text_is_none_for_absent_null_or_empty_and_rejects_other_types(value: Any) -> None:
    # Given a JSON value under "name"
    # When it is read as optional text
    outcome = _outcome(parsing.optional_text, {"name": value}, "name", "detail")
    # Then only a value that is neither a string nor null is rejected, naming the field
    if value is None or isinstance(value, str):
        assert outcome == ("ok", value or None)
    else:
        assert outcome == ("error", f"detail.name must be str, got {type(value).__name__}")
    # And an absent field is None
    assert parsing.optional_text({}, "name", "detail") is None


@given(value=json_values)
def test_an_object_field_is_a_dict_or_an_error(value: Any) -> None:
    # Given a JSON value under "name"
    # When it is read as an optional object
    outcome = _outcome(parsing.optional_object, {"name": value}, "name", "detail")
    # Then it is the object ({} for null), else an error naming the field
    if value is None or isinstance(value, dict):
        assert outcome == ("ok", value or {})
    else:
        assert outcome == ("error", f"detail.name must be dict, got {type(value).__name__}")


def test_a_missing_required_field_is_named_and_a_bool_is_no_int() -> None:
    # Given a mapping without "objects" and one whose "count" is a bool
    # When they are read as required fields
    # Then each rejection names the field
    with pytest.raises(InvalidEvent, match=r"^m\.objects is missing$"):
        parsing.required_field({}, "objects", list, "m")
    with pytest.raises(InvalidEvent, match=r"^m\.count must be int, got bool$"):
        parsing.required_field({"count": True}, "count", int, "m")
    with pytest.raises(InvalidEvent, match=r"^m\.resource is missing$"):
        parsing.required_value({}, "resource", "m")


@given(value=json_values)
def test_the_lenient_reading_never_raises(value: Any) -> None:
    # Given any JSON value, When it is read leniently, Then it is the value only if a non-empty string
    assert parsing.said_text(value) == (value if isinstance(value, str) and value else None)


keys = st.text(min_size=1, max_size=8) | st.sampled_from(["a\x00b", "x" * 1025, "\ud800", "é" * 513, "é" * 512])


@given(key=keys)
def test_manifests_and_events_share_one_object_key_rule(key: str) -> None:
    # Given a key
    # When events' rule and a manifest's source-ref judge it
    valid = _outcome(parsing.object_key, key, "key")[0] == "ok"
    ref = parse_source_ref(f"s3://bucket-a/{key}")
    # Then they agree: the manifest accepts exactly the keys the event rule accepts
    assert isinstance(ref, S3ObjectRef) == valid
    if valid:
        assert ref == S3ObjectRef("bucket-a", key)
