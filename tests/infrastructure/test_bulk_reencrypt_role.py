"""The S3 Batch Operations job's own role (BulkReencryptRole) and what the audit may do with it:
least privilege (docs/architecture.md §3, "Bulk re-encryption")."""

from __future__ import annotations

from typing import Any

from tests.infrastructure.cfn_template import function_policy_statements, load_template, resolve

BUCKETS = ["custom-labels-training", "second.training-bucket"]
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PARAMETERS = {"TrainingBuckets": BUCKETS, "ReencryptKmsKey": KEY, "AuditReportsLocation": "reports-bucket/r"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role(parameters: dict[str, Any]) -> dict[str, Any]:
    template = load_template()
    resolved: dict[str, Any] = resolve(template, template["Resources"]["BulkReencryptRole"]["Properties"], parameters)
    return resolved


def _grants(role: dict[str, Any]) -> dict[str, set[str]]:
    """action -> resources, over every statement of the role's inline policies."""
    out: dict[str, set[str]] = {}
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in _as_list(statement["Action"]):
                out.setdefault(action, set()).update(_as_list(statement["Resource"]))
    return out


def test_only_s3_batch_operations_of_this_account_may_assume_the_job_role() -> None:
    # Given the job role
    [statement] = _role(PARAMETERS)["AssumeRolePolicyDocument"]["Statement"]
    # Then only S3 Batch Operations, for this account, may assume it
    assert statement["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_the_job_role_copies_training_objects_reads_manifests_writes_reports_and_uses_only_the_target_key() -> None:
    # Given the job role under a re-encryption key and a reports location
    grants = _grants(_role(PARAMETERS))
    objects = {f"arn:aws:s3:::{b}/*" for b in BUCKETS}
    manifests = "arn:aws:s3:::reports-bucket/r/bulk-reencryption/manifests/*"
    reports = "arn:aws:s3:::reports-bucket/r/bulk-reencryption/reports/*"
    # Then it may do exactly this, and nothing else
    assert grants == {
        "s3:GetObject": objects | {manifests},
        "s3:GetObjectVersion": objects | {manifests},
        "s3:GetObjectTagging": objects,
        "s3:GetObjectVersionTagging": objects,
        "s3:PutObject": objects | {reports},
        "s3:PutObjectTagging": objects,
        "kms:GenerateDataKey": {KEY},
        "kms:Decrypt": {KEY},
    }
    # And without a re-encryption key (SSE-S3) it has no KMS permission at all
    without = _grants(_role({**PARAMETERS, "ReencryptKmsKey": ""}))
    assert not any(action.startswith("kms:") for action in without)


def test_the_audit_passes_only_the_job_role_only_to_batch_operations_and_creates_only_copy_jobs() -> None:
    # Given the audit function's statements
    statements = function_policy_statements(load_template(), "AuditFunction", PARAMETERS)
    [passing] = [s for s in statements if "iam:PassRole" in _as_list(s["Action"])]
    [creating] = [s for s in statements if "s3:CreateJob" in _as_list(s["Action"])]
    # Then it may pass exactly the job role, and only to S3 Batch Operations
    assert _as_list(passing["Resource"]) == ["getatt:BulkReencryptRole.Arn"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "batchoperations.s3.amazonaws.com"}}
    # And it may create only copy jobs (CreateJob has no resource-level permissions)
    assert _as_list(creating["Action"]) == ["s3:CreateJob"]
    assert creating["Condition"] == {"StringEquals": {"s3:RequestJobOperation": "S3PutObjectCopy"}}
