"""The digest per account (issue 21): a batch whose findings come from several accounts reaches
people account by account, and every message about one account's findings says which (the
``account`` attribute a team filters the human topic on)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_digest import _plan, _record, _samples

CENTRAL = "123456789012"
MEMBER = "111122223333"


def _in(account: str, index: int, bucket: str) -> dict[str, Any]:
    template, _ = _samples()
    record = _record(template, index, account=account)
    document = json.loads(record["body"])
    document["resource"]["bucket"] = bucket
    record["body"] = json.dumps(document)
    return record


def test_a_batch_of_two_accounts_reaches_people_account_by_account() -> None:
    # Given findings of two accounts, interleaved, in two places each
    records = [
        _in(CENTRAL, 0, "central-a"),
        _in(MEMBER, 1, "member-a"),
        _in(CENTRAL, 2, "central-b"),
        _in(MEMBER, 3, "member-b"),
        _in(CENTRAL, 4, "central-a"),
        _in(MEMBER, 5, "member-a"),
    ]

    # When the batch is planned
    messages = _plan(records)

    # Then each message is about one account and says which, and the messages of one account
    # come together (the account seen first, first)
    accounts = [m.attributes["account"] for m in messages]
    assert accounts == [CENTRAL, CENTRAL, MEMBER, MEMBER]
    for message in messages:
        assert f"in account {message.attributes['account']}" in message.email
    # And nothing is lost: every record is in exactly one message
    assert sorted(r for m in messages for r in m.record_ids) == sorted(r["messageId"] for r in records)


def test_a_batch_of_one_account_keeps_its_order_and_names_the_account() -> None:
    # Given findings of one account in three places
    records = [_in(CENTRAL, n, f"bucket-{n % 3}") for n in range(6)]

    # When planned
    messages = _plan(records)

    # Then the order is the groups' order of first finding, each message naming the account
    assert [m.default["place"].split("/")[2] for m in messages] == ["bucket-0", "bucket-1", "bucket-2"]
    assert {m.attributes["account"] for m in messages} == {CENTRAL}


@given(st.lists(st.sampled_from([CENTRAL, MEMBER, "210987654321"]), min_size=1, max_size=30))
def test_messages_of_one_account_are_contiguous_whatever_the_arrival_order(order: list[str]) -> None:
    # Given findings of up to three accounts in any order (a place per account and parity)
    records = [_in(account, n, f"b-{account}-{n % 2}") for n, account in enumerate(order)]

    # When planned
    accounts = [m.attributes["account"] for m in _plan(records)]

    # Then each account's messages form one run, in the order the accounts first appeared
    runs = [a for n, a in enumerate(accounts) if n == 0 or accounts[n - 1] != a]
    assert runs == list(dict.fromkeys(order))
