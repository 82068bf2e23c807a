"""A failed training whose key policy the guard may not read is diagnosed, not a crash of the
audit: the failed trainings run first in every scheduled audit, so one such version would stop
every audit (its object listing included) for as long as the version exists.

KMS: no principal has access to a key unless a key policy, IAM policy or grant allows it and
none denies it (https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html), so a
key policy may let the guard describe a key (DescribeKey) and still refuse it GetKeyPolicy
(AccessDeniedException), e.g. with a Deny of kms:GetKeyPolicy to all but the key's admins."""

from __future__ import annotations

from localaws.doubles import RekognitionCustomLabels
from tests.auditrun import findings, run_audit
from tests.awscalls import Boundary
from tests.conftest import TRAINER
from tests.world import BUCKET, World


def test_a_failed_training_whose_key_policy_is_unreadable_is_reported_and_the_audit_goes_on(
    audited: World, calls: Boundary
) -> None:
    # Given a training that failed for access, its copied images under a key (KmsKeyId) whose key
    # policy refuses the guard GetKeyPolicy, and an unencrypted object in the training bucket
    rekognition = audited.behaviour[RekognitionCustomLabels]
    copy_key = audited.key()
    audited.put("train.manifest", b"{}", ServerSideEncryption="AES256")
    audited.put_legacy("old/unencrypted.jpg")
    audited.role("Trainer", "/ml/")
    audited.env_set(TRAINING_PRINCIPALS=TRAINER)
    project = rekognition.create_project("cats")
    version = rekognition.create_project_version(
        project,
        "v1",
        status="TRAINING_FAILED",
        status_message="Failed to copy images: the images S3 bucket permissions are invalid.",
        training_manifests=[(BUCKET, "train.manifest")],
        kms_key_id=copy_key,
    )
    calls.faults.add("GetKeyPolicy", "AccessDeniedException")

    # When the scheduled audit runs
    summary = run_audit(audited)

    # Then the failed training is reported, saying that the keys' policies could not be read
    [training] = [f for f in findings(audited) if f["finding_type"] == "TRAINING_FAILED"]
    assert training["resource"]["arn"] == version
    assert training["outcome"] == "REPORTED"
    assert "GetKeyPolicy" in training["detail"]
    assert copy_key in training["detail"]
    # And the rest of the audit still ran: the bucket was listed and its unencrypted object found
    assert summary["objects_listed"] == 2
    assert ("OBJECT_UNENCRYPTED", "REMEDIATED") in {(f["finding_type"], f["outcome"]) for f in findings(audited)}
