"""The KMS key lifecycle calls at the boundary (``boundary.events.parse_key_state_change``): the
documented CloudTrail shapes parse to the key they name; anything else is a clear InvalidEvent.
And the audit sweep's window (``usecases.keylifecycle._window``), property-tested."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.boundary.events import is_key_state_change, parse_key_state_change
from clguard.errors import InvalidEvent
from clguard.usecases.keylifecycle import _window
from tests.eventsamples import load_event

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("name", "call"),
    [("cloudtrail_kms_schedule_key_deletion", "ScheduleKeyDeletion"), ("cloudtrail_kms_disable_key", "DisableKey")],
)
def test_the_documented_records_name_their_key(name: str, call: str) -> None:
    # Given a sample record in the documented shape
    event = load_event(name)
    # When it is parsed
    change = parse_key_state_change(event)
    # Then it is the call, the envelope's account and region, and the key ARN of its resources
    assert is_key_state_change(event)
    assert (change.event_name, change.account, change.region, change.key) == (call, "123456789012", "us-east-1", KEY)


def test_an_older_record_without_resources_falls_back_to_what_the_caller_passed() -> None:
    # Given a record before December 2022: no key ARN in responseElements, no resources
    event = load_event("cloudtrail_kms_disable_key")
    event["detail"]["responseElements"] = None
    del event["detail"]["resources"]
    event["detail"]["requestParameters"]["keyId"] = "1234abcd-12ab-34cd-56ef-1234567890ab"
    # Then the key is the id the caller passed (resolved in the event's account when re-read)
    assert parse_key_state_change(event).key == "1234abcd-12ab-34cd-56ef-1234567890ab"


def _broken(change: Any) -> dict[str, Any]:
    event = load_event("cloudtrail_kms_schedule_key_deletion")
    change(event)
    return event


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda e: e.update(source="aws.s3"), "unexpected event"),
        (lambda e: e["detail"].update(eventName="EnableKey"), "unexpected KMS call 'EnableKey'"),
        (lambda e: e["detail"].update(recipientAccountId="111122223333"), "recipientAccountId"),
        (lambda e: e.update(account="12345"), "12-digit"),
        (
            lambda e: e["detail"].update(resources=[], responseElements=None, requestParameters={}),
            "names no KMS key (found nothing)",
        ),
        (
            lambda e: e["detail"].update(resources=[], responseElements={"keyId": "*"}),
            "names no KMS key (found '*')",
        ),
        (lambda e: e.pop("detail"), "detail"),
    ],
)
def test_anything_else_is_a_clear_invalid_event(change: Any, says: str) -> None:
    with pytest.raises(InvalidEvent, match=says.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        parse_key_state_change(_broken(change))


@given(
    keys=st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=40).map(sorted),
    run_id=st.text(max_size=20),
    size=st.integers(min_value=0, max_value=50),
)
def test_the_sweep_window_is_a_bounded_run_of_the_index(keys: list[str], run_id: str, size: int) -> None:
    window = _window(keys, run_id, size)
    # At most the bound, all of the index when it fits, never a key twice or from elsewhere
    assert len(window) == min(size, len(keys)) if len(keys) > size else window == keys
    assert len(set(window)) == len(window)
    assert set(window) <= set(keys)
    # and consecutive in the sorted index (wrapping): successive runs start elsewhere
    if window and len(keys) > size:
        start = keys.index(window[0])
        assert window == [keys[(start + i) % len(keys)] for i in range(len(window))]
