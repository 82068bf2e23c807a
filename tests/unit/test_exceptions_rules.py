"""Accepted exceptions as code (docs/architecture.md §5b): the document's rules and what it mutes."""

from __future__ import annotations

import json
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


HOSTILE: list[tuple[str, bytes, str]] = [
    ("bare star", _doc(resources=["*"]), "wildcards only"),
    ("star of stars", _doc(resources=["*/*"]), "wildcards only"),
    ("any bucket", _doc(resources=["s3://*/*"]), "literal bucket"),
    ("bucket only", _doc(resources=["s3://train-data"]), "key part"),
    ("any arn", _doc(resources=["arn:*"]), "not s3://"),
    ("any account", _doc(resources=["arn:aws:kms:us-east-1:*:key/*"]), "not s3://"),
    ("no resources", _doc(resources=[]), "non-empty list"),
    ("missing expiry", _doc(expires=None), "missing required field(s) expires"),
    ("never expires", _doc(expires="never"), "not a date"),
    ("not a calendar day", _doc(expires="2027-02-30"), "not a calendar date"),
    ("datetime", _doc(expires="2027-03-31T00:00:00Z"), "not a date"),
    ("unknown type", _doc(finding_types=["OBJECT_ENCRYPTED"]), "not a finding type"),
    ("mute its own alarm", _doc(finding_types=["EXCEPTIONS_INVALID"]), "not a finding type"),
    ("misspelt field", _doc(expire="2027-01-01"), "unknown field(s) expire"),
    ("no reason", _doc(reason=""), "non-empty string"),
    ("reason too long", _doc(reason="x" * 401), "at most 400"),
    ("control character", _doc(reason="ok\n[ALL CLEAR] nothing to see"), "control character"),
    ("line separator", _doc(owner="team\u2028evil"), "control character"),
    ("id with spaces", _doc(id="a b"), "must match"),
    ("types not a list", _doc(finding_types="OBJECT_SSE_C"), "list of strings"),
    ("number in types", _doc(finding_types=[1]), "non-empty string"),
    ("principal glob star", _doc(principals=["*"]), "principal ARN glob"),
    ("not an object", b"[1, 2]", "must be an object"),
    ("extra top level", b'{"exceptions": [], "mute_all": true}', "unknown top-level"),
    ("exceptions not a list", b'{"exceptions": {"id": "a"}}', "must be a list"),
    ("entry not an object", b'{"exceptions": ["a"]}', "must be an object"),
    ("not UTF-8", b'{"exceptions": ["\xff"]}', "not UTF-8"),
    ("not JSON nor YAML", b'{"exceptions": [', "neither JSON"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("too large", b" " * (MAX_DOCUMENT_BYTES + 1), "at most"),
    ("too many", json.dumps({"exceptions": [{}] * (MAX_EXCEPTIONS + 1)}).encode(), "at most"),
    ("yaml alias bomb", b"a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nexceptions: [*c, *c]\n", "unknown top-level"),
    ("yaml python tag", b"exceptions: !!python/object/apply:os.system ['true']\n", "neither JSON"),
]


@pytest.mark.parametrize(("name", "raw", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_documents_are_refused_with_a_clear_message(name: str, raw: bytes, message: str) -> None:
    # Given a document that breaks a rule
    # When it is parsed
    with pytest.raises(InvalidExceptions) as error:
        parse(raw, TYPES)
    # Then it is refused, and the message says why
    assert message in str(error.value), name


def test_a_duplicate_id_is_refused() -> None:
    entry = CONTRACT_EXAMPLE["exceptions"][0]
    with pytest.raises(InvalidExceptions, match="used twice"):
        parse(json.dumps({"exceptions": [entry, entry]}).encode(), TYPES)


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
