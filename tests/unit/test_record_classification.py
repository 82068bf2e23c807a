"""Classifying an object from its CloudTrail S3 data event record (``classify_observed``): what
the sample records say, and properties that hold for any record (hypothesis).

The record decides only on positive, consistent evidence; anything else is None, which sends
the object to HeadObject exactly as an ``Object Created`` event does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.boundary.events import ObjectWork, parse_verify_message
from clguard.rules.arns import parse_key_arn
from clguard.rules.encryption import (
    SSE_APPLIED_KMS,
    SSE_APPLIED_S3,
    Encryption,
    ObjectEncryption,
    ObservedEncryption,
    classify,
    classify_observed,
)
from tests.eventsamples import load_event

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLE_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = SAMPLE_KEY
OTHER_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/22222222-2222-2222-2222-222222222222"


def work_of(event: dict[str, Any]) -> ObjectWork:
    message = parse_verify_message(json.dumps(event))
    assert isinstance(message, list)
    [work] = message
    return work


def observed_of(name: str) -> ObservedEncryption | None:
    return work_of(load_event(name)).observed


# --- the sample records -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("cloudtrail_s3_putobject", ObjectEncryption(Encryption.SSE_S3)),
        ("cloudtrail_s3_completemultipartupload", ObjectEncryption(Encryption.SSE_S3)),
        ("cloudtrail_s3_copyobject", ObjectEncryption(Encryption.SSE_KMS, SAMPLE_KEY)),
        ("cloudtrail_s3_putobject_default_sse_kms", ObjectEncryption(Encryption.SSE_KMS, SAMPLE_KEY)),
        ("cloudtrail_s3_putobject_dsse_kms", ObjectEncryption(Encryption.DSSE_KMS, SAMPLE_KEY)),
        ("cloudtrail_s3_putobject_sse_c", ObjectEncryption(Encryption.SSE_C)),
    ],
)
def test_each_sample_record_says_its_encryption(sample: str, expected: ObjectEncryption) -> None:
    # Given a real-shaped data event record of each encryption S3 reports
    # When its encryption facts are parsed and classified
    observed = observed_of(sample)
    assert observed is not None

    # Then the record alone names the encryption of the version it wrote
    assert classify_observed(observed) == expected


def test_a_record_without_encryption_fields_carries_no_facts() -> None:
    # Given an older record: no SSEApplied, responseElements null
    # When it is parsed
    work = work_of(load_event("cloudtrail_s3_putobject_no_encryption_fields"))

    # Then it carries nothing to decide from (HeadObject decides), and no version
    assert (work.observed, work.ref.version_id) == (None, None)


def test_the_version_the_record_names_is_carried() -> None:
    # Given a record from a versioned bucket
    # When it is parsed
    work = work_of(load_event("cloudtrail_s3_putobject_default_sse_kms"))

    # Then the version it wrote is the work's version, and the facts are the record's as written
    assert work.ref.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert work.observed == ObservedEncryption("Default_SSE_KMS", "aws:kms", SAMPLE_KEY, None)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"x-amz-server-side-encryption-aws-kms-key-id": "1234abcd-12ab-34cd-56ef-1234567890ab"}, "bare key id"),
        ({"x-amz-server-side-encryption-aws-kms-key-id": "alias/aws/s3"}, "alias"),
        ({"x-amz-server-side-encryption-aws-kms-key-id": None}, "no key"),
        ({"x-amz-server-side-encryption-aws-kms-key-id": 42}, "not a string"),
        ({"x-amz-server-side-encryption": "aws:fancy"}, "unknown algorithm"),
        ({"x-amz-server-side-encryption": "AES256"}, "contradicts SSEApplied and the key"),
    ],
)
def test_records_that_do_not_say_enough_decide_nothing(change: dict[str, Any], why: str) -> None:
    # Given the SSE-KMS sample record with one field changed
    event = load_event("cloudtrail_s3_putobject_default_sse_kms")
    response = event["detail"]["responseElements"]
    for name, value in change.items():
        if value is None:
            response.pop(name)
        else:
            response[name] = value

    # When it is classified
    observed = work_of(event).observed

    # Then the record decides nothing: HeadObject will
    assert observed is None or classify_observed(observed) is None, why


def test_an_unknown_sse_applied_value_decides_nothing() -> None:
    # Given the SSE-S3 sample with an SSEApplied value this version does not know
    event = load_event("cloudtrail_s3_putobject")
    event["detail"]["additionalEventData"]["SSEApplied"] = "Default_SSE_QUANTUM"

    # When it is classified / Then it decides nothing
    observed = work_of(event).observed
    assert observed is not None
    assert classify_observed(observed) is None


# --- properties ---------------------------------------------------------------------------------

KEY_IDS = st.one_of(
    st.sampled_from([KEY_ARN, OTHER_KEY_ARN, "1234abcd-12ab-34cd-56ef-1234567890ab", "alias/aws/s3", ""]),
    st.text(max_size=40),
)
APPLIED = st.one_of(
    st.none(), st.sampled_from(sorted({*SSE_APPLIED_S3, *SSE_APPLIED_KMS, "SSE_C"})), st.text(max_size=20)
)
ALGORITHMS = st.one_of(st.none(), st.sampled_from(["AES256", "aws:kms", "aws:kms:dsse"]), st.text(max_size=12))
observations = st.builds(
    ObservedEncryption,
    sse_applied=APPLIED,
    algorithm=ALGORITHMS,
    kms_key_id=st.one_of(st.none(), KEY_IDS),
    customer_algorithm=st.one_of(st.none(), st.just("AES256"), st.text(max_size=8)),
)
HEADER_OF = {Encryption.SSE_S3: "AES256", Encryption.SSE_KMS: "aws:kms", Encryption.DSSE_KMS: "aws:kms:dsse"}


@PROPERTY
@given(observed=observations)
def test_a_decision_agrees_with_every_field_the_record_has(observed: ObservedEncryption) -> None:
    # Given any record's encryption facts
    # When the record is classified
    decided = classify_observed(observed)

    # Then a decision never claims "unencrypted", and is consistent with every present field
    if decided is None:
        return
    assert decided.kind is not Encryption.NONE
    if decided.kind is Encryption.SSE_C:
        assert observed.algorithm is None
        assert observed.kms_key_id is None
        assert observed.sse_applied in (None, "SSE_C")
        assert observed.customer_algorithm in (None, "AES256")
        return
    assert observed.customer_algorithm is None
    if observed.algorithm is not None:
        assert HEADER_OF[decided.kind] == observed.algorithm
    if decided.kind.is_kms:
        # the key is the record's own key ARN, exactly (never a bare id, alias or substring)
        assert decided.kms_key_arn == observed.kms_key_id
        assert decided.kms_key_arn is not None
        assert parse_key_arn(decided.kms_key_arn) is not None
        assert observed.sse_applied in (None, *SSE_APPLIED_KMS)
    else:
        assert decided.kms_key_arn is None
        assert observed.kms_key_id is None
        assert observed.sse_applied in (None, *SSE_APPLIED_S3)


@PROPERTY
@given(
    kind=st.sampled_from([Encryption.SSE_S3, Encryption.SSE_KMS, Encryption.DSSE_KMS]),
    key=st.sampled_from([KEY_ARN, OTHER_KEY_ARN]),
    default=st.booleans(),
    bucket_key=st.booleans(),
)
def test_a_record_and_a_head_of_the_same_write_classify_alike(
    kind: Encryption, key: str, default: bool, bucket_key: bool
) -> None:
    # Given one write, as S3 reports it to the writer (and so in the record) and to HeadObject
    header = HEADER_OF[kind]
    head: dict[str, Any] = {"ServerSideEncryption": header, "BucketKeyEnabled": bucket_key}
    if kind.is_kms:
        head["SSEKMSKeyId"] = key
    family = "KMS" if kind.is_kms else "S3"
    observed = ObservedEncryption(
        sse_applied=f"Default_SSE_{family}" if default else f"SSE_{family}",
        algorithm=header,
        kms_key_id=key if kind.is_kms else None,
    )

    # When both are classified
    # Then both paths see the same encryption
    assert classify_observed(observed) == classify(head)


@PROPERTY
@given(observed=observations, drop=st.sampled_from(["sse_applied", "algorithm", "kms_key_id", "customer_algorithm"]))
def test_dropping_a_field_never_changes_a_decision_into_another(observed: ObservedEncryption, drop: str) -> None:
    # Given any record, and the same record with one field missing (older trails, multipart)
    fewer = ObservedEncryption(**{**_fields(observed), drop: None})

    # When both are classified
    before, after = classify_observed(observed), classify_observed(fewer)

    # Then the shorter record decides the same thing, or nothing (never something else)
    if before is not None and after is not None:
        assert before == after


def _fields(observed: ObservedEncryption) -> dict[str, str | None]:
    return {
        "sse_applied": observed.sse_applied,
        "algorithm": observed.algorithm,
        "kms_key_id": observed.kms_key_id,
        "customer_algorithm": observed.customer_algorithm,
    }


@pytest.mark.parametrize(
    ("response", "additional"),
    [
        (["x-amz-server-side-encryption", "AES256"], {"SSEApplied": 7}),
        ("AES256", "Default_SSE_S3"),
        ({"x-amz-server-side-encryption": {"nested": "AES256"}}, None),
        ({"x-amz-server-side-encryption": ""}, {"SSEApplied": ""}),
    ],
)
def test_encryption_fields_of_the_wrong_shape_are_ignored_not_fatal(response: Any, additional: Any) -> None:
    # Given a valid PutObject record whose encryption fields have the wrong types or are empty
    event = load_event("cloudtrail_s3_putobject")
    event["detail"]["responseElements"] = response
    event["detail"]["additionalEventData"] = additional

    # When it is parsed
    work = work_of(event)

    # Then the object is still verified (through HeadObject): no facts, no error
    assert work.observed is None
    assert work.ref.key == "datasets/cats/images/cat-002.jpg"
