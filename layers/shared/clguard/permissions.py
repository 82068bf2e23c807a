"""The IAM actions each function needs, derived from the operations its code calls.

Each adapter declares ``IAM_ACTIONS`` (operation -> actions). Here each function lists the
operations it uses, plus the KMS actions AWS services perform on its behalf. A test compares
the result with the function's policy in template.yaml: the role grants exactly these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from clguard.adapters import (
    clients,
    declarations,
    dynamodb,
    kms,
    lambda_,
    organizations,
    rekognition,
    s3,
    s3batch,
    securityhub,
    sns,
    sqs,
)

_OBJECT_REMEDIATION: Final = (
    "HeadObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "GetObjectTagging",
    "GetObjectAcl",
    "ListObjectVersions",
    "UpdateObjectEncryption",
)

# The findings plane of every function that publishes findings (docs/architecture.md §5, §5a, §5b):
# owner tags and key aliases, the accepted-exceptions document (SSM or S3; the template grants
# only the one configured), Security Hub (granted only when SECURITY_HUB=on).
_FINDINGS_PLANE: Final = {
    "kms": ("ListAliases",),
    "ssm": ("GetParameter",),
    "securityhub": ("BatchImportFindings", "BatchUpdateFindings"),
}
_FINDINGS_PLANE_S3: Final = ("GetBucketTagging", "GetObject")

# What the two functions that ensure key access share besides S3 (docs/architecture.md §2, §11): the
# key's policy, the findings plane, delivery (SNS, the outbox queue) and the state table.
_KEY_ACCESS: Final = {
    "kms": tuple(kms.IAM_ACTIONS),
    "ssm": _FINDINGS_PLANE["ssm"],
    "securityhub": _FINDINGS_PLANE["securityhub"],
    # A Deny on the principal's organization (data-perimeter key policies) needs it.
    "organizations": tuple(organizations.IAM_ACTIONS),
    # PublishBatch: findings sent ten a request; its IAM action is sns:Publish (adapters.sns).
    "sns": ("Publish", "PublishBatch"),
    "sqs": ("SendMessage",),
    "dynamodb": tuple(dynamodb.IAM_ACTIONS),
}

OPERATIONS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "verify_object_encryption": {
        # PutObject: the message that completes an audit run writes its report.
        "s3": (*_OBJECT_REMEDIATION, "PutObject", *_FINDINGS_PLANE_S3),
        **_KEY_ACCESS,
        "sts": ("AssumeRole",),  # member accounts only (MemberAccountIds)
    },
    "grant_training_access": {
        "s3": (*_OBJECT_REMEDIATION, "GetObject", "GetBucketEncryption", *_FINDINGS_PLANE_S3),
        **_KEY_ACCESS,
        "sts": ("AssumeRole",),
        # Training from a project's datasets: the project's datasets, then their entries.
        "rekognition": ("DescribeProjects", "ListDatasetEntries"),
    },
    "audit": {
        # ListObjectsV2: training buckets and the inventory; GetObject: inventory reports;
        # HeadObject: a failed training's manifests; PutObject: the report.
        # ListBucketInventoryConfigurations: only inventories of whole buckets are read.
        "s3": (
            "ListObjectsV2",
            "GetObject",
            "HeadObject",
            "PutObject",
            "ListBucketInventoryConfigurations",
            *_FINDINGS_PLANE_S3,
        ),
        # the keys of a failed training's manifests: read, and (enforce) grant the trainers
        "kms": tuple(kms.IAM_ACTIONS),
        "ssm": _FINDINGS_PLANE["ssm"],
        "securityhub": _FINDINGS_PLANE["securityhub"],
        # A Deny on the principal's organization (data-perimeter key policies) needs it.
        "organizations": tuple(organizations.IAM_ACTIONS),
        "rekognition": ("DescribeProjects", "DescribeProjectVersions"),
        "sns": ("Publish", "PublishBatch"),
        "sqs": ("SendMessage",),
        "dynamodb": tuple(dynamodb.IAM_ACTIONS),
        "lambda": ("Invoke",),
        "sts": ("AssumeRole",),  # member accounts only: their declarations, their buckets listed
        # Bulk re-encryption: one S3 Batch Operations job per manifest, its state (the report and
        # carried-over lists are read with GetObject, the manifests written with PutObject).
        "s3control": ("CreateJob", "DescribeJob"),
    },
    # Publishes messages for people to the human topic; reads nothing else.
    "digest": {
        "sns": ("Publish",),
    },
}

# Not calls of ours: S3 uses the object's and the target key for CopyObject / multipart copy /
# UpdateObjectEncryption with SSE-KMS (with our credentials, through kms:ViaService), and SNS
# uses the alerts topic's key when we publish to the encrypted topic.
ON_OUR_BEHALF: Final = frozenset(
    {
        "kms:Decrypt",
        "kms:ReEncryptFrom",  # UpdateObjectEncryption: from the current key
        "kms:ReEncryptTo",  # ... to the re-encryption key
        "kms:Encrypt",
        "kms:GenerateDataKey",
    }
)

# The audit copies nothing: only SNS uses a key on its behalf (the alerts topic's).
ON_BEHALF_OF: Final[Mapping[str, frozenset[str]]] = {
    "audit": frozenset({"kms:GenerateDataKey", "kms:Decrypt"}),
    "digest": frozenset({"kms:GenerateDataKey", "kms:Decrypt"}),  # the human topic's key
}

# Lambda's event source mapping polls the verify queue with the verify function's role.
EVENT_SOURCE: Final[Mapping[str, frozenset[str]]] = {
    "verify_object_encryption": frozenset(
        {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}
    ),
    "grant_training_access": frozenset(),
    "audit": frozenset(),
    # ... and the digest queue with the digest function's
    "digest": frozenset(
        {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}
    ),
}

_ADAPTERS: Final = {
    "s3": s3,
    "s3control": s3batch,
    "kms": kms,
    "sns": sns,
    "sqs": sqs,
    "dynamodb": dynamodb,
    "rekognition": rekognition,
    "sts": clients,
    "lambda": lambda_,
    "organizations": organizations,
    # SSM GetParameter: a member's declaration (adapters.declarations) and the accepted-exceptions
    # document (adapters.ssm) are the same action.
    "ssm": declarations,
    "securityhub": securityhub,
}


def actions(function: str) -> frozenset[str]:
    """Every IAM action ``function`` needs."""
    needed: set[str] = set(ON_BEHALF_OF.get(function, ON_OUR_BEHALF)) | EVENT_SOURCE[function]
    for service, operations in OPERATIONS[function].items():
        table = _ADAPTERS[service].IAM_ACTIONS
        for operation in operations:
            needed.update(table[operation])
    return frozenset(needed)


# The functions that act in member accounts with all their S3, KMS and Rekognition calls.
MEMBER_FUNCTIONS: Final = ("verify_object_encryption", "grant_training_access")

# What else runs with a member's credentials: the audit lists a member's buckets, and every
# function reads what the member says about itself (its declaration, its organization).
MEMBER_READS: Final[Mapping[str, tuple[str, ...]]] = {
    "s3": ("ListObjectsV2",),
    "organizations": ("DescribeOrganization",),  # its own organization (the OU listing is central)
    "ssm": tuple(declarations.IAM_ACTIONS),
}


# Every function that makes the member reads (with the member role's credentials, granted by
# member.yaml, not by the function's own role).
MEMBER_READERS: Final = (*MEMBER_FUNCTIONS, "audit")


def member_actions() -> frozenset[str]:
    """What the member role (member.yaml) must allow: every S3, KMS and Rekognition action of
    the functions that act in members (the calls that run with member credentials), the member's
    reads about itself, and what S3 does with KMS on our behalf there."""
    needed: set[str] = set(ON_OUR_BEHALF)
    for operations in (*(OPERATIONS[f] for f in MEMBER_FUNCTIONS), MEMBER_READS):
        for service, names in operations.items():
            if service in clients.MEMBER_SCOPED or operations is MEMBER_READS:
                table = _ADAPTERS[service].IAM_ACTIONS
                for operation in names:
                    needed.update(table[operation])
    return frozenset(needed)
