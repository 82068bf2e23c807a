"""Small, named test doubles that make moto behave like AWS where it differs.

moto is our AWS (in process with ``moto.mock_aws()``, or over HTTP with a
``moto.server.ThreadedMotoServer`` in the same process; both share moto's in-process
backends). Where moto 5.2.5 differs from AWS in a way our code depends on, a double below
patches moto's backend or response *classes* (never botocore on the client side), so the
same patch holds in both modes. Each double is a context manager; ``aws_behaviour()``
enters several (default: all). Every patch is a ``unittest.mock.patch.object`` undone on
exit, and the state the doubles share is guarded by locks (moto handlers run in threads).

==========================  ===============================================================
double                      moto gap it covers
==========================  ===============================================================
UpdateObjectEncryption      S3 ``UpdateObjectEncryption`` is not implemented: moto routes
                            ``PUT /{Key}?encryption`` to PutObject and *overwrites the object
                            with the request's XML body*, unencrypted.
SseCustomerKeys             SSE-C headers are ignored: the object is stored as plaintext and
                            HEAD/GET/Copy without the customer key succeed.
DefaultBucketEncryption     Objects written without SSE headers stay unencrypted, and
                            GetBucketEncryption without a configuration raises
                            ServerSideEncryptionConfigurationNotFoundError.
KeyPolicyValidation         KMS PutKeyPolicy/CreateKey accept any string as the policy;
                            DescribeKey crashes (AttributeError, HTTP 500) on a valid policy
                            whose ``Statement`` is a single object instead of a list, and is
                            refused by any Deny of ``kms:*``, whatever its ``Condition``.
AtomicConditionalWrites     DynamoDB conditional writes check, then write, without a lock;
                            PutItem ``ReturnValues=ALL_OLD`` reads the "old" item apart from
                            the write, so it can return an item the put did not replace.
ItemSizeLimit               DynamoDB items over 400 KB are refused; moto lets an UpdateItem
                            ``ADD`` grow a set past that limit.
ConditionalCopies           CopyObject/UploadPartCopy ignore ``x-amz-copy-source-if-match``
                            and CopyObject and CompleteMultipartUpload ignore ``If-Match``.
RekognitionCustomLabels     Rekognition Custom Labels projects, datasets, dataset entries and
                            project versions are not implemented at all (DescribeProjects,
                            DescribeDataset, ListDatasetEntries, DescribeProjectVersions...).
SqsSenderIds                Every SQS message has one constant SenderId, whoever sent it.
CopiesDropWebsiteRedirect   CopyObject keeps the source's ``x-amz-website-redirect-location``;
                            S3 does not copy it unless the request names it again.
SecurityHubFindings         ``BatchUpdateFindings`` is not implemented; ``BatchImportFindings``
                            accepts findings into a hub that is not enabled, without their
                            required attributes, and lets an import overwrite the ``Workflow``
                            and ``Note`` of an existing finding.
AssumeRoleRefusals          STS ``AssumeRole`` assumes any role ARN for any caller, whether
                            the role exists or its trust policy admits the caller.
EventBridgeNotifications    GetBucketNotificationConfiguration leaves out the bucket's
                            ``EventBridgeConfiguration`` that PutBucketNotificationConfiguration
                            stored, so "EventBridge on" cannot be read back.
StackAlarms                 CloudFormation creates no ``AWS::CloudWatch::Alarm``: the stack
                            lists a resource with neither logical nor physical id.
==========================  ===============================================================

``legacy_unencrypted_objects()`` and ``put_legacy_unencrypted_object()`` write the one kind
of object AWS still has without encryption: one written before January 2023.

Usage::

    with mock_aws(), aws_behaviour() as aws:          # all doubles
        aws[KeyPolicyValidation].not_yet_visible(role_arn, times=2)
        ...
    with UpdateObjectEncryption(), SseCustomerKeys():  # or only some
        ...
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import functools
import hashlib
import inspect
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any, Self
from unittest.mock import patch
from urllib.parse import parse_qs, unquote, urlparse
from xml.parsers.expat import ExpatError

import xmltodict  # type: ignore[import-untyped]
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.core.exceptions import ServiceException
from moto.dynamodb.exceptions import ItemSizeToUpdateTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.kms.policy_validator import validate_policy
from moto.kms.responses import KmsResponse
from moto.rekognition.models import rekognition_backends
from moto.rekognition.responses import RekognitionResponse
from moto.s3.exceptions import MalformedXML, PreconditionFailed, S3ClientError
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from moto.securityhub import urls as securityhub_urls
from moto.securityhub.models import Finding as SecurityHubFinding
from moto.securityhub.models import SecurityHubBackend
from moto.securityhub.responses import SecurityHubResponse
from moto.sqs.models import SQSBackend
from moto.sqs.responses import SQSResponse
from moto.sts.exceptions import STSClientError
from moto.sts.responses import TokenResponse
from moto.utilities.utils import get_partition

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectOutputTypeDef

__all__ = [
    "AssumeRoleRefusals",
    "AtomicConditionalWrites",
    "AwsBehaviour",
    "ConditionalCopies",
    "CopiesDropWebsiteRedirect",
    "DefaultBucketEncryption",
    "Double",
    "EventBridgeNotifications",
    "ItemSizeLimit",
    "KeyPolicyValidation",
    "RekognitionCustomLabels",
    "SecurityHubFindings",
    "SqsSenderIds",
    "SseCustomerKeys",
    "StackAlarms",
    "UpdateObjectEncryption",
    "aws_behaviour",
    "dataset_entry",
    "legacy_unencrypted_objects",
    "put_legacy_unencrypted_object",
]

Response = tuple[int, dict[str, Any], str | bytes]
Wrapper = Callable[..., Any]

# Guards in-place changes to moto's S3 objects (encryption fields) against concurrent handlers.
_S3_OBJECT_LOCK = threading.Lock()


class Double:
    """A named set of patches on moto's classes; a context manager, undone on exit.

    Doubles that patch the same moto method (SseCustomerKeys and DefaultBucketEncryption
    both wrap ``S3Backend.put_object``) compose in either order, but must be left in the
    reverse order of entering (``with`` and ``aws_behaviour()`` do that).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._stack: contextlib.ExitStack | None = None

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        with self._guard:
            if self._stack is not None:
                raise RuntimeError(f"{type(self).__name__} is already active")
            with contextlib.ExitStack() as stack:
                for patcher in self._patches():
                    stack.enter_context(patcher)
                self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._guard:
            stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


@contextlib.contextmanager
def _wrapped(cls: type[Any], name: str, make: Callable[[Wrapper], Wrapper]) -> Iterator[None]:
    """Replace ``cls.name`` by ``make(original)``; the original is read when entered."""
    original = getattr(cls, name)
    with patch.object(cls, name, functools.wraps(original)(make(original))):
        yield


def _s3_error(code: str, message: str) -> S3ClientError:
    # moto serializes S3ClientError with the status of the S3 error model (AccessDenied 403,
    # NoSuchKey 404); codes without a model (InvalidRequest, KMS.*) get 400.
    return S3ClientError(code, message)


# --------------------------------------------------------------------------------------------
# 1. UpdateObjectEncryption
# --------------------------------------------------------------------------------------------

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

        yield _wrapped(S3Response, "_key_response_put", make)


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


# --------------------------------------------------------------------------------------------
# 2. SseCustomerKeys
# --------------------------------------------------------------------------------------------

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
        yield _wrapped(S3Response, "_key_response", _sse_c_key_response)
        yield _wrapped(S3Backend, "put_object", _sse_c_put_object)
        yield _wrapped(S3Backend, "create_multipart_upload", _sse_c_create_multipart_upload)
        yield _wrapped(S3Backend, "complete_multipart_upload", _sse_c_complete_multipart_upload)


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


# --------------------------------------------------------------------------------------------
# 3. DefaultBucketEncryption (+ legacy unencrypted objects)
# --------------------------------------------------------------------------------------------

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
        yield _wrapped(S3Backend, "put_object", _default_encryption_put_object)
        yield _wrapped(S3Backend, "get_bucket_encryption", _default_bucket_encryption)


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
        with _wrapped(S3Backend, "put_object", _legacy_put_object):
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


# --------------------------------------------------------------------------------------------
# 4. KeyPolicyValidation
# --------------------------------------------------------------------------------------------

_KEY_POLICY_MAX_BYTES = 32_768
_KEY_POLICY_CHARACTERS = re.compile(r"[\u0009\u000A\u000D\u0020-\u00FF]+")
_AWS_PRINCIPAL_ARN = re.compile(r"arn:aws[a-z-]*:(?:iam|sts)::(?P<account>\d{12}):(?P<resource>.+)")
_MSG_INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."


class _KmsError(ServiceException):
    """A KMS error moto serializes with the KMS model (ServiceException itself would make
    moto look for a service named "core")."""


def _malformed(message: str) -> ServiceException:
    return _KmsError("MalformedPolicyDocumentException", message)


class KeyPolicyValidation(Double):
    """KMS PutKeyPolicy / CreateKey(Policy=...) validate the key policy.

    PutKeyPolicy API reference: "Each statement in the key policy must contain one or more
    principals. The principals in the key policy must exist and be visible to KMS. When you
    create a new Amazon Web Services principal, you might need to enforce a delay before
    including the new principal in a key policy because the new principal might not be
    immediately visible to KMS." "A key policy document can include only the following
    characters: printable ASCII ... Latin-1 Supplement (through \\u00FF) ... tab, line feed,
    and carriage return" (model pattern ``[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+``; AWS may
    answer a pattern violation with ValidationException, here it is
    MalformedPolicyDocumentException). "If the key policy exceeds the length constraint, KMS
    returns a LimitExceededException" (quota: 32,768 bytes). Invalid JSON, a statement
    without principals and an invalid principal -> MalformedPolicyDocumentException.

    Principals: ``*``, account ids, ``:root`` and principals of other accounts are
    accepted (moto cannot know other accounts); ``role/...`` and ``user/...`` ARNs of the
    key's own account must exist in moto's IAM with that exact ARN (path included).
    ``not_yet_visible(arn, times=N)`` makes the next N PutKeyPolicy calls naming ``arn``
    fail as IAM propagation delay does. Not modelled: the policy lockout safety check
    (``BypassPolicyLockoutSafetyCheck`` is passed through untouched).

    IAM policy grammar: ``"Statement"`` is one statement object or a list of them (the KMS
    Developer Guide has single-object examples). moto 5.2.5 stores such a policy, but its
    DescribeKey check of Deny statements iterates the object's keys and crashes; here that check
    sees the statement as a one-element list, as AWS reads it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._visibility_lock = threading.Lock()
        self._invisible: dict[str, int] = {}

    def not_yet_visible(self, principal_arn: str, times: int = 1) -> None:
        """The next ``times`` PutKeyPolicy calls that name ``principal_arn`` fail."""
        with self._visibility_lock:
            self._invisible[principal_arn] = self._invisible.get(principal_arn, 0) + times

    @staticmethod
    def principal_deleted(key_arn: str, principal_arn: str, unique_id: str) -> None:
        """``principal_arn`` was deleted: as in AWS, the key policy now names it by its unique
        principal id (``AROA…``/``AIDA…``; KMS Developer Guide, key policies: "If the principal is
        deleted, the key policy shows the principal's unique ID"), which no PutKeyPolicy accepts
        (MalformedPolicyDocumentException, invalid principals) until someone removes it."""
        _, _, _, region, account, resource = key_arn.split(":", 5)
        key = kms_backends[account][region].keys[resource.removeprefix("key/")]
        key.policy = key.policy.replace(json.dumps(principal_arn), json.dumps(unique_id))

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield _wrapped(KmsResponse, "put_key_policy", self._validating(put_key_policy=True))
        yield _wrapped(KmsResponse, "create_key", self._validating(put_key_policy=False))
        yield _wrapped(KmsResponse, "_validate_key_policy", _single_statement_as_list)

    def _validating(self, *, put_key_policy: bool) -> Callable[[Wrapper], Wrapper]:
        def make(original: Wrapper) -> Wrapper:
            def handler(resp: KmsResponse) -> Any:
                policy = resp._get_param("Policy")
                if policy is not None:
                    principals = _validated_principals(policy)
                    partition = get_partition(resp.region)
                    _check_principals_exist(principals, resp.current_account, partition)
                    if put_key_policy:
                        self._fail_if_not_yet_visible(principals)
                return original(resp)

            return handler

        return make

    def _fail_if_not_yet_visible(self, principals: set[str]) -> None:
        with self._visibility_lock:
            pending = [arn for arn in principals if self._invisible.get(arn, 0) > 0]
            for arn in pending:
                self._invisible[arn] -= 1
        if pending:
            raise _malformed(_MSG_INVALID_PRINCIPALS)


def _single_statement_as_list(original: Wrapper) -> Wrapper:
    """moto's check of DescribeKey against the key policy, as AWS evaluates it: a single-object
    ``Statement`` is a list of one, and a Deny with a ``Condition`` applies only when its
    conditions match the request. moto ignores conditions (any Deny of ``kms:*`` on ``*`` refuses
    DescribeKey to everyone); the caller here is the test world's own role, whose request
    context the double does not model, so a conditioned Deny is left out (the code under test
    evaluates such Denies itself, against the requests Rekognition makes for a principal)."""

    def _validate_key_policy(self: KmsResponse, key_id: str, action: str) -> None:
        key = self.kms_backend.describe_key(self.kms_backend.get_key_id(key_id))
        try:
            document = json.loads(key.policy)
        except (TypeError, ValueError):
            document = None
        if not isinstance(document, dict):
            original(self, key_id, action)
            return
        found = document.get("Statement")
        listed = [found] if isinstance(found, dict) else found if isinstance(found, list) else []
        applied = [s for s in listed if not (isinstance(s, dict) and s.get("Effect") == "Deny" and s.get("Condition"))]
        view = SimpleNamespace(arn=key.arn, policy=json.dumps({**document, "Statement": applied}))
        validate_policy(view, action)  # type: ignore[arg-type]

    return _validate_key_policy


def _validated_principals(policy: Any) -> set[str]:
    """The AWS principals of a syntactically valid key policy (raises KMS errors)."""
    if not isinstance(policy, str) or not _KEY_POLICY_CHARACTERS.fullmatch(policy):
        raise _malformed("The key policy contains characters that are not allowed.")
    if len(policy.encode("utf-8")) > _KEY_POLICY_MAX_BYTES:
        raise _KmsError(
            "LimitExceededException",
            f"The key policy exceeds the maximum size of {_KEY_POLICY_MAX_BYTES} bytes.",
        )
    try:
        document = json.loads(policy)
    except ValueError as error:
        raise _malformed("The key policy is not valid JSON.") from error
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise _malformed("The key policy must contain at least one statement.")
    principals: set[str] = set()
    for statement in statements:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        if principal == "*":
            principals.add("*")
            continue
        if not isinstance(principal, dict) or not principal:
            raise _malformed(_MSG_INVALID_PRINCIPALS)
        for kind, values in principal.items():
            names = [values] if isinstance(values, str) else values
            if not isinstance(names, list) or not names:
                raise _malformed(_MSG_INVALID_PRINCIPALS)
            if not all(isinstance(name, str) and name for name in names):
                raise _malformed(_MSG_INVALID_PRINCIPALS)
            if kind == "AWS":
                principals.update(names)
    return principals


def _check_principals_exist(principals: set[str], account: str, partition: str) -> None:
    iam = iam_backends[account][partition]
    known: set[str] | None = None
    for principal in principals:
        if principal == "*" or re.fullmatch(r"\d{12}", principal):
            continue
        match = _AWS_PRINCIPAL_ARN.fullmatch(principal)
        if match is None:
            raise _malformed(_MSG_INVALID_PRINCIPALS)
        if match["account"] != account or not match["resource"].startswith(("role/", "user/")):
            continue
        if known is None:  # a snapshot: other threads may be creating roles
            known = {r.arn for r in list(iam.roles.values())}
            known |= {u.arn for u in list(iam.users.values())}
        if principal not in known:
            raise _malformed(_MSG_INVALID_PRINCIPALS)


# --------------------------------------------------------------------------------------------
# 5. AtomicConditionalWrites
# --------------------------------------------------------------------------------------------

_DYNAMODB_WRITE_LOCK = threading.RLock()  # re-entrant: transact_write_items calls put_item


class AtomicConditionalWrites(Double):
    """DynamoDB conditional writes are atomic per item.

    AWS: a PutItem/UpdateItem/DeleteItem ``ConditionExpression`` is evaluated and the write
    applied as one step, so of two concurrent ``attribute_not_exists(id)`` puts exactly one
    succeeds and the other gets ConditionalCheckFailedException; TransactWriteItems is
    all-or-nothing. moto checks, then writes, without a lock. This double serializes moto's
    item writes (put_item, update_item, delete_item, transact_write_items; BatchWriteItem
    goes through put_item/delete_item) behind one lock. Reads are not locked.

    PutItem with ``ReturnValues=ALL_OLD`` returns the item the put replaced (AWS: "the content
    of the old item is returned"), read in the same atomic step; moto's response handler reads
    it before, and apart from, the write. The double runs that whole handler under the lock.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        def make(original: Wrapper) -> Wrapper:
            def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
                with _DYNAMODB_WRITE_LOCK:
                    return original(self, *args, **kwargs)

            return locked

        for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
            yield _wrapped(DynamoDBBackend, name, make)
        yield _wrapped(DynamoHandler, "put_item", make)


class ItemSizeLimit(Double):
    """DynamoDB refuses an item over 400 KB, whatever expression grows it.

    AWS (DynamoDB Developer Guide, "Quotas": "The maximum item size in DynamoDB is 400 KB, which
    includes both attribute name binary length (UTF-8 length) and attribute value lengths"): a
    PutItem or UpdateItem that would make an item larger fails with ValidationException ("Item
    size has exceeded the maximum allowed size" / "Item size to update has exceeded the maximum
    allowed size") and leaves the item as it was. moto checks only when an attribute is set
    whole: an UpdateItem ``ADD`` that grows a set (or a list append) passes at any size. This
    double checks the item after every write and, when it is over the limit, puts the item back
    and raises moto's ValidationException.
    """

    LIMIT_BYTES = 400 * 1024

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        limit = self.LIMIT_BYTES

        def make(original: Wrapper) -> Wrapper:
            def update_item(backend: DynamoDBBackend, table_name: str, key: Any, *args: Any, **kwargs: Any) -> Any:
                with _DYNAMODB_WRITE_LOCK:
                    before = copy.deepcopy(backend.get_item(table_name, key))
                    item = original(backend, table_name, key, *args, **kwargs)
                    if item is not None and item.size() > limit:
                        if before is None:
                            backend.delete_item(table_name, key)
                        else:
                            backend.put_item(table_name, before.to_json()["Attributes"], overwrite=True)
                        raise ItemSizeToUpdateTooLarge()
                    return item

            return update_item

        yield _wrapped(DynamoDBBackend, "update_item", make)


# --------------------------------------------------------------------------------------------
# 6. ConditionalCopies
# --------------------------------------------------------------------------------------------


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
        yield _wrapped(S3Response, "_key_response", _conditional_copy_key_response)


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


# --------------------------------------------------------------------------------------------
# 7. RekognitionCustomLabels
# --------------------------------------------------------------------------------------------

_REKOGNITION_PAGE_MAX = 100  # MaxResults of all four operations: 1..100, default 100
_DATASET_TYPES = ("TRAIN", "TEST")
_BUSY_DATASET_STATUSES = frozenset({"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS"})
_FAILED_DATASET_STATUSES = frozenset({"CREATE_FAILED", "UPDATE_FAILED"})


class _RekognitionError(ServiceException):
    """A Rekognition error, serialized by moto with the Rekognition model (JSON protocol:
    ``__type`` = the code, ``message``)."""


def dataset_entry(bucket: str, key: str, label: str = "cat") -> str:
    """One Custom Labels dataset entry (a SageMaker Ground Truth JSON Line, image-level label)."""
    return json.dumps(
        {
            "source-ref": f"s3://{bucket}/{key}",
            "label": 1,
            "label-metadata": {
                "confidence": 1,
                "job-name": "labeling-job/label",
                "class-name": label,
                "human-annotated": "yes",
                "creation-date": "2026-11-28T20:00:00.000",
                "type": "groundtruth/image-classification",
            },
        },
        separators=(",", ":"),
    )


@dataclass
class _Dataset:
    arn: str
    project_arn: str
    dataset_type: str
    entries: Sequence[str]
    status: str = "CREATE_COMPLETE"
    status_message: str = "The dataset was successfully created from the manifest file."
    created: float = 0.0


@dataclass
class _ProjectVersion:
    arn: str
    name: str
    description: dict[str, Any]


@dataclass
class _Project:
    arn: str
    name: str
    created: float
    status: str = "CREATED"
    datasets: dict[str, _Dataset] = field(default_factory=dict)  # by type: TRAIN, TEST
    versions: dict[str, _ProjectVersion] = field(default_factory=dict)  # by version name


_CUSTOM_LABELS_STATE = "_localaws_custom_labels"  # set on moto's RekognitionBackend objects


@dataclass
class _CustomLabelsState:
    """An account's projects in one region; kept on moto's Rekognition backend, so moto's reset
    (``/moto-api/reset``, a new ``mock_aws``) forgets it as it forgets everything else."""

    projects: dict[str, _Project] = field(default_factory=dict)  # by name
    datasets: dict[str, _Dataset] = field(default_factory=dict)  # by ARN


def _arn_scope(arn: str) -> tuple[str, str]:
    """(account, region) of a Rekognition ARN (("", "") when it is not one)."""
    parts = arn.split(":")
    return (parts[4], parts[3]) if len(parts) > 5 and parts[2] == "rekognition" else ("", "")


class RekognitionCustomLabels(Double):
    """Rekognition Custom Labels projects, datasets and project versions (moto 5.2.5 has none).

    Operations (request and response shapes of the API reference, JSON protocol):
    ``CreateProject``; ``DescribeProjects`` (``ProjectNames``, ``MaxResults``, ``NextToken``;
    ``ProjectDescriptions[].Datasets[]`` = ``{CreationTimestamp, DatasetType, DatasetArn,
    Status, StatusMessage, StatusMessageCode}``); ``CreateDataset`` (``DatasetSource`` =
    ``GroundTruthManifest.S3Object`` read from moto's S3, or ``DatasetArn``: the source's
    entries are copied); ``DescribeDataset`` (``DatasetDescription`` with ``Status``,
    ``StatusMessage``, ``StatusMessageCode`` and ``DatasetStats``); ``ListDatasetEntries``
    (``DatasetEntries``: the JSON Lines; ``SourceRefContains`` and ``HasErrors`` filter);
    ``DescribeProjectVersions`` (``ProjectVersionDescriptions[]`` with ``ProjectVersionArn``,
    ``Status``, ``StatusMessage``, ``TrainingDataResult``, ``TestingDataResult``,
    ``OutputConfig``, ``KmsKeyId``; ``VersionNames`` narrows).

    Paging: every list answers at most ``MaxResults`` items (1..100, default 100; outside that
    range ``ValidationException``, as documented) and an opaque ``NextToken`` while more remain;
    a token that is not one of ours, or belongs to another request, is
    ``InvalidPaginationTokenException``. State is kept per account and region; datasets are keyed
    by project (one TRAIN, one TEST: a second of a type is ``ResourceAlreadyExistsException``),
    on moto's Rekognition backend objects (moto's reset clears them).

    Errors (``__type``): unknown dataset or project -> ``ResourceNotFoundException``; entries of a
    dataset still being created, updated or deleted -> ``ResourceInUseException``; of a failed
    one -> ``ResourceNotReadyException``; ``deny(arn)`` makes every call naming that project or
    dataset ARN (or the project's name in ``DescribeProjects``) fail ``AccessDeniedException``;
    ``throttle(operation, times)`` fails the next calls with ``ThrottlingException``.
    Helpers for tests and the demo: ``create_project``, ``create_dataset`` (entries may be any
    sequence, e.g. a lazy one for 250,000 lines), ``set_dataset_status``,
    ``create_project_version``. Not modelled: training itself, tags, project policies,
    ``ContainsLabels``/``Labeled``/``AfterCreationTime`` filters, the 1 MB response limit.
    """

    _OPERATIONS = (
        "create_project",
        "describe_projects",
        "create_dataset",
        "describe_dataset",
        "list_dataset_entries",
        "describe_project_versions",
    )

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._denied: set[str] = set()
        self._throttled: dict[str, int] = {}
        self._clock = 1_764_360_000.0

    # --- helpers for tests and the demo ------------------------------------------------------

    def _tick(self) -> float:
        with self._lock:
            self._clock += 1.0
            return self._clock

    @staticmethod
    def _state(account: str, region: str) -> _CustomLabelsState:
        backend = rekognition_backends[account][region]
        state = getattr(backend, _CUSTOM_LABELS_STATE, None)
        if not isinstance(state, _CustomLabelsState):
            state = _CustomLabelsState()
            setattr(backend, _CUSTOM_LABELS_STATE, state)
        return state

    def create_project(self, name: str, *, account: str = "123456789012", region: str = "us-east-1") -> str:
        with self._lock:
            projects = self._state(account, region).projects
            if name in projects:
                raise _RekognitionError("ResourceInUseException", f"The project {name} already exists.")
            created = self._tick()
            arn = f"arn:{get_partition(region)}:rekognition:{region}:{account}:project/{name}/{int(created * 1000)}"
            projects[name] = _Project(arn, name, created)
            return arn

    def create_dataset(
        self,
        project_arn: str,
        dataset_type: str = "TRAIN",
        entries: Sequence[str] = (),
        *,
        status: str = "CREATE_COMPLETE",
        status_message: str = "",
    ) -> str:
        """A dataset of the project holding ``entries`` (kept as given: no copy)."""
        with self._lock:
            project = self._project_by_arn(project_arn)
            if dataset_type not in _DATASET_TYPES:
                raise _RekognitionError("InvalidParameterException", f"DatasetType {dataset_type} is not valid.")
            if dataset_type in project.datasets:
                raise _RekognitionError(
                    "ResourceAlreadyExistsException", f"A {dataset_type} dataset already exists in the project."
                )
            created = self._tick()
            head = project_arn.rsplit("/", 1)[0]
            arn = f"{head}/dataset/{dataset_type.lower()}/{int(created * 1000)}"
            dataset = _Dataset(arn, project_arn, dataset_type, entries, status, created=created)
            if status_message:
                dataset.status_message = status_message
            project.datasets[dataset_type] = dataset
            self._state(*_arn_scope(arn)).datasets[arn] = dataset
            return arn

    def set_dataset_status(self, dataset_arn: str, status: str, message: str = "") -> None:
        with self._lock:
            dataset = self._dataset_by_arn(dataset_arn)
            dataset.status = status
            dataset.status_message = message or status.replace("_", " ").lower()

    def create_project_version(
        self,
        project_arn: str,
        version_name: str,
        *,
        status: str = "TRAINING_COMPLETED",
        status_message: str = "",
        training_manifests: Sequence[tuple[str, str]] = (),
        testing_manifests: Sequence[tuple[str, str]] = (),
        output_bucket: str = "custom-labels-output",
        output_prefix: str = "output/",
        kms_key_id: str | None = None,
    ) -> str:
        """A project version as DescribeProjectVersions shows it once training ended. Without
        manifests, its ``TrainingDataResult``/``TestingDataResult`` name none (dataset training)."""
        with self._lock:
            project = self._project_by_arn(project_arn)
            created = self._tick()
            head = project_arn.rsplit("/", 1)[0]
            arn = f"{head}/version/{version_name}/{int(created * 1000)}"

            def assets(manifests: Sequence[tuple[str, str]]) -> dict[str, Any]:
                return {
                    "Assets": [
                        {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": name}}}
                        for bucket, name in manifests
                    ]
                }

            description: dict[str, Any] = {
                "ProjectVersionArn": arn,
                "CreationTimestamp": created,
                "Status": status,
                "StatusMessage": status_message or status.replace("_", " ").capitalize(),
                "OutputConfig": {"S3Bucket": output_bucket, "S3KeyPrefix": output_prefix},
                "TrainingDataResult": {"Input": assets(training_manifests)},
                "TestingDataResult": {"Input": {**assets(testing_manifests), "AutoCreate": False}},
                "Feature": "CUSTOM_LABELS",
            }
            if status != "TRAINING_IN_PROGRESS":
                description["TrainingEndTimestamp"] = created + 3600
            if kms_key_id:
                description["KmsKeyId"] = kms_key_id
            project.versions[version_name] = _ProjectVersion(arn, version_name, description)
            return arn

    def deny(self, arn: str) -> None:
        """Every later call naming ``arn`` (a project or dataset) fails AccessDeniedException."""
        with self._lock:
            self._denied.add(arn)

    def throttle(self, operation: str, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` (e.g. "ListDatasetEntries") are throttled."""
        with self._lock:
            self._throttled[operation] = self._throttled.get(operation, 0) + times

    # --- lookups -------------------------------------------------------------------------------

    def dataset_entries(self, dataset_arn: str) -> Sequence[str]:
        with self._lock:
            return self._dataset_by_arn(dataset_arn).entries

    def set_dataset_entries(self, dataset_arn: str, entries: Sequence[str]) -> None:
        """Replace a dataset's entries (as UpdateDatasetEntries would, once it completed)."""
        with self._lock:
            self._dataset_by_arn(dataset_arn).entries = entries

    def _project_by_arn(self, arn: str) -> _Project:
        account, region = _arn_scope(arn)
        if account:
            for project in self._state(account, region).projects.values():
                if project.arn == arn:
                    return project
        raise _RekognitionError("ResourceNotFoundException", f"The project {arn} does not exist.")

    def _dataset_by_arn(self, arn: str) -> _Dataset:
        account, region = _arn_scope(arn)
        dataset = self._state(account, region).datasets.get(arn) if account else None
        if dataset is None:
            raise _RekognitionError("ResourceNotFoundException", f"The dataset {arn} does not exist.")
        return dataset

    def _check(self, operation: str, *arns: str | None) -> None:
        with self._lock:
            left = self._throttled.get(operation, 0)
            if left > 0:
                self._throttled[operation] = left - 1
                raise _RekognitionError("ThrottlingException", "Rate exceeded.")
            if any(arn in self._denied for arn in arns if arn):
                raise _RekognitionError(
                    "AccessDeniedException",
                    f"User is not authorized to perform: rekognition:{operation} on resource {arns[0]}",
                )

    # --- paging --------------------------------------------------------------------------------

    @staticmethod
    def _page_size(resp: Any) -> int:
        value = resp._get_param("MaxResults")
        size = _REKOGNITION_PAGE_MAX if value is None else int(value)
        if not 1 <= size <= _REKOGNITION_PAGE_MAX:
            raise _RekognitionError(
                "ValidationException",
                f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy constraint: "
                f"Member must have value less than or equal to {_REKOGNITION_PAGE_MAX}",
            )
        return size

    @staticmethod
    def _token(request: str, offset: int) -> str:
        raw = json.dumps({"r": request, "o": offset}).encode()
        return base64.urlsafe_b64encode(raw).decode()

    @staticmethod
    def _offset(resp: Any, request: str) -> int:
        token = resp._get_param("NextToken")
        if not token:
            return 0
        decoded: Any = None
        try:
            decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        except (ValueError, binascii.Error):
            decoded = None
        offset = decoded.get("o") if isinstance(decoded, dict) else None
        if not isinstance(offset, int) or offset < 0 or decoded.get("r") != request:
            raise _RekognitionError("InvalidPaginationTokenException", "Invalid pagination token.")
        return offset

    def _page(self, resp: Any, request: str, items: Sequence[Any]) -> tuple[Sequence[Any], str | None]:
        size = self._page_size(resp)
        offset = self._offset(resp, request)
        chunk = items[offset : offset + size]
        more = offset + size < len(items)
        return chunk, (self._token(request, offset + size) if more else None)

    # --- operations ----------------------------------------------------------------------------

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        for name in self._OPERATIONS:
            handler = getattr(self, f"_op_{name}")

            def method(resp: RekognitionResponse, _handler: Callable[[Any], Any] = handler) -> str:
                return json.dumps(_handler(resp))

            method.__name__ = name
            yield patch.object(RekognitionResponse, name, method, create=True)

    def _op_create_project(self, resp: Any) -> dict[str, Any]:
        name = resp._get_param("ProjectName")
        self._check("CreateProject", name)
        return {"ProjectArn": self.create_project(str(name), account=resp.current_account, region=resp.region)}

    def _op_describe_projects(self, resp: Any) -> dict[str, Any]:
        names = resp._get_param("ProjectNames") or []
        with self._lock:
            projects = self._state(resp.current_account, resp.region).projects
            chosen = [p for n, p in sorted(projects.items()) if not names or n in names]
            self._check("DescribeProjects", *(p.arn for p in chosen))
            request = "DescribeProjects:" + ",".join(sorted(names))
            page, token = self._page(resp, request, chosen)
            out: dict[str, Any] = {"ProjectDescriptions": [self._project_json(p) for p in page]}
        if token:
            out["NextToken"] = token
        return out

    @staticmethod
    def _project_json(project: _Project) -> dict[str, Any]:
        return {
            "ProjectArn": project.arn,
            "CreationTimestamp": project.created,
            "Status": project.status,
            "Feature": "CUSTOM_LABELS",
            "Datasets": [
                {
                    "CreationTimestamp": d.created,
                    "DatasetType": d.dataset_type,
                    "DatasetArn": d.arn,
                    "Status": d.status,
                    "StatusMessage": d.status_message,
                    "StatusMessageCode": "CLIENT_ERROR" if d.status in _FAILED_DATASET_STATUSES else "SUCCESS",
                }
                for d in project.datasets.values()
            ],
        }

    def _op_create_dataset(self, resp: Any) -> dict[str, Any]:
        project_arn = str(resp._get_param("ProjectArn"))
        dataset_type = str(resp._get_param("DatasetType"))
        source = resp._get_param("DatasetSource") or {}
        self._check("CreateDataset", project_arn, source.get("DatasetArn"))
        entries: Sequence[str] = ()
        if source.get("DatasetArn"):
            with self._lock:
                entries = self._dataset_by_arn(str(source["DatasetArn"])).entries
        elif source.get("GroundTruthManifest"):
            s3_object = source["GroundTruthManifest"].get("S3Object") or {}
            entries = self._manifest_lines(resp.current_account, s3_object)
        return {"DatasetArn": self.create_dataset(project_arn, dataset_type, entries)}

    @staticmethod
    def _manifest_lines(account: str, s3_object: dict[str, Any]) -> list[str]:
        from moto.s3.models import s3_backends  # noqa: PLC0415 - the backend of this account

        backend = s3_backends[account]["aws"]
        try:
            key = backend.get_object(str(s3_object.get("Bucket")), str(s3_object.get("Name")), s3_object.get("Version"))
        except S3ClientError as error:
            raise _RekognitionError("InvalidS3ObjectException", "Unable to get object metadata from S3.") from error
        if key is None:
            raise _RekognitionError("InvalidS3ObjectException", "Unable to get object metadata from S3.")
        return [line for line in key.value.decode("utf-8", "replace").splitlines() if line.strip()]

    def _op_describe_dataset(self, resp: Any) -> dict[str, Any]:
        arn = str(resp._get_param("DatasetArn"))
        self._check("DescribeDataset", arn)
        with self._lock:
            d = self._dataset_by_arn(arn)
            return {
                "DatasetDescription": {
                    "CreationTimestamp": d.created,
                    "LastUpdatedTimestamp": d.created,
                    "Status": d.status,
                    "StatusMessage": d.status_message,
                    "StatusMessageCode": "CLIENT_ERROR" if d.status in _FAILED_DATASET_STATUSES else "SUCCESS",
                    "DatasetStats": {
                        "LabeledEntries": len(d.entries),
                        "TotalEntries": len(d.entries),
                        "TotalLabels": 1 if d.entries else 0,
                        "ErrorEntries": 0,
                    },
                }
            }

    def _op_list_dataset_entries(self, resp: Any) -> dict[str, Any]:
        arn = str(resp._get_param("DatasetArn"))
        self._check("ListDatasetEntries", arn)
        with self._lock:
            dataset = self._dataset_by_arn(arn)
            status = dataset.status
            entries = dataset.entries
        if status in _BUSY_DATASET_STATUSES:
            raise _RekognitionError("ResourceInUseException", f"The dataset {arn} is {status}.")
        if status in _FAILED_DATASET_STATUSES:
            raise _RekognitionError("ResourceNotReadyException", f"The dataset {arn} is {status}.")
        contains = resp._get_param("SourceRefContains")
        if contains or resp._get_param("HasErrors"):
            entries = [e for e in entries if (not contains or contains in e) and not resp._get_param("HasErrors")]
        request = f"ListDatasetEntries:{arn}:{contains or ''}"
        page, token = self._page(resp, request, entries)
        out: dict[str, Any] = {"DatasetEntries": list(page)}
        if token:
            out["NextToken"] = token
        return out

    def _op_describe_project_versions(self, resp: Any) -> dict[str, Any]:
        project_arn = str(resp._get_param("ProjectArn"))
        names = resp._get_param("VersionNames") or []
        self._check("DescribeProjectVersions", project_arn)
        with self._lock:
            project = self._project_by_arn(project_arn)
            versions = [v.description for n, v in project.versions.items() if not names or n in names]
        # Newest first, as AWS lists them.
        versions.sort(key=lambda v: -float(v["CreationTimestamp"]))
        page, token = self._page(resp, f"DescribeProjectVersions:{project_arn}:{','.join(names)}", versions)
        out: dict[str, Any] = {"ProjectVersionDescriptions": list(page)}
        if token:
            out["NextToken"] = token
        return out


# 8. SqsSenderIds
# --------------------------------------------------------------------------------------------

_SQS_API_SEND = threading.local()  # set while an SQS SendMessage(Batch) API request is handled


class SqsSenderIds(Double):
    """SQS ``SenderId``: the id of the principal that sent the message.

    AWS (SQS ReceiveMessage, ``MessageSystemAttributeName``): "SenderId: for a user, returns the
    user ID, for example ABCDEFGHI1JKLMNOPQ23R; for an IAM role, returns the IAM role ID, for
    example ABCDE1F2GH3I4JK5LMNOP:i-a123b456" (the role's unique id and the session name; a
    Lambda function's session is named after the function). Messages an AWS service delivers
    (an EventBridge target) carry that service's id. moto gives every message one constant.

    ``sending_as(sender_id)``: while active, messages sent through the SQS API (SendMessage,
    SendMessageBatch) get this SenderId; the local runtime sets it to the invoked function's
    role session. Messages moto's EventBridge delivers to a queue target keep moto's constant
    (an AWS-owned id, as in AWS), and a message moved to a DLQ keeps its SenderId.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sender_lock = threading.Lock()
        self._sender: str | None = None

    @contextlib.contextmanager
    def sending_as(self, sender_id: str) -> Iterator[None]:
        with self._sender_lock:
            previous, self._sender = self._sender, sender_id
        try:
            yield
        finally:
            with self._sender_lock:
                self._sender = previous

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        def api(original: Wrapper) -> Wrapper:
            def handler(resp: SQSResponse) -> Any:
                _SQS_API_SEND.active = True
                try:
                    return original(resp)
                finally:
                    _SQS_API_SEND.active = False

            return handler

        def backend(original: Wrapper) -> Wrapper:
            def send_message(backend_self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
                message = original(backend_self, *args, **kwargs)
                with self._sender_lock:
                    sender = self._sender
                if sender is not None and getattr(_SQS_API_SEND, "active", False):
                    message.sender_id = sender
                return message

            return send_message

        yield _wrapped(SQSResponse, "send_message", api)
        yield _wrapped(SQSResponse, "send_message_batch", api)
        yield _wrapped(SQSBackend, "send_message", backend)


# --------------------------------------------------------------------------------------------
# 9. CopiesDropWebsiteRedirect
# --------------------------------------------------------------------------------------------


class CopiesDropWebsiteRedirect(Double):
    """CopyObject does not copy an object's website redirect: S3 API reference, CopyObject,
    ``x-amz-metadata-directive``: "x-amz-website-redirect-location is unique to each object and is
    not copied when using the x-amz-metadata-directive header. To copy the value, you must
    specify x-amz-website-redirect-location in the request header." moto keeps it, so a copy
    in place that forgets it would look harmless.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield _wrapped(S3Backend, "copy_object", _copy_drops_website_redirect)


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


# --------------------------------------------------------------------------------------------
# 10. SecurityHubFindings
# --------------------------------------------------------------------------------------------

# The top-level attributes every finding must have (Security Hub user guide, "Required top-level
# ASFF attributes").
_ASFF_REQUIRED = (
    "AwsAccountId",
    "CreatedAt",
    "Description",
    "GeneratorId",
    "Id",
    "ProductArn",
    "Resources",
    "SchemaVersion",
    "Severity",
    "Title",
    "Types",
    "UpdatedAt",
)
# What a finding provider cannot change by import once a finding exists (Security Hub user guide,
# "BatchImportFindings for finding providers"): customers own these, through BatchUpdateFindings.
_CUSTOMER_OWNED = ("Note", "UserDefinedFields", "VerificationState", "Workflow")


class _SecurityHubError(ServiceException):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.code_status = status  # ServiceException reads these two
        super().__init__(message)


class SecurityHubFindings(Double):
    """Security Hub as its API reference documents it, where moto 5.2.5 differs:

    - ``BatchImportFindings`` into an account and region where Security Hub is not enabled fails
      with ``InvalidAccessException`` (moto accepts it); a finding without a required attribute,
      or on another account's product, is a ``FailedFindings`` entry; at most 100 findings a call;
    - an import that updates an existing finding leaves ``Note``, ``UserDefinedFields``,
      ``VerificationState`` and ``Workflow`` as they were (moto overwrites them);
    - ``BatchUpdateFindings`` (absent in moto): sets ``Workflow.Status`` and ``Note`` of up to
      100 findings named by ``Id`` and ``ProductArn``; unknown ones are ``UnprocessedFindings``
      (``FindingNotFound``).

    ``calls`` counts the calls per operation (the burst test reads it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def _count(self, operation: str) -> None:
        with self._guard:
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        double = self

        def batch_import_findings(resp: SecurityHubResponse) -> str:
            double._count("BatchImportFindings")
            backend = resp.securityhub_backend
            _require_enabled(backend, "BatchImportFindings")
            findings = json.loads(resp.body).get("Findings", [])
            if not isinstance(findings, list) or not 1 <= len(findings) <= 100:
                raise _SecurityHubError("InvalidInputException", "Findings must hold 1 to 100 findings")
            by_id = {f.id: f for f in backend.findings}
            failed = [_import_one(backend, by_id, f) for f in findings]
            failures = [f for f in failed if f is not None]
            return json.dumps(
                {
                    "FailedCount": len(failures),
                    "SuccessCount": len(findings) - len(failures),
                    "FailedFindings": failures,
                }
            )

        def batch_update_findings(resp: SecurityHubResponse) -> str:
            double._count("BatchUpdateFindings")
            backend = resp.securityhub_backend
            _require_enabled(backend, "BatchUpdateFindings")
            body = json.loads(resp.body)
            identifiers = body.get("FindingIdentifiers", [])
            if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= 100:
                raise _SecurityHubError("InvalidInputException", "FindingIdentifiers must hold 1 to 100 findings")
            by_id = {f.id: f for f in backend.findings}
            processed, unprocessed = [], []
            for identifier in identifiers:
                found = by_id.get(identifier.get("Id"))
                if found is None or found.data.get("ProductArn") != identifier.get("ProductArn"):
                    unprocessed.append(
                        {"FindingIdentifier": identifier, "ErrorCode": "FindingNotFound", "ErrorMessage": "not found"}
                    )
                    continue
                if "Workflow" in body:
                    found.data["Workflow"] = {"Status": body["Workflow"]["Status"]}
                if "Note" in body:
                    found.data["Note"] = {**body["Note"], "UpdatedAt": _now_iso()}
                processed.append(identifier)
            return json.dumps({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed})

        yield patch.object(SecurityHubResponse, "batch_import_findings", batch_import_findings)
        yield patch.object(SecurityHubResponse, "batch_update_findings", batch_update_findings, create=True)
        # PATCH /findings/batchupdate: moto routes no such path (a new dict, so moto's stays as it was).
        yield patch.object(
            securityhub_urls,
            "url_paths",
            {**securityhub_urls.url_paths, "{0}/findings/batchupdate$": SecurityHubResponse.dispatch},
        )

    @staticmethod
    def findings(account: str = "123456789012", region: str = "us-east-1") -> list[dict[str, Any]]:
        """The findings Security Hub holds in one account and region (as GetFindings returns them)."""
        from moto.securityhub.models import securityhub_backends  # noqa: PLC0415

        return [dict(f.data) for f in securityhub_backends[account][region].findings]


def _now_iso() -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _require_enabled(backend: SecurityHubBackend, operation: str) -> None:
    if not backend.enabled:
        raise _SecurityHubError(
            "InvalidAccessException",
            f"Account {backend.account_id} is not subscribed to AWS Security Hub ({operation})",
            401,
        )


def _import_one(
    backend: SecurityHubBackend, by_id: dict[str, SecurityHubFinding], finding: Any
) -> dict[str, str] | None:
    if not isinstance(finding, dict):
        return {"Id": "", "ErrorCode": "InvalidInput", "ErrorMessage": "a finding must be an object"}
    missing = [name for name in _ASFF_REQUIRED if name not in finding]
    if missing or not isinstance(finding.get("Resources"), list) or not finding["Resources"]:
        return {
            "Id": str(finding.get("Id", "")),
            "ErrorCode": "InvalidInput",
            "ErrorMessage": f"missing required attribute(s): {', '.join(missing) or 'Resources'}",
        }
    if str(finding.get("ProductArn", "")).split(":")[4:5] != [backend.account_id]:
        # The default product of another account: only that account (or its Security Hub
        # administrator) may import there.
        return {
            "Id": str(finding["Id"]),
            "ErrorCode": "AccessDeniedException",
            "ErrorMessage": f"account {backend.account_id} may not import into {finding.get('ProductArn')}",
        }
    existing = by_id.get(finding["Id"])
    if existing is None:
        created = SecurityHubFinding(finding["Id"], dict(finding))
        backend.findings.append(created)
        by_id[created.id] = created
        return None
    kept = {name: existing.data[name] for name in _CUSTOMER_OWNED if name in existing.data}
    existing.data = {**finding, **kept}
    return None


# --------------------------------------------------------------------------------------------
# 11. AssumeRoleRefusals
# --------------------------------------------------------------------------------------------


class AssumeRoleRefusals(Double):
    """STS ``AssumeRole`` refuses a role its caller may not assume.

    STS API reference, AssumeRole: the role's trust policy must allow the caller (and the
    caller's own policies must allow ``sts:AssumeRole`` on it); otherwise, and when the role does
    not exist, the call fails with ``AccessDenied`` ("User: <caller> is not authorized to
    perform: sts:AssumeRole on resource: <role>"). A member account whose guard role is missing,
    or whose trust policy no longer names the central role, looks like that. moto assumes any
    role ARN, existing or not, for any caller.

    The tests set up their accounts through roles moto never created, so moto's IAM cannot say
    which roles AWS would refuse: ``refuse(role_arn)`` declares one (the role is missing, or does
    not trust the guard); every AssumeRole of it is then refused as AWS refuses it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._refused_lock = threading.Lock()
        self._refused: set[str] = set()

    def refuse(self, role_arn: str) -> None:
        """``role_arn`` is missing, or its trust policy does not admit the caller."""
        with self._refused_lock:
            self._refused.add(role_arn)

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        def make(original: Wrapper) -> Wrapper:
            def assume_role(resp: TokenResponse) -> Any:
                role_arn = resp._get_param("RoleArn")
                with self._refused_lock:
                    refused = role_arn in self._refused
                if refused:
                    raise STSClientError(
                        "AccessDenied",
                        f"User: arn:aws:sts::{resp.current_account}:assumed-role/caller is not authorized "
                        f"to perform: sts:AssumeRole on resource: {role_arn}",
                    )
                return original(resp)

            return assume_role

        yield _wrapped(TokenResponse, "assume_role", make)


# --------------------------------------------------------------------------------------------
# 12. EventBridgeNotifications
# --------------------------------------------------------------------------------------------


class EventBridgeNotifications(Double):
    """GetBucketNotificationConfiguration returns ``EventBridgeConfiguration`` (an empty
    element) when the bucket sends its events to EventBridge: S3 API reference,
    GetBucketNotificationConfiguration, Response Syntax (``<EventBridgeConfiguration>``), and S3
    User Guide, "Enabling Amazon EventBridge". moto stores it but leaves it out of the answer.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield _wrapped(S3Response, "get_bucket_notification", _notification_with_eventbridge)


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


class StackAlarms(Double):
    """A stack's ``AWS::CloudWatch::Alarm`` is a CloudWatch alarm named by its ``AlarmName``,
    or ``<stack>-<logical id>-<suffix>`` without one (CloudFormation User Guide,
    AWS::CloudWatch::Alarm, "Return values": Ref returns the alarm name), listed by
    ListStackResources under its logical id. moto's CloudFormation has no model for the type.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        from moto.cloudformation import parsing  # noqa: PLC0415 - only stacks need it

        models = {**parsing.get_model_map(), _StackAlarm.cloudformation_type(): _StackAlarm}
        names = {**parsing.get_name_type_map(), _StackAlarm.cloudformation_type(): "AlarmName"}
        yield patch.object(parsing, "get_model_map", lambda: models)
        yield patch.object(parsing, "get_name_type_map", lambda: names)


class _StackAlarm(CloudFormationModel):
    """The alarm a stack created, by its name (its physical id)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> _StackAlarm:
        p = cloudformation_json.get("Properties", {})
        cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=p.get("Namespace", ""),
            metric_name=p.get("MetricName", ""),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p.get("Period", 60)),
            threshold=float(p.get("Threshold", 0)),
            statistic=p.get("Statistic", ""),
            description=p.get("AlarmDescription", ""),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in p.get("Dimensions", [])],
            alarm_actions=list(p.get("AlarmActions", [])),
            ok_actions=list(p.get("OKActions", [])),
            treat_missing_data=p.get("TreatMissingData"),
        )
        return cls(resource_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])


# --------------------------------------------------------------------------------------------
# All together
# --------------------------------------------------------------------------------------------

ALL_DOUBLES: tuple[type[Double], ...] = (
    UpdateObjectEncryption,
    SseCustomerKeys,
    DefaultBucketEncryption,
    KeyPolicyValidation,
    AtomicConditionalWrites,
    ItemSizeLimit,
    ConditionalCopies,
    RekognitionCustomLabels,
    SqsSenderIds,
    CopiesDropWebsiteRedirect,
    SecurityHubFindings,
    AssumeRoleRefusals,
    EventBridgeNotifications,
    StackAlarms,
)


class AwsBehaviour:
    """Several doubles entered together (LIFO exit); ``behaviour[KeyPolicyValidation]``."""

    def __init__(self, *doubles: Double | type[Double]) -> None:
        chosen = doubles or ALL_DOUBLES
        self.doubles: tuple[Double, ...] = tuple(d() if isinstance(d, type) else d for d in chosen)
        self._stack = contextlib.ExitStack()

    def __getitem__[D: Double](self, kind: type[D]) -> D:
        for double in self.doubles:
            if isinstance(double, kind):
                return double
        raise KeyError(kind.__name__)

    def __enter__(self) -> Self:
        with contextlib.ExitStack() as stack:
            for double in self.doubles:
                stack.enter_context(double)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()


def aws_behaviour(*doubles: Double | type[Double]) -> AwsBehaviour:
    """Make moto behave like AWS: enter ``doubles`` (instances or classes; default: all)."""
    return AwsBehaviour(*doubles)
