"""Group commit's pending record (state/pendinggrants.py): what a settled entry stores stays within
its bound whatever the findings say, and the record's bound stays under DynamoDB's 400 KB item."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from clguard.state import pendinggrants
from clguard.state.pendinggrants import Entry, Waiter

DYNAMODB_ITEM_BYTES = 400 * 1024

statements = st.dictionaries(
    st.sampled_from(["Sid", "Effect", "Principal", "Action"]), st.text(max_size=3_000), max_size=4
)


def finding(detail: str, change: dict[str, Any] | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "finding_type": "KEY_ACCESS_MISSING",
        "outcome": "REMEDIATED",
        "principal_arn": "arn:aws:iam::123456789012:role/ml/Trainer",
        "detail": detail,
    }
    if change is not None:
        document["change"] = change
        document["changes"] = [change]
    return document


@given(
    st.lists(
        st.tuples(st.text(max_size=8_000), st.one_of(st.none(), statements), st.sampled_from(["", "scope"])),
        min_size=1,
        max_size=3,
    )
)
def test_settled_findings_stay_within_their_bound_and_say_when_they_were_cut(
    rows: list[tuple[str, dict[str, Any] | None, str]],
) -> None:
    # Given up to three findings with any detail (non-ASCII, long) and any structured change
    findings = [(finding(detail, change), scope) for detail, change, scope in rows]

    # When they are stored in an entry
    text = pendinggrants.bounded_findings(findings)

    # Then the stored text stays within the bound, reads back as the same findings in order,
    # and a detail is either whole or marked as cut
    assert len(text.encode()) <= pendinggrants.MAX_FINDING_BYTES
    stored = json.loads(text)
    assert [(r["document"]["principal_arn"], r["scope"]) for r in stored] == [
        (d["principal_arn"], scope) for d, scope in findings
    ]
    for row, (document, _) in zip(stored, findings, strict=True):
        kept = row["document"]["detail"]
        assert kept == document["detail"] or kept.endswith(" [cut]")


def test_the_records_bound_keeps_it_under_dynamodbs_item_limit() -> None:
    # Given the largest entry an enqueue accepts, settled with the largest findings stored
    entry = pendinggrants.MAX_ENTRY_BYTES + pendinggrants.MAX_FINDING_BYTES + 200  # + state, holder, until, lost

    # Then a full record stays under DynamoDB's 400 KB
    assert pendinggrants.MAX_ENTRIES * entry < DYNAMODB_ITEM_BYTES


def test_an_entry_over_its_size_is_not_enqueued() -> None:
    # Given a waiter whose strings (an origin from outside) make its entry larger than the bound
    waiter = Waiter(grants=(("arn:aws:iam::123456789012:role/ml/T", ("Sid",)),), event="e", origin="x" * 3_000)

    # Then it is refused before any call (the caller waits for the lease instead)
    assert pendinggrants.entry_bytes(waiter) > pendinggrants.MAX_ENTRY_BYTES
    assert pendinggrants.enqueue("no-table-needed", "arn:aws:kms:us-east-1:123456789012:key/k", waiter) is None


def test_stale_entries_are_those_past_the_horizon_or_settled_long_ago() -> None:
    # Given entries of every age and state
    now = 100_000.0
    waiter = Waiter(grants=(("arn:aws:iam::123456789012:role/ml/T", ("Sid",)),), event="e", origin="o")
    entries = {
        "fresh": Entry("fresh", waiter, at=now - 10, state=pendinggrants.WAITING),
        "ancient": Entry("ancient", waiter, at=now - pendinggrants.HORIZON_SECONDS - 1, state=pendinggrants.WAITING),
        "settled-now": Entry("settled-now", waiter, at=now - 20, state=pendinggrants.DONE, until=now - 5),
        "settled-long-ago": Entry(
            "settled-long-ago", waiter, at=now - 2_000, state=pendinggrants.DONE, until=now - 1_000
        ),
        "taken": Entry("taken", waiter, at=now - 2_000, state=pendinggrants.TAKEN, until=now - 1_000),
    }

    # Then only the ancient and the long-settled ones are removed (a taken one is taken again)
    assert sorted(pendinggrants.stale(entries, now)) == ["ancient", "settled-long-ago"]
    assert entries["taken"].abandoned(now)
