"""Typed parsing of every input shape (the boundary). Anything else raises InvalidEvent.

Verify-queue message bodies:
- EventBridge S3 ``Object Created`` (bucket notifications to EventBridge);
- EventBridge ``AWS API Call via CloudTrail`` from ``aws.s3``: PutObject, CopyObject,
  CompleteMultipartUpload data events (for accounts that use CloudTrail data events);
- ``clguard.verify-objects`` v1, our own fan-out of manifest image checks, and v2, the same with
  an ``audit`` run id and each object's listed state (the audit's fan-out): encoded and decoded
  in ``fanout``;
- ``clguard.finding`` v1, the findings outbox: encoded and decoded in ``outbox``.

Grant function input: EventBridge ``AWS API Call via CloudTrail`` from ``aws.rekognition``, and
from ``aws.kms`` the key lifecycle calls ``KEY_STATE_EVENTS`` (``parse_key_state_change``).

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

from clguard.boundary import fanout, outbox
from clguard.boundary.fanout import VERIFY_OBJECTS_KIND as VERIFY_OBJECTS_KIND  # noqa: PLC0414 (re-exported)
from clguard.boundary.outbox import FINDING_KIND as FINDING_KIND  # noqa: PLC0414 (re-exported)
from clguard.boundary.outbox import FindingMessage as FindingMessage  # noqa: PLC0414 (re-exported)
from clguard.boundary.parsing import MAX_KEY_BYTES as MAX_KEY_BYTES  # noqa: PLC0414 (re-exported)
from clguard.boundary.parsing import (
    object_key,
    optional_account_id,
    optional_text,
    required_object,
    required_text,
    said_text,
)
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork as ObjectWork  # noqa: PLC0414 (re-exported)
from clguard.errors import InvalidEvent, UntrustedSender
from clguard.rules.arns import is_key_reference, parse_key_arn
from clguard.rules.encryption import ObservedEncryption

MAX_BODY_BYTES: Final = 1024 * 1024
S3_DATA_EVENTS: Final = frozenset({"PutObject", "CopyObject", "CompleteMultipartUpload"})
TRAINING_EVENTS: Final = frozenset(
    {"CreateProjectVersion", "CreateDataset", "UpdateDatasetEntries", "CopyProjectVersion"}
)
# KMS calls after which a key may no longer serve training (docs/architecture.md §5a): its open
# findings are closed once the key, re-read, says so.
KEY_STATE_EVENTS: Final = frozenset({"ScheduleKeyDeletion", "DisableKey"})


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


type VerifyMessage = list[ObjectWork] | FindingMessage


def _eventbridge(event: Mapping[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    event_id = required_text(event, "id", "event")
    detail_type = required_text(event, "detail-type", "event")
    source = required_text(event, "source", "event")
    detail = required_object(event, "detail", "event")
    return event_id, detail_type, source, detail


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
    bucket = required_text(required_object(detail, "bucket", "detail"), "name", "detail.bucket")
    item = required_object(detail, "object", "detail")
    key = required_text(item, "key", "detail.object")
    version = optional_text(item, "version-id", "detail.object")
    reason = optional_text(detail, "reason", "detail") or "ObjectCreated"
    # A version id belongs to one key: the other reading is inspected as its current object.
    readings = key_readings(key, "detail.object.key")
    return [
        ObjectWork(S3ObjectRef(bucket, k, version if n == 0 else None), event_id, reason)
        for n, k in enumerate(readings)
    ]


def _s3_data_event(event_id: str, detail: Mapping[str, Any]) -> list[ObjectWork] | None:
    name = required_text(detail, "eventName", "detail")
    if required_text(detail, "eventSource", "detail") != "s3.amazonaws.com" or name not in S3_DATA_EVENTS:
        raise InvalidEvent(f"CloudTrail S3 event {name!r} is not one we verify")
    if detail.get("errorCode"):
        return None  # S3 refused the write: nothing was created
    params = required_object(detail, "requestParameters", "detail")
    bucket = required_text(params, "bucketName", "detail.requestParameters")
    key = required_text(params, "key", "detail.requestParameters")
    raw_response = detail.get("responseElements")
    response: Mapping[str, Any] = raw_response if isinstance(raw_response, dict) else {}
    version = said_text(response.get("x-amz-version-id"))
    observed = _observed(response, detail.get("additionalEventData"))
    # The record's encryption is that of the key as written: only that reading may be decided
    # from it; a URL-decoded reading is another object, inspected on its own (a decoy must not
    # vouch for it).
    readings = key_readings(key, "detail.requestParameters.key")
    return [
        ObjectWork(
            S3ObjectRef(bucket, k, version if n == 0 else None), event_id, name, observed=observed if n == 0 else None
        )
        for n, k in enumerate(readings)
    ]


def _observed(response: Mapping[str, Any], additional: Any) -> ObservedEncryption | None:
    """The encryption facts of a data event record; None when it carries none."""
    extra: Mapping[str, Any] = additional if isinstance(additional, dict) else {}
    observed = ObservedEncryption(
        sse_applied=said_text(extra.get("SSEApplied")),
        algorithm=said_text(response.get("x-amz-server-side-encryption")),
        kms_key_id=said_text(response.get("x-amz-server-side-encryption-aws-kms-key-id")),
        customer_algorithm=said_text(response.get("x-amz-server-side-encryption-customer-algorithm")),
    )
    return None if observed == ObservedEncryption() else observed


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
        return fanout.decode(message)
    if kind == FINDING_KIND:
        return outbox.decode(message)
    if kind is not None:
        raise InvalidEvent(f"unknown message kind {kind!r}")
    event_id, detail_type, source, detail = _eventbridge(message)
    account = optional_account_id(message)
    if source == "aws.s3" and detail_type == "Object Created":
        return [replace(w, account=account) for w in _object_created(event_id, detail)]
    if source == "aws.s3" and detail_type == "AWS API Call via CloudTrail":
        works = _s3_data_event(event_id, detail)
        return None if works is None else [replace(w, account=account) for w in works]
    raise InvalidEvent(f"unexpected event: source {source!r}, detail-type {detail_type!r}")


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A verify-queue body parsed once, at the boundary: its message (``value``), or the error
    that makes its record fail when it is handled. The batch's prefetch and the record's
    handling read the same value (docs/architecture.md §8)."""

    message: VerifyMessage | None = None
    error: InvalidEvent | None = None

    def value(self) -> VerifyMessage | None:
        if self.error is not None:
            raise self.error
        return self.message


def parse_body(body: str | bytes, *, from_guard: bool = False) -> ParsedBody:
    """``parse_verify_message``, with its refusal kept as a value."""
    try:
        return ParsedBody(parse_verify_message(body, from_guard=from_guard))
    except InvalidEvent as error:
        return ParsedBody(error=error)


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


@dataclass(frozen=True, slots=True)
class _CloudTrailCall:
    event_id: str
    name: str
    account: str
    region: str
    detail: dict[str, Any]


def _cloudtrail_call(event: Any, source_wanted: str) -> _CloudTrailCall:
    """An EventBridge "AWS API Call via CloudTrail" event of ``source_wanted``: its id, call,
    account and region (the record itself in ``detail``)."""
    if not isinstance(event, dict):
        raise InvalidEvent("the event is not a JSON object")
    event_id, detail_type, source, detail = _eventbridge(event)
    if source != source_wanted or detail_type != "AWS API Call via CloudTrail":
        raise InvalidEvent(f"unexpected event: source {source!r}, detail-type {detail_type!r}")
    name = required_text(detail, "eventName", "detail")
    # The envelope's account is the one EventBridge vouches for (a forwarded event keeps it);
    # the record's recipientAccountId must agree, or the call is not this account's.
    account = optional_account_id(event) or required_text(event, "account", "event")
    recipient = optional_text(detail, "recipientAccountId", "detail")
    if recipient is not None and recipient != account:
        raise InvalidEvent(f"detail.recipientAccountId {recipient[:40]!r} is not the event's account {account}")
    region = optional_text(detail, "awsRegion", "detail") or required_text(event, "region", "event")
    return _CloudTrailCall(event_id, name, account, region, detail)


def parse_training_call(event: Any) -> TrainingCall:
    call = _cloudtrail_call(event, "aws.rekognition")
    event_id, name, account, region, detail = call.event_id, call.name, call.account, call.region, call.detail
    params = detail.get("requestParameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidEvent("detail.requestParameters must be an object")
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


# --- CloudTrail key lifecycle calls (grant function) --------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyStateChange:
    """A KMS ``ScheduleKeyDeletion`` or ``DisableKey`` call as CloudTrail recorded it: what it
    names, never what it claims happened (the key is re-read)."""

    event_id: str
    event_name: str
    account: str  # the envelope's (EventBridge vouches for it; a forwarded event keeps it)
    region: str
    key: str  # the key ARN the record names (resources, responseElements), else requestParameters.keyId


def is_key_state_change(event: Any) -> bool:
    """Whether a grant-function event is a KMS call (the rest are training calls)."""
    return isinstance(event, dict) and event.get("source") == "aws.kms"


def _recorded_key(detail: Mapping[str, Any]) -> str | None:
    """The key a KMS CloudTrail record names: ``resources[].ARN`` (type ``AWS::KMS::Key``, or no
    type, as DisableKey records have), then ``responseElements.keyId`` (recorded as the key ARN
    since December 2022), then ``requestParameters.keyId`` (what the caller passed: an id, ARN
    or alias)."""
    resources = detail.get("resources")
    for resource in resources if isinstance(resources, list) else []:
        if isinstance(resource, dict) and resource.get("type") in (None, "AWS::KMS::Key"):
            arn = said_text(resource.get("ARN"))
            if arn is not None and parse_key_arn(arn) is not None:
                return arn
    for name in ("responseElements", "requestParameters"):
        part = detail.get(name)
        key = said_text(part.get("keyId")) if isinstance(part, dict) else None
        if key is not None:
            return key
    return None


def parse_key_state_change(event: Any) -> KeyStateChange:
    call = _cloudtrail_call(event, "aws.kms")
    if call.name not in KEY_STATE_EVENTS:
        raise InvalidEvent(f"unexpected KMS call {call.name[:60]!r}: only {', '.join(sorted(KEY_STATE_EVENTS))}")
    key = _recorded_key(call.detail)
    if key is None or not is_key_reference(key):
        shown = "nothing" if key is None else repr(key[:100])
        raise InvalidEvent(f"the {call.name} record names no KMS key (found {shown})")
    return KeyStateChange(call.event_id, call.name, call.account, call.region, key)
