"""One bucket-name rule (S3 "Bucket naming rules", current and legacy us-east-1), shared by the
configuration and the manifest parser."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.boundary.config import load_settings
from clguard.boundary.manifest import parse_source_ref
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import ConfigError
from clguard.rules.names import is_bucket_name, is_current_bucket_name, is_legacy_bucket_name

LOWER = string.ascii_lowercase + string.digits
current_names = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from(LOWER),
    st.text(LOWER + ".-", min_size=1, max_size=61),
    st.sampled_from(LOWER),
).filter(lambda n: ".." not in n and not all(p.isdigit() for p in n.split(".")))
legacy_names = st.text(string.ascii_letters + string.digits + "._-", min_size=3, max_size=255)
not_names = st.one_of(
    st.text(string.ascii_letters + "._-", max_size=2),
    st.text(string.ascii_letters, min_size=256, max_size=300),
    st.builds(lambda a, c, b: a + c + b, legacy_names, st.sampled_from("/ :*?#\\\u00fc\u4e2d\x00"), legacy_names),
)
ENV = {
    "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
    "STATE_TABLE": "state",
    "AWS_REGION": "us-east-1",
}


@settings(max_examples=150, deadline=None)
@given(name=current_names)
def test_every_name_s3_accepts_today_is_a_bucket_name(name: str) -> None:
    assert is_current_bucket_name(name)
    assert is_bucket_name(name)


@settings(max_examples=150, deadline=None)
@given(name=legacy_names)
def test_every_legacy_us_east_1_name_is_accepted_by_config_and_manifest(name: str) -> None:
    # Given a name of the legacy us-east-1 rules (upper case, "_", up to 255 characters)
    assert is_legacy_bucket_name(name)
    # When it is a source-ref bucket, or a training bucket
    ref = parse_source_ref(f"s3://{name}/images/a.jpg")
    settings_ = load_settings({**ENV, "TRAINING_BUCKETS": name}, account_id="123456789012")
    # Then both accept it, unchanged
    assert ref == S3ObjectRef(name, "images/a.jpg")
    assert settings_.training_buckets == frozenset({name})


@settings(max_examples=150, deadline=None)
@given(name=not_names)
def test_names_no_s3_rule_allows_are_rejected_by_both(name: str) -> None:
    # Given a name outside both rule sets (too short or long, or a character S3 never allowed)
    assert not is_bucket_name(name)
    # Then the manifest parser and the configuration both reject it
    if "/" not in name:  # (a "/" ends the bucket part of an s3:// URI)
        assert isinstance(parse_source_ref(f"s3://{name}/a.jpg"), str)
    if "," not in name and name.strip():
        with pytest.raises(ConfigError) as raised:
            load_settings({**ENV, "TRAINING_BUCKETS": name}, account_id="123456789012")
        assert raised.value.variable == "TRAINING_BUCKETS"


@pytest.mark.parametrize("name", ["My_Training_Data", "LEGACY.Bucket-2017", "a" * 255])
def test_legacy_examples(name: str) -> None:
    assert is_bucket_name(name)
    assert not is_current_bucket_name(name)
