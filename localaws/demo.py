"""``python -m localaws.demo`` (``make demo``): a training team's day, on this machine.

The whole system runs on a ``LocalSystem`` (moto server on loopback, the template's rules and
queues, the real handlers), deployed with TrainingBuckets=custom-labels-training,
RemediationMode=enforce and every other parameter at its default:

1. The account: the role ``role/ml/CustomLabelsTrainer`` (with its path), two customer managed
   keys with default key policies, one opted in with the ``ManagedKeyTag`` tag and one not, the
   training bucket (EventBridge notifications on) and the output bucket (default encryption
   under the managed key).
2. The dataset upload: images under the managed key, one image under the key that did not opt
   in, an unencrypted legacy image (written before 2023), and the training and test manifests.
   S3 notifies EventBridge; the template's rule routes the events to VerifyQueue; the verify
   function takes them in batches. The legacy image is re-encrypted in place; the CopyObject
   echo of that copy comes back through the same path and must find the object compliant.
3. Training: the CloudTrail ``CreateProjectVersion`` record of the trainer (the sample event
   with this scenario's key and manifests), one by a role of another account, and a
   ``DescribeProjects`` record that no rule takes. The grant function runs on what the rule
   matches.
4. Training from datasets, the flow AWS recommends: a data engineer (``role/data/DataEngineer``)
   uploads images under a third managed key, creates a Custom Labels project, a TRAIN dataset from
   a manifest and a TEST dataset from the TRAIN dataset (Rekognition API calls, answered by the
   ``RekognitionCustomLabels`` double); then the trainer, a different role, calls
   ``CreateProjectVersion`` naming no manifest. The grant function reads the project's datasets
   (``DescribeProjects``, ``ListDatasetEntries``) and grants the trainer on the images' key.
5. A burst: a few hundred legacy (unencrypted) images land in one folder at once. Every one is a
   finding on the alerts topic (the machines' channel, one message each); the digest function,
   fed by the alerts topic's SQS subscription, gives people a handful of messages.
6. A member account (``111122223333``, ``member.yaml`` deployed there): an unencrypted upload to
   its training bucket and its trainer's ``CreateProjectVersion`` reach this account's bus through
   its forwarding rules; the functions assume the member role, re-encrypt the object and grant the
   trainer on the member's key, there.
7. The report: each alert as the e-mail and the Slack message, each key policy diff, the digests
   people got, a summary, and the checks that every expected outcome happened. Exit status 0
   when they all did.
8. The operator's view, before the report: a CloudTrail trail as the prerequisites ask, then
   ``clguard doctor`` on this world and ``clguard preflight`` for the trainer's next training
   from the same manifest (the managed key ready, the key that did not opt in blocked, and why).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from localaws import REPO_ROOT
from localaws.doubles import put_legacy_unencrypted_object
from localaws.report import invocation_table, print_alerts, print_policy_change
from localaws.runtime import ACCOUNT_ID, Alert, DrainTimeout, LocalSystem, Routed

AUDIT_OUT: Final = REPO_ROOT / "audit-report" / "demo"  # gitignored

TRAINING_BUCKET: Final = "custom-labels-training"
OUTPUT_BUCKET: Final = "custom-labels-output"
MEMBER_ACCOUNT: Final = "111122223333"  # a member account this deployment serves (member.yaml deployed)
MEMBER_BUCKET: Final = "member-training-data"
MEMBER_TRAINER: Final = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/ml/CustomLabelsTrainer"
MEMBER_IMAGE: Final = "images/cat-from-the-member.jpg"
MEMBER_MANIFEST: Final = "manifests/train.manifest"
EXCEPTIONS_PARAMETER: Final = "/custom-labels-guard/exceptions"
VENDOR_ARCHIVE: Final = "vendor-archive/"
PARAMETERS: Final = {
    "TrainingBuckets": f"{TRAINING_BUCKET},{MEMBER_BUCKET}",
    "RemediationMode": "enforce",
    "SecurityHub": "on",
    "Exceptions": f"ssm:{EXCEPTIONS_PARAMETER}",
}
DEMO_EXCEPTIONS: Final = {
    "exceptions": [
        {
            "id": "vendor-archive",
            "finding_types": ["OBJECT_SSE_C"],
            "resources": [f"s3://{TRAINING_BUCKET}/{VENDOR_ARCHIVE}*"],
            "reason": "the vendor's archive, encrypted with the vendor's own keys (SSE-C), read by its pipeline",
            "owner": "ml-platform",
            "expires": "2099-12-31",
        }
    ]
}
TRAINER_NAME, TRAINER_PATH = "CustomLabelsTrainer", "/ml/"
TRAINER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ml/CustomLabelsTrainer"
PREFIX: Final = "datasets/cats/"
MANAGED_ALIAS, UNMANAGED_ALIAS = "alias/custom-labels-training", "alias/analytics-shared"
DATASETS_ALIAS: Final = "alias/custom-labels-datasets"
DATA_ENGINEER_NAME, DATA_ENGINEER_PATH = "DataEngineer", "/data/"
DATA_ENGINEER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/data/DataEngineer"
DATASETS_PROJECT: Final = "cats-datasets"
EVENTS_DIR: Final = REPO_ROOT / "events"
BURST: Final = 300  # legacy images uploaded at once (step 4)
BURST_PREFIX: Final = f"{PREFIX}burst/"
DIGEST_FUNCTION: Final = "DigestFunction"
GRANT_FUNCTION: Final = "GrantTrainingAccessFunction"
VERIFY_FUNCTION: Final = "VerifyObjectEncryptionFunction"


def load_sample(name: str) -> dict[str, Any]:
    """A sample event of ``events/`` (a fresh copy)."""
    with (EVENTS_DIR / f"{name}.json").open(encoding="utf-8") as handle:
        event: dict[str, Any] = json.load(handle)
    return event


@dataclass
class Scenario:
    """What the demo set up and did, for the report and the checks."""

    managed_key: str = ""
    unmanaged_key: str = ""
    compliant_images: list[str] = field(default_factory=list)
    wrong_key_image: str = ""
    legacy_image: str = ""
    manifests: list[str] = field(default_factory=list)
    policies_before: dict[str, dict[str, Any]] = field(default_factory=dict)
    key_names: dict[str, str] = field(default_factory=dict)
    other_caller: str = ""
    routed: list[tuple[str, Routed]] = field(default_factory=list)  # (label, routing)
    timed_out: list[str] = field(default_factory=list)
    datasets_key: str = ""
    dataset_images: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)  # TRAIN, TEST dataset ARNs
    dataset_training: Routed | None = None
    burst_alerts: list[Alert] = field(default_factory=list)  # machine messages of the burst
    burst_human: list[Alert] = field(default_factory=list)  # human messages of the burst
    member_key: str = ""
    doctor: dict[str, Any] = field(default_factory=dict)  # clguard doctor --json
    preflight: dict[str, Any] = field(default_factory=dict)  # clguard preflight --json


@dataclass(frozen=True)
class Check:
    expectation: str
    ok: bool
    detail: str


# --------------------------------------------------------------------------------------------
# The scenario
# --------------------------------------------------------------------------------------------


def _manifest(lines: Sequence[str], bucket: str = TRAINING_BUCKET) -> bytes:
    entries = []
    for key in lines:
        entries.append(
            {
                "source-ref": f"s3://{bucket}/{key}",
                "cat": 1,
                "cat-metadata": {
                    "confidence": 1,
                    "class-name": "cat",
                    "human-annotated": "yes",
                    "creation-date": "2026-11-28T19:00:00",
                    "type": "groundtruth/image-classification",
                },
            }
        )
    return "\n".join(json.dumps(e) for e in entries).encode()


def _training_call(sample: str, scenario: Scenario) -> dict[str, Any]:
    """A Rekognition CloudTrail sample with this scenario's key and manifests filled in."""
    event = load_sample(sample)
    parameters = event["detail"]["requestParameters"]
    parameters["KmsKeyId"] = scenario.managed_key
    parameters["OutputConfig"]["S3Bucket"] = OUTPUT_BUCKET
    for assets, manifest in (
        (parameters["TrainingData"]["Assets"], scenario.manifests[0]),
        (parameters["TestingData"]["Assets"], scenario.manifests[1]),
    ):
        assets[0]["GroundTruthManifest"]["S3Object"] = {"Bucket": TRAINING_BUCKET, "Name": manifest}
    return event


def _drain(system: LocalSystem, scenario: Scenario, step: str, timeout: float = 30) -> list[Any]:
    try:
        return system.drain(timeout=timeout)
    except DrainTimeout as late:
        scenario.timed_out.append(f"{step}: {late}")
        return []


def set_up_account(system: LocalSystem, scenario: Scenario, say: Callable[[str], None]) -> None:
    iam, kms, s3 = system.client("iam"), system.client("kms"), system.client("s3")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "rekognition.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName=TRAINER_NAME, Path=TRAINER_PATH, AssumeRolePolicyDocument=json.dumps(trust))
    tag_key, _, tag_value = str(system.parameters["ManagedKeyTag"]).partition("=")
    for alias, tags in (
        (MANAGED_ALIAS, [{"TagKey": tag_key, "TagValue": tag_value}]),
        (UNMANAGED_ALIAS, [{"TagKey": "team", "TagValue": "analytics"}]),
    ):
        # No Policy: KMS gives the default key policy (the account root statement).
        meta = kms.create_key(Description=f"{alias} (demo)", Tags=tags)["KeyMetadata"]
        kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        scenario.key_names[meta["Arn"]] = alias
        scenario.policies_before[meta["Arn"]] = system.key_policy(meta["Arn"])
    scenario.managed_key, scenario.unmanaged_key = list(scenario.key_names)
    for bucket in (TRAINING_BUCKET, OUTPUT_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=OUTPUT_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": scenario.managed_key,
                    }
                }
            ]
        },
    )
    system.enable_eventbridge_notifications(TRAINING_BUCKET)
    # The findings plane: Security Hub on, the accepted exceptions in SSM, the bucket's owner tag.
    system.client("securityhub").enable_security_hub()
    system.client("ssm").put_parameter(
        Name=EXCEPTIONS_PARAMETER, Value=json.dumps(DEMO_EXCEPTIONS), Type="String", Overwrite=True
    )
    s3.put_bucket_tagging(Bucket=TRAINING_BUCKET, Tagging={"TagSet": [{"Key": "owner", "Value": "vision-team"}]})
    say(
        f"role {TRAINER}; CMK {MANAGED_ALIAS} (tag {tag_key}={tag_value}), CMK {UNMANAGED_ALIAS} (not opted in); "
        f"buckets {TRAINING_BUCKET} (EventBridge notifications on) and {OUTPUT_BUCKET} "
        f"(default SSE-KMS with {MANAGED_ALIAS})"
    )


def upload_dataset(system: LocalSystem, scenario: Scenario, say: Callable[[str], None]) -> None:
    s3 = system.client("s3")
    scenario.compliant_images = [f"{PREFIX}images/cat-{n:03}.jpg" for n in range(1, 4)]
    scenario.wrong_key_image = f"{PREFIX}images/cat-004.jpg"
    scenario.legacy_image = f"{PREFIX}images/cat-2019-archive.jpg"
    scenario.manifests = [f"{PREFIX}train.manifest", f"{PREFIX}test.manifest"]
    managed = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": scenario.managed_key}
    for key in scenario.compliant_images:
        s3.put_object(Bucket=TRAINING_BUCKET, Key=key, Body=b"\xff\xd8 cat image", **managed)
    s3.put_object(
        Bucket=TRAINING_BUCKET,
        Key=scenario.wrong_key_image,
        Body=b"\xff\xd8 cat image",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=scenario.unmanaged_key,
    )
    put_legacy_unencrypted_object(s3, TRAINING_BUCKET, scenario.legacy_image, b"\xff\xd8 cat image from 2019")
    train = [*scenario.compliant_images[:2], scenario.wrong_key_image, scenario.legacy_image]
    test = [scenario.compliant_images[2]]
    for manifest, lines in zip(scenario.manifests, (train, test), strict=True):
        s3.put_object(Bucket=TRAINING_BUCKET, Key=manifest, Body=_manifest(lines), **managed)
    say(
        f"{len(scenario.compliant_images)} images under {MANAGED_ALIAS}, 1 under {UNMANAGED_ALIAS}, "
        f"1 unencrypted legacy image, 2 manifests (under {MANAGED_ALIAS})"
    )
    invocations = _drain(system, scenario, "upload")
    events = sum(len(i.events) for i in invocations)
    alerts = sum(len(i.alert_ids) for i in invocations)
    say(
        f"S3 → EventBridge → VerifyQueue: {len(invocations)} verify invocation(s), {events} event(s), {alerts} alert(s)"
    )


def train(system: LocalSystem, scenario: Scenario, say: Callable[[str], None]) -> None:
    other = _training_call("cloudtrail_create_project_version_other_account", scenario)
    scenario.other_caller = other["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
    calls = [
        (f"CreateProjectVersion by {TRAINER}", _training_call("cloudtrail_create_project_version", scenario)),
        (f"CreateProjectVersion by {scenario.other_caller}", other),
        ("DescribeProjects (not a training call)", load_sample("cloudtrail_create_project_version_other_event")),
    ]
    for label, event in calls:
        routed = system.put_event(event)
        scenario.routed.append((label, routed))
        first = len(system.invocations)
        _drain(system, scenario, label)
        mine = [i for i in system.invocations[first:] if i.function == GRANT_FUNCTION]
        if routed.rules:
            alerts = sum(len(i.alert_ids) for i in mine)
            say(f"{label} → {', '.join(routed.rules)} → {len(mine)} grant invocation(s), {alerts} alert(s)")
        else:
            say(f"{label} → no rule matched: no handler runs (as in AWS)")


def create_datasets(system: LocalSystem, scenario: Scenario, say: Callable[[str], None]) -> None:
    """The data engineer's part: images under their own managed key, a project and its datasets."""
    iam, kms, s3 = system.client("iam"), system.client("kms"), system.client("s3")
    rekognition = system.client("rekognition")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=DATA_ENGINEER_NAME, Path=DATA_ENGINEER_PATH, AssumeRolePolicyDocument=json.dumps(trust))
    tag_key, _, tag_value = str(system.parameters["ManagedKeyTag"]).partition("=")
    meta = kms.create_key(Description=f"{DATASETS_ALIAS} (demo)", Tags=[{"TagKey": tag_key, "TagValue": tag_value}])
    kms.create_alias(AliasName=DATASETS_ALIAS, TargetKeyId=meta["KeyMetadata"]["KeyId"])
    scenario.datasets_key = meta["KeyMetadata"]["Arn"]
    scenario.key_names[scenario.datasets_key] = DATASETS_ALIAS
    scenario.policies_before[scenario.datasets_key] = system.key_policy(scenario.datasets_key)
    managed = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": scenario.datasets_key}
    scenario.dataset_images = [f"datasets/cats-v2/images/cat-{n:03}.jpg" for n in range(1, 5)]
    for key in scenario.dataset_images:
        s3.put_object(Bucket=TRAINING_BUCKET, Key=key, Body=b"\xff\xd8 cat image", **managed)
    manifest = "datasets/cats-v2/source.manifest"
    s3.put_object(Bucket=TRAINING_BUCKET, Key=manifest, Body=_manifest(scenario.dataset_images), **managed)
    _drain(system, scenario, "dataset images")
    project = rekognition.create_project(ProjectName=DATASETS_PROJECT)["ProjectArn"]
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": TRAINING_BUCKET, "Name": manifest}}}
    train_arn = rekognition.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=source)["DatasetArn"]
    test_arn = rekognition.create_dataset(
        ProjectArn=project, DatasetType="TEST", DatasetSource={"DatasetArn": train_arn}
    )["DatasetArn"]
    scenario.datasets = [train_arn, test_arn]
    say(
        f"{DATA_ENGINEER}: {len(scenario.dataset_images)} images under {DATASETS_ALIAS} (opted in); "
        f"CreateProject {DATASETS_PROJECT}; CreateDataset TRAIN from a manifest and TEST from the TRAIN dataset"
    )
    entries = rekognition.list_dataset_entries(DatasetArn=train_arn)["DatasetEntries"]
    say(f"ListDatasetEntries (TRAIN): {len(entries)} JSON Lines; the trainer has no access to {DATASETS_ALIAS} yet")


def train_from_datasets(system: LocalSystem, scenario: Scenario, say: Callable[[str], None]) -> None:
    """The trainer's part: CreateProjectVersion with no TrainingData/TestingData."""
    event = load_sample("cloudtrail_create_project_version_datasets")
    parameters = event["detail"]["requestParameters"]
    project = scenario.datasets[0].split("/dataset/")[0]
    description = system.client("rekognition").describe_projects(ProjectNames=[DATASETS_PROJECT])
    parameters["ProjectArn"] = description["ProjectDescriptions"][0]["ProjectArn"]
    parameters["KmsKeyId"] = scenario.managed_key
    parameters["OutputConfig"]["S3Bucket"] = OUTPUT_BUCKET
    event["detail"]["responseElements"]["projectVersionArn"] = f"{project}/version/cats-v2/1764361200000"
    label = f"CreateProjectVersion (datasets only) by {TRAINER}"
    routed = system.put_event(event)
    scenario.routed.append((label, routed))
    scenario.dataset_training = routed
    first = len(system.invocations)
    _drain(system, scenario, label)
    mine = [i for i in system.invocations[first:] if i.function == GRANT_FUNCTION]
    summaries = [i.result for i in mine if isinstance(i.result, dict)]
    datasets = sum(int(r.get("datasets") or 0) for r in summaries)
    checked = sum(int(r.get("objects_checked") or 0) for r in summaries)
    say(
        f"{label} → {', '.join(routed.rules)} → {len(mine)} grant invocation(s): {datasets} dataset(s) read, "
        f"{checked} image(s) checked, {sum(len(i.alert_ids) for i in mine)} alert(s)"
    )


def burst(system: LocalSystem, scenario: Scenario, say: Callable[[str], None]) -> None:
    """Many same-kind findings at once: every one to the alerts topic, a handful to people."""
    s3 = system.client("s3")
    alerts_before, human_before = len(system.alerts()), len(system.human_messages())
    for n in range(BURST):
        put_legacy_unencrypted_object(s3, TRAINING_BUCKET, f"{BURST_PREFIX}cat-{n:04}.jpg", b"\xff\xd8 old cat")
    _drain(system, scenario, "burst", timeout=600)
    scenario.burst_alerts = system.alerts()[alerts_before:]
    scenario.burst_human = system.human_messages()[human_before:]
    say(
        f"{BURST} unencrypted images under {BURST_PREFIX}: {len(scenario.burst_alerts)} finding(s) on the alerts "
        f"topic (machines: one message each) → {len(scenario.burst_human)} message(s) on the human topic "
        "(people: e-mail and Slack)"
    )


def member_account(system: LocalSystem, scenario: Scenario, say: Callable[[str], None]) -> None:
    """A member account (member.yaml deployed there): its upload and its trainer's training call
    reach this deployment through its forwarding rules and are handled in the member."""
    s3, kms, iam = (system.member_client(MEMBER_ACCOUNT, s) for s in ("s3", "kms", "iam"))
    trust = {"Version": "2012-10-17", "Statement": []}
    iam.create_role(RoleName=TRAINER_NAME, Path=TRAINER_PATH, AssumeRolePolicyDocument=json.dumps(trust))
    tag_key, _, tag_value = str(system.parameters["ManagedKeyTag"]).partition("=")
    scenario.member_key = kms.create_key(Tags=[{"TagKey": tag_key, "TagValue": tag_value}])["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket=MEMBER_BUCKET)
    system.enable_eventbridge_notifications(MEMBER_BUCKET, account=MEMBER_ACCOUNT)
    put_legacy_unencrypted_object(s3, MEMBER_BUCKET, MEMBER_IMAGE, b"\xff\xd8 member cat")
    _drain(system, scenario, "member upload")
    # The member's own CloudTrail record: every account id in it is the member's (its project too).
    event = json.loads(json.dumps(load_sample("cloudtrail_create_project_version")).replace(ACCOUNT_ID, MEMBER_ACCOUNT))
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = MEMBER_TRAINER
    parameters = event["detail"]["requestParameters"]
    parameters["KmsKeyId"] = scenario.member_key
    # Trained from a manifest in the member's training bucket (the member has no datasets).
    s3.put_object(Bucket=MEMBER_BUCKET, Key=MEMBER_MANIFEST, Body=_manifest([MEMBER_IMAGE], bucket=MEMBER_BUCKET))
    parameters["TrainingData"]["Assets"][0]["GroundTruthManifest"]["S3Object"] = {
        "Bucket": MEMBER_BUCKET,
        "Name": MEMBER_MANIFEST,
    }
    parameters["TestingData"] = {"AutoCreate": True}
    parameters.pop("OutputConfig", None)
    routed = system.put_event(event, account=MEMBER_ACCOUNT)
    scenario.routed.append((f"Member {MEMBER_ACCOUNT}: CreateProjectVersion", routed))
    _drain(system, scenario, "member training call")
    say(
        f"account {MEMBER_ACCOUNT}: an unencrypted upload to {MEMBER_BUCKET} and a CreateProjectVersion "
        f"by {MEMBER_TRAINER}, forwarded to this account's bus ({', '.join(routed.rules)}); the functions "
        "assumed the member role and acted there"
    )


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _operator_environment(values: Mapping[str, str]) -> Any:
    """The guard's settings as the operator's shell would have them (then restored)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _clguard(*args: str) -> tuple[int, dict[str, Any]]:
    from clguard.cli.main import main as clguard_main  # noqa: PLC0415 - the operator's command, as a shell runs it

    out = io.StringIO()
    status = clguard_main([*args, "--json"], stdout=out, stderr=io.StringIO())
    return status, json.loads(out.getvalue())


def operator_view(system: LocalSystem, scenario: Scenario, say: Callable[[str], None], console: Console) -> None:
    from clguard.cli import render  # noqa: PLC0415 - rich output of the operator's command

    s3, cloudtrail = system.client("s3"), system.client("cloudtrail")
    trail_bucket = "custom-labels-trail-logs"
    s3.create_bucket(Bucket=trail_bucket)
    cloudtrail.create_trail(Name="management-events", S3BucketName=trail_bucket, IsMultiRegionTrail=True)
    cloudtrail.start_logging(Name="management-events")
    say("a multi-region CloudTrail trail of management events, as the README's prerequisites ask")
    environment = {
        **system.function_environment(GRANT_FUNCTION),
        "HUMAN_TOPIC_ARN": system.human_topic_arns()[0],
    }
    manifest = f"s3://{TRAINING_BUCKET}/{scenario.manifests[0]}"
    project = f"arn:aws:rekognition:{system.region}:{ACCOUNT_ID}:project/cats/1764360000000"
    with _operator_environment(environment):
        say("$ clguard doctor")
        status, scenario.doctor = _clguard("doctor")
        render.show("doctor", scenario.doctor, console.file)
        say(f"(exit status {status})")
        say(f"$ clguard preflight --role {TRAINER} --project-arn {project} --training-manifest {manifest}")
        status, scenario.preflight = _clguard(
            "preflight", "--role", TRAINER, "--project-arn", project, "--training-manifest", manifest
        )
        render.show("preflight", scenario.preflight, console.file)
        say(f"(exit status {status}: {'a key is blocked' if status == 2 else 'see above'})")


def _allows(policy: dict[str, Any], principal: str, action: str, *, condition_key: str | None = None) -> bool:
    for statement in policy.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        aws = (statement.get("Principal") or {}).get("AWS", []) if isinstance(statement.get("Principal"), dict) else []
        principals = [aws] if isinstance(aws, str) else aws
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        conditioned = condition_key is None or condition_key in json.dumps(statement.get("Condition", {}))
        if principal in principals and action in actions and conditioned:
            return True
    return False


def _mentions(policy: dict[str, Any], principal: str) -> bool:
    return principal in json.dumps(policy)


def _findings(alerts: Sequence[Alert], finding_type: str, **match: Any) -> list[dict[str, Any]]:
    found = []
    for alert in alerts:
        finding = alert.finding
        if finding.get("finding_type") != finding_type:
            continue
        if all(_field(finding, name) == value for name, value in match.items()):
            found.append(finding)
    return found


def _field(finding: dict[str, Any], name: str) -> Any:
    if name in ("key", "bucket"):
        return (finding.get("resource") or {}).get(name)
    return finding.get(name)


def _verify_events_for(system: LocalSystem, key: str) -> int:
    count = 0
    for invocation in system.invocations:
        if invocation.function != VERIFY_FUNCTION:
            continue
        for event in invocation.events:
            if isinstance(event, dict) and (event.get("detail", {}).get("object") or {}).get("key") == key:
                count += 1
    return count


def _grant_event_ids(system: LocalSystem) -> Counter[str]:
    return Counter(
        str(i.payload.get("id")) for i in system.invocations if i.function == GRANT_FUNCTION and i.attempt == 1
    )


# --- the checks: one small named check per expected outcome, in the order the report lists them ---
#
#   _legacy_image_encrypted          the unencrypted legacy image is SSE-S3 now
#   _legacy_image_reported_once      exactly one OBJECT_UNENCRYPTED finding (REMEDIATED) for it
#   _copy_echo_quiet                 its CopyObject echo came back and raised no second finding
#   _compliant_uploads_quiet         the compliant uploads raised no alert
#   _trainer_granted                 the trainer is in the managed key's policy, with training's actions
#   _grant_reported                  that grant was reported (KEY_ACCESS_MISSING, REMEDIATED)
#   _unmanaged_key_refused           KEY_NOT_MANAGED (REFUSED), the key's policy unchanged
#   _other_account_refused           PRINCIPAL_NOT_ALLOWED (REFUSED), the role in no key policy
#   _datasets_key_granted            training from datasets: the trainer can use the images' key
#   _datasets_grant_reported         that grant was reported; the data engineer was granted nothing
#   _member_account_handled          the member's upload re-encrypted, its trainer granted, there
#   _training_calls_routed           each CreateProjectVersion reached the grant function once
#   _describe_projects_unrouted      DescribeProjects matched no rule and reached no handler
#   _nothing_failed                  no DLQ, no function error, no failed record
#   _burst_digested                  the burst: every finding for machines, a handful for people
#   _alerts_delivered                every alert reached the topic's subscriber
#   _doctor_passes                   clguard doctor: no check fails (when it ran)
#   _preflight_verdicts              clguard preflight: ready on the managed key, blocked on the other


@dataclass(frozen=True)
class _Outcome:
    """What the checks look at: the system after the scenario, what it set up, what was published."""

    system: LocalSystem
    scenario: Scenario
    alerts: list[Alert]
    subscriber_subjects: list[str | None]


def _legacy_image_encrypted(seen: _Outcome) -> Check:
    head = seen.system.client("s3").head_object(Bucket=TRAINING_BUCKET, Key=seen.scenario.legacy_image)
    return Check(
        "the unencrypted legacy image is SSE-S3 now",
        head.get("ServerSideEncryption") == "AES256",
        f"ServerSideEncryption = {head.get('ServerSideEncryption')}",
    )


def _legacy_image_reported_once(seen: _Outcome) -> Check:
    unencrypted = _findings(seen.alerts, "OBJECT_UNENCRYPTED", key=seen.scenario.legacy_image)
    return Check(
        "exactly one OBJECT_UNENCRYPTED finding (REMEDIATED) for it",
        [f["outcome"] for f in unencrypted] == ["REMEDIATED"],
        f"{len(unencrypted)} finding(s): {[f['outcome'] for f in unencrypted]}",
    )


def _copy_echo_quiet(seen: _Outcome) -> Check:
    unencrypted = _findings(seen.alerts, "OBJECT_UNENCRYPTED", key=seen.scenario.legacy_image)
    deliveries = _verify_events_for(seen.system, seen.scenario.legacy_image)
    return Check(
        "its CopyObject echo came back through the rule and raised no second finding",
        deliveries >= 2 and len(unencrypted) == 1,
        f"{deliveries} Object Created event(s) for the key reached the verify function",
    )


def _compliant_uploads_quiet(seen: _Outcome) -> Check:
    images = seen.scenario.compliant_images
    compliant = [a for a in seen.alerts if (a.finding.get("resource") or {}).get("key") in images]
    return Check(
        "the compliant uploads raised no alert",
        not compliant and all(_verify_events_for(seen.system, k) >= 1 for k in images),
        f"{len(compliant)} alert(s) about them",
    )


def _trainer_granted(seen: _Outcome) -> Check:
    managed_after = seen.system.key_policy(seen.scenario.managed_key)
    needed = {
        "kms:Decrypt": None,
        "kms:GenerateDataKey": None,
        "kms:DescribeKey": None,
        "kms:CreateGrant": "kms:GrantIsForAWSResource",
    }
    missing = [a for a, c in needed.items() if not _allows(managed_after, TRAINER, a, condition_key=c)]
    return Check(
        f"the training role is in {MANAGED_ALIAS}'s policy with the actions training needs",
        not missing,
        "missing: " + ", ".join(missing) if missing else ", ".join(needed) + " (CreateGrant for AWS resources only)",
    )


def _grant_reported(seen: _Outcome) -> Check:
    granted = _findings(seen.alerts, "KEY_ACCESS_MISSING", kms_key_arn=seen.scenario.managed_key, principal_arn=TRAINER)
    return Check(
        "the grant was reported (KEY_ACCESS_MISSING, REMEDIATED)",
        bool(granted) and all(f["outcome"] == "REMEDIATED" for f in granted),
        f"{len(granted)} finding(s)",
    )


def _unmanaged_key_refused(seen: _Outcome) -> Check:
    scenario = seen.scenario
    not_managed = _findings(seen.alerts, "KEY_NOT_MANAGED", kms_key_arn=scenario.unmanaged_key)
    unchanged = seen.system.key_policy(scenario.unmanaged_key) == scenario.policies_before[scenario.unmanaged_key]
    return Check(
        f"KEY_NOT_MANAGED (REFUSED) for {UNMANAGED_ALIAS}, and its policy is unchanged",
        bool(not_managed) and all(f["outcome"] == "REFUSED" for f in not_managed) and unchanged,
        f"{len(not_managed)} finding(s); policy {'unchanged' if unchanged else 'CHANGED'}",
    )


def _other_account_refused(seen: _Outcome) -> Check:
    scenario = seen.scenario
    refused = _findings(seen.alerts, "PRINCIPAL_NOT_ALLOWED", principal_arn=scenario.other_caller)
    in_policies = [
        scenario.key_names[k] for k in scenario.key_names if _mentions(seen.system.key_policy(k), scenario.other_caller)
    ]
    return Check(
        "PRINCIPAL_NOT_ALLOWED (REFUSED) for the other account's role, which is in no key policy",
        len(refused) == 1 and refused[0]["outcome"] == "REFUSED" and not in_policies,
        f"{len(refused)} finding(s); in policies: {in_policies or 'none'}",
    )


def _datasets_key_granted(seen: _Outcome) -> Check:
    datasets_after = seen.system.key_policy(seen.scenario.datasets_key)
    can_train = all(_allows(datasets_after, TRAINER, a) for a in ("kms:Decrypt", "kms:GenerateDataKey"))
    return Check(
        f"training from datasets: the trainer can decrypt the dataset images' key ({DATASETS_ALIAS})",
        can_train,
        "kms:Decrypt, kms:GenerateDataKey" if can_train else "missing",
    )


def _datasets_grant_reported(seen: _Outcome) -> Check:
    key = seen.scenario.datasets_key
    datasets_after = seen.system.key_policy(key)
    dataset_grants = _findings(seen.alerts, "KEY_ACCESS_MISSING", kms_key_arn=key, principal_arn=TRAINER)
    return Check(
        "that grant was reported (KEY_ACCESS_MISSING, REMEDIATED), and the data engineer was granted nothing",
        [f["outcome"] for f in dataset_grants] == ["REMEDIATED"] and not _mentions(datasets_after, DATA_ENGINEER),
        f"{len(dataset_grants)} finding(s); data engineer in the policy: {_mentions(datasets_after, DATA_ENGINEER)}",
    )


def _member_account_handled(seen: _Outcome) -> Check:
    system, scenario = seen.system, seen.scenario
    member_head = system.member_client(MEMBER_ACCOUNT, "s3").head_object(Bucket=MEMBER_BUCKET, Key=MEMBER_IMAGE)
    member_policy = json.loads(
        system.member_client(MEMBER_ACCOUNT, "kms").get_key_policy(KeyId=scenario.member_key, PolicyName="default")[
            "Policy"
        ]
    )
    member_findings = [a.finding for a in seen.alerts if a.finding.get("account") == MEMBER_ACCOUNT]
    member_calls = [r for label, r in scenario.routed if label.startswith("Member")]
    return Check(
        "the member account's upload was re-encrypted in the member, its trainer granted on the member's key",
        member_head.get("ServerSideEncryption") == "AES256"
        and _allows(member_policy, MEMBER_TRAINER, "kms:Decrypt")
        and all("TrainingCallRule" in r.rules for r in member_calls),
        f"{member_head.get('ServerSideEncryption')}; {len(member_findings)} finding(s) carry the member's account; "
        + ", ".join(f"{r.rules}" for r in member_calls),
    )


def _training_calls_routed(seen: _Outcome) -> Check:
    grants = _grant_event_ids(seen.system)
    training_calls = [r for label, r in seen.scenario.routed if label.startswith("CreateProjectVersion")]
    return Check(
        "each CreateProjectVersion record matched TrainingCallRule and reached the grant function once",
        all(r.rules == ["TrainingCallRule"] and grants[r.event_id] == 1 for r in training_calls),
        ", ".join(f"{r.rules} → {grants[r.event_id]} invocation(s)" for r in training_calls),
    )


def _describe_projects_unrouted(seen: _Outcome) -> Check:
    grants = _grant_event_ids(seen.system)
    unrouted = [r for label, r in seen.scenario.routed if label.startswith("DescribeProjects")]
    return Check(
        "DescribeProjects matched no rule and reached no handler",
        all(not r.rules and grants[r.event_id] == 0 for r in unrouted),
        ", ".join(f"rules {r.rules}, {grants[r.event_id]} invocation(s)" for r in unrouted),
    )


def _nothing_failed(seen: _Outcome) -> Check:
    dead = seen.system.dead_letters()
    errors = [i for i in seen.system.invocations if not i.ok]
    timed_out = seen.scenario.timed_out
    return Check(
        "no record ended in a DLQ, no function error, no failed record",
        not any(dead.values()) and not errors and not timed_out,
        f"DLQs {dead}; {len(errors)} failed invocation(s)" + (f"; {timed_out}" if timed_out else ""),
    )


def _burst_digested(seen: _Outcome) -> Check:
    scenario = seen.scenario
    counted = sum(int(m.finding.get("count", 1)) for m in scenario.burst_human)
    return Check(
        f"the burst: {BURST} findings for machines, at most 5 messages for people, counting them all",
        len(scenario.burst_alerts) == BURST and 1 <= len(scenario.burst_human) <= 5 and counted == BURST,
        f"{len(scenario.burst_alerts)} on the alerts topic, {len(scenario.burst_human)} on the human topic "
        f"counting {counted}",
    )


def _alerts_delivered(seen: _Outcome) -> Check:
    subjects = [a.subject for a in seen.alerts]
    received = seen.subscriber_subjects
    return Check(
        "every alert reached the topic's subscriber",
        sorted(map(str, received)) == sorted(map(str, subjects)) and bool(subjects),
        f"{len(received)} received of {len(subjects)} published",
    )


def _doctor_passes(seen: _Outcome) -> Check | None:
    """What the operator's commands said about the demo world (step 8): the doctor, when it ran."""
    if not seen.scenario.doctor:
        return None
    failed = [c["title"] for c in seen.scenario.doctor["checks"] if c["status"] == "fail"]
    return Check("clguard doctor: no check fails on the demo world", not failed, "; ".join(failed) or "all pass")


def _preflight_verdicts(seen: _Outcome) -> Check | None:
    """... and preflight, when it ran."""
    scenario = seen.scenario
    if not scenario.preflight:
        return None
    verdicts = {e["key_arn"]: (e["verdict"], e["reason"] or "") for e in scenario.preflight["keys"]}
    managed = verdicts.get(scenario.managed_key, ("absent", ""))
    unmanaged = verdicts.get(scenario.unmanaged_key, ("absent", ""))
    return Check(
        "clguard preflight: the trainer is ready on the managed key, blocked on the key that did not opt in",
        managed[0] == "ready" and unmanaged[0] == "blocked" and "opt-in tag" in unmanaged[1],
        f"{MANAGED_ALIAS}: {managed[0]}; {UNMANAGED_ALIAS}: {unmanaged[0]} ({unmanaged[1]})",
    )


CHECKS: Final[tuple[Callable[[_Outcome], Check | None], ...]] = (
    _legacy_image_encrypted,
    _legacy_image_reported_once,
    _copy_echo_quiet,
    _compliant_uploads_quiet,
    _trainer_granted,
    _grant_reported,
    _unmanaged_key_refused,
    _other_account_refused,
    _datasets_key_granted,
    _datasets_grant_reported,
    _member_account_handled,
    _training_calls_routed,
    _describe_projects_unrouted,
    _nothing_failed,
    _burst_digested,
    _alerts_delivered,
    _doctor_passes,
    _preflight_verdicts,
)


def run_checks(system: LocalSystem, scenario: Scenario, subscriber_subjects: list[str | None]) -> list[Check]:
    """Every check of CHECKS on what the scenario left (a check that does not apply says nothing)."""
    seen = _Outcome(system, scenario, system.alerts(), subscriber_subjects)
    return [result for check in CHECKS if (result := check(seen)) is not None]


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def summary_table(system: LocalSystem, scenario: Scenario) -> Table:
    alerts = system.alerts()
    metrics = system.metric_totals()
    by_type = Counter(a.finding.get("finding_type") for a in alerts)
    outcomes = Counter(a.finding.get("outcome") for a in alerts)
    table = Table(title="Summary", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("from")
    verify = [i for i in system.invocations if i.function == VERIFY_FUNCTION]
    grant = [i for i in system.invocations if i.function == GRANT_FUNCTION]
    table.add_row("verify invocations (events)", f"{len(verify)} ({sum(len(i.events) for i in verify)})", "invocations")
    table.add_row("grant invocations", str(len(grant)), "invocations")
    table.add_row("events no rule matched", str(sum(1 for _, r in scenario.routed if not r.rules)), "EventBridge")
    table.add_row("objects checked", str(metrics["ObjectsChecked"]), "EMF metric ObjectsChecked")
    for finding_type, count in sorted(by_type.items()):
        table.add_row(f"  {finding_type}", str(count), "findings")
    table.add_row("violations (findings)", str(len(alerts)), "findings")
    table.add_row("remediations (REMEDIATED)", str(outcomes["REMEDIATED"]), "findings")
    table.add_row("  objects re-encrypted", str(metrics["Remediations"]), "EMF metric Remediations")
    table.add_row("  key policy grants", str(metrics["Grants"]), "EMF metric Grants")
    table.add_row("refusals (REFUSED)", str(outcomes["REFUSED"]), "findings")
    table.add_row("records in DLQs", str(sum(system.dead_letters().values())), "VerifyDLQ, GrantDLQ, DigestDLQ")
    table.add_row("messages for machines (alerts topic)", str(len(alerts)), "one per finding")
    table.add_row("messages for people (human topic)", str(len(system.human_messages())), "digest function")
    table.add_row(
        f"  of them for the {BURST}-image burst",
        f"{len(scenario.burst_human)} (for {len(scenario.burst_alerts)} findings)",
        "digests",
    )
    return table


def _trimmed(message: Alert, lines: int = 30) -> Alert:
    """A digest as people get it, its e-mail cut after ``lines`` lines for the terminal."""
    text = message.email.splitlines()
    if len(text) <= lines:
        return message
    rest = f"… ({len(text) - lines} more lines in the e-mail)"
    return replace(message, email="\n".join([*text[:lines], rest]))


def print_routing(console: Console, system: LocalSystem) -> None:
    for rule, targets in system.rule_targets.items():
        console.print(Text(f"        {rule} → {', '.join(targets)}"))


def accepted_exception(system: LocalSystem, scenario: Scenario, say: Callable[[str], None]) -> None:
    """One SSE-C object in the vendor's archive, which an accepted exception covers."""
    key = f"{VENDOR_ARCHIVE}2018/cat-0001.jpg"
    system.client("s3").put_object(
        Bucket=TRAINING_BUCKET,
        Key=key,
        Body=b"\xff\xd8 vendor cat",
        SSECustomerAlgorithm="AES256",
        SSECustomerKey="v" * 32,
    )
    _drain(system, scenario, "accepted exception")
    say(
        f"exception vendor-archive (SSM {EXCEPTIONS_PARAMETER}) covers s3://{TRAINING_BUCKET}/{VENDOR_ARCHIVE}*; "
        f"an SSE-C object there is still an OBJECT_SSE_C finding on the alerts topic (suppressed=true), "
        f"counted by the digest, and SUPPRESSED in Security Hub"
    )


def security_hub_findings(system: LocalSystem) -> list[dict[str, Any]]:
    hub = system.client("securityhub")
    findings: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = hub.get_findings(MaxResults=100, **({"NextToken": token} if token else {}))
        findings.extend(page.get("Findings", []))
        token = page.get("NextToken")
        if not token:
            return findings


def print_security_hub(console: Console, system: LocalSystem) -> None:
    findings = security_hub_findings(system)
    ours = [f for f in findings if str(f.get("GeneratorId", "")).startswith("custom-labels-guard/")]
    console.print(Rule(f"Security Hub ({len(ours)} findings of the guard; one per condition and resource)"))
    table = Table(title_justify="left")
    for column in ("title", "severity", "workflow", "record state"):
        table.add_column(column, overflow="fold")
    burst = [f for f in ours if BURST_PREFIX in str(f["Resources"][0]["Id"])]
    for f in [f for f in ours if f not in burst][:25]:
        table.add_row(Text(str(f["Title"])), f["Severity"]["Label"], f["Workflow"]["Status"], str(f["RecordState"]))
    console.print(table)
    if burst:
        console.print(
            Text(f"(and {len(burst)} of the burst: {burst[0]['Workflow']['Status']}, {burst[0]['RecordState']})")
        )
    muted = [f for f in ours if f["Workflow"]["Status"] == "SUPPRESSED"]
    for f in muted[:1]:
        console.print(
            Text.assemble(("Muted: ", "bold"), str(f["Title"]), "\n  ", str(f.get("Note", {}).get("Text", "")))
        )


def report(console: Console, system: LocalSystem, scenario: Scenario, checks: list[Check], elapsed: float) -> None:
    console.print(Rule("Handler invocations"))
    console.print(invocation_table(system.invocations))
    alerts = system.alerts()
    shown = [a for a in alerts if a not in scenario.burst_alerts]
    console.print(
        Rule(
            f"Alerts ({len(alerts)}; the {len(scenario.burst_alerts)} of the burst not shown one by one): each finding"
        )
    )
    print_alerts(console, shown)
    human = system.human_messages()
    console.print(Rule(f"What people got ({len(human)} messages on the human topic, for {len(alerts)} findings)"))
    digests = [m for m in human if m.finding.get("message_kind") == "clguard.digest"][:1]
    print_alerts(console, [_trimmed(m) for m in digests])
    print_security_hub(console, system)
    console.print(Rule("Key policies"))
    for key_arn, before in scenario.policies_before.items():
        print_policy_change(console, scenario.key_names[key_arn], before, system.key_policy(key_arn))
    console.print(Rule("Summary"))
    console.print(summary_table(system, scenario))
    table = Table(title="Expected outcomes", title_justify="left")
    table.add_column("")
    table.add_column("expectation")
    table.add_column("observed")
    for c in checks:
        table.add_row(Text("✓", style="green") if c.ok else Text("✗", style="bold red"), c.expectation, c.detail)
    console.print(table)
    failed = [c for c in checks if not c.ok]
    if failed:
        console.print(Text(f"{len(failed)} expected outcome(s) did not happen:", style="bold red"))
        for c in failed:
            console.print(Text(f"  ✗ {c.expectation}: {c.detail}", style="red"))
    else:
        console.print(Text(f"All {len(checks)} expected outcomes happened ({elapsed:.1f} s).", style="bold green"))


def run(console: Console, parameters: Mapping[str, str] = PARAMETERS) -> tuple[list[Check], float]:
    """Run the scenario on a LocalSystem deployed with ``parameters``; report; return the checks."""
    started = time.monotonic()
    scenario = Scenario()
    step = 0

    def header(text: str) -> None:
        nonlocal step
        step += 1
        console.print(Text.assemble((f"[{step}/8] ", "bold cyan"), (text, "bold")))

    def say(text: str) -> None:
        console.print(Text(textwrap.fill(text, width=console.width, initial_indent=" " * 6, subsequent_indent=" " * 6)))

    header("Local AWS: a moto server on loopback, template.yaml deployed on it")
    with LocalSystem(parameters, members={MEMBER_ACCOUNT: [MEMBER_BUCKET]}) as system:
        say(f"{system.endpoint_url}; parameters: " + ", ".join(f"{k}={v}" for k, v in parameters.items()))
        say("EventBridge rules from template.yaml (default bus):")
        print_routing(console, system)
        header("The account: a training role, two customer managed keys, the buckets")
        set_up_account(system, scenario, say)
        header("The dataset upload (S3 → EventBridge → VerifyQueue → verify function)")
        upload_dataset(system, scenario, say)
        header("Training calls recorded by CloudTrail (→ EventBridge → grant function)")
        train(system, scenario, say)
        header("Training from the project's datasets: a data engineer creates them, the trainer trains")
        create_datasets(system, scenario, say)
        train_from_datasets(system, scenario, say)
        header("A burst: alerts topic → DigestQueue → digest function → human topic")
        burst(system, scenario, say)
        header(f"A member account ({MEMBER_ACCOUNT}): its events handled there, through its role")
        member_account(system, scenario, say)
        header("The operator's view: clguard doctor, then clguard preflight for the next training")
        operator_view(system, scenario, say, console)
        subscriber = [m.subject for m in system.subscriber_messages()]
        checks = run_checks(system, scenario, subscriber)
        header("Findings where security teams work: Security Hub, and an accepted exception")
        accepted_exception(system, scenario, say)
        elapsed = time.monotonic() - started
        report(console, system, scenario, checks, elapsed)
    header("The audit of a first deployment (make audit's world): its report and the exports of its rows")
    checks.append(audit_report(say))
    return checks, elapsed


def audit_report(say: Callable[[str], None]) -> Check:
    """The audit on its own local system (what a first deployment finds: legacy unencrypted
    objects, a key the trainer cannot use, a training failed for access), as the schedule runs it;
    its report and exports copied to AUDIT_OUT, their paths printed."""
    from localaws import audit  # noqa: PLC0415

    _, paths = audit.run(AUDIT_OUT, objects=40)
    for kind, path in paths.items():
        say(f"{kind}: {path}")
    expected = {"html", "json", "csv", "jsonl"}
    ok = set(paths) == expected and all(p.exists() for p in paths.values())
    if not ok:
        say(f"✗ the audit's report is incomplete: {sorted(paths)}")
    return Check(
        "the audit wrote its report and the CSV and JSON Lines exports of its rows", ok, ", ".join(sorted(paths))
    )


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localaws.demo",
        description="Run Custom Labels Guard on a local moto server and report what happened.",
    )
    parser.parse_args(argv)
    console = console or Console(width=None if sys.stdout.isatty() else 110)
    try:
        checks, _ = run(console)
    except KeyboardInterrupt:
        console.print(Text("interrupted: the local server was stopped", style="yellow"))
        return 130
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
