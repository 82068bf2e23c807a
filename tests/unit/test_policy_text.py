"""The exact text sent to PutKeyPolicy (docs/architecture.md §6): what KMS accepts (printable
ASCII through Latin-1, tab, LF, CR: every other character escaped), measured as sent."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.rules import policy

KMS_CHARACTERS = re.compile(r"[\u0009\u000A\u000D\u0020-\u00FF]+")  # PutKeyPolicy's Policy pattern

# Any code point, lone surrogates included (JSON can carry them as \uXXXX escapes).
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=20)
documents = st.dictionaries(
    st.sampled_from(["Sid", "Id", "x"]),
    st.one_of(any_text, st.lists(any_text, max_size=3), st.dictionaries(any_text, any_text, max_size=3)),
    max_size=3,
).map(lambda d: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **d}]})


@settings(max_examples=200, deadline=None)
@given(document=documents)
def test_what_is_sent_is_text_kms_accepts_and_its_size_is_what_is_sent(document) -> None:
    # Given any policy document, whatever characters its values hold
    # When it is serialized for PutKeyPolicy
    text = policy.serialize(document)
    # Then every character is one KMS accepts (no raw CJK, emoji or surrogates)
    assert text.isascii()
    assert KMS_CHARACTERS.fullmatch(text)
    # And the size checked against the limit is the size of exactly that text
    assert policy.size_in_bytes(document) == len(text.encode("utf-8")) == len(text)
    # And it reads back as the same document
    assert json.loads(text) == document


def test_an_escaped_cjk_value_from_get_key_policy_is_sent_escaped_again() -> None:
    # Given a policy as GetKeyPolicy returns it: a CJK condition value, escaped
    returned = '{"Statement":[{"Sid":"Team","Condition":{"StringEquals":{"aws:PrincipalTag/team":"\\u4e2d\\u6587"}}}]}'
    document = policy.parse(returned)
    assert document["Statement"][0]["Condition"]["StringEquals"]["aws:PrincipalTag/team"] == "中文"
    # When it is serialized to be sent back
    text = policy.serialize(document)
    # Then the value is escaped as it came, and the size counts the escapes
    assert "\\u4e2d\\u6587" in text
    assert "中" not in text
    assert policy.size_in_bytes(document) == len(returned)


def test_a_lone_surrogate_escape_is_measured_without_crashing() -> None:
    # Given a policy whose text carries a lone surrogate escape (valid JSON, not valid UTF-16)
    document = policy.parse('{"Statement":[{"Sid":"\\ud800"}]}')
    # When its size is measured and it is serialized
    # Then nothing raises, and the escape is kept as an escape
    assert policy.size_in_bytes(document) == len('{"Statement":[{"Sid":"\\ud800"}]}')
    assert "\\ud800" in policy.serialize(document)


def test_merge_keeps_a_single_object_statement() -> None:
    # Given a valid policy whose Statement is a single object (as the KMS guide shows)
    root = {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    document = {"Version": "2012-10-17", "Statement": dict(root)}
    trainer = "arn:aws:iam::111122223333:role/ml/Trainer"
    # When a principal is merged in
    merge = policy.merge_grants(document, [(trainer, (policy.TRAINING_DATA,))], key_account="111122223333")
    # Then the statement is kept unchanged, first, and the owned statement follows it
    assert merge.document["Statement"][0] == root
    assert [s["Sid"] for s in merge.document["Statement"]] == [root["Sid"], policy.TRAINING_DATA.sid]
    assert policy.is_granted(merge.document, trainer, policy.TRAINING_DATA)
