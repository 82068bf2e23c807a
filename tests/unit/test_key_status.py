"""Key statuses (what happened on one key) are an ordered enum: a training summary that sees a
key several times keeps the most telling status, and its JSON carries the same strings as before."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.usecases.keydecision import KeyStatus
from clguard.usecases.training import Summary

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# The ranking the summaries have always used, least telling first (the summaries' JSON strings).
RANKING = ("ok", "reported", "refused", "denied", "not managed", "failed", "unusable", "granted")


def test_the_statuses_are_ordered_by_the_summaries_ranking() -> None:
    # Given every key status, most telling first
    # When they are sorted
    ordered = sorted(reversed(KeyStatus))

    # Then the order is the ranking, and each value is the string the summaries carry
    assert [status.value for status in ordered] == list(RANKING)
    assert [status.rank for status in ordered] == list(range(len(RANKING)))


@given(st.lists(st.sampled_from(RANKING), min_size=1))
def test_the_most_telling_status_wins(seen: list[str]) -> None:
    # Given the statuses one key had, in the order its objects were checked
    statuses = [KeyStatus(value) for value in seen]

    # When the summary keeps the most telling one
    kept = max(statuses)

    # Then it is the one ranked highest, whatever the order it came in
    assert kept.value == max(seen, key=RANKING.index)
    assert max(reversed(statuses)) is kept


def test_a_status_is_not_compared_with_a_string() -> None:
    # Given a status and a plain string of a higher rank
    # When they are compared
    # Then the comparison is refused (strings would order alphabetically: "granted" < "ok")
    with pytest.raises(TypeError):
        _ = KeyStatus.OK < "granted"


def test_the_summary_json_carries_the_status_strings() -> None:
    # Given a summary that kept a status for a key
    summary = Summary("event", "CreateProjectVersion", "processed", "", keys={KEY_ARN: KeyStatus.NOT_MANAGED})

    # When it is rendered as the handler's result
    document = summary.to_json()

    # Then the key's status is the plain string, and the document is JSON
    assert document["keys"] == {KEY_ARN: "not managed"}
    assert type(document["keys"][KEY_ARN]) is str
    assert json.loads(json.dumps(document))["keys"] == {KEY_ARN: "not managed"}
