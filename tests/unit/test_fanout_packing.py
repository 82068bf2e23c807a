"""Packing a large manifest's image checks into verify-queue messages (our own message shape)."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.boundary import fanout
from clguard.boundary.events import MAX_KEY_BYTES, VERIFY_OBJECTS_KIND, ObjectWork, parse_verify_message
from clguard.boundary.manifest import ManifestStats, scan
from clguard.boundary.s3ref import S3ObjectRef

EVENT_ID = "7fb16c5d-3c9c-4a6d-8b8f-ad7e2c4a6b59"
ORIGIN = "CreateProjectVersion of arn:aws:rekognition:us-east-1:123456789012:project/cats/version/cats-v1/1"
TRAINER = "arn:aws:iam::123456789012:role/ml/CustomLabelsTrainer"


def _messages(refs: list[S3ObjectRef], **kwargs: object) -> list[str]:
    options: dict[str, object] = {"source_event_id": EVENT_ID, "origin": ORIGIN, "principals": [TRAINER]}
    options.update(kwargs)
    return list(fanout.messages(refs, **options))  # type: ignore[arg-type]


def _works(message: str) -> list[ObjectWork]:
    parsed = parse_verify_message(message, from_guard=True)
    assert isinstance(parsed, list)
    return parsed


def test_one_small_batch_is_one_message() -> None:
    # Given three image references
    refs = [S3ObjectRef("custom-labels-training", f"images/{i}.jpg") for i in range(3)]
    # When packed
    messages = _messages(refs)
    # Then one message carries them all, in the documented shape
    assert len(messages) == 1
    body = json.loads(messages[0])
    assert body["kind"] == VERIFY_OBJECTS_KIND
    assert body["version"] == 1
    assert body["source_event_id"] == EVENT_ID
    assert body["origin"] == ORIGIN
    assert body["principals"] == [TRAINER]
    assert body["objects"] == [{"bucket": r.bucket, "key": r.key, "version_id": None} for r in refs]


def test_no_refs_no_messages() -> None:
    # Given no references
    # When packed
    # Then nothing is sent
    assert _messages([]) == []


def test_messages_parse_back_into_work_checked_anywhere() -> None:
    # Given references in several buckets
    refs = [S3ObjectRef("custom-labels-training", "a.jpg"), S3ObjectRef("other-bucket", "b.jpg")]
    # When packed and parsed by the verify function
    works = _works(_messages(refs)[0])
    # Then each is work checked wherever it is, ensuring the trainer, with the origin
    assert [(w.ref.bucket, w.ref.key) for w in works] == [
        ("custom-labels-training", "a.jpg"),
        ("other-bucket", "b.jpg"),
    ]
    for work in works:
        assert work.anywhere
        assert work.principals == (TRAINER,)
        assert work.source_event_id == EVENT_ID
        assert work.origin == ORIGIN
        assert work.ref.version_id is None


@pytest.mark.parametrize(
    "key",
    [
        "猫/画像 1.jpg",
        "emoji/🐱🐶.png",
        'quotes/"a"\\b.jpg',
        "control/\x01\x1f\n\t.jpg",
        "spaces and+plus%20.jpg",
        "é" * (MAX_KEY_BYTES // 2),
        "\u2028\u2029",
    ],
)
def test_unicode_keys_survive(key: str) -> None:
    # Given a key with non-ASCII, escaped or control characters
    # When packed and parsed back
    works = _works(_messages([S3ObjectRef("bkt", key)])[0])
    # Then the key is exactly the same
    assert works[0].ref.key == key


def test_many_refs_are_split_under_the_limit() -> None:
    # Given 5,000 references and the default limit
    refs = [
        S3ObjectRef("custom-labels-training", f"datasets/cats/images/{i:06d}-" + "x" * 60 + ".jpg") for i in range(5000)
    ]
    # When packed
    messages = _messages(refs)
    # Then there are several messages, each under the SQS-safe limit, holding every ref once
    assert len(messages) > 1
    assert all(len(m.encode()) <= fanout.MAX_MESSAGE_BYTES for m in messages)
    assert [(w.ref.bucket, w.ref.key) for m in messages for w in _works(m)] == [(r.bucket, r.key) for r in refs]
    assert fanout.MAX_MESSAGE_BYTES <= 256 * 1024


def test_messages_are_produced_lazily() -> None:
    # Given an endless stream of references
    def endless():
        i = 0
        while True:
            yield S3ObjectRef("bkt", f"{i}.jpg")
            i += 1

    # When the first message is taken
    first = next(fanout.messages(endless(), source_event_id=EVENT_ID, origin=ORIGIN, principals=[], max_bytes=16_384))
    # Then it is produced without consuming the whole stream
    assert len(first.encode()) <= 16_384
    assert _works(first)[0].ref.key == "0.jpg"


def test_header_too_large_is_refused() -> None:
    # Given principals so many that no object would fit
    # When packing
    # Then ValueError, before anything is yielded
    with pytest.raises(ValueError, match="no room"):
        _messages([S3ObjectRef("bkt", "a.jpg")], principals=[TRAINER] * 100, max_bytes=4096)


buckets = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True)
keys = st.text(min_size=1, max_size=120).filter(lambda k: "\x00" not in k)
image_refs = st.builds(S3ObjectRef, buckets, keys)
arns = st.from_regex(r"arn:aws:iam::123456789012:role/[A-Za-z0-9_+=,.@-]{1,30}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(
    refs=st.lists(image_refs, max_size=60),
    principals=st.lists(arns, max_size=3),
    origin=st.text(min_size=1, max_size=60),
    max_bytes=st.integers(9_000, 24_000),
)
def test_every_ref_once_each_message_under_the_limit(refs, principals, origin, max_bytes) -> None:
    # Given any references (unicode keys included), principals, origin and size limit
    # When packed
    messages = list(
        fanout.messages(refs, source_event_id=EVENT_ID, origin=origin, principals=principals, max_bytes=max_bytes)
    )
    # Then each message fits, and parses back into work that carries the principals, anywhere
    parsed = []
    for message in messages:
        assert len(message.encode("utf-8")) <= max_bytes
        works = _works(message)
        assert works, "no empty messages"
        for work in works:
            assert work.anywhere
            assert work.principals == tuple(principals)
            assert work.origin == origin
            assert work.source_event_id == EVENT_ID
        parsed.extend(works)
    # And every reference appears exactly once, in order
    assert [S3ObjectRef(w.ref.bucket, w.ref.key) for w in parsed] == refs
    # And the packing is greedy: the next message's first object would not have fit in the previous one
    for current, following in itertools.pairwise(messages):
        first_next = json.dumps(json.loads(following)["objects"][0], ensure_ascii=False, separators=(",", ":"))
        assert len(current.encode()) + 1 + len(first_next.encode()) > max_bytes - 1


def test_a_single_escaped_key_never_overflows_an_accepted_limit() -> None:
    # Given a valid S3 key of 1024 control characters (each escaped to 6 bytes in JSON)
    ref = S3ObjectRef("bkt", "\x01" * MAX_KEY_BYTES)
    # And the smallest limit messages() accepts for this header
    max_bytes = next(
        n
        for n in range(2000, 10_000)
        if _accepts(n)  # the header leaves at least the minimum room
    )
    # When packed
    try:
        messages = _messages([ref], max_bytes=max_bytes)
    except ValueError:
        return  # refusing an object that cannot fit is an acceptable answer too
    # Then the message still fits
    assert all(len(m.encode()) <= max_bytes for m in messages)


def _accepts(max_bytes: int) -> bool:
    try:
        _messages([], max_bytes=max_bytes)
    except ValueError:
        return False
    return True


def test_whatever_scan_yields_can_be_fanned_out() -> None:
    # Given a manifest with a valid line and a line whose key is a lone surrogate escape
    data = b'{"source-ref": "s3://bkt/good.jpg"}\n{"source-ref": "s3://bkt/bad\\udc80.jpg"}\n'
    refs = list(scan([data], ManifestStats()))
    # When the images scan yields are fanned out
    messages = _messages(refs)
    # Then packing does not crash, and the good image is in a message
    assert any(w.ref.key == "good.jpg" for m in messages for w in _works(m))


def _audit_messages(keys: list[str], max_bytes: int = fanout.MAX_MESSAGE_BYTES) -> list[str]:
    packer = fanout.Packer(
        source_event_id="audit-r1",
        origin="audit run r1",
        principals=(),
        audit_run="r1",
        bucket="b",
        max_bytes=max_bytes,
    )
    bodies = [packer.add(S3ObjectRef("b", key), f"s{index}") for index, key in enumerate(keys)]
    return [body for body in (*bodies, packer.flush()) if body is not None]


@settings(max_examples=50, deadline=None)
@given(
    keys=st.lists(
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=60),
        max_size=200,
    ),
    max_bytes=st.integers(min_value=8_000, max_value=40_000),
)
def test_audit_messages_carry_every_object_once_with_its_state(keys: list[str], max_bytes: int) -> None:
    # Given the objects of one listing, packed into audit (v2) messages of at most max_bytes
    bodies = _audit_messages(keys, max_bytes)

    # When each message is parsed as the verify function parses it
    works = [w for body in bodies for w in parse_verify_message(body, from_guard=True) or []]  # type: ignore[union-attr]

    # Then every object comes back once, in order, with its bucket, state and run, checked as an
    # upload is (training buckets only), and no message is over the limit
    assert [(w.ref.bucket, w.ref.key, w.state, w.audit_run) for w in works] == [
        ("b", k, f"s{i}", "r1") for i, k in enumerate(keys)
    ]
    assert not any(w.anywhere for w in works)
    assert all(len(body.encode()) <= max_bytes for body in bodies)


def test_an_audit_message_holds_over_two_thousand_typical_objects() -> None:
    # Given typical training image keys (the bucket is said once per message, not per object)
    keys = [f"datasets/cats/images/cat-{n:05d}.jpg" for n in range(10_000)]

    # When they are packed
    bodies = _audit_messages(keys)

    # Then a message carries more than two list pages: one SendMessage and one tally per 2,000+
    assert len(bodies) <= 10_000 // 2_000
