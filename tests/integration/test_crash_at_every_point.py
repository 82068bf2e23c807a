"""Every change is reported exactly once, whatever AWS call the process dies at.

For each path that changes something (a grant from the grant function, a grant from the verify
function, a grant from a fanned-out image check of a large manifest, an in-place re-encryption
copy, an ``UpdateObjectEncryption`` pinned to a version, an audit's re-encryption through its
fan-out, an audit's grant for a failed training), the runtime is killed right before the n-th AWS
call of the first attempt (the handler's, then the first delivery of the messages it queued), for
every n up to one past the last (the baseline, which ``all_calls_covered`` checks is reached). A
``BaseException`` no ``except Exception`` catches, as a killed runtime (Lambda timeout, out of
memory) runs no handler at all. Then the event is redelivered the way AWS does it: Lambda's
asynchronous retries (two, the template's ``MaximumRetryAttempts``; the first while the dead
attempt's idempotency record and lease are still live, the last after they expired), or SQS
redelivery (after the visibility timeout, longer than the function's timeout, so the dead
attempt's in-progress record has expired); the findings outbox's messages are consumed like any
verify-queue message; the audit's scheduled event is retried by Lambda (EventBridge invokes
asynchronously) and the schedule fires again. Then: a change that took effect is published
exactly once, and no change is reported that did not take effect.

The one window no design closes: the death between SNS accepting the Publish and the
acknowledgement being recorded (the idempotency record's ``COMPLETED``). SNS standard topics have
no deduplication id, so the retry cannot know the publish went out: it publishes again (at least
once, never zero times). The copies carry the same ``fingerprint`` (the document's
``source_event_id`` and condition), so consumers can tell them apart; the test pins that window to
exactly that one call (there, one or two copies).

Findings go out in SNS PublishBatch requests (a claim of each finding's idempotency record, the
request, then each entry's acknowledgement): ``test_findings_sent_in_one_publish_batch_...`` dies at
each of those calls for three findings sent two to a request, and pins the window to the entries SNS
took and the dead attempt had not yet acknowledged.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from clguard.boundary.config import load_settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import GuardError
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Unit
from clguard.rules import policy, snsbatches
from clguard.state import locks
from clguard.state.keydirectory import clear_cache
from clguard.usecases import training
from functions.audit import app as audit_app
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app
from localaws.doubles import RekognitionCustomLabels
from tests.auditrun import findings, scheduled_event
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.world import ACCOUNT, BUCKET, REGION, TABLE, LambdaContext, World

KEY = "datasets/cats/images/cat-001.jpg"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer"
CALLER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
# More than any path below makes on a first attempt: the n past the last call are the runs
# where nothing dies (the baseline).
MAX_CALLS = 28
AFTER = "(no call: the first attempt had ended)"
SNS_SENDS = ("Publish", "PublishBatch")  # the call after which SNS may have taken a finding


class Killed(BaseException):
    """The runtime was killed (Lambda timeout, out of memory)."""


def kill_at(calls: Boundary, n: int) -> list[str]:
    """The runtime dies right before the n-th AWS call (from 1) of the code under test. Returns
    the operations seen, in order, for the test's messages."""
    seen: list[str] = []

    def die(model: Any, **_: Any) -> None:
        if len(seen) == n:  # the dead process makes no more calls; its retries are not killed
            return
        seen.append(model.name)
        if len(seen) == n:
            raise Killed(f"killed before call {n} ({model.name})")

    calls.session.events.register_first("before-call.*.*", die, unique_id="test-kill")
    return seen


def revive(seen: list[str], n: int) -> None:
    """The next attempt runs in a new container (nothing cached), and nothing kills it."""
    seen.extend([AFTER] * (n - len(seen)))
    clear_cache()


def time_passes(world: World) -> None:
    """Time passes until the dead attempt's leases and in-progress idempotency records expire (the
    state table items keep their keys: only their clocks run out)."""
    for item in world.ddb.scan(TableName=TABLE)["Items"]:
        key = {"id": item["id"]}
        if "lease_until" in item:
            world.ddb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET lease_until = :z, write_deadline = :z",
                ExpressionAttributeValues={":z": {"N": "0"}},
            )
        if item.get("status", {}).get("S") == "INPROGRESS":
            world.ddb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET in_progress_expiration = :z",
                ExpressionAttributeValues={":z": {"N": "0"}},
            )


def verify(body: Any, receive_count: int = 1) -> bool:
    """One SQS delivery of ``body``; True when it succeeded (SQS deletes it)."""
    return app.lambda_handler(sqs_event(body, receive_count=receive_count), LambdaContext()) == {
        "batchItemFailures": []
    }


def drain_outbox(world: World) -> None:
    """Consume the verify queue (the findings outbox) as SQS and Lambda would: each message until
    it succeeds, redelivered after its visibility timeout (the producer's records have expired)."""
    for message in list(world.drain_queue()):
        for receive in range(1, 6):  # the queue's maxReceiveCount
            if verify(message["Body"], receive):
                break
            time_passes(world)
        else:  # pragma: no cover - the assertion message names the lost message
            pytest.fail(f"outbox message ended in the DLQ: {message['Body'][:300]}")


def remediated(world: World, resource: str, finding_type: str | None = None) -> list[dict[str, Any]]:
    """The REMEDIATED findings about ``resource`` (an object key or a key ARN), of one type if given
    (the audit's summary, on the same topic, is no finding)."""
    return [
        f
        for f in findings(world)
        if f["outcome"] == "REMEDIATED"
        and resource in (f.get("kms_key_arn"), f["resource"].get("key"))
        and finding_type in (None, f["finding_type"])
    ]


def first_deliveries(world: World) -> list[str]:
    """The first delivery of every message the dead (or finished) attempt queued, while the
    runtime may still die: the bodies whose delivery failed or died (SQS redelivers them)."""
    failed = []
    for message in list(world.drain_queue()):
        try:
            done = verify(message["Body"])
        except Killed:
            done = False
        if not done:
            failed.append(message["Body"])
    return failed


def redeliver(world: World, bodies: list[str]) -> None:
    """SQS redelivers each failed message after its visibility timeout until it succeeds, and
    the outbox (and any message the deliveries queued) is consumed."""
    for body in bodies:
        for receive in range(2, 7):
            time_passes(world)
            done = verify(body, receive)
            drain_outbox(world)
            if done:
                break
        else:  # pragma: no cover - the assertion message names the lost message
            pytest.fail(f"message ended in the DLQ: {body[:300]}")
    drain_outbox(world)


def async_retries(world: World, invoke: Callable[[], object]) -> None:
    """Lambda's two asynchronous retries of an event whose first attempt died: the first while
    the dead attempt's records are live, the last after they expired; each retry's queued messages
    (and the outbox) are consumed before the next."""
    for retry in range(2):
        if retry:
            time_passes(world)
        try:
            invoke()
        except GuardError:
            continue
        finally:
            drain_outbox(world)


def all_calls_covered(seen: list[str], n: int, max_calls: int) -> None:
    """The largest n is past the last call of the first attempt: every call was a death point."""
    if n == max_calls:
        assert len(seen) < n or seen[-1] == AFTER, f"raise the n range: the first attempt made {len(seen)}+ calls"


def in_ack_window(seen: list[str], n: int, send: int) -> bool:
    """Whether the runtime died (before call n) after the SNS send at index ``send`` and before the
    acknowledgements of what it sent: one UpdateItem after a Publish, one per entry after a
    PublishBatch (a request of several findings leaves the later ones unacknowledged)."""
    return send <= n - 2 and all(op == "UpdateItem" for op in seen[send + 1 : n - 1])


def exactly_once_unless_between_publish_and_ack(
    reports: list[dict[str, Any]], seen: list[str], n: int, *, expected: int = 1
) -> None:
    """``seen``: the first attempt's calls; it died before call n, right after the Publish of the
    change's finding (the first Publish of every path here), or elsewhere, or not at all."""
    died = len(seen) >= n and seen[n - 1] != AFTER
    sends = [i for i, op in enumerate(seen) if op in SNS_SENDS]
    died_after_publish = died and bool(sends) and in_ack_window(seen, n, sends[0])
    if died_after_publish:  # at least once, at most once more: the same condition, twice
        assert len(reports) in (expected, 2 * expected), seen
        assert len({(r["source_event_id"], r["principal_arn"]) for r in reports}) == expected
    else:
        assert len(reports) == expected, (n, seen, [(r["finding_type"], r["outcome"]) for r in reports])


def first_attempt(run: Callable[[], object]) -> None:
    with contextlib.suppress(Killed, GuardError):
        run()


@pytest.fixture(autouse=True)
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry that meets the dead attempt's live lease gives up fast (and is retried later)."""
    monkeypatch.setattr(locks, "WAIT_SECONDS", 0.05)


@pytest.mark.parametrize("n", range(1, MAX_CALLS + 1))
def test_a_grant_by_the_grant_function_is_reported_exactly_once_whatever_call_it_dies_at(
    world: World, calls: Boundary, n: int
) -> None:
    # Given a training call naming a managed key its caller lacks, and a runtime that dies
    # right before the n-th AWS call
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    event = world.training_event(kms_key=key)
    for name in ("TrainingData", "TestingData", "OutputConfig"):
        event["detail"]["requestParameters"].pop(name)
    seen = kill_at(calls, n)
    first_attempt(lambda: grant_app.lambda_handler(event, LambdaContext(function_name="grant")))
    revive(seen, n)

    # When Lambda retries the event twice: first while the dead attempt's records are live,
    # then after they expired (and the outbox is consumed in between)
    for retry in range(2):
        if retry:
            time_passes(world)
        try:
            grant_app.lambda_handler(event, LambdaContext(function_name="grant"))
        except GuardError:
            continue
        finally:
            drain_outbox(world)

    # Then the grant is in place and reported exactly once
    assert policy.is_granted(world.policy(key), CALLER, policy.TRAINING_DATA)
    exactly_once_unless_between_publish_and_ack(remediated(world, key), seen, n)
    all_calls_covered(seen, n, MAX_CALLS)


@pytest.mark.parametrize("n", range(1, MAX_CALLS + 1))
def test_a_grant_by_the_verify_function_is_reported_exactly_once_whatever_call_it_dies_at(
    world: World, calls: Boundary, cmk_object: str, n: int
) -> None:
    # Given an object under a managed key TRAINING_PRINCIPALS lack, and a runtime that dies
    # right before the n-th AWS call
    event = load_event("s3_object_created")
    seen = kill_at(calls, n)
    first_attempt(lambda: verify(event))
    revive(seen, n)

    # When SQS redelivers the record until it succeeds (and the outbox is consumed)
    for receive in range(2, 7):
        time_passes(world)
        done = verify(event, receive)
        drain_outbox(world)
        if done:
            break

    # Then the grant is in place and reported exactly once
    assert policy.is_granted(world.policy(cmk_object), TRAINER, policy.TRAINING_DATA)
    exactly_once_unless_between_publish_and_ack(remediated(world, cmk_object), seen, n)
    all_calls_covered(seen, n, MAX_CALLS)


@pytest.mark.parametrize("n", range(1, MAX_CALLS + 1))
def test_a_reencryption_is_reported_exactly_once_whatever_call_it_dies_at(
    world: World, calls: Boundary, n: int
) -> None:
    # Given an unencrypted object, and a runtime that dies right before the n-th AWS call
    world.put_legacy(KEY)
    event = load_event("s3_object_created")
    seen = kill_at(calls, n)
    first_attempt(lambda: verify(event))
    revive(seen, n)

    # When SQS redelivers the record until it succeeds (and the outbox is consumed)
    for receive in range(2, 7):
        time_passes(world)
        done = verify(event, receive)
        drain_outbox(world)
        if done:
            break

    # Then the object is encrypted and its re-encryption reported exactly once
    assert world.head(KEY)["ServerSideEncryption"] == "AES256"
    exactly_once_unless_between_publish_and_ack(remediated(world, KEY), seen, n)
    all_calls_covered(seen, n, MAX_CALLS)


UPDATE_CALLS = 15  # each path's first attempt makes one call fewer (the last n is the baseline)


@pytest.mark.parametrize("n", range(1, UPDATE_CALLS + 1))
def test_an_encryption_update_is_reported_exactly_once_whatever_call_it_dies_at(
    world: World, calls: Boundary, n: int
) -> None:
    # Given SSE_KMS is required, an SSE-S3 object in a versioned bucket (UpdateObjectEncryption
    # pinned to the inspected version), and a runtime that dies right before the n-th AWS call
    target = world.key()
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    world.env_set(ENCRYPTION_REQUIREMENT="SSE_KMS", REENCRYPT_KMS_KEY=target)
    world.put(KEY, ServerSideEncryption="AES256")
    event = load_event("s3_object_created")
    seen = kill_at(calls, n)
    first_attempt(lambda: verify(event))
    revive(seen, n)

    # When SQS redelivers the record until it succeeds (and the outbox is consumed)
    redeliver(world, [json.dumps(event)])

    # Then the object is under the target key, updated in place, and that reported exactly once
    assert world.head(KEY)["SSEKMSKeyId"] == target
    assert calls.log.count("CopyObject") == 0
    exactly_once_unless_between_publish_and_ack(remediated(world, KEY), seen, n)
    all_calls_covered(seen, n, UPDATE_CALLS)


FANOUT_CALLS = 28


@pytest.mark.parametrize("n", range(1, FANOUT_CALLS + 1))
def test_a_grant_by_a_fanned_out_image_check_is_reported_exactly_once_whatever_call_it_dies_at(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    # Given a training call whose manifest (SSE-S3) lists more images than are checked inline,
    # images under a managed key its caller lacks, and a runtime that dies right before the n-th
    # AWS call (of the grant function, then of the verify function on the fanned-out checks)
    world.role("CustomLabelsTrainer", "/ml/")
    monkeypatch.setattr(training, "INLINE_IMAGE_LIMIT", 1)
    image_key = world.key()
    images = [f"datasets/cats/images/cat-{i:03}.jpg" for i in range(2)]
    for image in images:
        world.put(image, ServerSideEncryption="aws:kms", SSEKMSKeyId=image_key)
    lines = "\n".join(json.dumps({"source-ref": f"s3://{BUCKET}/{i}"}) for i in images).encode()
    world.put("datasets/cats/train.manifest", lines, ServerSideEncryption="AES256")
    event = world.training_event()
    for name in ("TestingData", "OutputConfig", "KmsKeyId"):
        event["detail"]["requestParameters"].pop(name)

    def grant() -> object:
        return grant_app.lambda_handler(event, LambdaContext(function_name="grant"))

    seen = kill_at(calls, n)
    grant_died = False
    try:
        grant()
    except Killed:
        grant_died = True
    failed = first_deliveries(world)
    revive(seen, n)

    # When SQS redelivers the checks that failed, and Lambda retries the training event if its
    # invocation died (each retry's checks consumed)
    redeliver(world, failed)
    if grant_died:
        async_retries(world, grant)

    # Then the caller can use the images' key, and that grant is reported exactly once
    assert policy.is_granted(world.policy(image_key), CALLER, policy.TRAINING_DATA)
    exactly_once_unless_between_publish_and_ack(remediated(world, image_key), seen, n)
    all_calls_covered(seen, n, FANOUT_CALLS)


AUDIT_CALLS = 44
TRAINING_AUDIT_CALLS = 52


def audit_first_attempt(world: World, event: dict[str, Any]) -> tuple[bool, list[str]]:
    """The scheduled run, then the first delivery of its fan-out messages: whether the audit
    invocation died, and the messages SQS redelivers."""
    try:
        audit_app.lambda_handler(event, LambdaContext(function_name="audit"))
    except Killed:
        return True, first_deliveries(world)
    return False, first_deliveries(world)


def audit_retries(world: World, event: dict[str, Any], failed: list[str], died: bool) -> None:
    """SQS redelivers the fan-out messages whose delivery died; Lambda retries the scheduled
    event if its invocation died (EventBridge invokes asynchronously); then the schedule fires
    again. The next firing is part of the promise: a retry that meets the run its dead first
    attempt started does not list it again (EventBridge delivers at least once, and a live
    duplicate must not list twice); the next run reports that run incomplete and covers it."""
    redeliver(world, failed)
    if died:
        async_retries(world, lambda: audit_app.lambda_handler(event, LambdaContext(function_name="audit")))
    audit_app.lambda_handler(scheduled_event(), LambdaContext(function_name="audit"))
    redeliver(world, first_deliveries(world))


@pytest.mark.parametrize("n", range(1, AUDIT_CALLS + 1))
def test_an_audit_reencryption_is_reported_exactly_once_whatever_call_it_dies_at(
    audited: World, calls: Boundary, n: int
) -> None:
    # Given an unencrypted object found by a scheduled audit, and a runtime that dies right
    # before the n-th AWS call (of the audit, then of the verify function on its fan-out)
    audited.put_legacy(KEY)
    event = scheduled_event()
    seen = kill_at(calls, n)
    died, failed = audit_first_attempt(audited, event)
    revive(seen, n)

    # When the fan-out messages are redelivered and the scheduled event retried
    audit_retries(audited, event, failed, died)

    # Then the object is encrypted and its re-encryption reported exactly once
    assert audited.head(KEY)["ServerSideEncryption"] == "AES256"
    exactly_once_unless_between_publish_and_ack(remediated(audited, KEY), seen, n)
    all_calls_covered(seen, n, AUDIT_CALLS)


@pytest.mark.parametrize("n", range(1, TRAINING_AUDIT_CALLS + 1))
def test_a_failed_training_grant_by_the_audit_is_reported_exactly_once_whatever_call_it_dies_at(
    audited: World, calls: Boundary, n: int
) -> None:
    # Given a training that failed for access, its manifest under a managed key TRAINER lacks,
    # and a runtime that dies right before the n-th AWS call of the audit (then of its fan-out)
    audited.role("Trainer", "/ml/")
    audited.env_set(TRAINING_PRINCIPALS=TRAINER)
    key = audited.key()
    audited.put("train.manifest", b"{}", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    rekognition = audited.behaviour[RekognitionCustomLabels]
    rekognition.create_project_version(
        rekognition.create_project("cats"),
        "v1",
        status="TRAINING_FAILED",
        status_message="The S3 bucket permissions are incorrect for the training manifest.",
        training_manifests=[(BUCKET, "train.manifest")],
    )
    event = scheduled_event()
    seen = kill_at(calls, n)
    died, failed = audit_first_attempt(audited, event)
    revive(seen, n)

    # When the fan-out messages are redelivered and the scheduled event retried
    audit_retries(audited, event, failed, died)

    # Then TRAINER can use the key, the grant is reported exactly once, and the failed training once
    assert policy.is_granted(audited.policy(key), TRAINER, policy.TRAINING_DATA)
    exactly_once_unless_between_publish_and_ack(remediated(audited, key, "KEY_ACCESS_MISSING"), seen, n)
    trainings = [f for f in findings(audited) if f["finding_type"] == "TRAINING_FAILED"]
    assert len({(f["outcome"], f["detail"]) for f in trainings}) == 1, (n, seen, trainings)
    died = len(seen) >= n and seen[n - 1] != AFTER
    died_after_a_publish = died and any(in_ack_window(seen, n, i) for i, op in enumerate(seen) if op in SNS_SENDS)
    assert len(trainings) in ((1, 2) if died_after_a_publish else (1,)), (n, seen)
    all_calls_covered(seen, n, TRAINING_AUDIT_CALLS)


BATCH_OPS = ["PutItem", "PutItem", "PublishBatch", "UpdateItem", "UpdateItem", "PutItem", "PublishBatch", "UpdateItem"]


def batched_findings() -> list[Finding]:
    return [
        Finding(
            finding_type=FindingType.OBJECT_UNENCRYPTED,
            outcome=Outcome.REMEDIATED,
            resource=S3ObjectRef(BUCKET, f"datasets/cats/images/cat-{i}.jpg", None),
            detail=f"re-encrypted in place with SSE-S3 (CopyObject) #{i}",
            source_event_id=f"evt-batch-{i}",
            account=ACCOUNT,
            region=REGION,
            owner="vision-team",
        )
        for i in range(3)
    ]


def report_all(world: World) -> None:
    with Unit(
        Publisher(load_settings(world.env(AWS_REGION=REGION), account_id=ACCOUNT), lambda_context=LambdaContext())
    ) as unit:
        for finding in batched_findings():
            unit.report(finding)


def sent_not_acknowledged(done: list[str]) -> int:
    """How many findings SNS took whose records the dead attempt had not marked COMPLETED, given
    the calls it completed (``done``, a prefix of ``BATCH_OPS``): the first request carries two
    entries, the second one."""
    unacknowledged = 0
    for request, entries in ((2, 2), (6, 1)):  # the index of each PublishBatch, its entries
        if len(done) > request:
            acknowledged = sum(1 for op in done[request + 1 : request + 1 + entries] if op == "UpdateItem")
            unacknowledged += entries - acknowledged
    return unacknowledged


@pytest.mark.parametrize("n", range(1, len(BATCH_OPS) + 2))
def test_findings_sent_in_one_publish_batch_are_each_reported_whatever_call_it_dies_at(
    world: World, calls: Boundary, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    # Given three findings of one unit of work (the changes' findings), sent two to a
    # PublishBatch request, and a runtime that dies right before the n-th AWS call: after a
    # claim and before its request, after a request and before its acknowledgements, between them
    monkeypatch.setattr(snsbatches, "MAX_ENTRIES", 2)
    seen = kill_at(calls, n)
    first_attempt(lambda: report_all(world))
    revive(seen, n)
    if n == len(BATCH_OPS) + 1:
        assert seen[: len(BATCH_OPS)] == BATCH_OPS, seen  # the baseline: the calls this test counts on

    # When the unit of work is retried (first while the dead attempt's claims are live, then the
    # outbox is consumed as SQS delivers it)
    report_all(world)
    drain_outbox(world)

    # Then each finding is on the topic: once, or twice when SNS took it and the runtime died
    # before its record said COMPLETED (the one window: at least once, never zero times)
    done = [op for op in seen[: n - 1] if op != AFTER]
    reported = sorted(f["source_event_id"] for f in world.findings())
    assert set(reported) == {f"evt-batch-{i}" for i in range(3)}, (n, seen)
    assert len(reported) == 3 + sent_not_acknowledged(done), (n, seen, reported)
