"""Typed parsing of every input shape (the boundary). Anything else raises InvalidEvent.

Verify-queue message bodies:
- EventBridge S3 ``Object Created`` (bucket notifications to EventBridge);
- EventBridge ``AWS API Call via CloudTrail`` from ``aws.s3``: PutObject, CopyObject,
  CompleteMultipartUpload data events (for accounts that use CloudTrail data events);
- ``clguard.verify-objects`` v1, our own fan-out of manifest image checks (see ``fanout``), and
  v2, the same with an ``audit`` run id and each object's listed state (the audit's fan-out);
- ``clguard.finding`` v1, the findings outbox (see ``publisher``).

Grant function input: EventBridge ``AWS API Call via CloudTrail`` from ``aws.rekognition``.

Object keys, by source (a key is any UTF-8 string, so ``x+y.jpg`` and ``x y.jpg`` are two
objects, and a compliant decoy must never hide the other one):

- S3 event notifications URL-encode keys ("red flower.jpg" becomes "red+flower.jpg", S3 User
  Guide, event message structure); for EventBridge ``Object Created`` events and CloudTrail
  ``requestParameters.key`` AWS documents no encoding either way. So for both AWS sources the
  key as delivered *and* its ``unquote_plus`` decoding are verified, each on its own, when they
  differ (one that does not exist is skipped as gone).
- Our own messages (``clguard.verify-objects``) carry raw keys: used exactly as written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import unquote_plus

from clguard.encryption import ObservedEncryption
from clguard.errors import InvalidEvent, UntrustedSender

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
    observed: ObservedEncryption | None = None  # what a CloudTrail data event says S3 applied
    account: str | None = None  # the account whose object it is (the event's); None = the deployment's own
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


def event_account(event: Mapping[str, Any], where: str = "event") -> str | None:
    """The EventBridge envelope's ``account``: the account the event came from (EventBridge sets
    it; a rule forwarding to another account's bus keeps it). None when absent."""
    account = text(event, "account", where, required=False)
    if account is not None and not (len(account) == 12 and account.isdigit()):
        raise InvalidEvent(f"{where}.account {account[:40]!r} is not a 12-digit account id")
    return account


def key_readings(delivered: str, where: str) -> list[str]:
    """The keys an AWS event's key may stand for: as delivered, and URL-decoded when that differs
    (see the module documentation). Each is validated as an S3 key."""
    keys = [object_key(delivered, where)]
    if "%" not in delivered and "+" not in delivered:
        return keys
    try:
        decoded = object_key(unquote_plus(delivered, errors="strict"), f"{where} (URL-decoded)")
    except (UnicodeDecodeError, InvalidEvent):
        return keys  # the decoding is no valid key: only the key as delivered can be meant
    if decoded != delivered:
        keys.append(decoded)
    return keys


def _object_created(event_id: str, detail: Mapping[str, Any]) -> list[ObjectWork]:
    bucket = req(obj(detail, "bucket", "detail"), "name", "detail.bucket")
    item = obj(detail, "object", "detail")
    key = req(item, "key", "detail.object")
    version = text(item, "version-id", "detail.object", required=False)
    reason = text(detail, "reason", "detail", required=False) or "ObjectCreated"
    # A version id belongs to one key: the other reading is inspected as its current object.
    readings = key_readings(key, "detail.object.key")
    return [ObjectWork(bucket, k, version if n == 0 else None, event_id, reason) for n, k in enumerate(readings)]


def _s3_data_event(event_id: str, detail: Mapping[str, Any]) -> list[ObjectWork] | None:
    name = req(detail, "eventName", "detail")
    if req(detail, "eventSource", "detail") != "s3.amazonaws.com" or name not in S3_DATA_EVENTS:
        raise InvalidEvent(f"CloudTrail S3 event {name!r} is not one we verify")
    if detail.get("errorCode"):
        return None  # S3 refused the write: nothing was created
    params = obj(detail, "requestParameters", "detail")
    bucket = req(params, "bucketName", "detail.requestParameters")
    key = req(params, "key", "detail.requestParameters")
    raw_response = detail.get("responseElements")
    response: Mapping[str, Any] = raw_response if isinstance(raw_response, dict) else {}
    version = _fact(response, "x-amz-version-id")
    observed = _observed(response, detail.get("additionalEventData"))
    # The record's encryption is that of the key as written: only that reading may be decided
    # from it; a URL-decoded reading is another object, inspected on its own (a decoy must not
    # vouch for it).
    readings = key_readings(key, "detail.requestParameters.key")
    return [
        ObjectWork(bucket, k, version if n == 0 else None, event_id, name, observed=observed if n == 0 else None)
        for n, k in enumerate(readings)
    ]


def _fact(mapping: Mapping[str, Any], name: str) -> str | None:
    """A record field that informs but does not make the record: anything but a non-empty
    string counts as "not said" (the object is then inspected instead)."""
    value = mapping.get(name)
    return value if isinstance(value, str) and value else None


def _observed(response: Mapping[str, Any], additional: Any) -> ObservedEncryption | None:
    """The encryption facts of a data event record; None when it carries none."""
    extra: Mapping[str, Any] = additional if isinstance(additional, dict) else {}
    observed = ObservedEncryption(
        sse_applied=_fact(extra, "SSEApplied"),
        algorithm=_fact(response, "x-amz-server-side-encryption"),
        kms_key_id=_fact(response, "x-amz-server-side-encryption-aws-kms-key-id"),
        customer_algorithm=_fact(response, "x-amz-server-side-encryption-customer-algorithm"),
    )
    return None if observed == ObservedEncryption() else observed


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
    account = event_account(message, where)
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
                account=account,
            )
        )
    return work


GUARD_KINDS: Final = frozenset({VERIFY_OBJECTS_KIND, FINDING_KIND})


def parse_verify_message(body: str | bytes, *, from_guard: bool = False) -> VerifyMessage | None:
    """A verify-queue body. None means "a known event with nothing to verify" (e.g. a refused
    CloudTrail write). Raises InvalidEvent for anything we do not know.

    ``from_guard``: the message was sent by one of the guard's own functions (authenticated by
    the caller: SQS SenderId). The guard's own kinds name principals to grant and become alerts,
    so from anyone else they raise UntrustedSender (also when redriven from a DLQ)."""
    message = parse_json(body)
    kind = message.get("kind")
    if isinstance(kind, str) and kind in GUARD_KINDS and not from_guard:
        raise UntrustedSender(f"a {kind} message from a sender that is not one of the guard's functions")
    if kind == VERIFY_OBJECTS_KIND:
        return _verify_objects(message)
    if kind == FINDING_KIND:
        document = obj(message, "finding", FINDING_KIND)
        return FindingMessage(document, str(message.get("scope") or ""))
    if kind is not None:
        raise InvalidEvent(f"unknown message kind {kind!r}")
    event_id, detail_type, source, detail = _eventbridge(message)
    account = event_account(message)
    if source == "aws.s3" and detail_type == "Object Created":
        return [replace(w, account=account) for w in _object_created(event_id, detail)]
    if source == "aws.s3" and detail_type == "AWS API Call via CloudTrail":
        works = _s3_data_event(event_id, detail)
        return None if works is None else [replace(w, account=account) for w in works]
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
    response: dict[str, Any] = field(default_factory=dict)  # responseElements, lower-cased keys


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
    # The envelope's account is the one EventBridge vouches for (a forwarded event keeps it);
    # the record's recipientAccountId must agree, or the call is not this account's.
    account = event_account(event) or req(event, "account", "event")
    recipient = text(detail, "recipientAccountId", "detail", required=False)
    if recipient is not None and recipient != account:
        raise InvalidEvent(f"detail.recipientAccountId {recipient[:40]!r} is not the event's account {account}")
    region = text(detail, "awsRegion", "detail", required=False) or req(event, "region", "event")
    error_code = detail.get("errorCode")
    error_message = detail.get("errorMessage")
    response = detail.get("responseElements")
    return TrainingCall(
        event_id=event_id,
        event_name=name,
        account=account,
        region=region,
        user_identity=detail.get("userIdentity"),
        parameters=lower_keys(params or {}),
        error_code=error_code if isinstance(error_code, str) and error_code else None,
        error_message=error_message if isinstance(error_message, str) else None,
        response=lower_keys(response) if isinstance(response, dict) else {},
    )
