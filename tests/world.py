"""A small AWS world on moto for integration tests: real S3/KMS/SNS/SQS/DynamoDB/IAM state,
plus helpers to run the handlers and read back exactly what they published."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from localaws.doubles import put_legacy_unencrypted_object
from tests.eventsamples import GUARD_ROLE_IDS, load_event

ACCOUNT = DEFAULT_ACCOUNT_ID  # "123456789012"
REGION = "us-east-1"
BUCKET = "custom-labels-training"
OUTPUT_BUCKET = "custom-labels-output"
TABLE = "custom-labels-guard-state"
TOPIC = "custom-labels-guard-alerts"
QUEUE = "custom-labels-guard-verify"
TAG = ("custom-labels-guard", "managed")

# boto3 response field of PutObject / CopyObject -> the response header CloudTrail records
_RESPONSE_HEADERS = {
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "SSECustomerAlgorithm": "x-amz-server-side-encryption-customer-algorithm",
    "SSECustomerKeyMD5": "x-amz-server-side-encryption-customer-key-MD5",
    "VersionId": "x-amz-version-id",
}


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object the handlers and powertools read."""

    function_name: str = "verify-object-encryption"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/test"
    log_stream_name: str = "test"
    remaining_ms: int = 120_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def default_key_policy(account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


@dataclass
class Published:
    """One SNS Publish, as the topic received it."""

    message_id: str
    subject: str | None
    structure: dict[str, str]
    attributes: dict[str, Any]

    @property
    def finding(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.structure["default"])
        return value

    @property
    def chat(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.structure["https"])
        return value

    @property
    def email(self) -> str:
        return self.structure["email"]


@dataclass
class World:
    s3: Any = field(default_factory=lambda: boto3.client("s3", region_name=REGION))
    kms: Any = field(default_factory=lambda: boto3.client("kms", region_name=REGION))
    sns: Any = field(default_factory=lambda: boto3.client("sns", region_name=REGION))
    sqs: Any = field(default_factory=lambda: boto3.client("sqs", region_name=REGION))
    iam: Any = field(default_factory=lambda: boto3.client("iam", region_name=REGION))
    ddb: Any = field(default_factory=lambda: boto3.client("dynamodb", region_name=REGION))
    topic_arn: str = ""
    queue_url: str = ""

    def create(self) -> World:
        for bucket in (BUCKET, OUTPUT_BUCKET):
            self.s3.create_bucket(Bucket=bucket)
        self.topic_arn = self.sns.create_topic(Name=TOPIC)["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        self.ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        return self

    monkeypatch: Any = None
    behaviour: Any = None  # localaws.doubles.AwsBehaviour: behaviour[KeyPolicyValidation] etc.

    def env_set(self, **values: str) -> None:
        """Change the function environment for the rest of the test."""
        assert self.monkeypatch is not None
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)

    def env(self, **overrides: str) -> dict[str, str]:
        """The function environment the template gives (docs/architecture.md §4), with overrides."""
        values = {
            "ALERT_TOPIC_ARN": self.topic_arn,
            "TRAINING_BUCKETS": BUCKET,
            "ENCRYPTION_REQUIREMENT": "SSE_S3_OR_KMS",
            "ALLOWED_KMS_KEYS": "",
            "REMEDIATION_MODE": "enforce",
            "REENCRYPT_KMS_KEY": "",
            "TRAINING_PRINCIPALS": "",
            "ALLOWED_PRINCIPAL_PATTERNS": "",
            "MANAGED_KEY_TAG": f"{TAG[0]}={TAG[1]}",
            "STATE_TABLE": TABLE,
            "VERIFY_QUEUE_URL": self.queue_url,
            "GUARD_ROLE_IDS": GUARD_ROLE_IDS,
            "POWERTOOLS_SERVICE_NAME": "custom-labels-guard",
            "POWERTOOLS_METRICS_NAMESPACE": "CustomLabelsGuard",
        }
        values.update(overrides)
        return values

    # --- IAM / KMS --------------------------------------------------------------------------

    def role(self, name: str, path: str = "/") -> str:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "rekognition.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        return str(
            self.iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        )

    def user(self, name: str) -> str:
        return str(self.iam.create_user(UserName=name)["User"]["Arn"])

    def key(self, *, managed: bool = True, policy: Mapping[str, Any] | None = None, alias: str | None = None) -> str:
        tags = [{"TagKey": TAG[0], "TagValue": TAG[1]}] if managed else []
        meta = self.kms.create_key(Policy=json.dumps(policy or default_key_policy()), Tags=tags)["KeyMetadata"]
        if alias:
            self.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        return str(meta["Arn"])

    def policy(self, key_arn: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"])
        return value

    def statement(self, key_arn: str, sid: str) -> dict[str, Any] | None:
        return next((s for s in self.policy(key_arn)["Statement"] if s.get("Sid") == sid), None)

    # --- S3 -----------------------------------------------------------------------------------

    def put(self, key: str, body: bytes = b"image", bucket: str = BUCKET, **sse: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.s3.put_object(Bucket=bucket, Key=key, Body=body, **sse)
        return response

    def put_legacy(self, key: str, body: bytes = b"image", bucket: str = BUCKET) -> None:
        """An object with no encryption at all: in AWS only a pre-2023 object can be like this."""
        put_legacy_unencrypted_object(self.s3, bucket, key, body)

    def head(self, key: str, bucket: str = BUCKET) -> dict[str, Any]:
        response: dict[str, Any] = self.s3.head_object(Bucket=bucket, Key=key)
        return response

    # --- events -------------------------------------------------------------------------------

    @staticmethod
    def object_created(
        key: str, *, reason: str = "PutObject", event_id: str | None = None, bucket: str = BUCKET
    ) -> dict[str, Any]:
        """The sample S3 Object Created event (events/), for another key."""
        event = load_event("s3_object_created")
        event["detail"]["object"]["key"] = key
        event["detail"]["bucket"]["name"] = bucket
        event["detail"]["reason"] = reason
        event["id"] = event_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{bucket}/{key}#{reason}"))
        return event

    @staticmethod
    def data_event(
        key: str,
        answered: Mapping[str, Any] | None,
        sse_applied: str | None,
        *,
        sample: str = "cloudtrail_s3_putobject",
        event_id: str | None = None,
        bucket: str = BUCKET,
    ) -> dict[str, Any]:
        """The CloudTrail S3 data event (a sample of events/) S3 writes for a write it
        ``answered`` (a boto3 PutObject/CopyObject response; None: an older record without any
        encryption field), with ``additionalEventData.SSEApplied`` (None: absent)."""
        event = load_event(sample)
        detail = event["detail"]
        detail["requestParameters"]["key"] = key
        detail["requestParameters"]["bucketName"] = bucket
        said = answered or {}
        response = {header: said[name] for name, header in _RESPONSE_HEADERS.items() if said.get(name)}
        detail["responseElements"] = response or None
        if sse_applied is None:
            detail["additionalEventData"].pop("SSEApplied", None)
        else:
            detail["additionalEventData"]["SSEApplied"] = sse_applied
        event["id"] = event_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"trail:{bucket}/{key}:{json.dumps(response)}"))
        return event

    def training_event(
        self,
        name: str = "cloudtrail_create_project_version",
        *,
        kms_key: str | None = None,
        event_id: str | None = None,
        issuer: str | None = None,
    ) -> dict[str, Any]:
        """A Rekognition CloudTrail sample (events/) with this world's key and caller filled in."""
        event = load_event(name)
        params = event["detail"].get("requestParameters") or {}
        for field_name in ("KmsKeyId", "kmsKeyId"):
            if field_name in params and kms_key is not None:
                params[field_name] = kms_key
        if event_id:
            event["id"] = event_id
        if issuer:
            event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = issuer
        return event

    # --- SNS / SQS ------------------------------------------------------------------------------

    def published(self) -> list[Published]:
        topic = sns_backends[ACCOUNT][REGION].topics[self.topic_arn]
        out = []
        for message_id, message, subject, attributes, _group in topic.sent_notifications:
            out.append(Published(message_id, subject, json.loads(message), attributes or {}))
        return out

    def findings(self) -> list[dict[str, Any]]:
        return [p.finding for p in self.published()]

    def drain_queue(self) -> Iterator[dict[str, Any]]:
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                yield message


def member_world(account: str) -> World:
    """Another account's side of a many-accounts test: its clients, through a role assumed in it.
    Needs MOTO_ACCOUNT_ID unset (it pins every request to one account); moto then takes the
    account from the credentials, as AWS does."""
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="test-setup"
    )["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )
    return World(
        s3=session.client("s3"),
        kms=session.client("kms"),
        sns=session.client("sns"),
        sqs=session.client("sqs"),
        iam=session.client("iam"),
        ddb=session.client("dynamodb"),
    )
