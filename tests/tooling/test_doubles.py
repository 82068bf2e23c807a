"""The doubles in localaws.doubles make moto behave like AWS, and moto alone does not."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.models import DynamoDBBackend
from moto.server import ThreadedMotoServer

from localaws.doubles import (
    AssumeRoleRefusals,
    AtomicConditionalWrites,
    ConditionalCopies,
    DefaultBucketEncryption,
    EventBridgeNotifications,
    KeyPolicyValidation,
    RekognitionCustomLabels,
    SqsSenderIds,
    SseCustomerKeys,
    UpdateObjectEncryption,
    aws_behaviour,
    dataset_entry,
    legacy_unencrypted_objects,
    put_legacy_unencrypted_object,
)

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
OTHER_ACCOUNT = "210987654321"
BUCKET = "training-data"
CUSTOMER_KEY = b"k" * 32
OTHER_CUSTOMER_KEY = b"z" * 32
CONFIG = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(moto_server: str) -> Iterator[str]:
    """A moto server over HTTP on loopback, in this process (same backends as mock_aws)."""
    try:
        yield moto_server
    finally:
        reset = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset).close()


def s3_client(endpoint_url: str | None = None) -> S3Client:
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint_url, config=CONFIG)


def kms_client(endpoint_url: str | None = None) -> KMSClient:
    return boto3.client("kms", region_name=REGION, endpoint_url=endpoint_url, config=CONFIG)


def sqs_client() -> SQSClient:
    return boto3.client("sqs", region_name=REGION, config=CONFIG)


def iam_client() -> Any:
    return boto3.client("iam", region_name=REGION, config=CONFIG)


def error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def create_bucket(s3: S3Client, *, versioned: bool = False) -> None:
    s3.create_bucket(Bucket=BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def update_to_kms(s3: S3Client, key: str, kms_key_arn: str, **extra: Any) -> Any:
    return s3.update_object_encryption(
        Bucket=BUCKET,
        Key=key,
        ObjectEncryption={"SSEKMS": {"KMSKeyArn": kms_key_arn, "BucketKeyEnabled": True}},
        **extra,
    )


# --- UpdateObjectEncryption -----------------------------------------------------------------


def test_update_object_encryption_changes_object_to_sse_kms_in_place(aws: None) -> None:
    # Given an SSE-S3 object with metadata in a versioned bucket that notifies a queue
    s3, kms, sqs = s3_client(), kms_client(), sqs_client()
    create_bucket(s3, versioned=True)
    queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    s3.put_object(
        Bucket=BUCKET,
        Key="images/a b.jpg",
        Body=b"pixels",
        ServerSideEncryption="AES256",
        Metadata={"label": "cat"},
        StorageClass="STANDARD_IA",
    )
    before = s3.head_object(Bucket=BUCKET, Key="images/a b.jpg")
    created = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert any("ObjectCreated:Put" in message["Body"] for message in created)
    sqs.purge_queue(QueueUrl=queue_url)
    kms_key_arn = kms.create_key()["KeyMetadata"]["Arn"]

    # When its encryption is updated to SSE-KMS
    with UpdateObjectEncryption():
        update_to_kms(s3, "images/a b.jpg", kms_key_arn)
        after = s3.head_object(Bucket=BUCKET, Key="images/a b.jpg")

    # Then it is SSE-KMS under that key, and nothing else about the object changed
    assert after["ServerSideEncryption"] == "aws:kms"
    assert after["SSEKMSKeyId"] == kms_key_arn
    assert after["BucketKeyEnabled"] is True
    for field in ("ETag", "LastModified", "Metadata", "StorageClass", "VersionId"):
        assert after[field] == before[field], field
    assert s3.get_object(Bucket=BUCKET, Key="images/a b.jpg")["Body"].read() == b"pixels"
    assert len(s3.list_object_versions(Bucket=BUCKET)["Versions"]) == 1
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages", [])
    assert messages == []


def test_update_object_encryption_of_a_version_leaves_the_other_versions(aws: None) -> None:
    # Given two SSE-S3 versions of one object
    s3, kms = s3_client(), kms_client()
    create_bucket(s3, versioned=True)
    old = s3.put_object(Bucket=BUCKET, Key="k", Body=b"1", ServerSideEncryption="AES256")
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"2", ServerSideEncryption="AES256")
    kms_key_arn = kms.create_key()["KeyMetadata"]["Arn"]

    # When the old version is updated
    with UpdateObjectEncryption():
        update_to_kms(s3, "k", kms_key_arn, VersionId=old["VersionId"])

    # Then only that version changed
    head_old = s3.head_object(Bucket=BUCKET, Key="k", VersionId=old["VersionId"])
    assert (head_old["ServerSideEncryption"], head_old["SSEKMSKeyId"]) == ("aws:kms", kms_key_arn)
    assert s3.head_object(Bucket=BUCKET, Key="k")["ServerSideEncryption"] == "AES256"


def test_update_object_encryption_refuses_what_aws_refuses(aws: None) -> None:
    # Given objects AWS cannot update (unencrypted, DSSE-KMS, SSE-C) and keys it cannot use
    s3, kms = s3_client(), kms_client()
    create_bucket(s3, versioned=True)
    kms_key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    disabled_key = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=disabled_key["KeyId"])
    put_legacy_unencrypted_object(s3, BUCKET, "plain", b"x")
    s3.put_object(Bucket=BUCKET, Key="dsse", Body=b"x", ServerSideEncryption="aws:kms:dsse")
    s3.put_object(Bucket=BUCKET, Key="sse-s3", Body=b"x", ServerSideEncryption="AES256")
    missing_key_arn = kms_key_arn.rsplit("/", 1)[0] + "/11111111-2222-3333-4444-555555555555"
    cases = [
        ("plain", kms_key_arn, {}, (400, "InvalidRequest")),
        ("dsse", kms_key_arn, {}, (400, "InvalidRequest")),
        ("sse-c", kms_key_arn, {}, (400, "InvalidRequest")),
        ("absent", kms_key_arn, {}, (404, "NoSuchKey")),
        ("sse-s3", kms_key_arn, {"VersionId": "no-such-version"}, (404, "NoSuchKey")),
        ("sse-s3", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/training", {}, (400, "InvalidRequest")),
        ("sse-s3", kms_key_arn.replace(ACCOUNT, OTHER_ACCOUNT), {}, (403, "AccessDenied")),
        ("sse-s3", missing_key_arn, {}, (400, "KMS.NotFoundException")),
        ("sse-s3", disabled_key["Arn"], {}, (400, "KMS.DisabledException")),
    ]

    with aws_behaviour(UpdateObjectEncryption, SseCustomerKeys):
        s3.put_object(
            Bucket=BUCKET,
            Key="sse-c",
            Body=b"x",
            SSECustomerAlgorithm="AES256",
            SSECustomerKey=CUSTOMER_KEY,
        )
        for key, arn, extra, expected in cases:
            # When the update is requested
            with pytest.raises(ClientError) as excinfo:
                update_to_kms(s3, key, arn, **extra)

            # Then S3 answers as AWS documents, and the object is unchanged
            assert error(excinfo) == expected, key
        assert s3.head_object(Bucket=BUCKET, Key="sse-s3")["ServerSideEncryption"] == "AES256"


def test_without_the_double_moto_overwrites_the_object_with_the_request_body(aws: None) -> None:
    # Given an SSE-S3 object and no double
    s3, kms = s3_client(), kms_client()
    create_bucket(s3)
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"pixels", ServerSideEncryption="AES256")
    kms_key_arn = kms.create_key()["KeyMetadata"]["Arn"]

    # When UpdateObjectEncryption is called
    update_to_kms(s3, "k", kms_key_arn)

    # Then moto took it for PutObject: the data is the XML request and is not encrypted
    head = s3.head_object(Bucket=BUCKET, Key="k")
    assert head.get("ServerSideEncryption") is None
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read().startswith(b"<ObjectEncryption")


def test_update_object_encryption_over_http_on_a_threaded_moto_server(moto_endpoint: str) -> None:
    # Given an SSE-S3 object on a moto server reached over HTTP
    s3, kms = s3_client(moto_endpoint), kms_client(moto_endpoint)
    create_bucket(s3)
    s3.put_object(Bucket=BUCKET, Key="a/b c.jpg", Body=b"pixels", ServerSideEncryption="AES256")
    kms_key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    etag = s3.head_object(Bucket=BUCKET, Key="a/b c.jpg")["ETag"]

    # When its encryption is updated through the server
    with UpdateObjectEncryption():
        update_to_kms(s3, "a/b c.jpg", kms_key_arn)

    # Then the server's object is SSE-KMS under that key, same data
    head = s3.head_object(Bucket=BUCKET, Key="a/b c.jpg")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key_arn)
    assert head["ETag"] == etag
    assert s3.get_object(Bucket=BUCKET, Key="a/b c.jpg")["Body"].read() == b"pixels"


# --- SseCustomerKeys ------------------------------------------------------------------------


def sse_c(key: bytes = CUSTOMER_KEY, *, copy_source: bool = False) -> dict[str, Any]:
    prefix = "CopySource" if copy_source else ""
    return {f"{prefix}SSECustomerAlgorithm": "AES256", f"{prefix}SSECustomerKey": key}


def test_sse_c_object_cannot_be_read_without_its_customer_key(aws: None) -> None:
    s3 = s3_client()
    create_bucket(s3)
    with aws_behaviour():  # all doubles: SSE-C wins over the default encryption
        # Given an object written with a customer-provided key
        put = s3.put_object(Bucket=BUCKET, Key="k", Body=b"secret", **sse_c())
        assert put["SSECustomerAlgorithm"] == "AES256"

        # When it is read without the key, with another key, and with the key
        with pytest.raises(ClientError) as head_without:
            s3.head_object(Bucket=BUCKET, Key="k")
        with pytest.raises(ClientError) as get_without:
            s3.get_object(Bucket=BUCKET, Key="k")
        with pytest.raises(ClientError) as head_wrong:
            s3.head_object(Bucket=BUCKET, Key="k", **sse_c(OTHER_CUSTOMER_KEY))
        head = s3.head_object(Bucket=BUCKET, Key="k", **sse_c())
        body = s3.get_object(Bucket=BUCKET, Key="k", **sse_c())["Body"].read()

    # Then only the matching key reads it; HEAD errors carry only the status
    assert error(head_without) == (400, "400")
    assert error(get_without) == (400, "InvalidRequest")
    assert error(head_wrong) == (403, "403")
    expected_md5 = base64.b64encode(hashlib.md5(CUSTOMER_KEY).digest()).decode()
    assert put["SSECustomerKeyMD5"] == expected_md5
    assert (head["SSECustomerAlgorithm"], head["SSECustomerKeyMD5"]) == ("AES256", expected_md5)
    assert head.get("ServerSideEncryption") is None
    assert body == b"secret"


def test_copy_of_sse_c_object_needs_the_copy_source_customer_key(aws: None) -> None:
    s3 = s3_client()
    create_bucket(s3)
    with aws_behaviour(SseCustomerKeys, DefaultBucketEncryption):
        # Given an SSE-C object
        s3.put_object(Bucket=BUCKET, Key="src", Body=b"secret", **sse_c())
        source: CopySourceTypeDef = {"Bucket": BUCKET, "Key": "src"}

        # When it is copied without, then with, the copy-source customer key
        with pytest.raises(ClientError) as without:
            s3.copy_object(Bucket=BUCKET, Key="dst", CopySource=source)
        s3.copy_object(Bucket=BUCKET, Key="dst", CopySource=source, **sse_c(copy_source=True))

        # Then the first fails with 400 and the copy gets the bucket default, not SSE-C
        assert error(without) == (400, "InvalidRequest")
        assert s3.head_object(Bucket=BUCKET, Key="dst")["ServerSideEncryption"] == "AES256"


def test_sse_c_multipart_upload_and_headers_on_a_plain_object(aws: None) -> None:
    s3 = s3_client()
    create_bucket(s3)
    with aws_behaviour(DefaultBucketEncryption, SseCustomerKeys):
        # Given an object uploaded in parts with a customer key, and an SSE-S3 object
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key="big", **sse_c())
        part = s3.upload_part(
            Bucket=BUCKET,
            Key="big",
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"x" * 10,
            **sse_c(),
        )
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="big",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        s3.put_object(Bucket=BUCKET, Key="plain", Body=b"x", ServerSideEncryption="AES256")

        # When each is read with the wrong headers
        with pytest.raises(ClientError) as big_without:
            s3.head_object(Bucket=BUCKET, Key="big")
        with pytest.raises(ClientError) as plain_with:
            s3.get_object(Bucket=BUCKET, Key="plain", **sse_c())

        # Then both are refused, and the multipart object reads with its key
        assert error(big_without) == (400, "400")
        assert error(plain_with) == (400, "InvalidRequest")
        big = s3.head_object(Bucket=BUCKET, Key="big", **sse_c())
        assert (big["ContentLength"], big["SSECustomerAlgorithm"]) == (10, "AES256")
        assert big.get("ServerSideEncryption") is None


def test_without_the_double_moto_serves_sse_c_objects_without_the_key(aws: None) -> None:
    # Given an object written with a customer key and no double
    s3 = s3_client()
    create_bucket(s3)
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"secret", **sse_c())

    # When it is read without the key
    body = s3.get_object(Bucket=BUCKET, Key="k")["Body"].read()

    # Then moto hands out the data (AWS would answer 400)
    assert body == b"secret"


# --- DefaultBucketEncryption ----------------------------------------------------------------


def test_new_objects_get_sse_s3_by_default(aws: None) -> None:
    s3, kms = s3_client(), kms_client()
    create_bucket(s3)
    kms_key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    with DefaultBucketEncryption():
        # Given writes without SSE headers: put, copy of an SSE-KMS object, multipart
        s3.put_object(Bucket=BUCKET, Key="put", Body=b"x")
        s3.put_object(Bucket=BUCKET, Key="kms", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_arn)
        s3.copy_object(Bucket=BUCKET, Key="copy", CopySource={"Bucket": BUCKET, "Key": "kms"})
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mpu")
        part = s3.upload_part(Bucket=BUCKET, Key="mpu", UploadId=upload["UploadId"], PartNumber=1, Body=b"x")
        completed = s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="mpu",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )

        # When they and the bucket's encryption are read
        encryption = {
            k: s3.head_object(Bucket=BUCKET, Key=k).get("ServerSideEncryption") for k in ("put", "kms", "copy", "mpu")
        }
        rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]

    # Then every object without SSE headers is SSE-S3, explicit SSE-KMS stays, the default
    # rule is AES256
    assert encryption == {"put": "AES256", "kms": "aws:kms", "copy": "AES256", "mpu": "AES256"}
    assert completed["ServerSideEncryption"] == "AES256"
    default = rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default == {"SSEAlgorithm": "AES256"}


def test_configured_bucket_default_and_legacy_objects(aws: None) -> None:
    # Given a bucket whose default encryption is SSE-KMS
    s3, kms = s3_client(), kms_client()
    create_bucket(s3)
    kms_key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": kms_key_arn,
                    }
                }
            ]
        },
    )
    with DefaultBucketEncryption():
        # When a new object, legacy objects, and an object beside the legacy prefix are written
        s3.put_object(Bucket=BUCKET, Key="new", Body=b"x")
        put_legacy_unencrypted_object(s3, BUCKET, "old", b"x")
        with legacy_unencrypted_objects(BUCKET, prefix="2019/"):
            s3.put_object(Bucket=BUCKET, Key="2019/a", Body=b"x")
            s3.put_object(Bucket=BUCKET, Key="2024/a", Body=b"x")
        s3.put_object(Bucket=BUCKET, Key="2019/b", Body=b"x")
        heads = {k: s3.head_object(Bucket=BUCKET, Key=k) for k in ("new", "old", "2019/a", "2024/a", "2019/b")}

    # Then the new objects use the bucket's key and only the legacy writes are unencrypted
    assert (heads["new"]["ServerSideEncryption"], heads["new"]["SSEKMSKeyId"]) == (
        "aws:kms",
        kms_key_arn,
    )
    assert heads["old"].get("ServerSideEncryption") is None
    assert heads["2019/a"].get("ServerSideEncryption") is None
    assert heads["2024/a"]["ServerSideEncryption"] == "aws:kms"
    assert heads["2019/b"]["ServerSideEncryption"] == "aws:kms"


def test_without_the_double_moto_leaves_new_objects_unencrypted(aws: None) -> None:
    # Given a bucket without encryption configuration and no double
    s3 = s3_client()
    create_bucket(s3)

    # When an object is written without SSE headers and the bucket's encryption is read
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_encryption(Bucket=BUCKET)

    # Then moto has it unencrypted and no default rule (AWS: SSE-S3 and an AES256 rule)
    assert s3.head_object(Bucket=BUCKET, Key="k").get("ServerSideEncryption") is None
    assert error(excinfo) == (404, "ServerSideEncryptionConfigurationNotFoundError")


def test_doubles_are_undone_on_exit(aws: None) -> None:
    # Given all doubles entered and left
    s3 = s3_client()
    create_bucket(s3)
    with aws_behaviour():
        s3.put_object(Bucket=BUCKET, Key="inside", Body=b"x")

    # When an object is written afterwards
    s3.put_object(Bucket=BUCKET, Key="outside", Body=b"x")

    # Then moto's own behaviour is back
    assert s3.head_object(Bucket=BUCKET, Key="inside")["ServerSideEncryption"] == "AES256"
    outside = s3.head_object(Bucket=BUCKET, Key="outside")
    assert outside.get("ServerSideEncryption") is None


# --- KeyPolicyValidation --------------------------------------------------------------------


def key_policy(*principals: Any, extra: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {
        "Sid": "Training",
        "Effect": "Allow",
        "Principal": {"AWS": list(principals)},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
    }
    statement.update(extra or {})
    root = {
        "Sid": "Root",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [root, statement]}, ensure_ascii=False)


@pytest.fixture
def trainer_arn(aws: None) -> str:
    iam = iam_client()
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "rekognition.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="trainer", Path="/ml/", AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])


def test_key_policy_accepts_existing_and_foreign_principals(trainer_arn: str) -> None:
    # Given a key and a policy naming an existing role (with its path), a user, *, an
    # account id and roles of another account
    kms, iam = kms_client(), iam_client()
    user_arn = iam.create_user(UserName="annotator")["User"]["Arn"]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    policy = key_policy(trainer_arn, user_arn, "*", OTHER_ACCOUNT, f"arn:aws:iam::{OTHER_ACCOUNT}:role/x")

    # When it is put
    with KeyPolicyValidation():
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)

    # Then KMS stores it
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == policy


@pytest.mark.parametrize(
    ("policy", "expected_code"),
    [
        ("{not json", "MalformedPolicyDocumentException"),
        (key_policy(f"arn:aws:iam::{ACCOUNT}:role/nobody"), "MalformedPolicyDocumentException"),
        (key_policy(f"arn:aws:iam::{ACCOUNT}:role/trainer"), "MalformedPolicyDocumentException"),
        (key_policy("not-an-arn"), "MalformedPolicyDocumentException"),
        (key_policy(extra={"Principal": None}), "MalformedPolicyDocumentException"),
        (key_policy("*", extra={"Sid": "Ŀ"}), "MalformedPolicyDocumentException"),
        (key_policy("*", extra={"Sid": "x" * 32_768}), "LimitExceededException"),
    ],
    ids=[
        "not-json",
        "unknown-role",
        "role-without-path",
        "malformed",
        "no-principal",
        "char-above-u00ff",
        "over-32768-bytes",
    ],
)
def test_key_policy_rejects_what_kms_rejects(trainer_arn: str, policy: str, expected_code: str) -> None:
    # Given a key with its default policy
    kms = kms_client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    before = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]

    # When an invalid policy is put
    with KeyPolicyValidation(), pytest.raises(ClientError) as excinfo:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)

    # Then KMS refuses it with the documented error and keeps the old policy
    assert error(excinfo) == (400, expected_code)
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == before


def test_latin1_policy_up_to_32768_bytes_is_accepted(trainer_arn: str) -> None:
    # Given a policy of exactly 32,768 bytes with Latin-1 characters (2 bytes in UTF-8)
    kms = kms_client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    policy = key_policy(trainer_arn, extra={"Sid": "é"})
    policy = key_policy(trainer_arn, extra={"Sid": "é" + "x" * (32_768 - len(policy.encode()))})
    assert len(policy.encode()) == 32_768

    # When it is put, Then KMS accepts it
    with KeyPolicyValidation():
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)


def test_create_key_validates_policy_and_passes_bypass_flag(trainer_arn: str) -> None:
    kms = kms_client()
    with KeyPolicyValidation():
        # Given / When a key is created with an invalid, then a valid policy and the bypass flag
        with pytest.raises(ClientError) as excinfo:
            kms.create_key(Policy=key_policy(f"arn:aws:iam::{ACCOUNT}:user/ghost"))
        key = kms.create_key(Policy=key_policy(trainer_arn), BypassPolicyLockoutSafetyCheck=True)

    # Then the first is refused and the second created with its policy
    assert error(excinfo) == (400, "MalformedPolicyDocumentException")
    policy = kms.get_key_policy(KeyId=key["KeyMetadata"]["KeyId"], PolicyName="default")
    assert policy["Policy"] == key_policy(trainer_arn)


def test_new_principal_not_yet_visible_fails_the_next_puts(trainer_arn: str) -> None:
    # Given a role that KMS does not see for the next two PutKeyPolicy calls
    kms = kms_client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    with aws_behaviour() as behaviour:
        behaviour[KeyPolicyValidation].not_yet_visible(trainer_arn, times=2)

        # When the policy naming it is put three times (and one not naming it in between)
        outcomes = []
        for principals in ([trainer_arn], [], [trainer_arn], [trainer_arn]):
            try:
                policy = key_policy(*principals) if principals else key_policy("*")
                kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])

    # Then the first two naming it fail as IAM propagation delay does, then it succeeds
    assert outcomes == [
        "MalformedPolicyDocumentException",
        "ok",
        "MalformedPolicyDocumentException",
        "ok",
    ]


def test_without_the_double_kms_accepts_any_policy(aws: None) -> None:
    # Given a key and no double
    kms = kms_client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]

    # When a policy that is not JSON is put
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy="{not json")

    # Then moto stores it (AWS: MalformedPolicyDocumentException)
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == "{not json"


def test_all_doubles_hold_over_http_on_a_threaded_moto_server(moto_endpoint: str) -> None:
    # Given all doubles and clients that reach moto over HTTP
    s3, kms = s3_client(moto_endpoint), kms_client(moto_endpoint)
    with aws_behaviour():
        create_bucket(s3)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]

        # When an SSE-C object is read without its key, a plain object is written, and an
        # invalid key policy is put
        s3.put_object(Bucket=BUCKET, Key="sse-c", Body=b"x", **sse_c())
        with pytest.raises(ClientError) as head_without:
            s3.head_object(Bucket=BUCKET, Key="sse-c")
        s3.put_object(Bucket=BUCKET, Key="plain", Body=b"x")
        with pytest.raises(ClientError) as bad_policy:
            kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy="{not json")

        # Then the server answers as AWS does
        assert error(head_without) == (400, "400")
        assert s3.head_object(Bucket=BUCKET, Key="plain")["ServerSideEncryption"] == "AES256"
        assert error(bad_policy) == (400, "MalformedPolicyDocumentException")


# --- AtomicConditionalWrites ----------------------------------------------------------------


def race_conditional_puts(endpoint: str, monkeypatch: pytest.MonkeyPatch, writers: int) -> int:
    """How many of ``writers`` concurrent ``attribute_not_exists(id)`` puts succeed."""

    # moto evaluates the condition between reading and writing the item; make that take
    # 250 ms so that, without a lock, concurrent requests pass the check together (even on a
    # loaded machine, where the 20 requests reach the server spread over tens of milliseconds).
    def slow_condition(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.25)
        return get_filter_expression(*args, **kwargs)

    monkeypatch.setattr("moto.dynamodb.models.table.get_filter_expression", slow_condition)
    dynamodb = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=endpoint,
        config=Config(max_pool_connections=writers, retries={"max_attempts": 1}),
    )
    dynamodb.create_table(
        TableName="locks",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    start = threading.Barrier(writers)
    successes: list[int] = []

    def write(writer: int) -> None:
        start.wait()
        try:
            dynamodb.put_item(
                TableName="locks",
                Item={"id": {"S": "key-arn"}, "owner": {"N": str(writer)}},
                ConditionExpression="attribute_not_exists(id)",
            )
            successes.append(writer)
        except dynamodb.exceptions.ConditionalCheckFailedException:
            pass

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    item = dynamodb.get_item(TableName="locks", Key={"id": {"S": "key-arn"}})["Item"]
    assert len(successes) == 0 or item["owner"]["N"] in {str(s) for s in successes}
    return len(successes)


def test_concurrent_conditional_puts_exactly_one_wins(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 20 writers racing for one item on a threaded moto server with the double
    with AtomicConditionalWrites():
        # When they all put it with attribute_not_exists(id) at the same moment
        winners = race_conditional_puts(moto_endpoint, monkeypatch, writers=20)

    # Then exactly one succeeds
    assert winners == 1


def test_without_the_double_concurrent_conditional_puts_all_pass(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 20 writers racing for one item on a threaded moto server, no double
    # When they all put it with attribute_not_exists(id) at the same moment
    winners = race_conditional_puts(moto_endpoint, monkeypatch, writers=20)

    # Then more than one "wins" (AWS: exactly one)
    assert winners > 1


def put_returning_old_while_deleted(monkeypatch: pytest.MonkeyPatch) -> tuple[bool, dict[str, Any]]:
    """A conditional ``attribute_not_exists`` put with ReturnValues=ALL_OLD, while another
    client deletes the item. Returns (the put succeeded, the Attributes it returned)."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="locks",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"id": {"S": "key-arn"}}
    dynamodb.put_item(TableName="locks", Item={**key, "owner": {"S": "previous"}})
    deleter = threading.Thread(
        target=lambda: boto3.client("dynamodb", region_name=REGION).delete_item(TableName="locks", Key=key)
    )
    original_get = DynamoDBBackend.get_item

    def get_item(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        found = original_get(self, *args, **kwargs)
        if not deleter.ident:  # the put read the "old" item: now the other client deletes it
            deleter.start()
            deleter.join(0.5)
        return found

    monkeypatch.setattr(DynamoDBBackend, "get_item", get_item)
    try:
        response = dynamodb.put_item(
            TableName="locks",
            Item={**key, "owner": {"S": "new"}},
            ConditionExpression="attribute_not_exists(id)",
            ReturnValues="ALL_OLD",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False, {}
    finally:
        deleter.join(5)
    return True, response.get("Attributes", {})


def test_put_returning_old_returns_only_the_item_it_replaced(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the double, a put that must not replace an item, and a delete racing it
    # When the put runs
    with mock_aws(), AtomicConditionalWrites():
        taken, old = put_returning_old_while_deleted(monkeypatch)
    # Then it either failed (the item was there) or replaced nothing: never "took it, replacing X"
    assert not (taken and old)


def test_without_the_double_put_returning_old_reports_an_item_it_did_not_replace(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given moto alone, a put that must not replace an item, and a delete racing it
    # When the put runs
    with mock_aws():
        taken, old = put_returning_old_while_deleted(monkeypatch)

    # Then moto says it both took the key and replaced the old item (why the double exists)
    assert taken
    assert old["owner"] == {"S": "previous"}


def test_conditional_copies_answer_412_as_s3_does(aws: None) -> None:
    with ConditionalCopies():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        etag = s3.put_object(Bucket=BUCKET, Key="k", Body=b"1")["ETag"]
        # Given a matching source ETag and destination ETag, the copy succeeds
        s3.copy_object(
            Bucket=BUCKET,
            Key="k",
            CopySource={"Bucket": BUCKET, "Key": "k"},
            CopySourceIfMatch=etag,
            IfMatch=etag,
            MetadataDirective="REPLACE",
        )
        # When either does not match, S3 answers 412 and nothing is written
        conditions: list[dict[str, Any]] = [{"CopySourceIfMatch": '"nope"'}, {"IfMatch": '"nope"'}]
        for condition in conditions:
            with pytest.raises(ClientError) as raised:
                s3.copy_object(Bucket=BUCKET, Key="k2", CopySource={"Bucket": BUCKET, "Key": "k"}, **condition)
            assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        # Then only the original object exists
        assert "Contents" in s3.list_objects_v2(Bucket=BUCKET)
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["k"]


def complete_copy_after_an_upload(s3: Any) -> dict[str, Any]:
    """A multipart copy of "k" onto itself, completed on the inspected ETag after a new upload of "k"."""
    s3.create_bucket(Bucket=BUCKET)
    inspected = s3.put_object(Bucket=BUCKET, Key="k", Body=b"old")["ETag"]
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="k")["UploadId"]
    part = s3.upload_part_copy(
        Bucket=BUCKET, Key="k", UploadId=upload, PartNumber=1, CopySource={"Bucket": BUCKET, "Key": "k"}
    )
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"new")
    return {
        "Bucket": BUCKET,
        "Key": "k",
        "UploadId": upload,
        "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
        "IfMatch": inspected,
    }


def test_conditional_copies_refuse_to_complete_a_multipart_copy_over_a_newer_upload(aws: None) -> None:
    with ConditionalCopies():
        # Given a multipart copy whose destination was uploaded anew before it completes
        s3 = boto3.client("s3", region_name=REGION)
        complete = complete_copy_after_an_upload(s3)

        # When it completes on the ETag it was started for, S3 answers 412
        with pytest.raises(ClientError) as raised:
            s3.complete_multipart_upload(**complete)
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412

        # Then the newer upload is intact
        assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"new"


def test_without_conditional_copies_moto_completes_over_a_newer_upload(aws: None) -> None:
    # Given moto alone and the same multipart copy, When it completes
    s3 = boto3.client("s3", region_name=REGION)
    s3.complete_multipart_upload(**complete_copy_after_an_upload(s3))

    # Then moto overwrote the newer upload (why ConditionalCopies covers CompleteMultipartUpload)
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"old"


def test_without_conditional_copies_moto_ignores_the_conditions(aws: None) -> None:
    # Given moto alone and an object
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"1")

    # When it is copied on a source ETag that does not match
    s3.copy_object(Bucket=BUCKET, Key="k2", CopySource={"Bucket": BUCKET, "Key": "k"}, CopySourceIfMatch='"nope"')

    # Then moto copies anyway (why ConditionalCopies exists)
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == ["k", "k2"]


# --- RekognitionCustomLabels ------------------------------------------------------------------


def rekognition_client(endpoint_url: str | None = None) -> Any:
    """One attempt per call: the test sees each error the server answers."""
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client("rekognition", region_name=REGION, endpoint_url=endpoint_url, config=config)


def entries(count: int, prefix: str = "images") -> list[str]:
    return [dataset_entry(BUCKET, f"{prefix}/{n:06d}.jpg") for n in range(count)]


def test_dataset_entries_are_paged_at_100_with_next_token(aws: None) -> None:
    # Given a TRAIN dataset of 250 entries
    with RekognitionCustomLabels() as rek:
        project = rek.create_project("cats")
        dataset = rek.create_dataset(project, "TRAIN", entries(250))
        client = rekognition_client()

        # When its entries are listed page by page
        sizes, seen, kwargs = [], [], {"DatasetArn": dataset}
        while True:
            page = client.list_dataset_entries(**kwargs)
            sizes.append(len(page["DatasetEntries"]))
            seen.extend(page["DatasetEntries"])
            if "NextToken" not in page:
                break
            kwargs["NextToken"] = page["NextToken"]

        # Then AWS's default page size (100) holds, with a token while more remain, in order
        assert sizes == [100, 100, 50]
        assert seen == entries(250)


def test_dataset_paging_limits_and_bad_tokens_answer_as_documented(aws: None) -> None:
    # Given a dataset of 5 entries
    with RekognitionCustomLabels() as rek:
        dataset = rek.create_dataset(rek.create_project("cats"), "TRAIN", entries(5))
        client = rekognition_client()
        # When pages of 2, 101 entries and a foreign token are asked for
        small = client.list_dataset_entries(DatasetArn=dataset, MaxResults=2)
        with pytest.raises(ClientError) as too_large:
            client.list_dataset_entries(DatasetArn=dataset, MaxResults=101)
        with pytest.raises(ClientError) as bad_token:
            client.list_dataset_entries(DatasetArn=dataset, NextToken="not-a-token")
        # Then MaxResults is honoured up to 100, and anything else is refused
        assert len(small["DatasetEntries"]) == 2
        assert "NextToken" in small
        assert error(too_large)[1] == "ValidationException"
        assert error(bad_token)[1] == "InvalidPaginationTokenException"


def test_datasets_are_keyed_by_project_with_their_status(aws: None) -> None:
    # Given two projects, one with TRAIN and TEST datasets (TEST still being created)
    with RekognitionCustomLabels() as rek:
        cats = rek.create_project("cats")
        dogs = rek.create_project("dogs")
        train = rek.create_dataset(cats, "TRAIN", entries(3))
        test = rek.create_dataset(cats, "TEST", entries(1), status="CREATE_IN_PROGRESS")
        client = rekognition_client()

        # When the projects are described by name
        described = client.describe_projects(ProjectNames=["cats"])["ProjectDescriptions"]
        other = client.describe_projects(ProjectNames=["dogs"])["ProjectDescriptions"]

        # Then each project lists its own datasets, with type and status
        assert [p["ProjectArn"] for p in described] == [cats]
        assert {(d["DatasetType"], d["DatasetArn"], d["Status"]) for d in described[0]["Datasets"]} == {
            ("TRAIN", train, "CREATE_COMPLETE"),
            ("TEST", test, "CREATE_IN_PROGRESS"),
        }
        assert [p["ProjectArn"] for p in other] == [dogs]
        assert other[0]["Datasets"] == []
        stats = client.describe_dataset(DatasetArn=train)["DatasetDescription"]["DatasetStats"]
        assert stats["TotalEntries"] == 3


def test_unreadable_datasets_fail_as_rekognition_does(aws: None) -> None:
    # Given a dataset being created, a failed one, a forbidden one and a throttled operation
    with RekognitionCustomLabels() as rek:
        cats = rek.create_project("cats")
        busy = rek.create_dataset(cats, "TRAIN", entries(1), status="CREATE_IN_PROGRESS")
        failed = rek.create_dataset(rek.create_project("dogs"), "TRAIN", entries(1), status="CREATE_FAILED")
        denied = rek.create_dataset(rek.create_project("owls"), "TRAIN", entries(1))
        rek.deny(denied)
        missing = busy.replace("/train/", "/test/")
        client = rekognition_client()

        def code(arn: str) -> str:
            with pytest.raises(ClientError) as caught:
                client.list_dataset_entries(DatasetArn=arn)
            return error(caught)[1]

        # When their entries are listed
        # Then each fails with the error Rekognition documents for the case
        assert code(busy) == "ResourceInUseException"
        assert code(failed) == "ResourceNotReadyException"
        assert code(denied) == "AccessDeniedException"
        assert code(missing) == "ResourceNotFoundException"
        rek.throttle("ListDatasetEntries", times=1)
        rek.set_dataset_status(busy, "CREATE_COMPLETE")
        assert code(busy) == "ThrottlingException"
        assert len(client.list_dataset_entries(DatasetArn=busy)["DatasetEntries"]) == 1


def test_project_versions_show_status_data_output_and_key(aws: None) -> None:
    # Given a dataset-trained version that failed, and a manifest-trained one that completed
    with RekognitionCustomLabels() as rek:
        project = rek.create_project("cats")
        failed = rek.create_project_version(
            project,
            "v1",
            status="TRAINING_FAILED",
            status_message="The images bucket permissions are invalid.",
            kms_key_id="arn:aws:kms:us-east-1:123456789012:key/k",
        )
        done = rek.create_project_version(project, "v2", training_manifests=[(BUCKET, "train.manifest")])

        # When the versions are described
        described = rekognition_client().describe_project_versions(ProjectArn=project)["ProjectVersionDescriptions"]
        only_v1 = rekognition_client().describe_project_versions(ProjectArn=project, VersionNames=["v1"])

        # Then they carry the documented fields, newest first
        assert [v["ProjectVersionArn"] for v in described] == [done, failed]
        assert described[1]["Status"] == "TRAINING_FAILED"
        assert described[1]["StatusMessage"] == "The images bucket permissions are invalid."
        assert described[1]["KmsKeyId"].endswith(":key/k")
        assert described[1]["TrainingDataResult"]["Input"]["Assets"] == []
        assert described[0]["TrainingDataResult"]["Input"]["Assets"][0]["GroundTruthManifest"]["S3Object"] == {
            "Bucket": BUCKET,
            "Name": "train.manifest",
        }
        assert described[0]["OutputConfig"]["S3Bucket"] == "custom-labels-output"
        assert [v["ProjectVersionArn"] for v in only_v1["ProjectVersionDescriptions"]] == [failed]
        with pytest.raises(ClientError) as missing:
            rekognition_client().describe_project_versions(ProjectArn=project.replace("cats", "none"))
        assert error(missing)[1] == "ResourceNotFoundException"


def test_without_the_double_moto_has_no_custom_labels_datasets(aws: None) -> None:
    # Given plain moto
    client = rekognition_client()
    # When a project is described / dataset entries are listed
    # Then moto cannot answer (the gap the double covers)
    with pytest.raises(NotImplementedError):
        client.describe_projects(ProjectNames=["cats"])


def test_custom_labels_over_http_on_a_threaded_moto_server(moto_endpoint: str) -> None:
    # Given a manifest in S3 on a moto server reached over HTTP, and the double
    s3 = s3_client(moto_endpoint)
    with RekognitionCustomLabels():
        create_bucket(s3)
        manifest = "\n".join(entries(120)) + "\n"
        s3.put_object(Bucket=BUCKET, Key="train.manifest", Body=manifest.encode())
        client = rekognition_client(moto_endpoint)

        # When a data engineer creates a project and a TRAIN dataset from the manifest, and a
        # TEST dataset from the TRAIN dataset, over HTTP
        project = client.create_project(ProjectName="cats")["ProjectArn"]
        train = client.create_dataset(
            ProjectArn=project,
            DatasetType="TRAIN",
            DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Name": "train.manifest"}}},
        )["DatasetArn"]
        test = client.create_dataset(ProjectArn=project, DatasetType="TEST", DatasetSource={"DatasetArn": train})[
            "DatasetArn"
        ]

        # Then the server describes the project's datasets and pages their entries
        described = client.describe_projects(ProjectNames=["cats"])["ProjectDescriptions"][0]
        assert {d["DatasetArn"] for d in described["Datasets"]} == {train, test}
        first = client.list_dataset_entries(DatasetArn=test)
        rest = client.list_dataset_entries(DatasetArn=test, NextToken=first["NextToken"])
        assert first["DatasetEntries"] + rest["DatasetEntries"] == entries(120)


def test_custom_labels_state_is_forgotten_when_moto_resets(moto_endpoint: str) -> None:
    # Given a project with a dataset on a moto server
    with RekognitionCustomLabels() as rek:
        project = rek.create_project("cats")
        rek.create_dataset(project, "TRAIN", entries(1))
        client = rekognition_client(moto_endpoint)
        assert len(client.describe_projects()["ProjectDescriptions"]) == 1

        # When moto is reset (as the local runtime does between scenarios)
        urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).close()

        # Then the account has no projects, and the name can be used again
        assert client.describe_projects()["ProjectDescriptions"] == []
        assert client.create_project(ProjectName="cats")["ProjectArn"].startswith(project.rsplit("/", 1)[0])


# --- SqsSenderIds --------------------------------------------------------------------------------


def _sender_ids(sqs: SQSClient, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["SenderId"])
    return sorted(m["Attributes"]["SenderId"] for m in messages.get("Messages", []))


def test_sqs_sender_ids_name_the_sending_principal(aws: None) -> None:
    # Given the double, a queue, and one message sent outside any sending_as
    sqs: SQSClient = boto3.client("sqs", region_name=REGION)
    double = SqsSenderIds()
    with double:
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="someone")
        default = _sender_ids(sqs, url)

        # When a function's role session sends one message and a batch of two
        with double.sending_as("AROA3XFRBF23VERIFY001:verify"):
            sqs.send_message(QueueUrl=url, MessageBody="one")
            sqs.send_message_batch(
                QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "a"}, {"Id": "b", "MessageBody": "b"}]
            )
        ours = _sender_ids(sqs, url)

    # Then those carry its SenderId, and the other one moto's constant
    assert ours == ["AROA3XFRBF23VERIFY001:verify"] * 3
    assert default != ["AROA3XFRBF23VERIFY001:verify"]
    assert len(default) == 1


def test_assume_role_of_a_refused_role_is_access_denied_as_in_aws(aws: None) -> None:
    # Given the double, with one member's role declared missing (or not trusting the caller)
    sts = boto3.client("sts", region_name=REGION)
    missing = "arn:aws:iam::444455556666:role/CustomLabelsGuardMember"
    other = "arn:aws:iam::111122223333:role/CustomLabelsGuardMember"
    double = AssumeRoleRefusals()
    with double:
        double.refuse(missing)

        # When the caller assumes it, and another account's role
        with pytest.raises(ClientError) as refused:
            sts.assume_role(RoleArn=missing, RoleSessionName="guard")
        assumed = sts.assume_role(RoleArn=other, RoleSessionName="guard")

    # Then STS answers AccessDenied naming the role, as AWS does; the other role is assumed
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert missing in refused.value.response["Error"]["Message"]
    assert assumed["AssumedRoleUser"]["Arn"].startswith("arn:aws:sts::111122223333:assumed-role/")

    # And without the double, moto assumes the missing role all the same (the gap it covers)
    assert sts.assume_role(RoleArn=missing, RoleSessionName="guard")["Credentials"]["AccessKeyId"]


def test_eventbridge_notifications_are_read_back(aws: None) -> None:
    # Given one bucket with EventBridge on (alone), one with it and a queue, one with nothing
    s3: S3Client = boto3.client("s3", region_name=REGION)
    for name in ("bucket-eb", "bucket-eb-queue", "bucket-none"):
        s3.create_bucket(Bucket=name)
    queue = {"QueueArn": f"arn:aws:sqs:{REGION}:123456789012:q", "Events": ["s3:ObjectCreated:*"]}
    with EventBridgeNotifications():
        s3.put_bucket_notification_configuration(
            Bucket="bucket-eb", NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        s3.put_bucket_notification_configuration(
            Bucket="bucket-eb-queue",
            NotificationConfiguration={"EventBridgeConfiguration": {}, "QueueConfigurations": [queue]},  # type: ignore[list-item]
        )
        # When each configuration is read back
        read = {
            n: s3.get_bucket_notification_configuration(Bucket=n)
            for n in ("bucket-eb", "bucket-eb-queue", "bucket-none")
        }
    # Then EventBridge is there exactly where it was turned on, beside the other notifications
    assert read["bucket-eb"].get("EventBridgeConfiguration") == {}
    assert read["bucket-eb-queue"].get("EventBridgeConfiguration") == {}
    assert len(read["bucket-eb-queue"]["QueueConfigurations"]) == 1
    assert "EventBridgeConfiguration" not in read["bucket-none"]


def test_a_closed_security_hub_finding_imported_open_again_is_reset_to_new(aws: Any) -> None:
    # Given a finding imported, then set RESOLVED and archived (as the guard closes one)
    from localaws.doubles import SecurityHubFindings  # noqa: PLC0415

    with SecurityHubFindings():
        hub = boto3.client("securityhub", region_name="us-east-1")
        hub.enable_security_hub()
        product = "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default"
        base = {
            "SchemaVersion": "2018-10-08",
            "Id": "f-1",
            "ProductArn": product,
            "GeneratorId": "g",
            "AwsAccountId": "123456789012",
            "Types": ["Software and Configuration Checks/AWS Security Best Practices"],
            "CreatedAt": "2026-12-07T00:00:00Z",
            "UpdatedAt": "2026-12-07T00:00:00Z",
            "Severity": {"Label": "HIGH"},
            "Title": "t",
            "Description": "d",
            "Resources": [{"Type": "Other", "Id": "r"}],
        }
        hub.batch_import_findings(Findings=[{**base, "RecordState": "ARCHIVED", "Compliance": {"Status": "PASSED"}}])
        hub.batch_update_findings(
            FindingIdentifiers=[{"Id": "f-1", "ProductArn": product}], Workflow={"Status": "RESOLVED"}
        )
        # When it is imported ACTIVE and FAILED again
        hub.batch_import_findings(Findings=[{**base, "RecordState": "ACTIVE", "Compliance": {"Status": "FAILED"}}])
        # Then Security Hub has set its workflow back to NEW (API reference, Workflow)
        (found,) = SecurityHubFindings.findings()
        assert found["Workflow"] == {"Status": "NEW"}
        # while an update that keeps it archived leaves RESOLVED as it was
        hub.batch_update_findings(
            FindingIdentifiers=[{"Id": "f-1", "ProductArn": product}], Workflow={"Status": "RESOLVED"}
        )
        hub.batch_import_findings(Findings=[{**base, "RecordState": "ARCHIVED", "Compliance": {"Status": "PASSED"}}])
        (found,) = SecurityHubFindings.findings()
        assert found["Workflow"] == {"Status": "RESOLVED"}
