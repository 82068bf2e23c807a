"""The one way tests load the sample events of ``events/`` (also used by ``sam local invoke -e``).

Every call returns a fresh deep copy: modify it freely, never write it back. Never paste an event
into a test; add a file to ``events/`` instead (the infrastructure tests then require you to say
which EventBridge rules it must match).

Samples (account 123456789012, us-east-1, training bucket ``custom-labels-training``):

- ``s3_object_created``: EventBridge S3 "Object Created" (reason PutObject) of
  ``datasets/cats/images/cat-001.jpg``; ``..._copy_echo`` is the event our own in-place
  re-encryption raises (reason CopyObject, same key); ``..._other_bucket`` is for a bucket that is
  not a training bucket (``unrelated-bucket``).
- ``cloudtrail_s3_putobject`` / ``_copyobject`` / ``_completemultipartupload``: CloudTrail S3 data
  events (detail-type "AWS API Call via CloudTrail", source aws.s3). The CopyObject one copies from
  ``custom-labels-staging`` under SSE-KMS; the multipart one uploads ``datasets/cats/train.manifest``
  (its record has no ``SSEApplied``: S3 writes that on the CreateMultipartUpload record). The
  PutObject one says ``SSEApplied: Default_SSE_S3`` and ``x-amz-server-side-encryption: AES256``.
  Variants of PutObject (cat-004 … cat-007), one per encryption S3 can report:
  ``_default_sse_kms`` (bucket default SSE-KMS with a bucket key, versioned: ``x-amz-version-id``),
  ``_dsse_kms`` (request ``aws:kms:dsse``), ``_sse_c`` (customer key: only the customer-algorithm
  and key-MD5 headers), ``_no_encryption_fields`` (an older record with no ``SSEApplied`` and
  ``responseElements: null``). The KMS ones name the key ARN
  ``arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab``.
- ``cloudtrail_create_project_version``: CreateProjectVersion by the AssumedRole
  ``role/ml/CustomLabelsTrainer`` (path ``/ml/``; the sts session ARN drops it), PascalCase
  request parameters, KmsKeyId = key ARN. Variants: ``_sso`` (IAM Identity Center role under
  ``/aws-reserved/sso.amazonaws.com/us-east-1/``), ``_iam_user``, ``_root``, ``_other_account``
  (caller in 210987654321), ``_lowercamel`` (lowerCamelCase parameters, testing data
  auto-created), ``_alias_key`` (KmsKeyId ``alias/custom-labels-training``), ``_error``
  (ValidationException), ``_access_denied_kms`` (AccessDeniedException naming kms:CreateGrant:
  "because no resource-based policy allows", an implicit deny), ``_access_denied_kms_scp`` (the
  same refused "with an explicit deny in a service control policy", which no key policy overrides),
  ``_other_event`` (DescribeProjects: no rule may match it), ``_datasets`` (no TrainingData or
  TestingData: training from the project's datasets; version ``cats-v2`` in responseElements).
- ``cloudtrail_create_dataset`` (TRAIN dataset from a manifest), ``cloudtrail_create_dataset_from_dataset``
  (TEST dataset copied from the TRAIN dataset's ARN, by the AssumedRole ``role/data/DataEngineer``),
  ``cloudtrail_copy_project_version``
  and ``cloudtrail_update_dataset_entries``. UpdateDatasetEntries carries no S3 location of a
  manifest: its ``Changes.GroundTruth`` is the base64 of JSON Lines (here one image line with a
  ``source-ref``); real trails may also redact the blob.

Lambda events of our own queues live in ``events/sqs/`` (not EventBridge events, so no rule
matches them): ``digest_findings`` is a batch of the digest queue, the alerts topic's raw
deliveries (two OBJECT_WRONG_ENCRYPTION REMEDIATED under ``datasets/cats/images/`` and one
PRINCIPAL_NOT_ALLOWED REFUSED). Load them with :func:`load_sqs_event`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
TRAINING_BUCKET = "custom-labels-training"
VERIFY_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:custom-labels-guard-VerifyQueue-4Hq2Xk9LmN0p"

# The sender id SQS reports for messages EventBridge delivers.
_EVENTBRIDGE_SENDER_ID = "AIDAIE6VAXUQU2DKHA7DK"
# The RoleIds of the two functions' roles (GUARD_ROLE_IDS), and the SenderId SQS reports for a
# message a Lambda function sends: "<RoleId>:<function name>" (its role session).
VERIFY_ROLE_ID = "AROA3XFRBF23VERIFY001"
GRANT_ROLE_ID = "AROA3XFRBF23GRANT0001"
GUARD_ROLE_IDS = f"{VERIFY_ROLE_ID},{GRANT_ROLE_ID}"
GUARD_SENDER_ID = f"{VERIFY_ROLE_ID}:custom-labels-guard-VerifyObjectEncryptionFunction"
_GUARD_KINDS = ('"kind":"clguard.', '"kind": "clguard.')
_MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b")


def _stem(name: str) -> str:
    stem = name.removesuffix(".json")
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise ValueError(f"not a sample event name: {name!r}")
    return stem


@cache
def _read(stem: str) -> dict[str, Any]:
    path = EVENTS_DIR / f"{stem}.json"
    if not path.is_file():
        known = ", ".join(all_event_names())
        raise FileNotFoundError(f"no sample event {stem!r} in {EVENTS_DIR} (known: {known})")
    with path.open(encoding="utf-8") as handle:
        event: dict[str, Any] = json.load(handle)
    return event


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>.json`` (``name`` with or without ``.json``)."""
    return copy.deepcopy(_read(_stem(name)))


def load_sqs_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/sqs/<name>.json``: a Lambda SQS event of one of our queues."""
    path = EVENTS_DIR / "sqs" / f"{_stem(name)}.json"
    with path.open(encoding="utf-8") as handle:
        event: dict[str, Any] = json.load(handle)
    return event


def all_event_names() -> list[str]:
    """The names (without ``.json``) of every sample event, sorted."""
    return sorted(path.stem for path in EVENTS_DIR.glob("*.json"))


def sqs_record(
    body: Mapping[str, Any] | str,
    *,
    queue_arn: str = VERIFY_QUEUE_ARN,
    receive_count: int = 1,
    sent_timestamp_ms: int | None = None,
    message_id: str | None = None,
    sender_id: str | None = None,
) -> dict[str, Any]:
    """One SQS record as Lambda delivers it. A mapping body is JSON-encoded; a str is used as is.

    ``sender_id``: the SenderId SQS reports; by default the guard's verify function for the
    guard's own message kinds (``clguard.*``, which only it and the grant function send), else
    EventBridge."""
    text = body if isinstance(body, str) else json.dumps(body)
    if sender_id is None:
        sender_id = GUARD_SENDER_ID if any(kind in text[:200] for kind in _GUARD_KINDS) else _EVENTBRIDGE_SENDER_ID
    sent = int(time.time() * 1000) if sent_timestamp_ms is None else sent_timestamp_ms
    region = queue_arn.split(":")[3]
    return {
        "messageId": message_id or str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, f"{sent}:{text}")),
        "receiptHandle": "AQEB" + hashlib.sha256(f"{queue_arn}:{sent}:{text}".encode()).hexdigest(),
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent),
            "SenderId": sender_id,
            "ApproximateFirstReceiveTimestamp": str(sent + 12),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(
    *eventbridge_events: Mapping[str, Any] | str,
    queue_arn: str = VERIFY_QUEUE_ARN,
    receive_count: int = 1,
    sent_timestamp_ms: int | None = None,
    sender_id: str | None = None,
) -> dict[str, Any]:
    """An SQS Lambda event whose record bodies are the given EventBridge events, in order.

    Each argument becomes one record (a str body is used verbatim: fan-out messages, garbage).
    Message ids are distinct within the batch, as partial-batch responses rely on them.
    """
    sent = int(time.time() * 1000) if sent_timestamp_ms is None else sent_timestamp_ms
    records = []
    for index, body in enumerate(eventbridge_events):
        record = sqs_record(
            body,
            queue_arn=queue_arn,
            receive_count=receive_count,
            sent_timestamp_ms=sent + index,
            sender_id=sender_id,
        )
        record["messageId"] = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, f"{index}:{record['body']}"))
        records.append(record)
    return {"Records": records}
