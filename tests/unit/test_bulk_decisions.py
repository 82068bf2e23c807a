"""Bulk re-encryption's pure decisions (clguard.usecases.bulkremediation): which inventory rows are
candidates, the threshold (per object up to it, a job past it), the manifest row of any key, and its
configuration."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.boundary.config import Settings, load_settings
from clguard.errors import ConfigError
from clguard.rules.encryption import Encryption
from clguard.usecases import bulkremediation
from clguard.usecases.bulkremediation import BulkConfig, BulkRemediation, Candidate, candidate, manifest_line

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
BUCKET = "custom-labels-training"


def _settings(requirement: str = "SSE_S3_OR_KMS", reencrypt: str = "", mode: str = "enforce") -> Settings:
    env = {
        "AWS_REGION": "us-east-1",
        "ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts",
        "TRAINING_BUCKETS": BUCKET,
        "STATE_TABLE": "custom-labels-guard-state",
        "ENCRYPTION_REQUIREMENT": requirement,
        "REENCRYPT_KMS_KEY": reencrypt,
        "REMEDIATION_MODE": mode,
    }
    return load_settings(env, account_id=ACCOUNT)


def test_candidates_are_the_rows_with_a_safe_target_only() -> None:
    # Given the default settings (SSE_S3_OR_KMS, no re-encryption key) and SSE_KMS with a key
    default, strict = _settings(), _settings("SSE_KMS", KEY)
    # Then NOT-SSE is a candidate (to SSE-S3, or the key), SSE-S3 only where SSE_KMS is required,
    # and KMS, SSE-C and unknown statuses never (the inventory does not say which key)
    assert candidate(default, "a", "s", "NOT-SSE") == Candidate("a", "s", "OBJECT_UNENCRYPTED", _target(default))
    assert candidate(default, "a", "s", "SSE-S3") is None
    found = candidate(strict, "a", "s", "SSE-S3")
    assert found is not None
    assert (found.finding_type, found.target.kind, found.target.kms_key_arn) == (
        "OBJECT_WRONG_ENCRYPTION",
        Encryption.SSE_KMS,
        KEY,
    )
    for status in ("SSE-KMS", "DSSE-KMS", "SSE-C", "", "bogus"):
        assert candidate(strict, "a", "s", status) is None
    # And SSE_KMS without a key has nothing safe to do: no candidate
    assert candidate(_settings("SSE_KMS"), "a", "s", "NOT-SSE") is None


def _target(settings: Settings) -> Any:
    found = candidate(settings, "k", "s", "NOT-SSE")
    assert found is not None
    return found.target


class _Counted(BulkRemediation):
    """The collection as the audit drives it, each job counted instead of written to S3."""

    jobs: list[int]

    def _job(self) -> None:
        self.jobs.append(len(self.collected))
        self.progress["segment"] = int(self.progress.get("segment", 0)) + 1
        self.collected = []


def _collector(threshold: int, jobs: list[int]) -> BulkRemediation:
    bulk = _Counted(_settings(), BulkConfig(threshold, f"arn:aws:iam::{ACCOUNT}:role/r"), "r", "p/", "run", None)  # type: ignore[arg-type]
    bulk.bucket, bulk.progress, bulk.jobs = BUCKET, {}, jobs
    return bulk


@pytest.mark.parametrize(
    ("objects", "per_object", "job"),
    [(9_999, 9_999, []), (10_000, 10_000, []), (10_001, 0, [10_001])],
)
def test_the_default_threshold_per_object_up_to_it_one_job_past_it(
    objects: int, per_object: int, job: list[int]
) -> None:
    # Given the default threshold and a bucket with ``objects`` candidates
    assert bulkremediation.load_config({}).threshold == 10_000
    jobs: list[int] = []
    bulk = _collector(bulkremediation.load_config({}).threshold, jobs)
    offered: list[str] = []
    # When the bucket is read to its end
    for n in range(objects):
        assert bulk.take(Candidate(f"k{n}", "s", "OBJECT_UNENCRYPTED", _target(bulk.settings)))
    bulk.end(lambda found: offered.append(found.key))
    # Then up to the threshold each object goes the per-object way; past it, one job takes them all
    assert (len(offered), jobs) == (per_object, job)


@given(st.text(min_size=1, max_size=200))
def test_any_key_is_one_ascii_manifest_row_that_decodes_back(key: str) -> None:
    # Given any object key (commas, quotes, line breaks, '%', '+', non-ASCII, surrogates excluded by S3)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in key):
        return
    # When it is written as a manifest row
    line = manifest_line(BUCKET, key)
    # Then the row is ASCII, one line, two CSV fields, and the key URL-decodes back exactly
    assert line.isascii()
    assert line.count("\n") == 1
    assert line.endswith("\n")
    [row] = list(csv.reader(io.StringIO(line)))
    assert row[0] == BUCKET
    assert unquote(row[1]) == key


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"BULK_REENCRYPT_THRESHOLD": "0"}, "BULK_REENCRYPT_THRESHOLD"),
        ({"BULK_REENCRYPT_THRESHOLD": "100001"}, "BULK_REENCRYPT_THRESHOLD"),
        ({"BULK_REENCRYPT_THRESHOLD": "1e4"}, "BULK_REENCRYPT_THRESHOLD"),
        ({"BULK_REENCRYPT_ROLE": "clguard-bulk"}, "BULK_REENCRYPT_ROLE"),
    ],
)
def test_a_bad_configuration_is_a_clear_error(env: dict[str, str], problem: str) -> None:
    # Given a bad bulk variable, when the configuration is loaded, then the error names it
    with pytest.raises(ConfigError, match=problem):
        bulkremediation.load_config(env)


def test_the_configuration_bounds_are_accepted() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/clguard-bulk"
    assert bulkremediation.load_config({"BULK_REENCRYPT_THRESHOLD": "1"}).threshold == 1
    assert bulkremediation.load_config(
        {"BULK_REENCRYPT_THRESHOLD": "100000", "BULK_REENCRYPT_ROLE": role}
    ) == BulkConfig(100_000, role)
