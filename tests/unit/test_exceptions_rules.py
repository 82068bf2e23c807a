"""Accepted exceptions as code (docs/architecture.md §5b): the document's rules and what it mutes."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.reporting.findings import FindingType
from clguard.rules.exceptions import MAX_DOCUMENT_BYTES, MAX_EXCEPTIONS, InvalidExceptions, parse

TYPES = [t.value for t in FindingType]
CONTRACT_EXAMPLE = {
    "exceptions": [
        {
            "id": "archive-sse-c",
            "finding_types": ["OBJECT_SSE_C"],
            "resources": ["s3://train-data/archive/*"],
            "principals": [],
            "reason": "vendor archive, read by the vendor's own pipeline",
            "owner": "ml-platform",
            "expires": "2027-03-31",
        }
    ]
}


def _doc(**changes: Any) -> bytes:
    entry = {**CONTRACT_EXAMPLE["exceptions"][0], **changes}
    entry = {k: v for k, v in entry.items() if v is not None}
    return json.dumps({"exceptions": [entry]}).encode()


def test_the_contract_example_is_valid_and_mutes_what_it_names() -> None:
    # Given the document of docs/architecture.md §5b
    document = parse(json.dumps(CONTRACT_EXAMPLE).encode(), TYPES)
    # When findings are judged on a day before it expires
    day = date(2027, 1, 1)
    inside = document.verdict("OBJECT_SSE_C", "s3://train-data/archive/v1/a.jpg", None, day)
    other_type = document.verdict("OBJECT_UNENCRYPTED", "s3://train-data/archive/v1/a.jpg", None, day)
    other_place = document.verdict("OBJECT_SSE_C", "s3://train-data/images/a.jpg", None, day)
    # Then only the listed type under the glob is muted
    assert inside.muted_by is not None
    assert inside.muted_by.id == "archive-sse-c"
    assert other_type.muted_by is None
    assert other_place.muted_by is None


def test_an_exception_is_valid_through_its_expiry_day_and_expired_the_next() -> None:
    # Given the contract example (expires 2027-03-31)
    document = parse(json.dumps(CONTRACT_EXAMPLE).encode(), TYPES)
    resource = "s3://train-data/archive/a.jpg"
    # When a matching finding is judged on the expiry day and on the day after
    last = document.verdict("OBJECT_SSE_C", resource, None, date(2027, 3, 31))
    after = document.verdict("OBJECT_SSE_C", resource, None, date(2027, 4, 1))
    # Then it is muted on the day, and after it alerts again, naming the expired exception
    assert last.muted_by is not None
    assert after.muted_by is None
    assert [e.id for e in after.expired] == ["archive-sse-c"]


def test_principals_narrow_an_exception() -> None:
    # Given an exception for one principal
    raw = _doc(
        finding_types=["PRINCIPAL_NOT_ALLOWED"],
        resources=["arn:aws:kms:us-east-1:123456789012:key/*"],
        principals=["arn:aws:iam::123456789012:role/vendor-*"],
    )
    document = parse(raw, TYPES)
    key = "arn:aws:kms:us-east-1:123456789012:key/1234"
    day = date(2027, 1, 1)
    # Then it mutes that principal's finding only, and never a finding without a principal
    assert document.verdict("PRINCIPAL_NOT_ALLOWED", key, "arn:aws:iam::123456789012:role/vendor-a", day).muted_by
    assert document.verdict("PRINCIPAL_NOT_ALLOWED", key, "arn:aws:iam::123456789012:role/other", day).muted_by is None
    assert document.verdict("PRINCIPAL_NOT_ALLOWED", key, None, day).muted_by is None


def test_yaml_is_accepted() -> None:
    # Given the contract example written as YAML (an unquoted date included)
    raw = b"""exceptions:
  - id: archive-sse-c
    finding_types: [OBJECT_SSE_C]
    resources: ["s3://train-data/archive/*"]
    reason: vendor archive
    expires: 2027-03-31
"""
    # When it is parsed
    document = parse(raw, TYPES)
    # Then it is the same exception
    assert document.exceptions[0].expires == date(2027, 3, 31)


@given(
    finding_type=st.sampled_from([t for t in TYPES if t != "OBJECT_SSE_C"]),
    key=st.text(min_size=1, max_size=50),
    days=st.integers(min_value=-1000, max_value=1000),
)
def test_an_exception_never_mutes_a_type_it_does_not_list(finding_type: str, key: str, days: int) -> None:
    # Given the contract example (OBJECT_SSE_C under s3://train-data/archive/*)
    document = parse(json.dumps(CONTRACT_EXAMPLE).encode(), TYPES)
    # When any other finding type on any key under the glob is judged, on any day
    verdict = document.verdict(
        finding_type, f"s3://train-data/archive/{key}", None, date(2027, 3, 31) + timedelta(days)
    )
    # Then it is not muted
    assert verdict.muted_by is None


@given(days=st.integers(min_value=1, max_value=5000), key=st.text(min_size=1, max_size=50))
def test_an_expired_exception_mutes_nothing(days: int, key: str) -> None:
    document = parse(json.dumps(CONTRACT_EXAMPLE).encode(), TYPES)
    verdict = document.verdict(
        "OBJECT_SSE_C", f"s3://train-data/archive/{key}", None, date(2027, 3, 31) + timedelta(days)
    )
    assert verdict.muted_by is None
    assert verdict.expired


# --- hostile documents: the exact message an operator reads, every limit at its boundary (§5b) --

ONE = "exceptions[0] (archive-sse-c)"  # where a field of the contract example's entry is named
NOT_A_GLOB = "not s3://<bucket>/<key glob> nor arn:<partition>:<service>:<region>:<12-digit account>:<resource glob>"
ROLE = "arn:aws:iam::123456789012:role/vendor-{}"


def _entries(count: int) -> bytes:
    entry = {k: v for k, v in CONTRACT_EXAMPLE["exceptions"][0].items() if k != "id"}
    return json.dumps({"exceptions": [{"id": f"e{i}", **entry} for i in range(count)]}, separators=(",", ":")).encode()


def _without(*names: str) -> bytes:
    entry = {k: v for k, v in CONTRACT_EXAMPLE["exceptions"][0].items() if k not in names}
    return json.dumps({"exceptions": [entry]}).encode()


MESSAGES: list[tuple[str, bytes, str]] = [
    ("one byte too large", b" " * (MAX_DOCUMENT_BYTES + 1), "the document is 262145 bytes; at most 262144 are read"),
    ("not UTF-8", b'{"exceptions": ["\xff"]}', "the document is not UTF-8 text (byte 17)"),
    ("deep JSON", b"[" * 100_000 + b"]" * 100_000, "the document is nested too deeply"),
    ("deep YAML", b"x: " + b"[" * 100_000 + b"]" * 100_000, "the document is nested too deeply"),
    (
        "neither JSON nor YAML",
        b'{"exceptions": [',
        "the document is neither JSON (Expecting value: line 1 column 17 (char 16)) "
        "nor YAML (while parsing a flow node)",
    ),
    ("not an object", b"[1, 2]", 'the document must be an object {"exceptions": [...]}'),
    (
        "extra top level",
        b'{"exceptions": [], "mute_all": true, "comment": "x"}',
        "unknown top-level field(s): comment, mute_all",
    ),
    ("exceptions not a list", b'{"exceptions": {"id": "a"}}', '"exceptions" must be a list'),
    ("one entry too many", _entries(MAX_EXCEPTIONS + 1), f'"exceptions" has 1001 entries; at most {MAX_EXCEPTIONS}'),
    ("entry not an object", b'{"exceptions": ["a"]}', "exceptions[0]: must be an object"),
    (
        "misspelt fields",
        _doc(expire="2027-01-01", note="x"),
        "exceptions[0]: unknown field(s) expire, note "
        "(allowed: expires, finding_types, id, owner, principals, reason, resources)",
    ),
    ("missing fields", _without("reason", "expires"), "exceptions[0]: missing required field(s) reason, expires"),
    ("id with spaces", _doc(id="a b"), "exceptions[0].id: must match [A-Za-z0-9._-]{1,64}"),
    (
        "types not a list",
        _doc(finding_types="OBJECT_SSE_C"),
        f"{ONE}.finding_types: must be a non-empty list of strings",
    ),
    ("no types", _doc(finding_types=[]), f"{ONE}.finding_types: must be a non-empty list of strings"),
    (
        "unknown type",
        _doc(finding_types=["OBJECT_ENCRYPTED"]),
        f"{ONE}.finding_types[0]: 'OBJECT_ENCRYPTED' is not a finding type that can be muted",
    ),
    ("resources not a list", _doc(resources="s3://b/*"), f"{ONE}.resources: must be a non-empty list of strings"),
    ("one glob too many", _doc(resources=["s3://train-data/a"] * 101), f"{ONE}.resources: 101 entries; at most 100"),
    ("number in resources", _doc(resources=[7]), f"{ONE}.resources[0]: must be a non-empty string"),
    (
        "glob one over 1,100",
        _doc(resources=["s3://train-data/" + "k" * 1085]),
        f"{ONE}.resources[0]: too long or contains a control character",
    ),
    (
        "short glob, control character",
        _doc(resources=["s3://train-data/a\nb"]),
        f"{ONE}.resources[0]: too long or contains a control character",
    ),
    (
        "bare star",
        _doc(resources=["*"]),
        f"{ONE}.resources[0]: '*': a glob of wildcards only would mute every finding of these types",
    ),
    (
        "every wildcard character",
        _doc(resources=["*?[]/:"]),
        f"{ONE}.resources[0]: '*?[]/:': a glob of wildcards only would mute every finding of these types",
    ),
    ("no scheme", _doc(resources=["X*"]), f"{ONE}.resources[0]: 'X*': {NOT_A_GLOB}"),
    ("any arn", _doc(resources=["arn:*"]), f"{ONE}.resources[0]: 'arn:*': {NOT_A_GLOB}"),
    (
        "any bucket",
        _doc(resources=["s3://*/*"]),
        f"{ONE}.resources[0]: 's3://*/*': "
        "an s3:// glob needs a literal bucket name (no wildcards) followed by /<key glob>",
    ),
    (
        "bucket only",
        _doc(resources=["s3://train-data"]),
        f"{ONE}.resources[0]: 's3://train-data': "
        "an s3:// glob needs a key part (s3://<bucket>/<key glob>, e.g. s3://b/archive/*)",
    ),
    (
        "bucket and slash, no key",
        _doc(resources=["s3://train-data/"]),
        f"{ONE}.resources[0]: 's3://train-data/': "
        "an s3:// glob needs a key part (s3://<bucket>/<key glob>, e.g. s3://b/archive/*)",
    ),
    ("principals not a list", _doc(principals="x"), f"{ONE}.principals: must be a list of strings"),
    (
        "one principal too many",
        _doc(principals=[ROLE.format(i) for i in range(101)]),
        f"{ONE}.principals: 101 entries; at most 100",
    ),
    (
        "principal star",
        _doc(principals=["*"]),
        f"{ONE}.principals[0]: '*' is not a principal ARN glob with a literal account",
    ),
    ("empty owner", _doc(owner=" "), f"{ONE}.owner: must be a non-empty string"),
    ("owner one over 128", _doc(owner="o" * 129), f"{ONE}.owner: 129 characters; at most 128"),
    ("reason one over 400", _doc(reason="x" * 401), f"{ONE}.reason: 401 characters; at most 400"),
    ("reason with a line break", _doc(reason="ok\n[ALL CLEAR]"), f"{ONE}.reason: contains a control character"),
    ("never expires", _doc(expires="never"), f"{ONE}.expires: 'never' is not a date YYYY-MM-DD (expiry is mandatory)"),
    ("not a calendar day", _doc(expires="2027-02-30"), f"{ONE}.expires: '2027-02-30' is not a calendar date"),
    (
        "duplicate id",
        json.dumps({"exceptions": CONTRACT_EXAMPLE["exceptions"] * 2}).encode(),
        "exceptions[1].id: 'archive-sse-c' is used twice",
    ),
    # the security-relevant refusals: globs that would mute too much, an exception that never ends
    (
        "star of stars",
        _doc(resources=["*/*"]),
        f"{ONE}.resources[0]: '*/*': a glob of wildcards only would mute every finding of these types",
    ),
    (
        "any account",
        _doc(resources=["arn:aws:kms:us-east-1:*:key/*"]),
        f"{ONE}.resources[0]: 'arn:aws:kms:us-east-1:*:key/*': {NOT_A_GLOB}",
    ),
    ("no resources", _doc(resources=[]), f"{ONE}.resources: must be a non-empty list of strings"),
    ("missing expiry", _doc(expires=None), "exceptions[0]: missing required field(s) expires"),
    (
        "datetime",
        _doc(expires="2027-03-31T00:00:00Z"),
        f"{ONE}.expires: '2027-03-31T00:00:00Z' is not a date YYYY-MM-DD (expiry is mandatory)",
    ),
    (
        "mute its own alarm",
        _doc(finding_types=["EXCEPTIONS_INVALID"]),
        f"{ONE}.finding_types[0]: 'EXCEPTIONS_INVALID' is not a finding type that can be muted",
    ),
    ("number in types", _doc(finding_types=[1]), f"{ONE}.finding_types[0]: must be a non-empty string"),
    ("no reason", _doc(reason=""), f"{ONE}.reason: must be a non-empty string"),
    ("line separator", _doc(owner="team\u2028evil"), f"{ONE}.owner: contains a control character"),
    (
        "too many empty entries",
        json.dumps({"exceptions": [{}] * 1001}).encode(),
        '"exceptions" has 1001 entries; at most 1000',
    ),
    (
        "yaml alias bomb",
        b"a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nexceptions: [*c, *c]\n",
        "unknown top-level field(s): a, b, c",
    ),
    (
        "yaml python tag",
        b"exceptions: !!python/object/apply:os.system ['true']\n",
        "the document is neither JSON (Expecting value: line 1 column 1 (char 0)) nor YAML "
        "(could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system')",
    ),
]


@pytest.mark.parametrize(("name", "raw", "message"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_an_invalid_document_names_where_and_why_in_full(name: str, raw: bytes, message: str) -> None:
    # Given a document that breaks one rule (at a limit, one over it)
    # When it is parsed
    with pytest.raises(InvalidExceptions) as error:
        parse(raw, TYPES)
    # Then the operator reads exactly which entry and field fail, and why (the EXCEPTIONS_INVALID detail)
    assert str(error.value) == message, name


def _padded(raw: bytes, size: int) -> bytes:
    return raw[:-1] + b" " * (size - len(raw)) + raw[-1:]


AT_THE_LIMIT: list[tuple[str, bytes]] = [
    ("exactly 256 KiB", _padded(json.dumps(CONTRACT_EXAMPLE).encode(), MAX_DOCUMENT_BYTES)),
    ("exactly 1,000 exceptions", _entries(MAX_EXCEPTIONS)),
    ("exactly 100 resources", _doc(resources=[f"s3://train-data/{i}/*" for i in range(100)])),
    ("exactly 100 principals", _doc(principals=[ROLE.format(i) for i in range(100)])),
    ("a glob of exactly 1,100 characters", _doc(resources=["s3://train-data/" + "k" * 1084])),
    ("a reason of exactly 400 characters", _doc(reason="x" * 400)),
    ("an owner of exactly 128 characters", _doc(owner="o" * 128)),
    ("a bucket of 3 characters, the shortest S3 allows", _doc(resources=["s3://abc/archive/*"])),
]


@pytest.mark.parametrize(("name", "raw"), AT_THE_LIMIT, ids=[a[0] for a in AT_THE_LIMIT])
def test_a_document_exactly_at_a_limit_is_accepted(name: str, raw: bytes) -> None:
    # Given a document exactly at one of its limits
    # When it is parsed
    document = parse(raw, TYPES)
    # Then it is valid (one more is refused: test_an_invalid_document_names_where_and_why_in_full)
    assert document.exceptions, name
    assert len(raw) <= MAX_DOCUMENT_BYTES


def test_a_parsed_exception_keeps_every_field_the_suppressed_finding_shows() -> None:
    # Given the contract example
    # When it is parsed
    (exception,) = parse(json.dumps(CONTRACT_EXAMPLE).encode(), TYPES).exceptions
    # Then the fields a suppressed finding carries (exception_id, reason, owner, expires) are the document's
    assert (exception.id, exception.reason, exception.owner, exception.expires) == (
        "archive-sse-c",
        "vendor archive, read by the vendor's own pipeline",
        "ml-platform",
        date(2027, 3, 31),
    )
    assert exception.finding_types == {"OBJECT_SSE_C"}
    assert exception.resources == ("s3://train-data/archive/*",)


def test_without_pyyaml_a_document_that_is_not_json_is_refused_as_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a deployment where PyYAML is not installed (YAML is accepted only where it is)
    monkeypatch.setitem(sys.modules, "yaml", None)
    # When a YAML document is parsed
    with pytest.raises(InvalidExceptions) as error:
        parse(b"exceptions: []\n", TYPES)
    # Then the message says it is not JSON, and where JSON failed
    assert str(error.value) == "the document is not JSON (Expecting value: line 1 column 1 (char 0))"


def test_a_yaml_error_without_text_is_named_by_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a YAML parser that fails without any text (a YAMLError may carry no message)
    import yaml  # noqa: PLC0415 - only this test needs it

    def fail(_text: str) -> None:
        raise yaml.YAMLError

    monkeypatch.setattr(yaml, "safe_load", fail)
    # When a document that is not JSON is parsed
    with pytest.raises(InvalidExceptions) as error:
        parse(b"exceptions: []\n", TYPES)
    # Then the message still names what failed instead of crashing or showing nothing
    assert str(error.value) == (
        "the document is neither JSON (Expecting value: line 1 column 1 (char 0)) nor YAML (YAMLError)"
    )
