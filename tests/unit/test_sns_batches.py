"""PublishBatch requests planned within the API's documented limits (rules/snsbatches.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.rules.snsbatches import MAX_BATCH_BYTES, MAX_ENTRIES, Entry, batches

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@st.composite
def entries(draw: st.DrawFn) -> list[Entry]:
    sizes = draw(st.lists(st.integers(min_value=0, max_value=MAX_BATCH_BYTES + 10), max_size=40))
    return [
        Entry(
            entry_id=str(i),
            subject=draw(texts),
            message="x" * size,
            attributes={draw(texts): {"DataType": "String", "StringValue": draw(texts)}},
        )
        for i, size in enumerate(sizes)
    ]


@given(entries())
def test_batches_keep_every_entry_in_order_within_the_limits(planned: list[Entry]) -> None:
    # Given any messages (some larger than a whole request may carry)
    # When they are planned as PublishBatch requests
    requests = list(batches(planned))
    # Then every entry is sent once, in order, none in an empty request
    assert [e for r in requests for e in r] == planned
    assert all(requests)
    for request in requests:
        # And each request has at most 10 entries and at most 256 KiB, unless one entry alone exceeds it
        assert len(request) <= MAX_ENTRIES
        assert sum(e.size() for e in request) <= MAX_BATCH_BYTES or len(request) == 1


def test_a_batch_over_256_kib_is_split() -> None:
    # Given three 100,000-byte messages (300,000 bytes in all: three fit the entry count, not the size)
    big = [Entry(str(i), "s", "x" * 100_000, {}) for i in range(3)]
    # When planned
    sizes = [len(r) for r in batches(big)]
    # Then two requests: two entries (200,002 bytes), then the third
    assert sizes == [2, 1]


def test_the_size_counts_the_attributes_names_types_and_values_in_utf8() -> None:
    # Given an entry whose attribute value is non-ASCII
    entry = Entry("1", "sj", "body", {"owner": {"DataType": "String", "StringValue": "é"}})
    # Then its size counts bytes, not characters: 4 + 2 + len("owner") + len("String") + 2
    assert entry.size() == 4 + 2 + 5 + 6 + 2


def _sized(sizes: list[int]) -> list[Entry]:
    return [Entry(str(i), "", "x" * size, {}) for i, size in enumerate(sizes)]


HALF = MAX_BATCH_BYTES // 2


@pytest.mark.parametrize(
    ("sizes", "requests"),
    [
        ([HALF, HALF], [2]),  # exactly 256 KiB in all: one request
        ([HALF, HALF + 1], [1, 1]),  # one byte over: two
        ([MAX_BATCH_BYTES, HALF, HALF], [1, 2]),  # the count starts again at 0 after a split
        ([1] * MAX_ENTRIES, [MAX_ENTRIES]),  # exactly 10 entries: one request
        ([1] * (MAX_ENTRIES + 1), [MAX_ENTRIES, 1]),  # the 11th starts the next
    ],
)
def test_a_request_exactly_at_a_limit_is_sent_whole(sizes: list[int], requests: list[int]) -> None:
    # Given messages whose sizes reach PublishBatch's limits exactly, or pass them by one
    # When planned
    # Then a request exactly at 10 entries or 262,144 bytes is one request, and one over is split
    assert [len(r) for r in batches(_sized(sizes))] == requests
