"""``clguard doctor``: every check passes on a correct local world, and each fails, with its fix,
on a world missing exactly that piece. Read-only, and only the calls it declares."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from clguard.adapters import operator
from clguard.cli.main import main
from clguard.usecases import doctor
from clguard.usecases.doctor import KMS, REKOGNITION
from tests.awscalls import Boundary
from tests.world import ACCOUNT, BUCKET, REGION, World

TRAIL_BUCKET = "custom-labels-trail-logs"


def run_doctor(*args: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    status = main(["doctor", "--json", *args], stdout=out, stderr=io.StringIO())
    return status, json.loads(out.getvalue())


def by_name(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for check in document["checks"]:
        out.setdefault(check["name"], []).append(check)
    return out


@pytest.fixture
def healthy(world: World) -> World:
    """A correct world: EventBridge on the training bucket, a logging trail, an opted-in key
    whose policy lets IAM decide, a confirmed subscription on the human topic, Security Hub on."""
    world.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    world.s3.create_bucket(Bucket=TRAIL_BUCKET)
    trail = boto3.client("cloudtrail", region_name=REGION)
    trail.create_trail(Name="org-trail", S3BucketName=TRAIL_BUCKET, IsMultiRegionTrail=True)
    trail.start_logging(Name="org-trail")
    key = world.key()
    world.sns.subscribe(TopicArn=world.topic_arn, Protocol="email", Endpoint="ml-platform@example.com")
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(ALLOWED_KMS_KEYS=key, HUMAN_TOPIC_ARN=world.topic_arn, SECURITY_HUB="on")
    return world


def test_every_check_passes_on_a_correct_world(healthy: World, calls: Boundary) -> None:
    # When doctor runs on the correct world
    status, document = run_doctor()
    # Then it exits 0, and every check that applies passes
    assert status == 0, document
    statuses = {c["name"]: c["status"] for c in document["checks"]}
    assert statuses == {
        "bucket-notifications": "pass",
        "cloudtrail": "pass",
        "cloudtrail-kms": "pass",  # a default trail records every management event
        "managed-keys": "pass",
        "subscriptions": "pass",
        "chat": "skip",  # needs --stack
        "security-hub": "pass",
        "member-roles": "skip",  # MEMBER_ACCOUNTS is empty
        "alarms": "skip",  # needs --stack
    }
    # And it read only, and only what it declares
    made = set(calls.log.calls)
    declared = {(s, op) for s, ops in operator.COMMANDS["doctor"].items() for op in ops}
    assert made - declared == set()
    assert all(op.startswith(("Get", "Describe", "List")) for _, op in made), made


def _no_notifications(w: World) -> None:
    w.s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})


def _trail_stopped(w: World) -> None:
    boto3.client("cloudtrail", region_name=REGION).stop_logging(Name="org-trail")


def _key_not_tagged(w: World) -> None:
    key = w.key(managed=False)
    w.env_set(ALLOWED_KMS_KEYS=key)


def _key_policy_without_iam(w: World) -> None:
    admin = w.role("KeyAdmin")
    only_admin = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": admin}, "Action": "kms:*", "Resource": "*"}],
    }
    w.env_set(ALLOWED_KMS_KEYS=w.key(policy=only_admin))


def _no_subscription(w: World) -> None:
    for sub in w.sns.list_subscriptions_by_topic(TopicArn=w.topic_arn)["Subscriptions"]:
        w.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])


def _security_hub_off(w: World) -> None:
    boto3.client("securityhub", region_name=REGION).disable_security_hub()


@pytest.mark.parametrize(
    ("name", "breaks", "fix", "also"),
    [
        ("bucket-notifications", _no_notifications, f"--bucket {BUCKET}", set()),
        # no logging trail: the KMS key-lifecycle events are not delivered either
        ("cloudtrail", _trail_stopped, "aws cloudtrail start-logging", {"cloudtrail-kms"}),
        ("managed-keys", _key_not_tagged, "aws kms tag-resource", set()),
        ("managed-keys", _key_policy_without_iam, f'"AWS": "arn:aws:iam::{ACCOUNT}:root"', set()),
        ("subscriptions", _no_subscription, "aws sns subscribe", set()),
        ("security-hub", _security_hub_off, "aws securityhub enable-security-hub", set()),
    ],
)
def test_each_check_fails_with_its_fix_on_a_world_missing_that_piece(
    healthy: World, name: str, breaks: Callable[[World], None], fix: str, also: set[str]
) -> None:
    # Given the correct world without exactly one piece
    breaks(healthy)
    # When doctor runs
    status, document = run_doctor()
    # Then that check fails with its fix, every other check is as on the correct world, exit 2
    assert status == 2
    checks = by_name(document)
    [failed] = checks[name]
    assert failed["status"] == "fail"
    assert fix in failed["fix"]
    others = {c["name"] for c in document["checks"] if c["status"] == "fail"}
    assert others == {name, *also}


def _selectors(**selectors: Any) -> None:
    boto3.client("cloudtrail", region_name=REGION).put_event_selectors(TrailName="org-trail", **selectors)


def _checks(document: dict[str, Any], *names: str) -> list[dict[str, Any]]:
    checks = by_name(document)
    return [c for name in names for c in checks[name]]


def test_a_trail_that_excludes_kms_events_passes_training_and_fails_the_kms_check(healthy: World) -> None:
    # Given the trail's classic selector leaves out KMS (a common cost setting), Security Hub on
    _selectors(
        EventSelectors=[
            {"ReadWriteType": "All", "IncludeManagementEvents": True, "ExcludeManagementEventSources": [KMS]}
        ]
    )
    # When doctor runs
    status, document = run_doctor()
    # Then the training calls still reach the guard, but the key-lifecycle events do not: the KMS
    # check fails naming the trail and the selector, with what that costs and the fix
    training, kms = _checks(document, "cloudtrail", "cloudtrail-kms")
    assert training["status"] == "pass"
    assert kms["status"] == "fail"
    assert status == 2
    assert "trail org-trail" in kms["detail"]
    assert f'EventSelectors[0]: ExcludeManagementEventSources ["{KMS}"]' in kms["detail"]
    assert "a deleted or disabled key's Security Hub findings close only at the next audit's sweep" in kms["detail"]
    assert "aws cloudtrail put-event-selectors --trail-name arn:aws:cloudtrail:" in kms["fix"]
    assert '"ExcludeManagementEventSources": []' in kms["fix"]


def test_an_advanced_selector_that_leaves_out_rekognition_fails_the_training_check(healthy: World) -> None:
    # Given the trail's advanced selector records management events except Rekognition's
    management = {"Field": "eventCategory", "Equals": ["Management"]}
    not_rekognition = {"Field": "eventSource", "NotEquals": [REKOGNITION]}
    _selectors(AdvancedEventSelectors=[{"Name": "all but ML", "FieldSelectors": [management, not_rekognition]}])
    # When doctor runs
    status, document = run_doctor()
    # Then the training check fails naming the trail and the selector, with the selector change;
    # the KMS events are still recorded
    training, kms = _checks(document, "cloudtrail", "cloudtrail-kms")
    assert (training["status"], kms["status"], status) == ("fail", "pass", 2)
    assert "trail org-trail does not record rekognition.amazonaws.com write events" in training["detail"]
    assert f'AdvancedEventSelectors[0] "all but ML": eventSource NotEquals ["{REKOGNITION}"]' in training["detail"]
    assert "the grant function never runs" in training["detail"]
    assert "aws cloudtrail put-event-selectors" in training["fix"]
    assert f"leaves out {REKOGNITION}" in training["fix"]


def test_a_trail_of_read_only_management_events_fails_both_checks(healthy: World) -> None:
    # Given the trail's advanced selector records read-only management events only
    read_only = [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "Equals": ["true"]}]
    _selectors(AdvancedEventSelectors=[{"Name": "reads", "FieldSelectors": read_only}])
    # When doctor runs
    status, document = run_doctor()
    # Then neither the training calls nor the key-lifecycle calls (writes) are recorded
    training, kms = _checks(document, "cloudtrail", "cloudtrail-kms")
    assert (training["status"], kms["status"], status) == ("fail", "fail", 2)
    assert 'readOnly Equals ["true"] (read events only)' in training["detail"]
    assert 'readOnly Equals ["true"] (read events only)' in kms["detail"]


def test_the_kms_check_is_skipped_when_security_hub_is_off(healthy: World) -> None:
    # Given a trail that leaves out KMS, and the guard's Security Hub switch off
    _selectors(EventSelectors=[{"ReadWriteType": "All", "ExcludeManagementEventSources": [KMS]}])
    healthy.env_set(SECURITY_HUB="off")
    # When doctor runs, Then the KMS check does not apply: nothing runs on the KMS events
    status, document = run_doctor()
    [kms] = _checks(document, "cloudtrail-kms")
    assert (kms["status"], status) == ("skip", 0)
    assert "SECURITY_HUB is off" in kms["detail"]


def test_the_alarms_check_names_every_alarm_in_alarm() -> None:
    # Given the stack's alarms, two in ALARM and one without data yet
    states = {
        "guard-VerifyDLQAlarm-1A": "OK",
        "guard-HeartbeatAlarm-2B": "ALARM",
        "guard-DLQ-4D": "ALARM",
        "guard-X-3C": "INSUFFICIENT_DATA",
    }
    # When they are judged
    check = doctor.judge_alarms(states)
    # Then the check fails naming the alarms in ALARM, with the command that shows them
    assert check.status == "fail"
    assert "guard-HeartbeatAlarm-2B (ALARM)" in check.detail
    assert "guard-DLQ-4D (ALARM)" in check.detail
    assert check.fix.startswith("aws cloudwatch describe-alarms --alarm-names guard-DLQ-4D guard-HeartbeatAlarm-2B")
    assert doctor.judge_alarms({"guard-VerifyDLQAlarm-1A": "OK"}).status == "pass"


def test_a_fresh_stack_whose_alarms_have_no_data_yet_passes_and_says_so() -> None:
    # Given a stack just deployed: its alarms not evaluated yet
    states = {"guard-VerifyDLQAlarm-1A": "INSUFFICIENT_DATA", "guard-X-3C": "OK"}
    # When they are judged
    check = doctor.judge_alarms(states)
    # Then doctor does not fail the operator's new stack, and names the alarms still waiting
    assert check.status == "pass"
    assert "guard-VerifyDLQAlarm-1A" in check.detail
    assert "guard-X-3C" not in check.detail
    assert "first evaluation" in check.detail


def test_the_alarm_states_are_read_from_cloudwatch(world: World) -> None:
    # Given two metric alarms
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for name in ("guard-A", "guard-B"):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    cloudwatch.set_alarm_state(AlarmName="guard-A", StateValue="OK", StateReason="test")
    cloudwatch.set_alarm_state(AlarmName="guard-B", StateValue="ALARM", StateReason="test")
    # When the adapter reads them, Then each state is as CloudWatch has it
    assert operator.alarm_states(["guard-A", "guard-B"]) == {"guard-A": "OK", "guard-B": "ALARM"}


def test_doctor_prints_each_check_with_its_mark_and_fix_for_people(healthy: World) -> None:
    # Given a world whose bucket does not send its events to EventBridge
    _no_notifications(healthy)
    # When doctor runs without --json
    out = io.StringIO()
    status = main(["doctor"], stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    # Then each check is a ✓/✗ line, the failure carries its fix, and the summary counts it
    assert status == 2
    assert f"✗ s3://{BUCKET} sends its events to EventBridge" in text
    assert "✓ a CloudTrail trail" in text
    assert "put-bucket-notification-configuration" in text
    assert "1 check(s) failed" in text
