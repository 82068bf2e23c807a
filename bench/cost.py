"""The cost model: dollars per million compliant object events, from what the benchmark measured
(AWS calls by operation, handler CPU time per event) and what the template deploys (memory size,
architecture, SQS batch size), at public us-east-1 list prices (bench/README.md cites them).

Counted per event:
- the handler's own AWS calls, by request class (S3 GET class for HeadObject, S3 PUT class for
  writes, KMS requests, and so on);
- Lambda: one request per invocation (batch of ``BatchSize`` events) and GB-seconds = memory ×
  handler CPU time per event (see ``lambda_seconds``: time waiting on AWS is not in it);
- SQS: the EventBridge delivery (one SendMessage per event; each event is one 64 KB chunk), and
  the event source mapping's ReceiveMessage and DeleteMessageBatch (at most 10 messages each).

Not counted: free tiers, EventBridge (events of AWS services to the default bus are free), idle
long polls of the event source mapping (a fixed cost per hour, not per event), CloudWatch Logs
and metrics, and, for the data-event path, CloudTrail's own $0.10 per 100,000 data events, which
the account pays for its trail whether or not the guard reads it (shown apart).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from localaws.template import load_template

PRICES_AS_OF: Final = "2026-12-01"

# USD, us-east-1 list prices (first tier), per single unit.
S3_GET_CLASS: Final = 0.0004 / 1_000  # GET, SELECT, HEAD and all other requests (S3 Standard)
S3_PUT_CLASS: Final = 0.005 / 1_000  # PUT, COPY, POST, LIST requests (S3 Standard)
KMS_REQUEST: Final = 0.03 / 10_000
SQS_REQUEST: Final = 0.40 / 1_000_000  # standard queue, per 64 KB chunk of a request
SNS_PUBLISH: Final = 0.50 / 1_000_000
DYNAMODB_READ: Final = 0.125 / 1_000_000  # on-demand read request unit
DYNAMODB_WRITE: Final = 0.625 / 1_000_000  # on-demand write request unit
LAMBDA_REQUEST: Final = 0.20 / 1_000_000
LAMBDA_ARM64_GB_SECOND: Final = 0.0000133334
CLOUDTRAIL_DATA_EVENT: Final = 0.10 / 100_000

SQS_MESSAGES_PER_CALL: Final = 10  # ReceiveMessage and DeleteMessageBatch take at most 10

_S3_PUT_CLASS_OPS: Final = frozenset(
    {"CopyObject", "PutObject", "UploadPartCopy", "CreateMultipartUpload", "CompleteMultipartUpload", "ListObjectsV2"}
)
_PRICE_OF: Final = {
    "s3": S3_GET_CLASS,
    "kms": KMS_REQUEST,
    "sqs": SQS_REQUEST,
    "sns": SNS_PUBLISH,
}
_DYNAMODB_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the template deploys for the verify function."""

    memory_mb: int
    architecture: str
    batch_size: int


def verify_deployment() -> Deployment:
    template = load_template()
    function = template["Resources"]["VerifyObjectEncryptionFunction"]["Properties"]
    globals_ = template.get("Globals", {}).get("Function", {})
    memory = int(function.get("MemorySize", globals_.get("MemorySize", 128)))
    architecture = (function.get("Architectures") or globals_.get("Architectures") or ["x86_64"])[0]
    mapping = template["Resources"]["VerifyQueueEventSource"]["Properties"]
    return Deployment(memory, str(architecture), int(mapping.get("BatchSize", 10)))


def price_of(service: str, operation: str) -> float:
    if service == "s3":
        return S3_PUT_CLASS if operation in _S3_PUT_CLASS_OPS else S3_GET_CLASS
    if service == "dynamodb":
        return DYNAMODB_WRITE if operation in _DYNAMODB_WRITES else DYNAMODB_READ
    return _PRICE_OF.get(service, 0.0)


@dataclass(frozen=True, slots=True)
class Cost:
    """Dollars per million events, by component."""

    aws_calls: float
    lambda_requests: float
    lambda_duration: float
    sqs_delivery: float

    @property
    def total(self) -> float:
        return self.aws_calls + self.lambda_requests + self.lambda_duration + self.sqs_delivery

    def as_dict(self) -> dict[str, float]:
        return {
            "aws_calls": round(self.aws_calls, 4),
            "lambda_requests": round(self.lambda_requests, 4),
            "lambda_duration": round(self.lambda_duration, 4),
            "sqs_delivery": round(self.sqs_delivery, 4),
            "total": round(self.total, 4),
        }


def per_million(
    calls_per_event: Mapping[tuple[str, str], float], cpu_seconds_per_event: float, deployment: Deployment
) -> Cost:
    """``calls_per_event``: (service, operation) -> calls per event, as measured."""
    if deployment.architecture != "arm64":
        raise ValueError(f"the model has arm64 prices only, the template deploys {deployment.architecture}")
    million = 1_000_000
    calls = sum(n * price_of(service, op) for (service, op), n in calls_per_event.items()) * million
    requests = LAMBDA_REQUEST * million / deployment.batch_size
    duration = LAMBDA_ARM64_GB_SECOND * (deployment.memory_mb / 1024) * cpu_seconds_per_event * million
    sqs = SQS_REQUEST * million * (1 + 2 / SQS_MESSAGES_PER_CALL)
    return Cost(calls, requests, duration, sqs)


def audit_per_million(
    calls_per_object: Mapping[tuple[str, str], float], cpu_seconds_per_object: float, messages_per_object: float
) -> Cost:
    """The audit per million existing objects: both functions' calls (listing, fan-out messages,
    HeadObjects, tallies), their Lambda duration at the verify function's memory size, one verify
    invocation per ``BatchSize`` messages, and the event source's receive and delete calls."""
    deployment = verify_deployment()
    if deployment.architecture != "arm64":
        raise ValueError(f"the model has arm64 prices only, the template deploys {deployment.architecture}")
    million = 1_000_000
    calls = sum(n * price_of(service, op) for (service, op), n in calls_per_object.items()) * million
    requests = LAMBDA_REQUEST * million * messages_per_object / deployment.batch_size
    duration = LAMBDA_ARM64_GB_SECOND * (deployment.memory_mb / 1024) * cpu_seconds_per_object * million
    sqs = SQS_REQUEST * million * messages_per_object * 2 / SQS_MESSAGES_PER_CALL
    return Cost(calls, requests, duration, sqs)


# Organization scale (figure 10). Prices as above; sources in bench/README.md.
S3_INVENTORY_PER_OBJECT: Final = 0.0025 / 1_000_000  # S3 Inventory, per object listed
EVENTBRIDGE_CROSS_ACCOUNT: Final = 1.00 / 1_000_000  # an event delivered to another account's bus
S3_STANDARD_GB_MONTH: Final = 0.023  # S3 Standard storage, first 50 TB
INVENTORY_GZIP_BYTES_PER_OBJECT: Final = 40  # bucket,key,size,...,encryption: ~120 B of CSV, gzip ~3x


@dataclass(frozen=True, slots=True)
class OrganizationMonth:
    """Dollars a month for an organization: ``existing`` objects audited once a month from S3 Inventory,
    ``new`` objects a month arriving in member accounts (each forwarded to the central bus)."""

    existing: int
    new: int
    accounts: int
    audit: float  # the guard's audit of the existing objects (calls, Lambda, SQS)
    inventory: float  # S3 Inventory's own price, and the storage of one month's reports
    events: float  # the new objects' events through the verify path
    forwarding: float  # EventBridge cross-account delivery of the members' events

    @property
    def total(self) -> float:
        return self.audit + self.inventory + self.events + self.forwarding

    def as_dict(self) -> dict[str, float]:
        return {
            "audit": round(self.audit, 2),
            "inventory": round(self.inventory, 2),
            "events": round(self.events, 2),
            "forwarding": round(self.forwarding, 2),
            "total": round(self.total, 2),
        }


def organization_month(
    *,
    existing: int,
    new: int,
    accounts: int,
    audit_usd_per_million: float,
    event_usd_per_million: float,
    from_inventory: bool,
) -> OrganizationMonth:
    """The monthly bill of the guard for an organization, from the per-million costs this run measured.
    ``from_inventory`` False prices the same coverage with a HeadObject per existing object (the audit
    listed page by page): no inventory to pay for, the measured listed-audit cost instead."""
    millions_existing = existing / 1_000_000
    inventory = (
        existing * S3_INVENTORY_PER_OBJECT + existing * INVENTORY_GZIP_BYTES_PER_OBJECT / 1e9 * S3_STANDARD_GB_MONTH
        if from_inventory
        else 0.0
    )
    return OrganizationMonth(
        existing=existing,
        new=new,
        accounts=accounts,
        audit=audit_usd_per_million * millions_existing,
        inventory=inventory,
        events=event_usd_per_million * new / 1_000_000,
        forwarding=EVENTBRIDGE_CROSS_ACCOUNT * new,
    )
