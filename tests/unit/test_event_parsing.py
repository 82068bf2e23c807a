"""Parsing every input shape at the boundary; anything else is InvalidEvent (never another error)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.boundary.events import (
    FINDING_KIND,
    MAX_BODY_BYTES,
    MAX_KEY_BYTES,
    VERIFY_OBJECTS_KIND,
    FindingMessage,
    ObjectWork,
    parse_training_call,
    parse_verify_message,
)
from clguard.errors import InvalidEvent, UntrustedSender
from tests.eventsamples import all_event_names, load_event

S3_SAMPLES = [
    "s3_object_created",
    "s3_object_created_copy_echo",
    "s3_object_created_other_bucket",
    "cloudtrail_s3_putobject",
    "cloudtrail_s3_copyobject",
    "cloudtrail_s3_completemultipartupload",
]
REKOGNITION_SAMPLES = [
    name
    for name in all_event_names()
    if name.startswith("cloudtrail_") and "_s3_" not in name and not name.startswith("cloudtrail_kms_")
]


def _body(event: Any) -> str:
    return json.dumps(event)


def _work(event: Any) -> ObjectWork:
    parsed = parse_verify_message(_body(event))
    assert isinstance(parsed, list)
    assert len(parsed) == 1
    return parsed[0]


def _invalid(body: str | bytes) -> InvalidEvent:
    """Invalid even from the guard's own functions (so not merely an untrusted sender)."""
    with pytest.raises(InvalidEvent) as raised:
        parse_verify_message(body, from_guard=True)
    assert not isinstance(raised.value, UntrustedSender)
    return raised.value


# --- verify-queue bodies: the samples ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "bucket", "key", "reason"),
    [
        ("s3_object_created", "custom-labels-training", "datasets/cats/images/cat-001.jpg", "PutObject"),
        ("s3_object_created_copy_echo", "custom-labels-training", "datasets/cats/images/cat-001.jpg", "CopyObject"),
        ("s3_object_created_other_bucket", "unrelated-bucket", "exports/2026/11/28/report.csv", "PutObject"),
        ("cloudtrail_s3_putobject", "custom-labels-training", "datasets/cats/images/cat-002.jpg", "PutObject"),
        ("cloudtrail_s3_copyobject", "custom-labels-training", "datasets/cats/images/cat-003.jpg", "CopyObject"),
        (
            "cloudtrail_s3_completemultipartupload",
            "custom-labels-training",
            "datasets/cats/train.manifest",
            "CompleteMultipartUpload",
        ),
    ],
)
def test_s3_samples(sample: str, bucket: str, key: str, reason: str) -> None:
    # Given a sample S3 event (bucket notification or CloudTrail data event)
    event = load_event(sample)
    # When parsed as a verify-queue body
    work = _work(event)
    # Then it is one object to verify, identified by the EventBridge event id
    assert (work.ref.bucket, work.ref.key, work.reason) == (bucket, key, reason)
    assert work.source_event_id == event["id"]
    assert work.ref.version_id is None
    assert work.principals == ()
    assert not work.anywhere


def test_object_created_version_id() -> None:
    # Given an Object Created event with a version id
    event = load_event("s3_object_created")
    event["detail"]["object"]["version-id"] = "3HL4kqtJlcpXroDTDmJ"
    # When parsed
    # Then the version is kept
    assert _work(event).ref.version_id == "3HL4kqtJlcpXroDTDmJ"


def test_object_created_without_reason() -> None:
    # Given an Object Created event without a reason
    event = load_event("s3_object_created")
    del event["detail"]["reason"]
    # When parsed
    # Then the reason defaults
    assert _work(event).reason == "ObjectCreated"


def test_cloudtrail_data_event_version_id() -> None:
    # Given a PutObject data event whose response has a version id
    event = load_event("cloudtrail_s3_putobject")
    event["detail"]["responseElements"]["x-amz-version-id"] = "v-1"
    # When parsed
    # Then the version is kept; a null responseElements gives none
    assert _work(event).ref.version_id == "v-1"
    event["detail"]["responseElements"] = None
    assert _work(event).ref.version_id is None


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchBucket", "InvalidRequest"])
def test_cloudtrail_s3_event_with_error_needs_no_verification(code: str) -> None:
    # Given a CloudTrail S3 write that S3 refused
    event = load_event("cloudtrail_s3_putobject")
    event["detail"]["errorCode"] = code
    # When parsed
    # Then there is nothing to verify
    assert parse_verify_message(_body(event)) is None


def test_bytes_body() -> None:
    # Given the body as UTF-8 bytes
    event = load_event("s3_object_created")
    event["detail"]["object"]["key"] = "datasets/猫/画像 1.jpg"
    # When parsed
    # Then the key is decoded
    assert _work(json.loads(json.dumps(event))).ref.key == "datasets/猫/画像 1.jpg"
    parsed = parse_verify_message(json.dumps(event, ensure_ascii=False).encode())
    assert isinstance(parsed, list)
    assert parsed[0].ref.key == "datasets/猫/画像 1.jpg"


# --- verify-queue bodies: invalid ---------------------------------------------------------------


def _drop(event: dict[str, Any], *path: str) -> dict[str, Any]:
    target = event
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return event


def _set(event: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    target = event
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return event


@pytest.mark.parametrize(
    ("sample", "path"),
    [
        ("s3_object_created", ("id",)),
        ("s3_object_created", ("detail-type",)),
        ("s3_object_created", ("source",)),
        ("s3_object_created", ("detail",)),
        ("s3_object_created", ("detail", "bucket")),
        ("s3_object_created", ("detail", "bucket", "name")),
        ("s3_object_created", ("detail", "object")),
        ("s3_object_created", ("detail", "object", "key")),
        ("cloudtrail_s3_putobject", ("detail", "eventName")),
        ("cloudtrail_s3_putobject", ("detail", "eventSource")),
        ("cloudtrail_s3_putobject", ("detail", "requestParameters")),
        ("cloudtrail_s3_putobject", ("detail", "requestParameters", "bucketName")),
        ("cloudtrail_s3_putobject", ("detail", "requestParameters", "key")),
    ],
)
def test_missing_field_is_invalid(sample: str, path: tuple[str, ...]) -> None:
    # Given a sample with a required field removed
    event = _drop(load_event(sample), *path)
    # When parsed
    error = _invalid(_body(event))
    # Then InvalidEvent names the field
    assert path[-1] in str(error)


@pytest.mark.parametrize(
    ("sample", "path", "value"),
    [
        ("s3_object_created", ("id",), 17),
        ("s3_object_created", ("id",), ""),
        ("s3_object_created", ("detail",), "x"),
        ("s3_object_created", ("detail",), []),
        ("s3_object_created", ("detail", "bucket"), "custom-labels-training"),
        ("s3_object_created", ("detail", "bucket", "name"), ["custom-labels-training"]),
        ("s3_object_created", ("detail", "object", "key"), 42),
        ("s3_object_created", ("detail", "object", "key"), ""),
        ("s3_object_created", ("detail", "object", "version-id"), 3),
        ("s3_object_created", ("detail", "reason"), {"r": 1}),
        ("cloudtrail_s3_putobject", ("detail", "requestParameters"), "bucket/key"),
        ("cloudtrail_s3_putobject", ("detail", "requestParameters", "key"), None),
        ("cloudtrail_s3_putobject", ("detail", "eventName"), "DeleteObject"),
        ("cloudtrail_s3_putobject", ("detail", "eventName"), "GetObject"),
        ("cloudtrail_s3_putobject", ("detail", "eventSource"), "kms.amazonaws.com"),
        ("s3_object_created", ("detail-type",), "Object Deleted"),
        ("s3_object_created", ("source",), "aws.kms"),
        ("s3_object_created", ("source",), "custom.s3"),
    ],
)
def test_wrong_type_or_unknown_event_is_invalid(sample: str, path: tuple[str, ...], value: Any) -> None:
    # Given a sample with a field of the wrong type, or an event type we do not verify
    event = _set(load_event(sample), value, *path)
    # When parsed
    # Then InvalidEvent
    _invalid(_body(event))


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "{",
        "[]",
        '"a string"',
        "42",
        "null",
        "true",
        b"\xff\xfe\x00garbage",
        "[" * 100_000 + "]" * 100_000,
        "1" * 5000,
    ],
)
def test_non_json_or_non_object_body_is_invalid(body: str | bytes) -> None:
    # Given a body that is not a JSON object
    # When parsed
    # Then InvalidEvent (never ValueError, RecursionError, UnicodeDecodeError)
    _invalid(body)


def test_oversized_body_is_invalid() -> None:
    # Given a body larger than the limit
    body = json.dumps({"kind": "x", "pad": "a" * MAX_BODY_BYTES})
    # When parsed
    # Then InvalidEvent before any parsing
    assert "larger" in str(_invalid(body))


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("a" * MAX_KEY_BYTES, True),
        ("a" * (MAX_KEY_BYTES + 1), False),
        ("é" * (MAX_KEY_BYTES // 2), True),  # 1024 bytes in 512 characters
        ("é" * (MAX_KEY_BYTES // 2 + 1), False),  # 1026 bytes in 513 characters
        ("🐱" * (MAX_KEY_BYTES // 4), True),
        ("🐱" * (MAX_KEY_BYTES // 4) + "a", False),
        ("images/a\x00.jpg", False),
        ("\x00", False),
        ("images/a\x01b\nc.jpg", True),
    ],
)
@pytest.mark.parametrize("sample", ["s3_object_created", "cloudtrail_s3_putobject"])
def test_key_length_counts_utf8_bytes_and_nul_is_refused(sample: str, key: str, valid: bool) -> None:
    # Given an event whose key is at, over, or around S3's 1024-byte limit, or contains NUL
    event = load_event(sample)
    if sample == "s3_object_created":
        event["detail"]["object"]["key"] = key
    else:
        event["detail"]["requestParameters"]["key"] = key
    # When parsed
    # Then only keys S3 could hold are accepted, unchanged
    if valid:
        assert _work(event).ref.key == key
    else:
        _invalid(_body(event))


def test_key_that_is_not_valid_utf8_is_invalid() -> None:
    # Given a key with a lone surrogate (JSON allows "\ud800"; UTF-8 and S3 do not)
    body = _body(load_event("s3_object_created")).replace("cat-001.jpg", "cat-\\ud800.jpg")
    # When parsed
    # Then InvalidEvent, like any key S3 could not hold
    _invalid(body)


# --- our own message kinds --------------------------------------------------------------------


def _verify_objects(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "kind": VERIFY_OBJECTS_KIND,
        "version": 1,
        "source_event_id": "7fb16c5d-3c9c-4a6d-8b8f-ad7e2c4a6b59",
        "origin": "CreateProjectVersion of cats-v1",
        "principals": ["arn:aws:iam::123456789012:role/ml/CustomLabelsTrainer"],
        "objects": [
            {"bucket": "custom-labels-training", "key": "a.jpg", "version_id": None},
            {"bucket": "other-bucket", "key": "b.jpg", "version_id": "v2"},
        ],
    }
    message.update(overrides)
    return message


def test_verify_objects_message() -> None:
    # Given a fan-out message
    # When parsed
    parsed = parse_verify_message(_body(_verify_objects()), from_guard=True)
    # Then each object is work checked anywhere, carrying the principals and the origin
    assert isinstance(parsed, list)
    assert [(w.ref.bucket, w.ref.key, w.ref.version_id) for w in parsed] == [
        ("custom-labels-training", "a.jpg", None),
        ("other-bucket", "b.jpg", "v2"),
    ]
    for work in parsed:
        assert work.anywhere
        assert work.principals == ("arn:aws:iam::123456789012:role/ml/CustomLabelsTrainer",)
        assert work.origin == "CreateProjectVersion of cats-v1"
        assert work.reason == "manifest image"
        assert work.source_event_id == "7fb16c5d-3c9c-4a6d-8b8f-ad7e2c4a6b59"


def test_verify_objects_defaults() -> None:
    # Given a fan-out message without origin or principals, and no objects
    message = _verify_objects(objects=[])
    del message["origin"]
    del message["principals"]
    # When parsed
    # Then it is an empty list of work
    assert parse_verify_message(_body(message), from_guard=True) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"version": 2},
        {"version": "1"},
        {"version": None},
        {"source_event_id": ""},
        {"source_event_id": None},
        {"principals": "arn:aws:iam::123456789012:role/R"},
        {"principals": [1]},
        {"objects": None},
        {"objects": {"bucket": "b", "key": "k"}},
        {"objects": ["s3://b/k"]},
        {"objects": [{"bucket": "b"}]},
        {"objects": [{"key": "k"}]},
        {"objects": [{"bucket": "b", "key": "k", "version_id": 1}]},
        {"objects": [{"bucket": "b", "key": "k" * 2000}]},
        {"origin": 5},
    ],
)
def test_invalid_verify_objects_message(overrides: dict[str, Any]) -> None:
    # Given a malformed fan-out message
    # When parsed
    # Then InvalidEvent
    _invalid(_body(_verify_objects(**overrides)))


def test_finding_message() -> None:
    # Given a findings-outbox message
    message = {"kind": FINDING_KIND, "finding": {"finding_type": "OBJECT_UNENCRYPTED"}, "scope": "hour-1"}
    # When parsed
    parsed = parse_verify_message(_body(message), from_guard=True)
    # Then the document and scope are carried
    assert parsed == FindingMessage({"finding_type": "OBJECT_UNENCRYPTED"}, "hour-1")
    del message["scope"]
    assert parse_verify_message(_body(message), from_guard=True) == FindingMessage(
        {"finding_type": "OBJECT_UNENCRYPTED"}, ""
    )
    # And without a finding object it is invalid
    _invalid(_body({"kind": FINDING_KIND, "finding": "x"}))
    _invalid(_body({"kind": FINDING_KIND}))


@pytest.mark.parametrize("kind", ["clguard.unknown", "", 1, ["clguard.finding"], {"k": 1}])
def test_unknown_kind_is_invalid(kind: Any) -> None:
    # Given a body with an unknown kind
    # When parsed
    # Then InvalidEvent
    _invalid(_body({"kind": kind}))


# --- CloudTrail training calls ----------------------------------------------------------------


@pytest.mark.parametrize("sample", REKOGNITION_SAMPLES)
def test_training_call_samples(sample: str) -> None:
    # Given a sample Rekognition CloudTrail event
    event = load_event(sample)
    # When parsed
    call = parse_training_call(event)
    # Then the identifying fields come from the record
    detail = event["detail"]
    assert call.event_id == event["id"]
    assert call.event_name == detail["eventName"]
    assert call.account == detail["recipientAccountId"]
    assert call.region == detail["awsRegion"]
    assert call.user_identity == detail["userIdentity"]
    assert call.error_code == detail.get("errorCode")
    # And every parameter name is lower-cased, at every depth
    assert all(key == key.lower() for key in _keys(call.parameters))


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_create_project_version_parameters() -> None:
    # Given the CreateProjectVersion sample (PascalCase)
    call = parse_training_call(load_event("cloudtrail_create_project_version"))
    # When its parameters are read by lower-case names
    params = call.parameters
    # Then the nested structure is kept
    assert params["kmskeyid"] == "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    manifest = params["trainingdata"]["assets"][0]["groundtruthmanifest"]["s3object"]
    assert manifest == {"bucket": "custom-labels-training", "name": "datasets/cats/train.manifest"}
    assert params["outputconfig"] == {"s3bucket": "custom-labels-output", "s3keyprefix": "cats/output/"}
    assert call.error_code is None
    assert call.error_message is None


def test_lower_camel_parameters_equal_pascal_ones() -> None:
    # Given the lowerCamelCase sample and the PascalCase one
    lower = parse_training_call(load_event("cloudtrail_create_project_version_lowercamel")).parameters
    pascal = parse_training_call(load_event("cloudtrail_create_project_version")).parameters
    # When read by lower-case names
    # Then they have the same shape
    assert lower["kmskeyid"] == pascal["kmskeyid"]
    assert lower["trainingdata"] == pascal["trainingdata"]
    assert lower["testingdata"] == {"autocreate": True}
    assert set(lower) == set(pascal)


def test_access_denied_sample_keeps_error_and_message() -> None:
    # Given the AccessDenied sample naming kms:CreateGrant
    call = parse_training_call(load_event("cloudtrail_create_project_version_access_denied_kms"))
    # Then both error fields are available to the grant decision
    assert call.error_code == "AccessDeniedException"
    assert call.error_message is not None
    assert "kms:CreateGrant" in call.error_message


def test_account_and_region_fall_back_to_the_envelope() -> None:
    # Given a record without recipientAccountId and awsRegion
    event = load_event("cloudtrail_create_project_version")
    del event["detail"]["recipientAccountId"]
    del event["detail"]["awsRegion"]
    event["account"] = "999988887777"
    event["region"] = "eu-west-1"
    # When parsed
    call = parse_training_call(event)
    # Then the EventBridge envelope's values are used
    assert (call.account, call.region) == ("999988887777", "eu-west-1")


def test_missing_request_parameters_is_empty() -> None:
    # Given a record whose requestParameters are null
    event = load_event("cloudtrail_create_project_version")
    event["detail"]["requestParameters"] = None
    # When parsed
    # Then the parameters are empty (not an error)
    assert parse_training_call(event).parameters == {}


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.update(source="aws.s3"),
        lambda e: e.update({"detail-type": "Object Created"}),
        lambda e: e.pop("id"),
        lambda e: e.pop("detail"),
        lambda e: e.update(detail=[]),
        lambda e: e["detail"].pop("eventName"),
        lambda e: e["detail"].update(eventName=5),
        lambda e: e["detail"].update(requestParameters="KmsKeyId=x"),
        lambda e: e["detail"].update(requestParameters=[1]),
        lambda e: e["detail"].update(recipientAccountId=5),
        lambda e: (e["detail"].pop("recipientAccountId"), e.pop("account")),
        lambda e: (e["detail"].pop("awsRegion"), e.pop("region")),
    ],
)
def test_invalid_training_call(change: Any) -> None:
    # Given a Rekognition sample with a missing or mistyped field, or another source
    event = load_event("cloudtrail_create_project_version")
    change(event)
    # When parsed
    # Then InvalidEvent
    with pytest.raises(InvalidEvent):
        parse_training_call(event)


def test_s3_event_is_not_a_training_call() -> None:
    # Given an S3 sample
    # When parsed as a training call
    # Then InvalidEvent
    for sample in S3_SAMPLES:
        with pytest.raises(InvalidEvent):
            parse_training_call(load_event(sample))


@pytest.mark.parametrize("event", [None, "x", [], 1, 1.5, True])
def test_training_call_that_is_not_an_object(event: Any) -> None:
    # Given an event that is not a JSON object
    # When parsed
    # Then InvalidEvent
    with pytest.raises(InvalidEvent):
        parse_training_call(event)


def test_deeply_nested_parameters_are_invalid_not_a_crash() -> None:
    # Given request parameters nested far deeper than any real record
    nested: Any = "x"
    for _ in range(5000):
        nested = {"A": nested}
    event = load_event("cloudtrail_create_project_version")
    event["detail"]["requestParameters"] = nested
    # When parsed
    # Then InvalidEvent (not RecursionError)
    with pytest.raises(InvalidEvent, match="deeper"):
        parse_training_call(event)


def test_error_code_of_wrong_type_is_ignored() -> None:
    # Given errorCode/errorMessage of the wrong types
    event = load_event("cloudtrail_create_project_version")
    event["detail"]["errorCode"] = {"code": "x"}
    event["detail"]["errorMessage"] = 12
    # When parsed
    call = parse_training_call(event)
    # Then they read as absent
    assert call.error_code is None
    assert call.error_message is None


# --- fuzzing: only results or InvalidEvent ------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)
SAMPLES_FOR_MUTATION = [*S3_SAMPLES, *REKOGNITION_SAMPLES]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@st.composite
def mutated_samples(draw: st.DrawFn) -> Any:
    """A sample event with one node replaced by an arbitrary JSON value, or deleted."""
    event = load_event(draw(st.sampled_from(SAMPLES_FOR_MUTATION)))
    paths = [p for p in _paths(event) if p]
    path = draw(st.sampled_from(paths))
    parent = event
    for part in path[:-1]:
        parent = parent[part]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return event


FUZZ = settings(max_examples=200, deadline=None)


@FUZZ
@given(value=st.one_of(json_values, mutated_samples()))
def test_verify_message_fuzz_json(value: Any) -> None:
    # Given any JSON value, or a sample with one node replaced or removed
    # When parsed as a verify-queue body
    try:
        result = parse_verify_message(json.dumps(value), from_guard=True)
    except InvalidEvent:
        return
    # Then it is a result (None, work, or a finding message) — never any other exception
    assert result is None or isinstance(result, FindingMessage | list)
    if isinstance(result, list):
        for work in result:
            assert isinstance(work, ObjectWork)
            assert isinstance(work.ref.bucket, str)
            assert work.ref.bucket
            assert isinstance(work.ref.key, str)
            assert work.ref.key
            assert "\x00" not in work.ref.key


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_verify_message_fuzz_text(text: str | bytes) -> None:
    # Given arbitrary text or bytes
    # When parsed
    # Then a result or InvalidEvent, nothing else
    try:
        result = parse_verify_message(text, from_guard=True)
    except InvalidEvent:
        return
    assert result is None or isinstance(result, FindingMessage | list)


@FUZZ
@given(value=st.one_of(json_values, mutated_samples()))
def test_training_call_fuzz(value: Any) -> None:
    # Given any JSON value, or a sample with one node replaced or removed
    # When parsed as a training call
    try:
        call = parse_training_call(value)
    except InvalidEvent:
        return
    # Then a result has string identifiers and lower-cased parameter names
    assert isinstance(call.event_id, str)
    assert call.event_id
    assert isinstance(call.account, str)
    assert isinstance(call.region, str)
    assert isinstance(call.parameters, dict)
    assert all(key == key.lower() for key in _keys(call.parameters))


@pytest.mark.parametrize("kind", ["verify-objects", "finding"])
def test_the_guards_own_kinds_are_refused_from_any_other_sender(kind: str) -> None:
    # Given a well-formed message of one of the guard's own kinds
    if kind == "verify-objects":
        message = _verify_objects()
    else:
        message = {"kind": FINDING_KIND, "finding": {"finding_type": "OBJECT_UNENCRYPTED"}}

    # When it is parsed as not sent by the guard's functions
    # Then it is refused, as an untrusted sender (an InvalidEvent: the record fails)
    with pytest.raises(UntrustedSender):
        parse_verify_message(_body(message))
    assert parse_verify_message(_body(message), from_guard=True) is not None


def test_aws_events_need_no_guard_sender() -> None:
    # Given an S3 Object Created event / When parsed from any sender / Then it is work
    assert _work(load_event("s3_object_created")).reason == "PutObject"
