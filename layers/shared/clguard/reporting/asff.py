"""A finding as Security Hub reads it: the AWS Security Finding Format (docs/architecture.md §5a).

A sibling of the e-mail and chat renderings (:mod:`clguard.reporting.rendering`), built from the
same :class:`~clguard.reporting.findings.Finding`. Pure: :func:`asff` builds one ASFF finding,
:func:`problems` checks one against the documented required attributes and limits (moto checks
almost nothing, so the guard checks what it sends itself).

Identity: ``Id`` is the finding type, the resource and (when the finding is about one) the
principal, hashed: the same condition on the same resource is one Security Hub finding, updated
by every later import (never duplicated), whatever event found it. A refused bucket claim (a
member's MEMBER_UNREACHABLE REFUSED) is about the buckets it claims as well as the member's role:
they are part of its identity, and its ``Resources`` after the role (``AwsS3Bucket``), so it is
never the same finding as the member being unreachable, nor as a claim on other buckets.

Lifecycle, as ASFF spells it:

==================================  ==================  ===============  ============
the guard's view                    Compliance.Status   Workflow.Status  RecordState
==================================  ==================  ===============  ============
open (REPORTED, REFUSED, FAILED)    FAILED              NEW              ACTIVE
fixed (REMEDIATED), seen gone       PASSED              RESOLVED         ARCHIVED
muted by an accepted exception      FAILED              SUPPRESSED       ACTIVE
==================================  ==================  ===============  ============

``Workflow`` (and ``Note``) only take effect when a finding is created: for an existing finding
they go through ``BatchUpdateFindings`` (:mod:`clguard.reporting.securityhub` does both).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting.findings import (
    ExceptionsResource,
    Finding,
    FindingType,
    KmsKeyResource,
    Outcome,
    Resource,
)
from clguard.reporting.rendering import next_steps
from clguard.rules.arns import partition_of_region

SCHEMA_VERSION: Final = "2018-10-08"
TYPES: Final = ("Software and Configuration Checks/AWS Security Best Practices",)
GENERATOR_PREFIX: Final = "custom-labels-guard/"
ID_PREFIX: Final = "custom-labels-guard/"

# Documented limits (Security Hub API reference, AwsSecurityFinding and BatchImportFindings).
REQUIRED: Final = (
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
MAX_ID: Final = 512
MAX_TITLE: Final = 256
MAX_DESCRIPTION: Final = 1_024
MAX_RECOMMENDATION: Final = 512
MAX_NOTE: Final = 512
MAX_RESOURCE_ID: Final = 512
MAX_RESOURCES: Final = 32
MAX_PRODUCT_FIELDS: Final = 50
MAX_PRODUCT_FIELD_KEY: Final = 128
MAX_PRODUCT_FIELD_VALUE: Final = 2_048
MAX_FINDING_BYTES: Final = 240 * 1024
MAX_BATCH: Final = 100
WORKFLOW_STATUSES: Final = frozenset({"NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"})
RECORD_STATES: Final = frozenset({"ACTIVE", "ARCHIVED"})
COMPLIANCE_STATUSES: Final = frozenset({"PASSED", "WARNING", "FAILED", "NOT_AVAILABLE"})
SEVERITY_LABELS: Final = frozenset({"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"})


def product_arn(partition: str, region: str, account: str) -> str:
    """The account's own ``default`` product: where a customer imports its own findings."""
    return f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"


def finding_id(finding: Finding) -> str:
    """Stable for one condition on one resource (+ principal, + the buckets a refused claim
    names): later imports update it."""
    return condition_id(
        finding.account,
        finding.region,
        finding.finding_type,
        finding.resource,
        principal=finding.principal_arn,
        claimed=finding.claimed_buckets,
    )


def condition_id(
    account: str,
    region: str,
    finding_type: FindingType,
    resource: Resource,
    *,
    principal: str | None = None,
    claimed: Iterable[str] = (),
) -> str:
    """The ``Id`` of one condition (what :func:`finding_id` says of a finding), for closing a
    condition without its finding at hand. The claimed buckets count as a set, and only when there
    are some: every other finding keeps the Id it always had."""
    identity: list[Any] = [finding_type.value, resource.to_json(), principal]
    buckets = sorted(set(claimed))
    if buckets:
        identity.append(buckets)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=True).encode()).hexdigest()
    return f"{ID_PREFIX}{account}/{region}/{finding_type.value}/{digest}"


def _resources_of(finding: Finding, partition: str) -> list[dict[str, Any]]:
    """The finding's resource first; then a refused claim's buckets (as many as fit: 32 in all)."""
    buckets = [
        {"Partition": partition, "Type": "AwsS3Bucket", "Id": f"arn:{partition}:s3:::{bucket}"}
        for bucket in sorted(set(finding.claimed_buckets))[: MAX_RESOURCES - 1]
    ]
    return [_resource(finding, partition), *buckets]


def _resource(finding: Finding, partition: str) -> dict[str, Any]:
    resource = finding.resource
    base: dict[str, Any] = {"Partition": partition, "Region": finding.region}
    if isinstance(resource, S3ObjectRef):
        arn = f"arn:{partition}:s3:::{resource.bucket}/{resource.key}"
        return {**base, "Type": "AwsS3Object", "Id": _clip(arn, MAX_RESOURCE_ID)}
    if isinstance(resource, KmsKeyResource):
        return {**base, "Type": "AwsKmsKey", "Id": _clip(resource.arn, MAX_RESOURCE_ID)}
    if isinstance(resource, ExceptionsResource):
        return {**base, "Type": "Other", "Id": _clip(resource.location, MAX_RESOURCE_ID)}
    return {**base, "Type": "Other", "Id": _clip(resource.arn, MAX_RESOURCE_ID)}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def resource_name(resource: object) -> str:
    """The resource a condition is on, without an object's version: where a later event or the
    audit finds the same condition gone (the record of open findings is kept per this name)."""
    if isinstance(resource, S3ObjectRef):
        return f"s3://{resource.bucket}/{resource.key}"
    if isinstance(resource, KmsKeyResource):
        return resource.arn
    label = getattr(resource, "label", None)
    return str(label()) if callable(label) else str(resource)


def closed(document: Mapping[str, Any], now: str, why: str) -> dict[str, Any]:
    """An open finding as imported, now seen gone: PASSED, ARCHIVED (Workflow RESOLVED by update)."""
    out = {k: v for k, v in document.items() if k != "Note"}
    out["UpdatedAt"] = now
    out["Compliance"] = {"Status": "PASSED"}
    out["RecordState"] = "ARCHIVED"
    out["Workflow"] = {"Status": "RESOLVED"}
    out["ProductFields"] = {
        **dict(document.get("ProductFields") or {}),
        "CustomLabelsGuard/closed": _clip(why, MAX_PRODUCT_FIELD_VALUE),
    }
    return out


def is_open(finding: Finding) -> bool:
    return finding.outcome is not Outcome.REMEDIATED


def workflow_status(finding: Finding) -> str:
    if not is_open(finding):
        return "RESOLVED"
    return "SUPPRESSED" if finding.suppressed is not None else "NEW"


def note(finding: Finding) -> str | None:
    muted = finding.suppressed
    if muted is None:
        return None
    owner = f", owner {muted.owner}" if muted.owner else ""
    return _clip(f"Accepted exception {muted.exception_id} (expires {muted.expires}{owner}): {muted.reason}", MAX_NOTE)


def asff(finding: Finding, now: str) -> dict[str, Any]:
    """One ASFF finding (imported into the resource's own account and region)."""
    partition = partition_of_region(finding.region)
    open_ = is_open(finding)
    title = f"{finding.finding_type.value} ({finding.outcome.value}): {finding.resource.label()}"
    if finding.claimed_buckets:
        title += ", claiming " + ", ".join(sorted(set(finding.claimed_buckets)))
    product_fields = {
        "CustomLabelsGuard/outcome": finding.outcome.value,
        "CustomLabelsGuard/source_event_id": _clip(finding.source_event_id, MAX_PRODUCT_FIELD_VALUE),
        "CustomLabelsGuard/finding_type": finding.finding_type.value,
    }
    if finding.kms_key_arn:
        product_fields["CustomLabelsGuard/kms_key_arn"] = finding.kms_key_arn
    if finding.principal_arn:
        product_fields["CustomLabelsGuard/principal_arn"] = _clip(finding.principal_arn, MAX_PRODUCT_FIELD_VALUE)
    if finding.owner:
        product_fields["CustomLabelsGuard/owner"] = _clip(finding.owner, MAX_PRODUCT_FIELD_VALUE)
    if finding.suppressed is not None:
        product_fields["CustomLabelsGuard/exception_id"] = finding.suppressed.exception_id
    steps = " ".join(next_steps(finding)) or "See the finding's description."
    document: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(finding),
        "ProductArn": product_arn(partition, finding.region, finding.account),
        "GeneratorId": GENERATOR_PREFIX + finding.finding_type.value,
        "AwsAccountId": finding.account,
        "Types": list(TYPES),
        "CreatedAt": finding.observed_at,
        "UpdatedAt": now,
        "Severity": {"Label": finding.severity.value},
        "Title": _clip(title, MAX_TITLE),
        "Description": _clip(finding.detail or title, MAX_DESCRIPTION),
        "Remediation": {"Recommendation": {"Text": _clip(steps, MAX_RECOMMENDATION)}},
        "ProductFields": product_fields,
        "Resources": _resources_of(finding, partition),
        "Compliance": {"Status": "FAILED" if open_ else "PASSED"},
        "Workflow": {"Status": workflow_status(finding)},
        "RecordState": "ACTIVE" if open_ else "ARCHIVED",
    }
    text = note(finding)
    if text:
        document["Note"] = {"Text": text, "UpdatedBy": "custom-labels-guard", "UpdatedAt": now}
    return document


# --- checking a finding against the documented rules -------------------------------------------
#
# One small check per rule of the Security Hub API reference (AwsSecurityFinding, BatchImportFindings),
# each naming what breaks it; ``problems`` runs them in this order:
#
#   _required_attributes   every required top-level attribute is there
#   _schema_version        SchemaVersion is 2018-10-08
#   _text_lengths          Id, GeneratorId, Title, Description: non-empty strings within their limits
#   _account_id            AwsAccountId: 12 digits
#   _types                 1 to 50 Types, each namespace/category[/classifier] of a valid namespace
#   _severity              Severity.Label is a severity label
#   _resources             1 to 32 Resources, each with a Type and an Id within its limit
#   _product_fields        at most 50 ProductFields, keys and values within their limits
#   _recommendation        Remediation.Recommendation.Text within its limit
#   _note                  Note.Text within its limit
#   _workflow              Workflow.Status is a workflow status
#   _record_state          RecordState is ACTIVE or ARCHIVED
#   _compliance            Compliance.Status is a compliance status
#   _size                  the whole finding within 240 KB

type _Check = Callable[[Mapping[str, Any]], list[str]]


def problems(document: Mapping[str, Any]) -> list[str]:
    """What breaks the documented ASFF rules in ``document`` (empty when it is valid)."""
    return [problem for check in _CHECKS for problem in check(document)]


def _required_attributes(document: Mapping[str, Any]) -> list[str]:
    return [f"missing required attribute {name}" for name in REQUIRED if name not in document]


def _schema_version(document: Mapping[str, Any]) -> list[str]:
    if document.get("SchemaVersion") not in (None, SCHEMA_VERSION):
        return [f"SchemaVersion must be {SCHEMA_VERSION}"]
    return []


_TEXT_LIMITS: Final = (("Id", MAX_ID), ("GeneratorId", MAX_ID), ("Title", MAX_TITLE), ("Description", MAX_DESCRIPTION))


def _text_lengths(document: Mapping[str, Any]) -> list[str]:
    out = []
    for name, most in _TEXT_LIMITS:
        if name not in document:
            continue
        value = document[name]
        if not isinstance(value, str) or not value:
            out.append(f"{name} must be a non-empty string")
        elif len(value) > most:
            out.append(f"{name} is {len(value)} characters; at most {most}")
    return out


def _account_id(document: Mapping[str, Any]) -> list[str]:
    if "AwsAccountId" in document and not (
        str(document["AwsAccountId"]).isdigit() and len(str(document["AwsAccountId"])) == 12
    ):
        return ["AwsAccountId must be a 12-digit account id"]
    return []


_TYPE_NAMESPACES: Final = (
    "Software and Configuration Checks",
    "TTPs",
    "Effects",
    "Unusual Behaviors",
    "Sensitive Data Identifications",
)


def _types(document: Mapping[str, Any]) -> list[str]:
    types = document.get("Types")
    if "Types" in document and (not isinstance(types, list) or not types or len(types) > 50):
        return ["Types must list 1 to 50 types"]
    if not isinstance(types, list):
        return []
    return [
        f"Types: {t!r} is not namespace/category[/classifier] of a valid namespace"
        for t in types
        if not isinstance(t, str) or len(t.split("/")) not in (2, 3) or not t.startswith(_TYPE_NAMESPACES)
    ]


def _severity(document: Mapping[str, Any]) -> list[str]:
    severity = document.get("Severity")
    if "Severity" in document and (not isinstance(severity, Mapping) or severity.get("Label") not in SEVERITY_LABELS):
        return ["Severity.Label must be one of " + ", ".join(sorted(SEVERITY_LABELS))]
    return []


def _resources(document: Mapping[str, Any]) -> list[str]:
    if "Resources" not in document:
        return []
    resources = document["Resources"]
    if not isinstance(resources, list) or not 1 <= len(resources) <= MAX_RESOURCES:
        return [f"Resources must hold 1 to {MAX_RESOURCES} resources"]
    out = []
    for i, resource in enumerate(resources):
        if not isinstance(resource, Mapping) or not resource.get("Type") or not resource.get("Id"):
            out.append(f"Resources[{i}] needs Type and Id")
        elif len(str(resource["Id"])) > MAX_RESOURCE_ID:
            out.append(f"Resources[{i}].Id is longer than {MAX_RESOURCE_ID}")
    return out


def _product_fields(document: Mapping[str, Any]) -> list[str]:
    fields = document.get("ProductFields") or {}
    out = []
    if len(fields) > MAX_PRODUCT_FIELDS:
        out.append(f"ProductFields holds {len(fields)} pairs; at most {MAX_PRODUCT_FIELDS}")
    out += [
        f"ProductFields[{key!r}] is over the key or value length limit"
        for key, value in fields.items()
        if len(str(key)) > MAX_PRODUCT_FIELD_KEY or len(str(value)) > MAX_PRODUCT_FIELD_VALUE
    ]
    return out


def _recommendation(document: Mapping[str, Any]) -> list[str]:
    recommendation = ((document.get("Remediation") or {}).get("Recommendation") or {}).get("Text")
    if recommendation is not None and len(str(recommendation)) > MAX_RECOMMENDATION:
        return [f"Remediation.Recommendation.Text is longer than {MAX_RECOMMENDATION}"]
    return []


def _note(document: Mapping[str, Any]) -> list[str]:
    text = (document.get("Note") or {}).get("Text")
    if text is not None and len(str(text)) > MAX_NOTE:
        return [f"Note.Text is longer than {MAX_NOTE}"]
    return []


def _workflow(document: Mapping[str, Any]) -> list[str]:
    if (document.get("Workflow") or {}).get("Status", "NEW") not in WORKFLOW_STATUSES:
        return ["Workflow.Status is not a workflow status"]
    return []


def _record_state(document: Mapping[str, Any]) -> list[str]:
    if document.get("RecordState", "ACTIVE") not in RECORD_STATES:
        return ["RecordState must be ACTIVE or ARCHIVED"]
    return []


def _compliance(document: Mapping[str, Any]) -> list[str]:
    if (document.get("Compliance") or {}).get("Status", "FAILED") not in COMPLIANCE_STATUSES:
        return ["Compliance.Status is not a compliance status"]
    return []


def _size(document: Mapping[str, Any]) -> list[str]:
    if len(json.dumps(document).encode()) > MAX_FINDING_BYTES:
        return [f"the finding is larger than {MAX_FINDING_BYTES} bytes"]
    return []


_CHECKS: Final[tuple[_Check, ...]] = (
    _required_attributes,
    _schema_version,
    _text_lengths,
    _account_id,
    _types,
    _severity,
    _resources,
    _product_fields,
    _recommendation,
    _note,
    _workflow,
    _record_state,
    _compliance,
    _size,
)
