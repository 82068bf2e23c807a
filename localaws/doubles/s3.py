"""Amazon S3 as documented, where moto 5.2.5 differs: encryption of objects, conditional and
in-place copies, the EventBridge switch of a bucket's notifications.

The documented behaviour each double reproduces (Amazon S3 API Reference and User Guide):

- ``UpdateObjectEncryption``: API Reference, "UpdateObjectEncryption"
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_UpdateObjectEncryption.html): an
  object's encryption changed to SSE-KMS in place, no new version, errors as documented.
- ``SseCustomerKeys``: User Guide, "Using server-side encryption with customer-provided keys
  (SSE-C)" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerSideEncryptionCustomerKeys.html)
  and API Reference, "HeadObject": an SSE-C object is read, headed and copied only with its key.
- ``DefaultBucketEncryption``: User Guide, "Using server-side encryption with Amazon S3 managed
  keys (SSE-S3)" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingServerSideEncryption.html):
  since January 5, 2023 every new object is encrypted; ``legacy_unencrypted_objects()`` and
  ``put_legacy_unencrypted_object()`` write the older, unencrypted kind.
- ``ConditionalCopies``: API Reference, "CopyObject", "UploadPartCopy" and
  "CompleteMultipartUpload" (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html):
  ``x-amz-copy-source-if-match`` and ``If-Match`` answer 412 when they do not hold.
- ``CopiesDropWebsiteRedirect``: API Reference, "CopyObject", ``x-amz-metadata-directive``: the
  website redirect location is not copied unless the request names it.
- ``BucketOwnerCondition``: User Guide, "Verifying bucket ownership with bucket owner condition"
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-owner-condition.html) and API
  Reference, every object operation's ``x-amz-expected-bucket-owner`` (and CopyObject's and
  UploadPartCopy's ``x-amz-source-expected-bucket-owner``): "If the account ID that you provide
  does not match the actual owner of the bucket, the request fails with the HTTP status code 403
  Forbidden (access denied)".
- ``EventBridgeNotifications``: API Reference, "GetBucketNotificationConfiguration"
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketNotificationConfiguration.html)
  and User Guide, "Enabling Amazon EventBridge"
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-event-notifications-eventbridge.html):
  the answer names ``EventBridgeConfiguration`` when it is on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import inspect
import re
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse
from xml.parsers.expat import ExpatError

import xmltodict  # type: ignore[import-untyped]
from moto.kms.models import kms_backends
from moto.s3.exceptions import MalformedXML, PreconditionFailed, S3ClientError
from moto.s3.models import S3Backend, s3_backends
from moto.s3.responses import S3Response

from localaws.doubles.base import Double, Wrapper, wrapped

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectOutputTypeDef

Response = tuple[int, dict[str, Any], str | bytes]

# Guards in-place changes to moto's S3 objects (encryption fields) against concurrent handlers.
_S3_OBJECT_LOCK = threading.Lock()


def _s3_error(code: str, message: str) -> S3ClientError:
    # moto serializes S3ClientError with the status of the S3 error model (AccessDenied 403,
    # NoSuchKey 404); codes without a model (InvalidRequest, KMS.*) get 400.
    return S3ClientError(code, message)


_KMS_KEY_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/(?P<id>[\w-]+)"
)
_MSG_UNSUPPORTED_SOURCE = (
    "The UpdateObjectEncryption operation doesn't support source objects with the "
    "encryption type {}. Only source objects encrypted with SSE-S3 or SSE-KMS are supported."
)


class UpdateObjectEncryption(Double):
    """S3 ``UpdateObjectEncryption``: change an object's encryption to SSE-KMS *in place*.

    API reference: "you can atomically update the server-side encryption type of an existing
    object in a general purpose bucket without any data movement ... your data isn't copied
    ... the UpdateObjectEncryption operation preserves all object metadata properties,
    including the storage class, creation date, last modified date, ETag, and checksum
    properties." So: no new version, no S3 event notification; HeadObject afterwards shows
    ``ServerSideEncryption: aws:kms`` and ``SSEKMSKeyId`` = the key ARN. Wire format
    (botocore model): ``PUT /{Bucket}/{Key+}?encryption[&versionId=]`` with body
    ``<ObjectEncryption><SSE-KMS><KMSKeyArn/><BucketKeyEnabled/></SSE-KMS></ObjectEncryption>``.

    Errors, as documented: source unencrypted, DSSE-KMS or SSE-C, no ``SSE-KMS`` element,
    missing or malformed key ARN, bad ``BucketKeyEnabled`` -> 400 ``InvalidRequest``; key or
    version missing -> 404 ``NoSuchKey``; "The AWS KMS key in the request must be owned by
    the same account as the bucket" -> 403 ``AccessDenied`` (also for a wrong
    ``x-amz-expected-bucket-owner``). A key that KMS rejects is reported as S3 reports KMS
    errors on writes, 400 with the KMS code prefixed: not in moto's KMS (or another region
    than the bucket's) -> ``KMS.NotFoundException``; disabled -> ``KMS.DisabledException``;
    pending deletion -> ``KMS.KMSInvalidStateException``. Not modelled: Object Lock refusal,
    KMS permission checks of the caller, Organizations cross-account keys.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        def make(original: Wrapper) -> Wrapper:
            def _key_response_put(self: S3Response, query: dict[str, Any], key_name: str) -> Any:
                if "encryption" in query:
                    return _update_object_encryption(self, query, key_name)
                return original(self, query, key_name)

            return _key_response_put

        yield wrapped(S3Response, "_key_response_put", make)


def _update_object_encryption(resp: S3Response, query: dict[str, Any], key_name: str) -> Response:
    resp.data["Action"] = "UpdateObjectEncryption"
    resp._authenticate_and_authorize_s3_action(bucket_name=resp.bucket_name, key_name=key_name)
    backend = resp.backend
    bucket = backend.get_bucket(resp.bucket_name)
    expected_owner = resp.headers.get("x-amz-expected-bucket-owner")
    if expected_owner and expected_owner != backend.account_id:
        raise _s3_error("AccessDenied", "Access Denied")
    arn, bucket_key_enabled = _parse_object_encryption(resp.body)

    version_id = query.get("versionId", [None])[0]
    key = backend.get_object(bucket.name, key_name, version_id=version_id)
    if key is None:
        raise _s3_error("NoSuchKey", "The specified key does not exist.")
    if _sse_c_of(key) is not None:
        raise _s3_error("InvalidRequest", _MSG_UNSUPPORTED_SOURCE.format("SSE-C"))
    if key.encryption is None:
        raise _s3_error(
            "InvalidRequest",
            "The UpdateObjectEncryption operation doesn't supported unencrypted source objects. "
            "Only source objects encrypted with SSE-S3 or SSE-KMS are supported.",
        )
    if key.encryption not in ("AES256", "aws:kms"):
        raise _s3_error("InvalidRequest", _MSG_UNSUPPORTED_SOURCE.format("DSSE-KMS"))

    _check_kms_key(arn, owner=backend.account_id, bucket_region=bucket.region_name)
    with _S3_OBJECT_LOCK:
        key.encryption = "aws:kms"
        key.kms_key_id = arn
        key.bucket_key_enabled = bucket_key_enabled
    return 200, {}, b""


def _parse_object_encryption(body: bytes | str | None) -> tuple[str, str | None]:
    """The key ARN and ``BucketKeyEnabled`` ("true"/"false"/None) of the request body."""
    try:
        document = xmltodict.parse(body) if body else {}
    except ExpatError as error:
        raise MalformedXML() from error
    root = document.get("ObjectEncryption")
    sse_kms = root.get("SSE-KMS") if isinstance(root, dict) else None
    if not isinstance(sse_kms, dict):
        raise _s3_error(
            "InvalidRequest",
            "Requests that modify an object encryption configuration require a valid new "
            "encryption type. Valid values are SSEKMS.",
        )
    arn = sse_kms.get("KMSKeyArn")
    if not arn:
        raise _s3_error(
            "InvalidRequest",
            "Requests that modify an object's encryption type to SSE-KMS require an AWS KMS "
            "key Amazon Resource Name (ARN).",
        )
    if not isinstance(arn, str) or not _KMS_KEY_ARN.fullmatch(arn):
        raise _s3_error(
            "InvalidRequest",
            "Requests that modify an object's encryption type to SSE-KMS require a valid AWS "
            "KMS key Amazon Resource Name (ARN).",
        )
    bucket_key_enabled = sse_kms.get("BucketKeyEnabled")
    if bucket_key_enabled not in (None, "true", "false"):
        raise _s3_error(
            "InvalidRequest",
            "The BucketKeyEnabled value isn't valid. Valid values are true or false.",
        )
    return arn, bucket_key_enabled


def _check_kms_key(arn: str, *, owner: str, bucket_region: str) -> None:
    match = _KMS_KEY_ARN.fullmatch(arn)
    assert match is not None  # checked by _parse_object_encryption
    if match["account"] != owner:
        raise _s3_error(
            "AccessDenied",
            "The AWS KMS key in the request must be owned by the same account as the bucket.",
        )
    if match["region"] != bucket_region:
        raise _s3_error("KMS.NotFoundException", f"Invalid arn {match['region']}")
    key = kms_backends[owner][match["region"]].keys.get(match["id"])
    if key is None:
        raise _s3_error("KMS.NotFoundException", f"Key '{arn}' does not exist")
    if key.key_state == "Disabled":
        raise _s3_error("KMS.DisabledException", f"{arn} is disabled.")
    if key.key_state == "PendingDeletion":
        raise _s3_error("KMS.KMSInvalidStateException", f"{arn} is pending deletion.")


_SSE_C = "x-amz-server-side-encryption-customer-"
_COPY_SOURCE_SSE_C = "x-amz-copy-source-server-side-encryption-customer-"
_SSE_C_ATTR = "_localaws_sse_customer_key"  # set on moto FakeKey / FakeMultipart objects
# GET/HEAD sub-resources that read no object data (no customer key needed).
_NO_DATA_SUBRESOURCES = frozenset({"acl", "tagging", "legal-hold", "retention", "attributes", "uploadId", "uploads"})
_MSG_SSE_C_REQUIRED = (
    "The object was stored using a form of Server Side Encryption. "
    "The correct parameters must be provided to retrieve the object."
)
_MSG_SSE_C_NOT_APPLICABLE = "The encryption parameters are not applicable to this object."

# The SSE-C key of the write request being handled in this thread (moto handles a request
# in one thread, in both modes); read by the backend patches below.
_REQUEST_SSE_C: ContextVar[SseCustomerKey | None] = ContextVar("_REQUEST_SSE_C", default=None)


@dataclass(frozen=True)
class SseCustomerKey:
    """What S3 keeps of a customer-provided key: the algorithm and the key's MD5 (base64)."""

    algorithm: str
    key_md5: str

    def response_headers(self) -> dict[str, str]:
        return {f"{_SSE_C}algorithm": self.algorithm, f"{_SSE_C}key-MD5": self.key_md5}


def _sse_c_of(obj: Any) -> SseCustomerKey | None:
    value = getattr(obj, _SSE_C_ATTR, None)
    return value if isinstance(value, SseCustomerKey) else None


def _sse_c_from_headers(headers: Any, prefix: str) -> SseCustomerKey | None:
    """The validated SSE-C headers with ``prefix``, or None when none is present."""
    algorithm = headers.get(f"{prefix}algorithm")
    key = headers.get(f"{prefix}key")
    key_md5 = headers.get(f"{prefix}key-MD5")
    if algorithm is None and key is None and key_md5 is None:
        return None
    if algorithm != "AES256":
        raise _s3_error(
            "InvalidEncryptionAlgorithmError",
            "The encryption request you specified is not valid. The valid value is AES256.",
        )
    if not key or not key_md5:
        raise _s3_error(
            "InvalidArgument",
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide an appropriate secret key.",
        )
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise _s3_error("InvalidArgument", "The secret key was invalid for the specified algorithm.")
    if base64.b64encode(hashlib.md5(raw, usedforsecurity=False).digest()).decode() != key_md5:
        raise _s3_error(
            "InvalidArgument",
            "The calculated MD5 hash of the key did not match the hash that was provided.",
        )
    return SseCustomerKey(algorithm, key_md5)


def _check_customer_key(stored: SseCustomerKey | None, given: SseCustomerKey | None) -> None:
    if stored is None and given is not None:
        raise _s3_error("InvalidRequest", _MSG_SSE_C_NOT_APPLICABLE)
    if stored is not None and given is None:
        raise _s3_error("InvalidRequest", _MSG_SSE_C_REQUIRED)
    if stored is not None and given is not None and stored.key_md5 != given.key_md5:
        raise _s3_error("AccessDenied", "Access Denied")


class SseCustomerKeys(Double):
    """SSE-C: objects encrypted with a customer-provided key need that key to be read.

    AWS: PutObject/CreateMultipartUpload with ``x-amz-server-side-encryption-customer-*``
    store the object encrypted with the customer key (S3 keeps only the key's MD5);
    HeadObject: "If you encrypt an object by using server-side encryption with
    customer-provided encryption keys (SSE-C) when you store the object in Amazon S3, then
    when you retrieve the metadata from the object, you must use the following headers".
    Without them HEAD answers 400 Bad Request with no body (botocore: ClientError code
    "400"), GET 400 InvalidRequest; with another key 403 (HEAD: no body). CopyObject and
    UploadPartCopy of an SSE-C source need ``x-amz-copy-source-server-side-encryption-
    customer-*`` (missing: 400, wrong: 403). SSE-C headers on an object that is not SSE-C:
    400. Successful responses echo ``SSECustomerAlgorithm``/``SSECustomerKeyMD5``; HeadObject
    shows no ``ServerSideEncryption``. Recorded per object version (algorithm, key MD5).
    Not modelled: the HTTPS requirement, UploadPart key checks, GetObjectAttributes.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield wrapped(S3Response, "_key_response", _sse_c_key_response)
        yield wrapped(S3Backend, "put_object", _sse_c_put_object)
        yield wrapped(S3Backend, "create_multipart_upload", _sse_c_create_multipart_upload)
        yield wrapped(S3Backend, "complete_multipart_upload", _sse_c_complete_multipart_upload)


def _sse_c_key_response(original: Wrapper) -> Wrapper:
    def _key_response(self: S3Response, request: Any, full_url: str) -> Any:
        method = request.method
        query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
        reads_data = method in ("GET", "HEAD") and not (query.keys() & _NO_DATA_SUBRESOURCES)
        try:
            given = _sse_c_from_headers(self.headers, _SSE_C)
            if reads_data:
                _check_read(self, query, given)
            elif method == "PUT" and "x-amz-copy-source" in self.headers:
                _check_copy_source(self)
        except S3ClientError as error:
            if method == "HEAD":  # a HEAD error has a status and no body
                status = 403 if error.code == "AccessDenied" else 400
                return status, {}, b""
            raise
        token = _REQUEST_SSE_C.set(given)
        try:
            response = original(self, request, full_url)
        finally:
            _REQUEST_SSE_C.reset(token)
        if given is not None and isinstance(response, tuple) and response[0] < 300:
            response[1].update(given.response_headers())
        return response

    return _key_response


def _check_read(resp: S3Response, query: dict[str, Any], given: SseCustomerKey | None) -> None:
    version_id = query.get("versionId", [None])[0]
    try:
        key = resp.backend.get_object(resp.bucket_name, resp.parse_key_name(), version_id)
    except S3ClientError:
        return  # no bucket: moto answers
    if key is not None:
        _check_customer_key(_sse_c_of(key), given)


def _check_copy_source(resp: S3Response) -> None:
    source = urlparse(str(resp.headers["x-amz-copy-source"]))
    source_bucket, _, source_key = unquote(source.path).lstrip("/").partition("/")
    version_id = parse_qs(source.query).get("versionId", [None])[0]
    given = _sse_c_from_headers(resp.headers, _COPY_SOURCE_SSE_C)
    try:
        key = resp.backend.get_object(source_bucket, source_key, version_id=version_id)
    except S3ClientError:
        return
    if key is not None:
        _check_customer_key(_sse_c_of(key), given)


def _sse_c_put_object(original: Wrapper) -> Wrapper:
    def put_object(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
        new_key = original(self, *args, **kwargs)
        sse_c = _REQUEST_SSE_C.get()
        if sse_c is not None:
            with _S3_OBJECT_LOCK:
                new_key.encryption = new_key.kms_key_id = new_key.bucket_key_enabled = None
                setattr(new_key, _SSE_C_ATTR, sse_c)
        return new_key

    return put_object


def _sse_c_create_multipart_upload(original: Wrapper) -> Wrapper:
    def create_multipart_upload(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
        multipart = original(self, *args, **kwargs)
        if (sse_c := _REQUEST_SSE_C.get()) is not None:
            setattr(multipart, _SSE_C_ATTR, sse_c)
        return multipart

    return create_multipart_upload


def _sse_c_complete_multipart_upload(original: Wrapper) -> Wrapper:
    def complete_multipart_upload(
        self: S3Backend, bucket_name: str, multipart_id: str, *args: Any, **kwargs: Any
    ) -> Any:
        multipart = self.get_bucket(bucket_name).multiparts.get(multipart_id)
        token = _REQUEST_SSE_C.set(_sse_c_of(multipart))
        try:
            return original(self, bucket_name, multipart_id, *args, **kwargs)
        finally:
            _REQUEST_SSE_C.reset(token)

    return complete_multipart_upload


_AWS_DEFAULT_RULE: dict[str, Any] = {
    "Rule": {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}},
}
_legacy_lock = threading.Lock()
_legacy_scopes: list[tuple[str, str, bool]] = []  # (bucket, key or prefix, exact)


def _is_legacy(bucket: str, key: str) -> bool:
    with _legacy_lock:
        return any(bucket == b and (key == k if exact else key.startswith(k)) for b, k, exact in _legacy_scopes)


class DefaultBucketEncryption(Double):
    """Every new S3 object is encrypted: SSE-S3 by default since January 2023.

    AWS: "Amazon S3 now applies server-side encryption with Amazon S3 managed keys (SSE-S3)
    as the base level of encryption for every bucket ... all new object uploads to Amazon S3
    are automatically encrypted", unless the request names an encryption or the bucket's
    PutBucketEncryption configuration sets another default (SSE-KMS with its key; moto
    already applies a configured default). Applied on PutObject, CopyObject without SSE
    headers and CompleteMultipartUpload (all reach moto's ``S3Backend.put_object``).
    GetBucketEncryption on a bucket without configuration returns the AES256 rule instead of
    ServerSideEncryptionConfigurationNotFoundError. For an unencrypted object (AWS: a legacy
    object written before 2023), use ``legacy_unencrypted_objects()``.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield wrapped(S3Backend, "put_object", _default_encryption_put_object)
        yield wrapped(S3Backend, "get_bucket_encryption", _default_bucket_encryption)


def _default_encryption_put_object(original: Wrapper) -> Wrapper:
    signature = inspect.signature(original)

    def put_object(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs)
        bucket_name, key_name = call.arguments["bucket_name"], call.arguments["key_name"]
        if (
            call.arguments.get("encryption") is None
            and self.get_bucket(bucket_name).encryption is None
            and _REQUEST_SSE_C.get() is None
            and not _is_legacy(bucket_name, key_name)
        ):
            call.arguments["encryption"] = "AES256"
        return original(*call.args, **call.kwargs)

    return put_object


def _default_bucket_encryption(original: Wrapper) -> Wrapper:
    def get_bucket_encryption(self: S3Backend, bucket_name: str) -> Any:
        return original(self, bucket_name) or _AWS_DEFAULT_RULE

    return get_bucket_encryption


def _legacy_put_object(original: Wrapper) -> Wrapper:
    signature = inspect.signature(original)

    def put_object(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs)
        new_key = original(self, *args, **kwargs)
        if call.arguments.get("encryption") is None and _is_legacy(
            call.arguments["bucket_name"], call.arguments["key_name"]
        ):
            with _S3_OBJECT_LOCK:  # also undoes a bucket default that moto applied
                new_key.encryption = new_key.kms_key_id = new_key.bucket_key_enabled = None
        return new_key

    return put_object


@contextlib.contextmanager
def _legacy_scope(scope: tuple[str, str, bool]) -> Iterator[None]:
    with _legacy_lock:
        _legacy_scopes.append(scope)
    try:
        with wrapped(S3Backend, "put_object", _legacy_put_object):
            yield
    finally:
        with _legacy_lock:
            _legacy_scopes.remove(scope)


@contextlib.contextmanager
def legacy_unencrypted_objects(bucket: str, prefix: str = "") -> Iterator[None]:
    """Inside the block, writes without SSE headers to ``bucket``/``prefix``* stay unencrypted.

    Stands for objects written before January 2023 (no default encryption then); overrides
    both ``DefaultBucketEncryption`` and a bucket's configured default. Other buckets and
    keys, written concurrently, are not affected.
    """
    with _legacy_scope((bucket, prefix, False)):
        yield


def put_legacy_unencrypted_object(s3_client: S3Client, bucket: str, key: str, body: bytes) -> PutObjectOutputTypeDef:
    """PutObject of an object without server-side encryption (a pre-2023 legacy object)."""
    with _legacy_scope((bucket, key, True)):
        return s3_client.put_object(Bucket=bucket, Key=key, Body=body)


class ConditionalCopies(Double):
    """S3 conditional copies: CopyObject and UploadPartCopy honour
    ``x-amz-copy-source-if-match`` (the source's ETag), and CopyObject and CompleteMultipartUpload
    honour ``If-Match`` (the destination's current ETag), answering 412 PreconditionFailed when one
    does not hold (S3 API reference, CopyObject: "x-amz-copy-source-if-match: Copies the object if
    its entity tag (ETag) matches the specified tag"; "If-Match: Copies the object if the ETag of
    the destination object matches"; CompleteMultipartUpload, If-Match: "Uploads the object only if
    the ETag ... matches the ETag of the object in S3. If the ETag values do not match, the
    operation returns a 412 Precondition Failed error"). moto ignores them, so a copy that races an
    upload would silently win.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield wrapped(S3Response, "_key_response", _conditional_copy_key_response)


def _etag(value: str | None) -> str:
    return (value or "").strip().strip('"')


def _check_destination(response: S3Response, request: Any, full_url: str) -> None:
    """``If-Match``: the key's current object must have this ETag (412 when there is none)."""
    wanted = response.headers.get("If-Match")
    if not wanted:
        return
    bucket = response.parse_bucket_name_from_url(request, full_url)
    try:
        current = response.backend.get_object(bucket, response.parse_key_name())
    except S3ClientError:
        current = None
    if current is None or _etag(current.etag) != _etag(wanted):
        raise PreconditionFailed("If-Match")


def _conditional_copy_key_response(original: Wrapper) -> Wrapper:
    def _key_response(self: S3Response, request: Any, full_url: str) -> Any:
        if request.method == "PUT" and "x-amz-copy-source" in self.headers:
            wanted_source = self.headers.get("x-amz-copy-source-if-match")
            if wanted_source:
                source = urlparse(str(self.headers["x-amz-copy-source"]))
                source_bucket, _, source_key = unquote(source.path).lstrip("/").partition("/")
                version_id = parse_qs(source.query).get("versionId", [None])[0]
                try:
                    found = self.backend.get_object(source_bucket, source_key, version_id=version_id)
                except S3ClientError:
                    found = None  # moto answers the missing source itself
                if found is not None and _etag(found.etag) != _etag(wanted_source):
                    raise PreconditionFailed("x-amz-copy-source-If-Match")
            query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
            if "uploadId" not in query:
                _check_destination(self, request, full_url)
        elif request.method == "POST" and "uploadId" in parse_qs(urlparse(full_url).query, keep_blank_values=True):
            _check_destination(self, request, full_url)  # CompleteMultipartUpload
        return original(self, request, full_url)

    return _key_response


class CopiesDropWebsiteRedirect(Double):
    """CopyObject does not copy an object's website redirect: S3 API reference, CopyObject,
    ``x-amz-metadata-directive``: "x-amz-website-redirect-location is unique to each object and is
    not copied when using the x-amz-metadata-directive header. To copy the value, you must
    specify x-amz-website-redirect-location in the request header." moto keeps it, so a copy
    in place that forgets it would look harmless.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield wrapped(S3Backend, "copy_object", _copy_drops_website_redirect)


def _copy_drops_website_redirect(original: Wrapper) -> Wrapper:
    signature = inspect.signature(original)

    def copy_object(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs)
        result = original(*call.args, **call.kwargs)
        if not call.arguments.get("website_redirect_location"):
            copied = self.get_object(call.arguments["dest_bucket_name"], call.arguments["dest_key_name"])
            if copied is not None:
                with _S3_OBJECT_LOCK:  # moto keeps it as an attribute and among the metadata
                    copied.website_redirect_location = None
                    copied.metadata.pop("x-amz-website-redirect-location", None)
        return result

    return copy_object


class EventBridgeNotifications(Double):
    """GetBucketNotificationConfiguration returns ``EventBridgeConfiguration`` (an empty
    element) when the bucket sends its events to EventBridge: S3 API reference,
    GetBucketNotificationConfiguration, Response Syntax (``<EventBridgeConfiguration>``), and S3
    User Guide, "Enabling Amazon EventBridge". moto stores it but leaves it out of the answer.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield wrapped(S3Response, "get_bucket_notification", _notification_with_eventbridge)


def _notification_with_eventbridge(original: Wrapper) -> Wrapper:
    def get_bucket_notification(self: S3Response) -> Any:
        response = original(self)
        configuration = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if configuration is None or configuration.event_bridge is None:
            return response
        status, headers, body = response
        text = body.decode() if isinstance(body, bytes) else str(body)
        element = "<EventBridgeConfiguration></EventBridgeConfiguration>"
        if "</NotificationConfiguration>" in text:
            text = text.replace("</NotificationConfiguration>", f"{element}</NotificationConfiguration>")
        else:  # moto answers an empty result when only EventBridge is on
            text = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f'<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{element}'
                "</NotificationConfiguration>"
            )
        headers = {k: v for k, v in dict(headers).items() if k.lower() != "content-length"}
        return status, headers, text

    return get_bucket_notification


class BucketOwnerCondition(Double):
    """The bucket owner condition: a request naming ``x-amz-expected-bucket-owner`` (SDK:
    ``ExpectedBucketOwner``) fails with 403 AccessDenied when the bucket belongs to another
    account, and so does a copy whose ``x-amz-source-expected-bucket-owner``
    (``ExpectedSourceBucketOwner``) is not the source bucket's owner (S3 User Guide, "Verifying
    bucket ownership with bucket owner condition"; API Reference, e.g. HeadObject: "If the
    account ID that you provide does not match the actual owner of the bucket, the request fails
    with the HTTP status code 403 Forbidden (access denied)"). moto ignores both headers, so a
    role of one account acts on another's bucket of the same name unchecked. The owner is the
    account moto created the bucket in; a bucket moto does not know is left to moto (NoSuchBucket).
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield wrapped(S3Response, "_bucket_response", _owner_checked)
        yield wrapped(S3Response, "_key_response", _owner_checked)


def _bucket_owner(bucket: str) -> str | None:
    found = s3_backends.bucket_accounts.get(bucket)
    return None if found is None else str(found[1])


def _owner_checked(original: Wrapper) -> Wrapper:
    def response(self: S3Response, request: Any, full_url: str) -> Any:
        checks = [(self.headers.get("x-amz-expected-bucket-owner"), self.parse_bucket_name_from_url(request, full_url))]
        if "x-amz-copy-source" in self.headers:
            source = unquote(urlparse(str(self.headers["x-amz-copy-source"])).path).lstrip("/").partition("/")[0]
            checks.append((self.headers.get("x-amz-source-expected-bucket-owner"), source))
        for expected, bucket in checks:
            owner = _bucket_owner(bucket) if expected and bucket else None
            if owner is not None and owner != expected:
                if request.method == "HEAD":  # a HEAD error has a status and no body
                    return 403, {}, b""
                raise _s3_error("AccessDenied", "Access Denied")
        return original(self, request, full_url)

    return response
