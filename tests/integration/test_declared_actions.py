"""Each function calls only the AWS operations it declares.

Three lists are kept by hand: the calls in the code, the declarations (each adapter's
``IAM_ACTIONS`` and ``clguard.permissions.OPERATIONS``, per function), and template.yaml
(``tests/infrastructure/test_template_iam.py`` checks the template grants exactly what is declared).
These tests close the loop: they run each function through scenarios that exercise its AWS calls
(remediation by copy, multipart copy and in-place update, a key grant, the findings outbox, a
member account, a fan-out, dataset reads, an audit run with its continuation, a digest), record
every call the code makes (``tests.awscalls.CallLog``: (service, operation)), and require each one
declared for the function whose invocation made it. Lambda's own polling of the verify queue (the
event source, ``permissions.EVENT_SOURCE``) is declared but never called by the code.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from clguard import permissions
from clguard.adapters import s3, sns
from clguard.usecases import training
from functions.audit import app as audit_app
from functions.digest import app as digest_app
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from localaws.doubles import RekognitionCustomLabels, dataset_entry
from tests.auditrun import REPORTS, scheduled_event, summaries
from tests.awscalls import Boundary
from tests.eventsamples import load_event, load_sqs_event, sqs_event
from tests.infrastructure.cfn_template import function_policy_actions, load_template
from tests.world import ACCOUNT, BUCKET, OUTPUT_BUCKET, LambdaContext, World, member_world

VERIFY, GRANT, AUDIT = "verify_object_encryption", "grant_training_access", "audit"
KEY = "datasets/cats/images/cat-001.jpg"  # the key of events/s3_object_created.json
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"  # the caller of the training samples
Call = tuple[str, str]  # (botocore service name, operation name)


def declared(function: str) -> set[Call]:
    """What ``function`` may call: its declared operations, the event source's polling, and the
    reads a member makes about itself through its role (granted by member.yaml)."""
    operations = {(service, op) for service, ops in permissions.OPERATIONS[function].items() for op in ops}
    if function in permissions.MEMBER_READERS:
        operations |= {(service, op) for service, ops in permissions.MEMBER_READS.items() for op in ops}
    polling = {(service, name) for service, _, name in (a.partition(":") for a in permissions.EVENT_SOURCE[function])}
    return operations | polling


@dataclass
class Recorder:
    """The code's AWS calls (the call log), attributed to the function whose invocation made them."""

    calls: Boundary
    made: dict[str, set[Call]] = field(default_factory=lambda: defaultdict(set))

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        start = len(self.calls.log.calls)
        try:
            yield
        finally:
            self.made[function].update(self.calls.log.calls[start:])

    def verify(self, *bodies: object) -> dict[str, Any]:
        with self.running(VERIFY):
            response: dict[str, Any] = verify_app.lambda_handler(sqs_event(*bodies), LambdaContext())  # type: ignore[arg-type]
        return response

    def grant(self, event: dict[str, Any]) -> dict[str, Any]:
        with self.running(GRANT):
            summary: dict[str, Any] = grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
        return summary

    def audit(self, event: dict[str, Any]) -> dict[str, Any]:
        with self.running(AUDIT):
            summary: dict[str, Any] = audit_app.lambda_handler(event, LambdaContext(function_name="audit"))
        return summary

    def drain_to_verify(self, world: World) -> None:
        """The verify function on every message queued (fan-out, outbox, audit), until empty."""
        while bodies := [m["Body"] for m in world.drain_queue()]:
            assert self.verify(*bodies) == {"batchItemFailures": []}

    def undeclared(self) -> dict[str, set[Call]]:
        return {
            function: made - declared(function) for function, made in self.made.items() if made - declared(function)
        }


@pytest.fixture
def recorder(calls: Boundary) -> Recorder:
    return Recorder(calls)


# --- scenarios: each sets up a world, runs one or more functions, and says what it exercised -----


def remediation_copy(world: World, recorder: Recorder, _: pytest.MonkeyPatch) -> set[Call]:
    world.put_legacy(KEY)
    world.s3.put_object_tagging(Bucket=BUCKET, Key=KEY, Tagging={"TagSet": [{"Key": "label", "Value": "cat"}]})
    assert recorder.verify(load_event("s3_object_created")) == {"batchItemFailures": []}
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    return {("s3", "HeadObject"), ("s3", "CopyObject"), ("dynamodb", "PutItem"), ("sns", "PublishBatch")}


def multipart_copy(world: World, recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> set[Call]:
    # an 11 MiB object above a 1 MiB copy limit, in 5 MiB parts
    world.put_legacy(KEY, bytes(range(256)) * (11 * 4096))
    monkeypatch.setattr(s3, "MIN_PART", 5 * 1024 * 1024)
    monkeypatch.setattr(s3, "copy_in_place", functools.partial(s3.copy_in_place, copy_limit=1024 * 1024))
    assert recorder.verify(load_event("s3_object_created")) == {"batchItemFailures": []}
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    return {("s3", "CreateMultipartUpload"), ("s3", "UploadPartCopy"), ("s3", "CompleteMultipartUpload")}


def update_in_place(world: World, recorder: Recorder, _: pytest.MonkeyPatch) -> set[Call]:
    target = world.key()
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=target)
    world.put(KEY, ServerSideEncryption="AES256")
    assert recorder.verify(load_event("s3_object_created")) == {"batchItemFailures": []}
    assert world.head(KEY)["SSEKMSKeyId"] == target
    return {("s3", "UpdateObjectEncryption"), ("kms", "DescribeKey")}


def key_grant(world: World, recorder: Recorder, _: pytest.MonkeyPatch) -> set[Call]:
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    assert recorder.verify(load_event("s3_object_created")) == {"batchItemFailures": []}
    assert world.statement(key, "CustomLabelsGuardTrainingData") is not None
    return {("kms", "ListResourceTags"), ("kms", "GetKeyPolicy"), ("kms", "PutKeyPolicy"), ("dynamodb", "DeleteItem")}


def findings_outbox(world: World, recorder: Recorder, _: pytest.MonkeyPatch) -> set[Call]:
    # SNS refuses once: the finding goes to the outbox, and the verify function publishes it from there
    world.put_legacy(KEY)
    recorder.calls.faults.add("PublishBatch", "InternalError", status=500, times=1)
    assert recorder.verify(load_event("s3_object_created")) == {"batchItemFailures": []}
    recorder.drain_to_verify(world)
    assert [f["finding_type"] for f in world.findings()] == ["OBJECT_UNENCRYPTED"]
    return {("sqs", "SendMessage"), ("sns", "Publish")}


def member_account(world: World, recorder: Recorder, _: pytest.MonkeyPatch) -> set[Call]:
    # an unencrypted object in a member account's bucket: the central verify function acts
    # there through the member role
    member, bucket = "111122223333", "member-training-data"
    world.monkeypatch.delenv("MOTO_ACCOUNT_ID")  # moto takes the account from the credentials
    side = member_world(member)
    side.role("CustomLabelsGuardMember")
    side.s3.create_bucket(Bucket=bucket)
    side.put_legacy("images/a.jpg", bucket=bucket)
    world.env_set(MEMBER_ACCOUNTS=member, TRAINING_BUCKETS=f"{BUCKET},{bucket}")
    event = world.object_created("images/a.jpg", bucket=bucket)
    event["account"] = member
    assert recorder.verify(event) == {"batchItemFailures": []}
    assert side.head("images/a.jpg", bucket=bucket)["ServerSideEncryption"] == "AES256"
    return {("sts", "AssumeRole"), ("s3", "CopyObject"), ("ssm", "GetParameter")}


def manifests_and_fanout(world: World, recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> set[Call]:
    # a training from two manifests with more images than the inline limit, an output bucket
    # under its own key; the images' checks fan out to the verify queue
    monkeypatch.setattr(training, "INLINE_IMAGE_LIMIT", 1)
    world.role("CustomLabelsTrainer", "/ml/")
    data_key, copy_key, output_key = world.key(), world.key(), world.key()
    images = [f"datasets/cats/images/cat-{n:03}.jpg" for n in range(3)]
    for image in images:
        world.put(image, ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key)
    lines = "\n".join(json.dumps({"source-ref": f"s3://{BUCKET}/{image}"}) for image in images).encode()
    for manifest in ("datasets/cats/train.manifest", "datasets/cats/test.manifest"):
        world.put(manifest, lines, ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key)
    world.s3.put_bucket_encryption(
        Bucket=OUTPUT_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": output_key}}]
        },
    )
    summary = recorder.grant(world.training_event(kms_key=copy_key))
    assert summary["fanout_messages"] >= 1
    recorder.drain_to_verify(world)
    assert world.statement(data_key, "CustomLabelsGuardTrainingData") is not None
    return {("s3", "GetObject"), ("s3", "GetBucketEncryption"), ("sqs", "SendMessage"), ("kms", "PutKeyPolicy")}


def dataset_reads(world: World, recorder: Recorder, _: pytest.MonkeyPatch) -> set[Call]:
    # a training from the project's own datasets (no manifests in the call)
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    images = [f"datasets/cats/images/cat-{n:03}.jpg" for n in range(3)]
    for image in images:
        world.put(image, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    rekognition = world.behaviour[RekognitionCustomLabels]
    project = rekognition.create_project("cats")
    for kind in ("TRAIN", "TEST"):
        rekognition.create_dataset(project, kind, [dataset_entry(BUCKET, image) for image in images])
    event = world.training_event("cloudtrail_create_project_version_datasets")
    event["detail"]["requestParameters"]["ProjectArn"] = project
    event["detail"]["requestParameters"].pop("KmsKeyId", None)  # the sample's key is not in this world
    assert recorder.grant(event)["datasets"] == 2
    return {("rekognition", "DescribeProjects"), ("rekognition", "ListDatasetEntries")}


def audit_run(world: World, recorder: Recorder, _: pytest.MonkeyPatch) -> set[Call]:
    # existing objects (one unencrypted, one under a key the trainer lacks), a training that
    # failed for access; the first listing is throttled, so the audit continues itself through
    # Lambda (answered here as Lambda accepts an asynchronous invocation: 202)
    world.s3.create_bucket(Bucket=REPORTS)
    world.env_set(AUDIT_REPORTS=f"s3://{REPORTS}/audit-reports", TRAINING_PRINCIPALS=TRAINER)
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    world.put_legacy("old/a.jpg")
    world.put("old/b.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.put("train.manifest", b"{}", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    rekognition = world.behaviour[RekognitionCustomLabels]
    rekognition.create_project_version(
        rekognition.create_project("cats"),
        "v1",
        status="TRAINING_FAILED",
        status_message="The S3 bucket permissions are incorrect for the training manifest.",
        training_manifests=[(BUCKET, "train.manifest")],
    )
    continuations = accept_async_invocations(recorder.calls)
    recorder.calls.faults.add("ListObjectsV2", "SlowDown", status=503, times=1)

    assert recorder.audit(scheduled_event())["status"] == "continuing"
    [continuation] = continuations
    assert recorder.audit(continuation)["status"] == "listed"
    recorder.drain_to_verify(world)

    assert world.head("old/a.jpg")["ServerSideEncryption"] == "AES256"
    assert len(summaries(world)) == 1
    return {
        ("s3", "ListObjectsV2"),
        ("s3", "HeadObject"),
        ("s3", "PutObject"),
        ("rekognition", "DescribeProjects"),
        ("rekognition", "DescribeProjectVersions"),
        ("lambda", "Invoke"),
        ("sqs", "SendMessage"),
    }


def accept_async_invocations(calls: Boundary) -> list[dict[str, Any]]:
    """Answer Lambda Invoke (InvocationType Event) as Lambda does, 202, keeping each payload:
    moto cannot run a function that is not deployed."""
    payloads: list[dict[str, Any]] = []

    def accepted(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        payloads.append(json.loads(params["body"]))
        body = {"StatusCode": 202, "ResponseMetadata": {"HTTPStatusCode": 202, "HTTPHeaders": {}}}
        return AWSResponse("https://lambda.invoke", 202, HTTPHeaders(), None), body

    calls.session.events.register("before-call.lambda.Invoke", accepted)  # type: ignore[arg-type]
    return payloads


Scenario = Callable[[World, Recorder, pytest.MonkeyPatch], set[Call]]
SCENARIOS: dict[str, tuple[Scenario, set[str]]] = {
    "remediation copy": (remediation_copy, {VERIFY}),
    "multipart copy": (multipart_copy, {VERIFY}),
    "update in place": (update_in_place, {VERIFY}),
    "key grant": (key_grant, {VERIFY}),
    "findings outbox": (findings_outbox, {VERIFY}),
    "member account": (member_account, {VERIFY}),
    "manifests and fan-out": (manifests_and_fanout, {GRANT, VERIFY}),
    "dataset reads": (dataset_reads, {GRANT}),
    "audit run": (audit_run, {AUDIT, VERIFY}),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_aws_call_of_a_function_is_declared_for_it(
    name: str, world: World, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a scenario that exercises some of the functions' AWS calls
    scenario, functions = SCENARIOS[name]

    # When it runs, each call recorded under the function whose invocation made it
    exercised = scenario(world, recorder, monkeypatch)

    # Then the scenario did make the calls it is here for (so the check is not vacuous)
    made = set().union(*recorder.made.values())
    assert exercised - made == set(), "the scenario no longer exercises these calls"
    assert set(recorder.made) == functions
    # And every call is one its function declares (clguard.permissions.OPERATIONS)
    undeclared = recorder.undeclared()
    assert undeclared == {}, f"called, not declared in clguard.permissions.OPERATIONS: {undeclared}"


def test_the_digest_calls_only_what_its_role_grants(world: World, calls: Boundary) -> None:
    # Given the human topic, and the sample batch of the digest queue (a refusal and two
    # same-kind findings). The digest is not in clguard.permissions.OPERATIONS: its one
    # declaration is its policy in template.yaml.
    human = world.sns.create_topic(Name="custom-labels-guard-HumanTopic")["TopicArn"]
    world.env_set(HUMAN_TOPIC_ARN=human)
    granted = function_policy_actions(load_template(), "DigestFunction")

    # When the digest function handles the batch
    response = digest_app.lambda_handler(load_sqs_event("digest_findings"), LambdaContext(function_name="digest"))

    # Then it published (the refusal, then the digest), and each call's IAM actions are granted
    assert response == {"batchItemFailures": []}
    assert calls.log.calls == [("sns", "Publish"), ("sns", "Publish")]
    adapters = {"sns": sns.IAM_ACTIONS}
    for service, operation in calls.log.calls:
        assert set(adapters[service][operation]) <= granted, (service, operation)
