"""S3: inspect objects, re-encrypt them in place, stream manifests, read bucket defaults."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import ClientError

from clguard import errors
from clguard.adapters.clients import aws, client, error_code, http_status, raise_if_transient, translated
from clguard.boundary.s3ref import S3ObjectRef
from clguard.rules.encryption import Encryption, ObjectEncryption

# The re-encryption outcomes, defined in clguard.errors with every other error; importable from here too.
ObjectChanged = errors.ObjectChanged
CopyRolledBack = errors.CopyRolledBack
UnsupportedAcl = errors.UnsupportedAcl
UpdateUnavailable = errors.UpdateUnavailable

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    # s3:ListBucket lets S3 answer 404 for a missing object instead of 403: without it an object
    # deleted before the check would be reported as unverifiable instead of skipped.
    "HeadObject": ("s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"),
    "GetObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "GetBucketTagging": ("s3:GetBucketTagging",),  # the owner of an object finding (OWNER_TAG_KEY)
    "CopyObject": (
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:GetObjectTagging",
        "s3:GetObjectVersionTagging",
        "s3:PutObjectTagging",
        "s3:PutObjectAcl",
    ),
    "UploadPartCopy": ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"),
    "CreateMultipartUpload": ("s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectAcl"),
    "CompleteMultipartUpload": ("s3:PutObject",),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload",),
    "GetObjectTagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    # A copy carries the object's ACL over (grant headers need s3:PutObjectAcl).
    "GetObjectAcl": ("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
    # After a copy in a versioned bucket: the version under ours must be the inspected one.
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "UpdateObjectEncryption": ("s3:UpdateObjectEncryption",),
    "GetBucketEncryption": ("s3:GetEncryptionConfiguration",),
    "ListObjectsV2": ("s3:ListBucket",),
    "PutObject": ("s3:PutObject",),
    # The audit reads a bucket's inventory only from a configuration that covers the whole bucket.
    "ListBucketInventoryConfigurations": ("s3:GetInventoryConfiguration",),
}

COPY_LIMIT: Final = 5 * 1024**3  # CopyObject copies at most 5 GB; above it, multipart copy
MAX_PARTS: Final = 10_000
MIN_PART: Final = 512 * 1024**2
PART_COPY_WORKERS: Final = 8


class HeadStatus(StrEnum):
    FOUND = "found"
    GONE = "gone"  # deleted between the event and the check: skipped silently
    SSE_C = "sse-c"  # HEAD without the customer key answers 400 Bad Request
    DENIED = "denied"  # could not be inspected (access denied or another non-transient error)


@dataclass(frozen=True, slots=True)
class Head:
    status: HeadStatus
    ref: S3ObjectRef  # the object asked about (its version, when the request named one)
    response: Mapping[str, Any] | None = None
    problem: str = ""

    @property
    def etag(self) -> str | None:
        return None if self.response is None else self.response.get("ETag")

    @property
    def size(self) -> int:
        return 0 if self.response is None else int(self.response.get("ContentLength", 0))

    @property
    def version_id(self) -> str | None:
        return None if self.response is None else self.response.get("VersionId")

    @property
    def pinned(self) -> bool:
        """Whether the inspected object has a version id requests can be pinned to (versioned
        buckets; "null" is the unversioned object, which the next upload replaces)."""
        return self.version_id not in (None, "null")

    @property
    def inspected(self) -> S3ObjectRef:
        """The object as inspected: pinned to its version where it has one."""
        return self.ref.at(self.version_id if self.pinned else None)


def _head_once(ref: S3ObjectRef) -> Head:
    params = _object_params(ref)
    try:
        response = client("s3").head_object(**params)
    except ClientError as error:
        raise_if_transient(error)
        status = http_status(error)
        if status in (404, 405) or error_code(error) in (
            "404",
            "NoSuchKey",
            "NotFound",
            "NoSuchVersion",
        ):
            return Head(HeadStatus.GONE, ref)
        if status == 400:
            return Head(
                HeadStatus.SSE_C,
                ref,
                problem="HeadObject answered 400 Bad Request, as S3 does for an SSE-C object "
                "requested without its customer key",
            )
        return Head(
            HeadStatus.DENIED,
            ref,
            problem=f"HeadObject failed: {error_code(error)} (HTTP {status})",
        )
    return Head(HeadStatus.FOUND, ref, response)


@aws
def head(ref: S3ObjectRef) -> Head:
    """HeadObject of exactly this key. URL-encoded keys are decoded where the event is parsed
    (``clguard.boundary.events``), which verifies both readings of an ambiguous key: a 404 fallback here
    would let a compliant ``x+y.jpg`` hide the unencrypted ``x y.jpg``."""
    return _head_once(ref)


def _object_params(ref: S3ObjectRef) -> dict[str, Any]:
    """``Bucket``, ``Key`` and (when the reference is pinned) ``VersionId`` of a request."""
    params: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        params["VersionId"] = ref.version_id
    return params


def _sse_params(target: ObjectEncryption, bucket_key: bool) -> dict[str, Any]:
    if target.kind is Encryption.SSE_S3:
        return {"ServerSideEncryption": "AES256"}
    if target.kind is Encryption.SSE_KMS and target.kms_key_arn:
        return {
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": target.kms_key_arn,
            "BucketKeyEnabled": bucket_key,
        }
    raise ValueError(f"cannot re-encrypt to {target.describe()}")


@dataclass(frozen=True, slots=True)
class Rewritten:
    version_id: str | None
    etag: str | None
    last_modified: datetime | None = None


_GRANT_PARAMETERS: Final = {
    "READ": "GrantRead",
    "READ_ACP": "GrantReadACP",
    "WRITE_ACP": "GrantWriteACP",
    "FULL_CONTROL": "GrantFullControl",
}


@aws
def acl_grants(ref: S3ObjectRef) -> dict[str, str]:
    """The object's ACL as CopyObject / CreateMultipartUpload grant parameters, or {} for the
    default ACL (the owner's FULL_CONTROL only: also what buckets with ACLs disabled, "bucket
    owner enforced", always answer). A copy without grant parameters gets the default ACL, so a
    partner's READ grant would vanish; with them, the new object has exactly the same grants.
    Called on the remediation path only."""
    response = client("s3").get_object_acl(**_object_params(ref))
    owner = response.get("Owner", {}).get("ID")
    grants = response.get("Grants", [])
    if all(
        g.get("Permission") == "FULL_CONTROL"
        and g.get("Grantee", {}).get("Type") == "CanonicalUser"
        and g.get("Grantee", {}).get("ID") == owner
        for g in grants
    ):
        return {}
    by_parameter: dict[str, list[str]] = {}
    for grant in grants:
        grantee = grant.get("Grantee", {})
        kind = grantee.get("Type")
        if kind == "CanonicalUser" and grantee.get("ID"):
            reference = f'id="{grantee["ID"]}"'
        elif kind == "Group" and grantee.get("URI"):
            reference = f'uri="{grantee["URI"]}"'
        elif kind == "AmazonCustomerByEmail" and grantee.get("EmailAddress"):
            reference = f'emailAddress="{grantee["EmailAddress"]}"'
        else:
            raise UnsupportedAcl(f"grantee {grantee!r}")
        parameter = _GRANT_PARAMETERS.get(str(grant.get("Permission")))
        if parameter is None:
            raise UnsupportedAcl(f"permission {grant.get('Permission')!r}")
        by_parameter.setdefault(parameter, []).append(reference)
    return {parameter: ", ".join(refs) for parameter, refs in by_parameter.items()}


@aws
def copy_in_place(
    h: Head,
    target: ObjectEncryption,
    *,
    copy_limit: int = COPY_LIMIT,
) -> Rewritten:
    """Re-encrypt by copying the object onto itself: metadata, tags, storage class and ACL kept.
    Multipart copy above ``copy_limit``.

    What guards it: the source must still have the inspected ETag (``CopySourceIfMatch``) and
    the destination too (``IfMatch``). ETags are the MD5 of the bytes for SSE-S3 and unencrypted
    objects, so they do not change with a same-bytes re-upload (new metadata or tags):

    - versioned bucket: the source is pinned to the inspected version (``VersionId``; the caller
      re-inspects it immediately before, inside the object's lease), and after the copy the
      version right under it must be the inspected one. If a write landed in between, the copy would have put the
      old version's metadata on top of it: that write is put back on top at once (copied from its
      version, with its own encryption, tags and ACL) and ObjectChanged is raised; where it
      cannot be (a delete marker, an SSE-C or too large object) CopyRolledBack says so.
    - unversioned bucket: the source is the current object at the time of the copy, so S3 copies
      whatever is there, with its own metadata and tags: a same-bytes re-upload is re-encrypted,
      never rolled back. (Its ACL is the one read just before the copy.)
    """
    assert h.response is not None
    bucket, key = h.ref.bucket, h.ref.key
    source = _object_params(h.inspected)
    grants = acl_grants(h.inspected)
    bucket_key = bool(h.response.get("BucketKeyEnabled", False))
    extra = _not_copied(h.response)
    try:
        if h.size > copy_limit:
            rewritten = _multipart_copy(h, source, {**_sse_params(target, bucket_key), **extra, **grants})
        else:
            response = client("s3").copy_object(
                Bucket=bucket,
                Key=key,
                CopySource=source,
                CopySourceIfMatch=h.etag,
                IfMatch=h.etag,  # and do not overwrite an upload that landed meanwhile
                MetadataDirective="COPY",
                TaggingDirective="COPY",
                **_sse_params(target, bucket_key),
                **extra,
                **grants,
            )
            result = response.get("CopyObjectResult", {})
            rewritten = Rewritten(response.get("VersionId"), result.get("ETag"), result.get("LastModified"))
    except ClientError as error:
        if http_status(error) == 412 or error_code(error) == "PreconditionFailed":
            raise ObjectChanged(key) from error
        if http_status(error) == 409 or error_code(error) == "ConditionalRequestConflict":
            # A concurrent write of the key: "fetch the object's ETag and retry" (S3 API reference,
            # CopyObject If-Match): the unit of work is retried and re-inspects the object.
            raise errors.RetryableError(f"a concurrent write of {key!r} met the copy (409); retried") from error
        raise
    if h.pinned and rewritten.version_id:
        _put_back_what_landed_meanwhile(h, rewritten.version_id, copy_limit)
    return rewritten


def _put_back_what_landed_meanwhile(h: Head, ours: str, copy_limit: int) -> None:
    """The version right under our copy must be the inspected one (see ``copy_in_place``)."""
    s3 = client("s3")
    bucket, key = h.ref.bucket, h.ref.key
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key, KeyMarker=key, VersionIdMarker=ours, MaxKeys=1)
    versions = [v for v in listing.get("Versions", []) if v.get("Key") == key]
    markers = [m for m in listing.get("DeleteMarkers", []) if m.get("Key") == key]
    if markers:
        raise CopyRolledBack(
            f"the object was deleted (delete marker {markers[0].get('VersionId')}) while it was being "
            f"re-encrypted, and the copy (version {ours}) brought it back: delete it again if the deletion "
            "was meant"
        )
    if not versions or versions[0].get("VersionId") == h.version_id:
        return
    newer = str(versions[0]["VersionId"])
    landed = _head_once(h.ref.at(newer))
    if landed.status is not HeadStatus.FOUND or landed.response is None or landed.size > copy_limit:
        raise CopyRolledBack(
            f"version {newer} was written while the object was being re-encrypted, and the copy (version "
            f"{ours}) of the inspected version {h.version_id} now lies on top of it: copy version {newer} "
            "back onto the key to restore it"
        )
    r = landed.response
    s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource=_object_params(landed.ref),
        CopySourceIfMatch=landed.etag,
        MetadataDirective="COPY",
        TaggingDirective="COPY",
        **_same_encryption(r),
        **_not_copied(r),
        **acl_grants(landed.ref),
    )
    raise ObjectChanged(key)


def _not_copied(response: Mapping[str, Any]) -> dict[str, Any]:
    """CopyObject parameters for what a copy does not carry over by itself (MetadataDirective
    COPY): the storage class, and the website redirect, which "is not copied when using the
    x-amz-metadata-directive header" (S3 API reference, CopyObject)."""
    storage = response.get("StorageClass")
    params: dict[str, Any] = {"StorageClass": storage} if storage and storage != "STANDARD" else {}
    if response.get("WebsiteRedirectLocation"):
        params["WebsiteRedirectLocation"] = response["WebsiteRedirectLocation"]
    return params


def _same_encryption(response: Mapping[str, Any]) -> dict[str, Any]:
    """Copy parameters that keep an object's own SSE-S3 / SSE-KMS / DSSE-KMS encryption."""
    algorithm = response.get("ServerSideEncryption")
    if algorithm in ("aws:kms", "aws:kms:dsse"):
        params: dict[str, Any] = {"ServerSideEncryption": algorithm, "SSEKMSKeyId": response.get("SSEKMSKeyId")}
        if algorithm == "aws:kms":
            params["BucketKeyEnabled"] = bool(response.get("BucketKeyEnabled", False))
        return params
    return {"ServerSideEncryption": "AES256"}


_CARRIED: Final = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
    "Metadata",
    "WebsiteRedirectLocation",
)


def part_ranges(size: int, part_size: int | None = None) -> list[tuple[int, int]]:
    """Inclusive byte ranges for UploadPartCopy: at most 10,000 parts."""
    part = part_size or max(MIN_PART, math.ceil(size / MAX_PARTS))
    return [(start, min(start + part, size) - 1) for start in range(0, size, part)]


def _multipart_copy(h: Head, source: dict[str, Any], sse: dict[str, Any], part_size: int | None = None) -> Rewritten:
    s3 = client("s3")
    assert h.response is not None
    bucket, key = h.ref.bucket, h.ref.key
    carried = {name: h.response[name] for name in _CARRIED if h.response.get(name)}
    tags = s3.get_object_tagging(**source).get("TagSet", [])
    if tags:
        from urllib.parse import urlencode  # noqa: PLC0415 - rare path

        carried["Tagging"] = urlencode({t["Key"]: t["Value"] for t in tags})
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **{**carried, **sse})  # both may name the redirect
    upload_id = upload["UploadId"]

    def copy_part(number: int, start: int, end: int) -> dict[str, Any]:
        response = s3.upload_part_copy(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource=source,
            CopySourceIfMatch=h.etag,
            CopySourceRange=f"bytes={start}-{end}",
        )
        return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

    try:
        # Parts are copied inside S3; eight at a time keep a multi-GB copy within the timeout.
        with ThreadPoolExecutor(max_workers=PART_COPY_WORKERS, thread_name_prefix="part") as pool:
            ranges = part_ranges(h.size, part_size)
            parts = list(pool.map(copy_part, range(1, len(ranges) + 1), *zip(*ranges, strict=True)))
        done = s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfMatch=h.etag
        )
    except BaseException:  # abort the upload on any failure (incl. timeouts), then re-raise
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return Rewritten(done.get("VersionId"), done.get("ETag"))


@aws
def update_encryption(h: Head, kms_key_arn: str) -> None:
    """UpdateObjectEncryption: SSE-S3/SSE-KMS to SSE-KMS in place (no copy, no new event)."""
    assert h.response is not None
    s3 = client("s3")
    if not hasattr(s3, "update_object_encryption"):
        raise UpdateUnavailable("this botocore has no UpdateObjectEncryption")
    encryption = {
        "SSEKMS": {"KMSKeyArn": kms_key_arn, "BucketKeyEnabled": bool(h.response.get("BucketKeyEnabled", False))}
    }
    s3.update_object_encryption(**_object_params(h.inspected), ObjectEncryption=encryption)


@aws
def iter_chunks(ref: S3ObjectRef, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Stream an object in chunks (bounded memory; manifests can be 1 GB). GetObject is called
    here, eagerly, so that a missing or forbidden object raises now, not at the first chunk."""
    body = client("s3").get_object(**_object_params(ref))["Body"]

    def chunks() -> Iterator[bytes]:
        try:
            with translated():
                yield from body.iter_chunks(chunk_size=chunk_size)
        finally:
            body.close()

    return chunks()


@aws
def bucket_default_kms_key(bucket: str) -> str | None:
    """The KMS key of a bucket's default encryption, or None for SSE-S3 / no configuration."""
    try:
        config = client("s3").get_bucket_encryption(Bucket=bucket)
    except ClientError as error:
        if error_code(error) == "ServerSideEncryptionConfigurationNotFoundError":
            return None
        raise
    for rule in config.get("ServerSideEncryptionConfiguration", {}).get("Rules", []):
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse") and default.get("KMSMasterKeyID"):
            return str(default["KMSMasterKeyID"])
    return None


@dataclass(frozen=True, slots=True)
class InventoryConfiguration:
    """One S3 Inventory configuration of a bucket, as far as the audit needs it."""

    id: str
    enabled: bool
    format: str  # CSV, ORC or Parquet
    filter_prefix: str  # "" when no Filter limits the report to part of the bucket


@aws
def inventory_configurations(bucket: str) -> list[InventoryConfiguration]:
    """Every inventory configuration of ``bucket`` (ListBucketInventoryConfigurations, paged by its
    continuation token; a bucket holds at most 1,000)."""
    found: list[InventoryConfiguration] = []
    params: dict[str, Any] = {"Bucket": bucket}
    while True:
        response = client("s3").list_bucket_inventory_configurations(**params)
        for item in response.get("InventoryConfigurationList", []):
            destination = item.get("Destination", {}).get("S3BucketDestination", {})
            found.append(
                InventoryConfiguration(
                    str(item.get("Id", "")),
                    bool(item.get("IsEnabled")),
                    str(destination.get("Format", "")),
                    str((item.get("Filter") or {}).get("Prefix", "")),
                )
            )
        token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        if not token:
            return found
        params["ContinuationToken"] = token


@dataclass(frozen=True, slots=True)
class Listed:
    """One object of a listing page."""

    key: str
    etag: str
    last_modified: str  # ISO 8601


@dataclass(frozen=True, slots=True)
class Page:
    objects: tuple[Listed, ...]
    prefixes: tuple[str, ...]
    next_token: str | None


@aws
def list_page(
    bucket: str,
    *,
    token: str | None = None,
    prefix: str = "",
    delimiter: str = "",
    owner: str = "",
    max_keys: int = 1000,
) -> Page:
    """One ListObjectsV2 page (up to 1,000 keys): never a whole bucket in memory. ``owner``: the
    account the bucket must belong to (``ExpectedBucketOwner``: S3 answers 403 for another's)."""
    params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys}
    if owner:
        params["ExpectedBucketOwner"] = owner
    if token:
        params["ContinuationToken"] = token
    if prefix:
        params["Prefix"] = prefix
    if delimiter:
        params["Delimiter"] = delimiter
    response = client("s3").list_objects_v2(**params)
    objects = tuple(
        Listed(
            str(item["Key"]),
            str(item.get("ETag", "")),
            item["LastModified"].isoformat() if isinstance(item.get("LastModified"), datetime) else "",
        )
        for item in response.get("Contents", [])
    )
    prefixes = tuple(str(p["Prefix"]) for p in response.get("CommonPrefixes", []))
    token_next = response.get("NextContinuationToken") if response.get("IsTruncated") else None
    return Page(objects, prefixes, token_next)


@aws
def put_object(bucket: str, key: str, body: bytes, content_type: str) -> str:
    """Write a report object (the reports bucket's default encryption applies; SSE-S3 asked); its ETag."""
    response = client("s3").put_object(
        Bucket=bucket, Key=key, Body=body, ContentType=content_type, ServerSideEncryption="AES256"
    )
    return str(response.get("ETag", ""))


@aws
def get_bytes(bucket: str, key: str, limit: int = 1 << 20) -> bytes:
    """A small object (an inventory manifest.json), at most ``limit`` bytes."""
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    try:
        data: bytes = body.read(limit + 1)
    finally:
        body.close()
    if len(data) > limit:
        raise ValueError(f"s3://{bucket}/{key} is larger than {limit} bytes")
    return data


@aws
def bucket_tags(bucket: str) -> dict[str, str]:
    """The bucket's tags ({} when it has none: S3 answers NoSuchTagSet)."""
    try:
        response = client("s3").get_bucket_tagging(Bucket=bucket)
    except ClientError as error:
        if error_code(error) == "NoSuchTagSet":
            return {}
        raise
    return {str(t["Key"]): str(t["Value"]) for t in response.get("TagSet", [])}
