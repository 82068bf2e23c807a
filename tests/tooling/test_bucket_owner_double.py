"""BucketOwnerCondition makes moto answer the bucket owner condition as S3 does (S3 User Guide,
"Verifying bucket ownership with bucket owner condition"): a request whose ExpectedBucketOwner
(or a copy's ExpectedSourceBucketOwner) is not the bucket's owner is refused with 403; the owner's
own is served. moto alone ignores both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from localaws.doubles import BucketOwnerCondition

REGION = "us-east-1"
OWNER = "123456789012"  # moto's default account: the bucket is created in it
OTHER = "111122223333"
BUCKET = "owned-bucket"
CONFIG = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION, config=CONFIG)
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="a.jpg", Body=b"image")
        yield client


def _status(call: Any, **params: Any) -> int:
    try:
        call(**params)
    except ClientError as error:
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


def _requests(s3: Any, owner: str) -> dict[str, int]:
    return {
        "HeadObject": _status(s3.head_object, Bucket=BUCKET, Key="a.jpg", ExpectedBucketOwner=owner),
        "GetObject": _status(s3.get_object, Bucket=BUCKET, Key="a.jpg", ExpectedBucketOwner=owner),
        "ListObjectsV2": _status(s3.list_objects_v2, Bucket=BUCKET, ExpectedBucketOwner=owner),
        "GetBucketTagging": _status(s3.get_bucket_tagging, Bucket=BUCKET, ExpectedBucketOwner=owner),
        "CopyObject (source)": _status(
            s3.copy_object,
            Bucket=BUCKET,
            Key="a.jpg",
            CopySource={"Bucket": BUCKET, "Key": "a.jpg"},
            MetadataDirective="REPLACE",
            ExpectedSourceBucketOwner=owner,
        ),
    }


def test_another_account_as_expected_owner_is_refused_with_403(s3: Any) -> None:
    # Given the double, and a bucket of OWNER
    with BucketOwnerCondition():
        # When requests name another account as the bucket's (or the copy source's) owner
        statuses = _requests(s3, OTHER)
    # Then S3 refuses each with 403 AccessDenied
    assert statuses == dict.fromkeys(statuses, 403)


def test_the_owner_as_expected_owner_is_served(s3: Any) -> None:
    with BucketOwnerCondition():
        statuses = _requests(s3, OWNER)
    assert set(statuses.values()) - {404} == {200}  # the bucket has no tags: 404 NoSuchTagSet


def test_moto_alone_ignores_the_condition(s3: Any) -> None:
    # Without the double, another account's name passes: the gap the double closes
    assert _status(s3.head_object, Bucket=BUCKET, Key="a.jpg", ExpectedBucketOwner=OTHER) == 200
