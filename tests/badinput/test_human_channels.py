"""What people read shows strings and never obeys them (issue 20, items 6 and 7).

Every field that comes from outside, in every human rendering -- the finding's e-mail, chat and
SNS Subject, the digest's e-mail and chat (grouped, single and forwarded) -- is filled with each
hostile string of ``strings.HOSTILE`` and with generated ones. Each rendering is compared with the
same rendering of a harmless ``x`` in that field: the hostile string never adds a line, a link, a
mention or markup (docs/architecture.md §5, "What people read").
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting.findings import (
    Finding,
    FindingType,
    KmsKeyResource,
    Outcome,
    PolicyChange,
    ProjectVersionResource,
)
from clguard.reporting.rendering import CHAT_DESCRIPTION_MAX, chat_escape, chat_message, email_text, one_line, subject
from clguard.usecases import digest, digestmessages
from tests.badinput.strings import HOSTILE, INVISIBLE, LINE_BREAKS, hostile_strings
from tests.eventsamples import load_sqs_event

ACCOUNT = "123456789012"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
HARMLESS = "x"

# Nothing that breaks a line (other than the renderings' own "\n"), hides or reorders text.
_SHOWN_RAW = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f" + "".join(c for c in LINE_BREAKS + INVISIBLE if len(c) == 1 and c != "\n") + "]"
)
_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)  # code blocks, then code spans
_MARKUP = ("*", "_", "~", "`")


def _base() -> Finding:
    return Finding(
        finding_type=FindingType.KEY_ACCESS_MISSING,
        outcome=Outcome.REMEDIATED,
        resource=S3ObjectRef("train-data", "images/a.jpg", "v1"),
        detail="the trainer lacked access; added it",
        source_event_id="17793124-05d4-b198-2fde-7ededc63b103",
        account=ACCOUNT,
        region="us-east-1",
        principal_arn=TRAINER,
        kms_key_arn=KEY_ARN,
        observed_at="2026-11-28T20:00:00Z",
    )


def _change(sid: str = "CustomLabelsGuardTrainingData", principal: str = TRAINER, action: str = "kms:Decrypt") -> Any:
    after = {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": [principal]}, "Action": [action], "Resource": "*"}
    return (PolicyChange(sid, None, after),)


# Every field of a finding that holds a string from outside, and how to put one there.
FINDING_FIELDS: dict[str, Callable[[str], Finding]] = {
    "object key": lambda s: replace(_base(), resource=S3ObjectRef("train-data", s, "v1")),
    "bucket": lambda s: replace(_base(), resource=S3ObjectRef(s, "images/a.jpg")),
    "version id": lambda s: replace(_base(), resource=S3ObjectRef("train-data", "a.jpg", s)),
    "key resource": lambda s: replace(_base(), resource=KmsKeyResource(s)),
    "project version": lambda s: replace(
        _base(), finding_type=FindingType.TRAINING_FAILED, outcome=Outcome.REPORTED, resource=ProjectVersionResource(s)
    ),
    "detail": lambda s: replace(_base(), detail=s),
    "principal": lambda s: replace(_base(), principal_arn=s),
    "kms key": lambda s: replace(_base(), kms_key_arn=s),
    "event id": lambda s: replace(_base(), source_event_id=s),
    "account": lambda s: replace(_base(), account=s),
    "region": lambda s: replace(_base(), region=s),
    "observed at": lambda s: replace(_base(), observed_at=s),
    "changed principal": lambda s: replace(_base(), change=_change(principal=s)),
    "changed statement id": lambda s: replace(_base(), change=_change(sid=s)),
    "changed action": lambda s: replace(_base(), change=_change(action=s)),
}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def assert_plain_text_holds(text: str, harmless: str) -> None:
    """Plain text (e-mail): exactly the lines of the harmless rendering, nothing raw that breaks,
    hides or reorders text."""
    assert text.count("\n") == harmless.count("\n")
    assert len(text.splitlines()) == len(harmless.splitlines())
    assert not _SHOWN_RAW.search(text)


def _outside_code(text: str) -> str:
    return _CODE.sub("", text)


def assert_chat_holds(payload: dict[str, Any], harmless: dict[str, Any]) -> None:
    """Chat (Slack mrkdwn): no ``<``/``>`` anywhere (no mention, no link), every ``&`` an entity,
    the description's lines and the markup outside code spans exactly the harmless rendering's."""
    for text in _strings(payload):
        assert "<" not in text
        assert ">" not in text
        assert not _ENTITY.search(text)
        assert not _SHOWN_RAW.search(text)
    for name in ("title", "nextSteps", "keywords"):
        assert [t.count("\n") for t in _strings(payload["content"].get(name))] == [
            t.count("\n") for t in _strings(harmless["content"].get(name))
        ]
    description, expected = payload["content"]["description"], harmless["content"]["description"]
    assert len(description) <= CHAT_DESCRIPTION_MAX
    if "(truncated)" in description.rsplit("\n", 1)[-1]:  # a cut can only remove lines
        assert description.count("\n") <= expected.count("\n") + 1
        return
    assert description.count("\n") == expected.count("\n")
    assert description.count("`") == expected.count("`")
    for mark in _MARKUP:
        assert _outside_code(description).count(mark) == _outside_code(expected).count(mark), mark


def assert_subject_holds(text: str) -> None:
    assert re.fullmatch(r"[\x20-\x7e]{1,99}", text)


def assert_finding_renderings_hold(field: str, hostile: str) -> None:
    build = FINDING_FIELDS[field]
    finding, harmless = build(hostile), build(HARMLESS)
    assert_plain_text_holds(email_text(finding), email_text(harmless))
    assert_chat_holds(chat_message(finding), chat_message(harmless))
    assert_subject_holds(subject(finding))


@pytest.mark.parametrize("hostile", HOSTILE, ids=[repr(h)[:40] for h in HOSTILE])
def test_no_string_adds_a_line_a_link_a_mention_or_markup_to_a_finding(hostile: str) -> None:
    # Given each field of a finding holding the hostile string
    for field in FINDING_FIELDS:
        # When the finding is rendered for e-mail, chat and the Subject
        # Then each rendering has exactly the lines and markup it has for a harmless string
        assert_finding_renderings_hold(field, hostile)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile=hostile_strings(), field=st.sampled_from(sorted(FINDING_FIELDS)))
def test_no_generated_string_adds_a_line_a_link_a_mention_or_markup_to_a_finding(hostile: str, field: str) -> None:
    assert_finding_renderings_hold(field, hostile)


def test_a_forged_outcome_line_stays_inside_the_line_of_its_field() -> None:
    # Given an object key that tries to add an "Outcome" line and a mention
    finding = FINDING_FIELDS["object key"]("a.jpg\nWhat was done: Fixed automatically.\n<!channel>")
    # When rendered
    email, chat = email_text(finding), chat_message(finding)
    # Then the e-mail shows the key, escaped, on the "Where" line, and chat shows the mention as text
    assert "Where: s3://train-data/a.jpg\\x0aWhat was done: Fixed automatically.\\x0a<!channel>" in email
    assert email.count("\nWhat was done:") == 1
    assert "&lt;!channel&gt;" in chat["content"]["description"]


def test_bidi_and_zero_width_characters_are_shown_as_escapes() -> None:
    finding = FINDING_FIELDS["object key"]("images/\u202egpj.exe\u200b")
    assert "images/\\u202egpj.exe\\u200b" in email_text(finding)


def test_a_backslash_cannot_pose_as_an_escape() -> None:
    # Given a key that spells an escape, and one that holds the character
    spelled, real = FINDING_FIELDS["object key"]("a\\x0ab"), FINDING_FIELDS["object key"]("a\nb")
    # Then the two render differently
    assert email_text(spelled) != email_text(real)


# --- the digest: documents read from the queue ------------------------------------------------


def _records(field: str, value: str, n: int) -> list[dict[str, Any]]:
    template = load_sqs_event("digest_findings")["Records"][0]
    records = []
    for i in range(n):
        record = copy.deepcopy(template)
        document = json.loads(record["body"])
        document["resource"]["key"] = f"datasets/{i}/a.jpg"
        document["source_event_id"] = f"event-{i}"
        if field == "key":
            document["resource"]["key"] = f"datasets/{i}/{value}"
        elif field == "bucket":
            document["resource"]["bucket"] = value
        else:
            document[field] = value
        record["body"] = json.dumps(document)
        record["messageId"] = f"record-{i}"
        records.append(record)
    return records


DIGEST_FIELDS = (
    "key",
    "bucket",
    "detail",
    "account",
    "region",
    "observed_at",
    "principal_arn",
    "kms_key_arn",
    "source_event_id",
    "finding_type",
    "severity",
)


def _digest(field: str, value: str, n: int) -> list[digestmessages.HumanMessage]:
    return digest.plan(digest.parse_record(r) for r in _records(field, value, n))


def assert_digest_holds(field: str, hostile: str) -> None:
    for n in (1, 2):  # a lone finding, and a group
        messages, harmless = _digest(field, hostile, n), _digest(field, HARMLESS, n)
        assert len(messages) == len(harmless)
        for message, expected in zip(messages, harmless, strict=True):
            assert_plain_text_holds(message.email, expected.email)
            assert_chat_holds(message.chat, expected.chat)
            assert_subject_holds(message.subject)


@pytest.mark.parametrize("hostile", HOSTILE, ids=[repr(h)[:40] for h in HOSTILE])
def test_no_string_of_a_queued_document_adds_a_line_a_link_a_mention_or_markup_to_the_digest(hostile: str) -> None:
    # Given findings on the digest queue with the hostile string in one field
    for field in DIGEST_FIELDS:
        # When digested (alone and grouped)
        # Then each message people read has exactly the lines and markup of a harmless string's
        assert_digest_holds(field, hostile)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile=hostile_strings(), field=st.sampled_from(DIGEST_FIELDS))
def test_no_generated_string_of_a_queued_document_breaks_the_digest(hostile: str, field: str) -> None:
    assert_digest_holds(field, hostile)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("hostile", HOSTILE, ids=[repr(h)[:40] for h in HOSTILE])
def test_a_forwarded_message_shows_its_body_and_obeys_none_of_it(hostile: str) -> None:
    # Given messages that are not findings: a JSON body holding the string, and the bare string
    cases = [(json.dumps({"note": hostile}), hostile, '{"note": "x"}')]
    if not _is_json(hostile):  # a bare JSON body is pretty-printed like the one above
        cases.append((hostile, "m", "x"))
    for body, kind, harmless_body in cases:
        record = {"messageId": "m-1", "body": body, "messageAttributes": {"message_kind": {"stringValue": kind}}}
        harmless = {"messageId": "m-1", "body": harmless_body}
        # When forwarded to people
        [message] = digest.plan([digest.parse_record(record)])
        [expected] = digest.plan([digest.parse_record(harmless)])
        # Then it adds no line, link, mention or markup
        assert_plain_text_holds(message.email, expected.email)
        for text in _strings(message.chat):
            assert "<" not in text
            assert ">" not in text
            assert not _ENTITY.search(text)
        assert message.chat["content"]["description"].count("`") == 6
        assert_subject_holds(message.subject)


# --- the escaping functions themselves ----------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(a=hostile_strings(), b=hostile_strings())
def test_escaping_never_makes_two_strings_look_the_same(a: str, b: str) -> None:
    # Given two different strings, when escaped for plain text or chat
    # Then they still read differently (no escape is ambiguous), and the result is one line
    if a != b:
        assert one_line(a) != one_line(b)
        assert chat_escape(a) != chat_escape(b)
    assert len(one_line(a).splitlines()) <= 1
    assert "<" not in chat_escape(a)
    assert ">" not in chat_escape(a)
