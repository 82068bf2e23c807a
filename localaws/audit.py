"""``make audit``: the audit on the local system, with its report written to this machine.

A LocalSystem (moto server, the template's resources) gets a training bucket holding what a first
deployment finds: objects uploaded before the guard (unencrypted), SSE-S3 ones, some under a
managed customer key the trainer cannot use yet, and a Custom Labels project with a training that
failed for access. The audit function runs as the schedule would invoke it; the verify function
checks what it queued; the report (HTML, JSON, and the CSV and JSON Lines exports of its rows) is
copied from the local reports bucket to ``audit-report/``, the run's summary and the files' paths
printed.

    python -m localaws.audit [--out DIR] [--objects N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from localaws.doubles import RekognitionCustomLabels, put_legacy_unencrypted_object
from localaws.runtime import ACCOUNT_ID, LocalSystem

TRAINING_BUCKET: Final = "custom-labels-training"
TRAINER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ml/CustomLabelsTrainer"
AUDIT_FUNCTION: Final = "AuditFunction"
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
EVENTS_DIR: Final = REPO_ROOT / "events"


def seed(system: LocalSystem, objects: int) -> str:
    """What a first deployment finds; returns the managed key's ARN."""
    s3, kms, iam = system.client("s3"), system.client("kms"), system.client("iam")
    s3.create_bucket(Bucket=TRAINING_BUCKET)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "rekognition.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName="CustomLabelsTrainer", Path="/ml/", AssumeRolePolicyDocument=json.dumps(trust))
    key = kms.create_key(Tags=[{"TagKey": "custom-labels-guard", "TagValue": "managed"}])["KeyMetadata"]["Arn"]
    for index in range(objects):
        name = f"datasets/cats/images/cat-{index:05d}.jpg"
        if index % 10 == 0:
            put_legacy_unencrypted_object(s3, TRAINING_BUCKET, name, b"image")
        elif index % 10 == 1:
            s3.put_object(
                Bucket=TRAINING_BUCKET, Key=name, Body=b"image", ServerSideEncryption="aws:kms", SSEKMSKeyId=key
            )
        else:
            s3.put_object(Bucket=TRAINING_BUCKET, Key=name, Body=b"image", ServerSideEncryption="AES256")
    manifest = "datasets/cats/train.manifest"
    s3.put_object(Bucket=TRAINING_BUCKET, Key=manifest, Body=b"{}\n", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    assert system.behaviour is not None
    rekognition = system.behaviour[RekognitionCustomLabels]
    project = rekognition.create_project("cats")
    rekognition.create_project_version(
        project,
        "cats.2026-11-20",
        status="TRAINING_FAILED",
        status_message="The S3 bucket permissions are incorrect for the manifest file.",
        training_manifests=[(TRAINING_BUCKET, manifest)],
    )
    rekognition.create_project_version(project, "cats.2026-11-27")
    return str(key)


def audit(system: LocalSystem, trigger: str = "schedule (make audit)") -> dict[str, Any]:
    """One audit run on the local system, as the schedule starts it; its summary message."""
    event = json.loads((EVENTS_DIR / "scheduled_audit.json").read_text())
    invocation = system.invoke(AUDIT_FUNCTION, event, trigger=trigger)
    if invocation.error:
        raise SystemExit(f"the audit failed: {invocation.error}")
    system.drain(timeout=600)
    summaries = [m for m in system.subscriber_messages() if m.attributes.get("message_kind") == "clguard.audit-summary"]
    if not summaries:
        raise SystemExit("the audit published no summary")
    summary: dict[str, Any] = dict(summaries[-1].message)
    return summary


def download(system: LocalSystem, summary: dict[str, Any], out: Path) -> dict[str, Path]:
    """The report and its exports, copied from the local reports bucket into ``out`` under the
    names they have there (the page links the exports by those names); their local paths."""
    out.mkdir(parents=True, exist_ok=True)
    s3 = system.client("s3")
    paths = {}
    for kind, url in summary["report"].items():
        bucket, _, key = url.removeprefix("s3://").partition("/")
        target = out / key.rsplit("/", 1)[-1]
        target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        paths[kind] = target
    return paths


def run(out: Path, objects: int) -> tuple[dict[str, Any], dict[str, Path]]:
    parameters = {"TrainingBuckets": TRAINING_BUCKET, "TrainingPrincipals": TRAINER, "RemediationMode": "enforce"}
    with LocalSystem(parameters) as system:
        seed(system, objects)
        summary = audit(system)
        return summary, download(system, summary, out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "audit-report", help="where to write the report")
    parser.add_argument("--objects", type=int, default=60, help="objects in the training bucket")
    args = parser.parse_args(argv)
    summary, paths = run(args.out, args.objects)
    print(json.dumps({k: v for k, v in summary.items() if k != "report"}, indent=1))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
