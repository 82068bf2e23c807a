"""Typed parsing of every input shape (the boundary). Anything else raises InvalidEvent.

Verify-queue message bodies:
- EventBridge S3 ``Object Created`` (bucket notifications to EventBridge);
- EventBridge ``AWS API Call via CloudTrail`` from ``aws.s3``: PutObject, CopyObject,
  CompleteMultipartUpload data events (for accounts that use CloudTrail data events);
- ``clguard.verify-objects`` v1, our own fan-out of manifest image checks (see ``fanout``), and
  v2, the same with an ``audit`` run id and each object's listed state (the audit's fan-out);
- ``clguard.finding`` v1, the findings outbox (see ``publisher``).

Grant function input: EventBridge ``AWS API Call via CloudTrail`` from ``aws.rekognition``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from clguard.errors import InvalidEvent

MAX_KEY_BYTES: Final = 1024  # S3's limit for an object key
MAX_BODY_BYTES: Final = 1024 * 1024
S3_DATA_EVENTS: Final = frozenset({"PutObject", "CopyObject", "CompleteMultipartUpload"})
TRAINING_EVENTS: Final = frozenset(
    {"CreateProjectVersion", "CreateDataset", "UpdateDatasetEntries", "CopyProjectVersion"}
)
VERIFY_OBJECTS_KIND: Final = "clguard.verify-objects"
FINDING_KIND: Final = "clguard.finding"


def field_(mapping: Mapping[str, Any], name: str, kind: type, where: str, *, required: bool = True) -> Any:
    value = mapping.get(name)
    if value is None:
        if required:
            raise InvalidEvent(f"{where}.{name} is missing")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidEvent(f"{where}.{name} must be {kind.__name__}, got {type(value).__name__}")
    return value


def text(mapping: Mapping[str, Any], name: str, where: str, *, required: bool = True) -> str | None:
    value: str | None = field_(mapping, name, str, where, required=required)
    if required and not value:
        raise InvalidEvent(f"{where}.{name} is empty")
    return value or None


def req(mapping: Mapping[str, Any], name: str, where: str) -> str:
    """A required, non-empty string field."""
    value = text(mapping, name, where)
    if value is None:  # pragma: no cover - text() raises first
        raise InvalidEvent(f"{where}.{name} is missing")
    return value


def obj(mapping: Mapping[str, Any], name: str, where: str, *, required: bool = True) -> dict[str, Any]:
    value: dict[str, Any] | None = field_(mapping, name, dict, where, required=required)
    return value or {}


def object_key(value: str, where: str) -> str:
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{where} is not valid UTF-8 (lone surrogate)") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidEvent(f"{where} is longer than S3's {MAX_KEY_BYTES}-byte key limit")
    if "\x00" in value:
        raise InvalidEvent(f"{where} contains a NUL character")
    return value


def parse_json(body: str | bytes, where: str = "body") -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise InvalidEvent(f"{where} is larger than {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise InvalidEvent(f"{where} is not JSON: {str(error)[:200]}") from None
    if not isinstance(value, dict):
        raise InvalidEvent(f"{where} is JSON but not an object")
    return value


@dataclass(frozen=True, slots=True)
class ObjectWork:
    """One object to verify."""

    bucket: str
    key: str
    version_id: str | None
    source_event_id: str
    reason: str  # PutObject, CopyObject, CompleteMultipartUpload, manifest image, ...
    principals: tuple[str, ...] = ()  # principals to ensure beyond TRAINING_PRINCIPALS
    anywhere: bool = False  # checked wherever it is (the grant path points at it), not only training buckets
    origin: str = ""  # what asked, for finding details
    scope: str = ""  # finding scope for key-level conditions ("" = per event)
    audit_run: str = ""  # the audit run that listed it (verify-objects v2), else ""
    state: str = ""  # the listed ETag@LastModified (audit): its findings are scoped by it


@dataclass(frozen=True, slots=True)
class FindingMessage:
    document: dict[str, Any]
    scope: str


type VerifyMessage = list[ObjectWork] | FindingMessage


def _eventbridge(event: Mapping[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    event_id = req(event, "id", "event")
    detail_type = req(event, "detail-type", "event")
    source = req(event, "source", "event")
    detail = obj(event, "detail", "event")
    return event_id, detail_type, source, detail


def _object_created(event_id: str, detail: Mapping[str, Any]) -> ObjectWork:
    bucket = req(obj(detail, "bucket", "detail"), "name", "detail.bucket")
    item = obj(detail, "object", "detail")
    key = req(item, "key", "detail.object")
    version = text(item, "version-id", "detail.object", required=False)
    reason = text(detail, "reason", "detail", required=False) or "ObjectCreated"
    return ObjectWork(bucket, object_key(key, "detail.object.key"), version, event_id, reason)


def _s3_data_event(event_id: str, detail: Mapping[str, Any]) -> ObjectWork | None:
    name = req(detail, "eventName", "detail")
    if req(detail, "eventSource", "detail") != "s3.amazonaws.com" or name not in S3_DATA_EVENTS:
        raise InvalidEvent(f"CloudTrail S3 event {name!r} is not one we verify")
    if detail.get("errorCode"):
        return None  # S3 refused the write: nothing was created
    params = obj(detail, "requestParameters", "detail")
    bucket = req(params, "bucketName", "detail.requestParameters")
    key = req(params, "key", "detail.requestParameters")
    response = detail.get("responseElements")
    version = response.get("x-amz-version-id") if isinstance(response, dict) else None
    version = version if isinstance(version, str) and version else None
    return ObjectWork(bucket, object_key(key, "detail.requestParameters.key"), version, event_id, name)


def _verify_objects(message: Mapping[str, Any]) -> list[ObjectWork]:
    where = VERIFY_OBJECTS_KIND
    version = message.get("version")
    if version not in (1, 2) or isinstance(version, bool):
        raise InvalidEvent(f"{where} version {version!r} is not supported")
    audit_run = req(message, "audit_run", where) if version == 2 else ""
    audit_bucket = req(message, "bucket", where) if version == 2 else ""
    event_id = req(message, "source_event_id", where)
    origin = text(message, "origin", where, required=False) or "a training request"
    principals = field_(message, "principals", list, where, required=False) or []
    if not all(isinstance(p, str) for p in principals):
        raise InvalidEvent(f"{where}.principals must be a list of strings")
    objects = field_(message, "objects", list, where)
    work = []
    for index, item in enumerate(objects):
        if not isinstance(item, dict):
            raise InvalidEvent(f"{where}.objects[{index}] must be an object")
        bucket = audit_bucket or req(item, "bucket", f"{where}.objects[{index}]")
        key = req(item, "key", f"{where}.objects[{index}]")
        version_id = text(item, "version_id", f"{where}.objects[{index}]", required=False)
        if audit_run:
            # The audit lists the training buckets only: checked as an upload is (training
            # buckets only), its findings scoped by the object's listed state.
            state = text(item, "state", f"{where}.objects[{index}]", required=False) or ""
            work.append(
                ObjectWork(
                    bucket,
                    object_key(key, f"{where}.objects[{index}].key"),
                    version_id,
                    event_id,
                    "audit",
                    principals=tuple(principals),
                    origin=origin,
                    audit_run=audit_run,
                    state=state,
                )
            )
            continue
        work.append(
            ObjectWork(
                bucket,
                object_key(key, f"{where}.objects[{index}].key"),
                version_id,
                event_id,
                "manifest image",
                principals=tuple(principals),
                anywhere=True,
                origin=origin,
            )
        )
    return work


def parse_verify_message(body: str | bytes) -> VerifyMessage | None:
    """A verify-queue body. None means "a known event with nothing to verify" (e.g. a refused
    CloudTrail write). Raises InvalidEvent for anything we do not know."""
    message = parse_json(body)
    kind = message.get("kind")
    if kind == VERIFY_OBJECTS_KIND:
        return _verify_objects(message)
    if kind == FINDING_KIND:
        document = obj(message, "finding", FINDING_KIND)
        return FindingMessage(document, str(message.get("scope") or ""))
    if kind is not None:
        raise InvalidEvent(f"unknown message kind {kind!r}")
    event_id, detail_type, source, detail = _eventbridge(message)
    if source == "aws.s3" and detail_type == "Object Created":
        return [_object_created(event_id, detail)]
    if source == "aws.s3" and detail_type == "AWS API Call via CloudTrail":
        work = _s3_data_event(event_id, detail)
        return None if work is None else [work]
    raise InvalidEvent(f"unexpected event: source {source!r}, detail-type {detail_type!r}")


# --- CloudTrail training calls (grant path) -------------------------------------------------


def lower_keys(value: Any, depth: int = 0) -> Any:
    """Request parameters with every key lower-cased (Rekognition records may use lowerCamelCase)."""
    if depth > 32:
        raise InvalidEvent("requestParameters nest deeper than 32 levels")
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v, depth + 1) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class TrainingCall:
    event_id: str
    event_name: str
    account: str
    region: str
    user_identity: Any
    parameters: dict[str, Any]  # lower-cased keys
    error_code: str | None
    error_message: str | None


def parse_training_call(event: Any) -> TrainingCall:
    if not isinstance(event, dict):
        raise InvalidEvent("the event is not a JSON object")
    event_id, detail_type, source, detail = _eventbridge(event)
    if source != "aws.rekognition" or detail_type != "AWS API Call via CloudTrail":
        raise InvalidEvent(f"unexpected event: source {source!r}, detail-type {detail_type!r}")
    name = req(detail, "eventName", "detail")
    params = detail.get("requestParameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidEvent("detail.requestParameters must be an object")
    account = text(detail, "recipientAccountId", "detail", required=False) or req(event, "account", "event")
    region = text(detail, "awsRegion", "detail", required=False) or req(event, "region", "event")
    error_code = detail.get("errorCode")
    error_message = detail.get("errorMessage")
    return TrainingCall(
        event_id=event_id,
        event_name=name,
        account=account,
        region=region,
        user_identity=detail.get("userIdentity"),
        parameters=lower_keys(params or {}),
        error_code=error_code if isinstance(error_code, str) and error_code else None,
        error_message=error_message if isinstance(error_message, str) else None,
    )
