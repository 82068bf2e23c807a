"""CloudTrail S3 data events decide from their record when it says enough (no HeadObject), and
otherwise behave exactly as the HeadObject path: same findings, same remediation, same final
object and key policy, same loop guard and superseded-version checks.

Records are built the way S3 writes them (``World.data_event``): the sample record of
``events/`` with the key of the test's object and the response headers S3 answered the test's
own write with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from clguard.adapters import clients
from clguard.rules import policy
from clguard.state.keydirectory import clear_cache
from functions.verify_object_encryption import app
from localaws.doubles import aws_behaviour
from tests.awscalls import Boundary, boundary, copies_take_no_effect
from tests.eventsamples import load_event, sqs_event
from tests.world import ACCOUNT, BUCKET, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"

record_of = World.data_event


def run(*bodies: object) -> dict[str, object]:
    return app.lambda_handler(sqs_event(*bodies), LambdaContext())  # type: ignore[arg-type]


def granted_key(world: World) -> str:
    """A managed CMK whose policy already grants TRAINER, which is TRAINING_PRINCIPALS."""
    world.role("Trainer", "/ml/")
    key = world.key()
    document = world.policy(key)
    document["Statement"].append(policy.TRAINING_DATA.new_statement(TRAINER))
    world.kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(document))
    world.env_set(TRAINING_PRINCIPALS=TRAINER)
    return key


# --- the record decides ---------------------------------------------------------------------------


def test_compliant_cmk_records_need_no_head_object(world: World, calls: Boundary) -> None:
    # Given 100 uploads under one managed CMK that already grants the training principal
    key = granted_key(world)
    events = []
    for n in range(100):
        name = f"datasets/cats/images/cat-{n:03}.jpg"
        put = world.put(name, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        events.append(record_of(name, put, "SSE_KMS"))

    # When their CloudTrail PutObject data events arrive in one batch
    response = run(*events)

    # Then no object is inspected: only the key is described and its policy read, once
    assert response == {"batchItemFailures": []}
    assert calls.log.by_operation() == {"DescribeKey": 1, "GetKeyPolicy": 1}
    assert world.published() == []


def test_compliant_sse_s3_records_need_no_call_at_all(world: World, calls: Boundary) -> None:
    # Given 100 uploads under the bucket default (SSE-S3), ENCRYPTION_REQUIREMENT SSE_S3_OR_KMS
    events = []
    for n in range(100):
        name = f"datasets/cats/images/cat-{n:03}.jpg"
        events.append(record_of(name, world.put(name), "Default_SSE_S3"))

    # When their data events arrive in one batch
    response = run(*events)

    # Then the guard makes no AWS call and publishes nothing
    assert response == {"batchItemFailures": []}
    assert calls.log.by_operation() == {}
    assert world.published() == []


def test_the_multipart_sample_decides_from_its_response_header(world: World, calls: Boundary) -> None:
    # Given the CompleteMultipartUpload sample (SSE-S3 response header, no SSEApplied on it)
    event = load_event("cloudtrail_s3_completemultipartupload")

    # When it arrives
    run(event)

    # Then it needs no HeadObject
    assert calls.log.by_operation() == {}
    assert world.published() == []


def test_a_record_without_the_fields_falls_back_to_head_object(world: World, calls: Boundary) -> None:
    # Given an unencrypted (legacy) object whose record carries no encryption fields
    event = load_event("cloudtrail_s3_putobject_no_encryption_fields")
    key = event["detail"]["requestParameters"]["key"]
    world.put_legacy(key)

    # When its record arrives
    run(event)

    # Then the object is inspected and remediated, as for an Object Created event
    assert calls.log.count("HeadObject") >= 1
    [finding] = world.findings()
    assert (finding["finding_type"], finding["outcome"], finding["resource"]["key"]) == (
        "OBJECT_UNENCRYPTED",
        "REMEDIATED",
        key,
    )
    assert world.head(key)["ServerSideEncryption"] == "AES256"


def test_a_non_compliant_record_inspects_the_current_object_first(world: World, calls: Boundary) -> None:
    # Given a versioned bucket, an SSE-S3 upload where SSE_KMS is required, then a newer upload
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    reencrypt = world.key()
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=reencrypt)
    old = world.put(KEY, b"old", ServerSideEncryption="AES256")
    world.put(KEY, b"new", ServerSideEncryption="aws:kms", SSEKMSKeyId=reencrypt)

    # When the old upload's record arrives (it names the old version, SSE-S3)
    run(record_of(KEY, old, "SSE_S3"))

    # Then the current object is inspected, found newer, and left alone: nothing to report
    assert calls.log.count("HeadObject") == 1
    assert calls.log.count("UpdateObjectEncryption") + calls.log.count("CopyObject") == 0
    assert world.published() == []


def test_loop_guard_holds_for_data_events(world: World, calls: Boundary) -> None:
    # Given S3 answers CopyObject with success but the object stays unencrypted
    world.put_legacy(KEY)
    head = world.head(KEY)
    copies_take_no_effect(calls, head)

    # When the upload's record and then the copy's record arrive, neither with encryption fields
    run(record_of(KEY, None, None))
    run(record_of(KEY, None, None, sample="cloudtrail_s3_copyobject"))

    # Then, as through HeadObject: one copy, then "the copy did not take effect", no second copy
    assert calls.log.count("CopyObject") == 1
    outcomes = [(f["finding_type"], f["outcome"]) for f in world.findings()]
    assert outcomes == [("OBJECT_UNENCRYPTED", "REMEDIATED"), ("OBJECT_UNENCRYPTED", "FAILED")]


def test_the_copy_echo_as_a_data_event_needs_no_head(world: World, calls: Boundary) -> None:
    # Given an unencrypted object remediated once through its record
    world.put_legacy(KEY)
    run(record_of(KEY, None, None))
    calls.log.clear()

    # When the CopyObject record of our own copy arrives (S3 applied SSE-S3, as requested)
    run(record_of(KEY, {"ServerSideEncryption": "AES256"}, "SSE_S3", sample="cloudtrail_s3_copyobject"))

    # Then it is compliant from the record: no call, no second finding, no loop
    assert calls.log.by_operation() == {}
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]


# --- both paths behave the same ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Sets up one object (``KEY``) and returns (what S3 answered the write, SSEApplied, keys
    to name in the comparison)."""

    setup: Callable[[World], tuple[dict[str, Any] | None, str | None, dict[str, str]]]
    env: dict[str, str]


def _legacy(world: World) -> tuple[dict[str, Any] | None, str | None, dict[str, str]]:
    world.put_legacy(KEY)
    return None, None, {}


def _sse_s3(world: World) -> tuple[dict[str, Any] | None, str | None, dict[str, str]]:
    reencrypt = world.key()
    world.env_set(REENCRYPT_KMS_KEY=reencrypt)
    return world.put(KEY, ServerSideEncryption="AES256"), "SSE_S3", {"REENCRYPT": reencrypt}


def _not_allowed(world: World) -> tuple[dict[str, Any] | None, str | None, dict[str, str]]:
    world.role("Trainer", "/ml/")
    used, allowed = world.key(), world.key()
    world.env_set(ALLOWED_KMS_KEYS=allowed, REENCRYPT_KMS_KEY=allowed, TRAINING_PRINCIPALS=TRAINER)
    put = world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=used)
    return put, "SSE_KMS", {"USED": used, "ALLOWED": allowed}


def _cmk(managed: bool, state: str = "Enabled") -> Callable[[World], tuple[dict[str, Any], str, dict[str, str]]]:
    def setup(world: World) -> tuple[dict[str, Any], str, dict[str, str]]:
        world.role("Trainer", "/ml/")
        key = world.key(managed=managed)
        world.env_set(TRAINING_PRINCIPALS=TRAINER)
        put = world.put(KEY, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        if state == "Disabled":
            world.kms.disable_key(KeyId=key.split("/")[-1])
        return put, "Default_SSE_KMS", {"CMK": key}

    return setup


def _sse_c(world: World) -> tuple[dict[str, Any] | None, str | None, dict[str, str]]:
    return world.put(KEY, SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32), "SSE_C", {}


SCENARIOS = {
    "unencrypted, record without fields": Scenario(_legacy, {}),
    "SSE-S3 where SSE_KMS is required": Scenario(_sse_s3, {"ENCRYPTION_REQUIREMENT": "SSE_KMS"}),
    "SSE-S3 where SSE_KMS is required, report mode": Scenario(
        _sse_s3, {"ENCRYPTION_REQUIREMENT": "SSE_KMS", "REMEDIATION_MODE": "report"}
    ),
    "KMS key outside ALLOWED_KMS_KEYS": Scenario(_not_allowed, {}),
    "CMK, training principal not yet granted": Scenario(_cmk(managed=True), {}),
    "CMK without the opt-in tag": Scenario(_cmk(managed=False), {}),
    "CMK disabled": Scenario(_cmk(managed=True, state="Disabled"), {}),
    "SSE-C": Scenario(_sse_c, {}),
}


@dataclass
class Outcome:
    findings: list[dict[str, Any]]
    encryption: tuple[str | None, str | None]
    policies: dict[str, Any]
    head_calls: int


@contextmanager
def _fresh_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws(), aws_behaviour() as behaviour:
        clients.reset()
        clear_cache()
        world = World().create()
        world.monkeypatch, world.behaviour = monkeypatch, behaviour
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)
        try:
            yield world
        finally:
            clients.reset()
            clear_cache()


def _outcome(scenario: Scenario, path: str, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with _fresh_world(monkeypatch) as world:
        world.env_set(**scenario.env)
        answered, applied, names = scenario.setup(world)
        event = world.object_created(KEY) if path == "head" else record_of(KEY, answered, applied)
        with boundary() as b:
            assert run(event) == {"batchItemFailures": []}
            head_calls = b.log.count("HeadObject")
        head = world.s3.head_object(Bucket=BUCKET, Key=KEY) if applied != "SSE_C" else {}
        policies = {name: world.policy(arn) for name, arn in names.items()}
        text = json.dumps([world.findings(), [head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")], policies])
        for name, arn in names.items():
            text = text.replace(arn, f"<{name}>")
        findings, encryption, policies = json.loads(text)
        for finding in findings:
            finding.pop("observed_at")
            finding.pop("source_event_id")
        return Outcome(findings, (encryption[0], encryption[1]), policies, head_calls)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_data_event_and_an_object_created_event_have_the_same_outcome(
    name: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the same object state in two fresh accounts
    scenario = SCENARIOS[name]

    # When one gets the Object Created event and the other the CloudTrail data event of the write
    through_head = _outcome(scenario, "head", monkeypatch)
    through_record = _outcome(scenario, "record", monkeypatch)

    # Then the findings, the object's final encryption and the key policies are the same
    assert through_record.findings == through_head.findings
    assert through_record.encryption == through_head.encryption
    assert through_record.policies == through_head.policies
    assert through_head.head_calls >= 1
    # and the record path inspected the object only when it had to (not compliant, or no fields)
    compliant_from_record = name.startswith("CMK")
    assert through_record.head_calls == (0 if compliant_from_record else through_head.head_calls)
