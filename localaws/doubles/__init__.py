"""Small, named test doubles that make moto behave like AWS where it differs.

moto is our AWS (in process with ``moto.mock_aws()``, or over HTTP with a
``moto.server.ThreadedMotoServer`` in the same process; both share moto's in-process
backends). Where moto 5.2.5 differs from AWS in a way our code depends on, a double
patches moto's backend or response *classes* (never botocore on the client side), so the
same patch holds in both modes. The doubles live in one module per AWS service they stand in
for (``s3``, ``kms``, ``dynamodb``, ``rekognition``, ``sqs``, ``securityhub``, ``sts``,
``s3control``, ``cloudformation``, ``sns``; each opens with the documented behaviour it reproduces,
with its link), on ``base.Double``; this
package re-exports them. Each double is a context manager; ``aws_behaviour()``
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
                            the write, so it can return an item the put did not replace; a
                            GetItem can read an item while an update changes it (HTTP 500).
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
BucketOwnerCondition        S3 ignores ``x-amz-expected-bucket-owner`` and
                            ``x-amz-source-expected-bucket-owner``: a request for another
                            account's bucket of that name succeeds instead of 403.
EventBridgeNotifications    GetBucketNotificationConfiguration leaves out the bucket's
                            ``EventBridgeConfiguration`` that PutBucketNotificationConfiguration
                            stored, so "EventBridge on" cannot be read back.
StackAlarms                 CloudFormation creates no ``AWS::CloudWatch::Alarm``: the stack
                            lists a resource with neither logical nor physical id (``cloudformation``).
S3BatchJobs                 S3 Batch Operations jobs are not implemented at all
                            (``/v20180820/jobs`` on s3-control): in ``s3control``.
SnsPublishBatch             SNS ``PublishBatch`` accepts a request over 256 KiB in all, fails an
                            entry only for an invalid parameter, and leaves out of both
                            ``Successful`` and ``Failed`` an entry whose publication raised.
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

import contextlib
from types import TracebackType
from typing import Self

from localaws.doubles.base import Double
from localaws.doubles.cloudformation import StackAlarms
from localaws.doubles.dynamodb import AtomicConditionalWrites, ItemSizeLimit
from localaws.doubles.kms import KeyPolicyValidation
from localaws.doubles.rekognition import RekognitionCustomLabels, dataset_entry
from localaws.doubles.s3 import (
    BucketOwnerCondition,
    ConditionalCopies,
    CopiesDropWebsiteRedirect,
    DefaultBucketEncryption,
    EventBridgeNotifications,
    SseCustomerKeys,
    UpdateObjectEncryption,
    legacy_unencrypted_objects,
    put_legacy_unencrypted_object,
)
from localaws.doubles.s3control import S3BatchJobs
from localaws.doubles.securityhub import SecurityHubFindings
from localaws.doubles.sns import SnsPublishBatch
from localaws.doubles.sqs import SqsSenderIds
from localaws.doubles.sts import AssumeRoleRefusals

__all__ = [
    "ALL_DOUBLES",
    "AssumeRoleRefusals",
    "AtomicConditionalWrites",
    "AwsBehaviour",
    "BucketOwnerCondition",
    "ConditionalCopies",
    "CopiesDropWebsiteRedirect",
    "DefaultBucketEncryption",
    "Double",
    "EventBridgeNotifications",
    "ItemSizeLimit",
    "KeyPolicyValidation",
    "RekognitionCustomLabels",
    "S3BatchJobs",
    "SecurityHubFindings",
    "SnsPublishBatch",
    "SqsSenderIds",
    "SseCustomerKeys",
    "StackAlarms",
    "UpdateObjectEncryption",
    "aws_behaviour",
    "dataset_entry",
    "every_double",
    "legacy_unencrypted_objects",
    "put_legacy_unencrypted_object",
]

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
    S3BatchJobs,
    StackAlarms,
    BucketOwnerCondition,
    SnsPublishBatch,
)


def every_double() -> tuple[type[Double], ...]:
    """The doubles ``aws_behaviour()`` enters by default (all of them)."""
    return ALL_DOUBLES


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
