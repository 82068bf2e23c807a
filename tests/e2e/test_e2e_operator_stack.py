"""``clguard doctor --stack`` and ``clguard status --stack`` against the local world deployed as a
CloudFormation stack on the moto server (``localaws.stack``): the stack's outputs, function
environment, topics and alarms are read as an operator's shell reads them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clguard.adapters import clients, operator
from clguard.cli import render
from clguard.cli.main import main
from localaws.audit import audit
from localaws.doubles import put_legacy_unencrypted_object
from localaws.runtime import LocalSystem
from localaws.stack import deploy_stack
from tests.awscalls import boundary

BUCKET = "custom-labels-training"
TRAIL_BUCKET = "custom-labels-trail-logs"
# Hostile strings an operator's terminal must show, never obey: a bidi override and a line
# separator in the owner tag and the object key (both valid in S3's XML, unlike C0 controls).
OWNER = "ml-team\u202egnp.exe\u2028FAKE: all healthy"
OBJECT_KEY = "images/cat\u202e-001.jpg\u2028verdict: healthy"


@pytest.fixture(scope="module")
def local_system() -> Iterator[LocalSystem]:
    with LocalSystem({"TrainingBuckets": BUCKET}) as system:
        yield system


@pytest.fixture
def stack(local_system: LocalSystem) -> Iterator[str]:
    """A correct world: the training bucket sends its events to EventBridge, a trail logs the
    management events, and the local deployment is the stack ``custom-labels-guard``."""
    local_system.reset()
    s3 = local_system.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    local_system.enable_eventbridge_notifications(BUCKET)
    s3.create_bucket(Bucket=TRAIL_BUCKET)
    trail = local_system.client("cloudtrail")
    trail.create_trail(Name="management-events", S3BucketName=TRAIL_BUCKET, IsMultiRegionTrail=True)
    trail.start_logging(Name="management-events")
    clients.reset()
    yield deploy_stack(local_system)
    clients.reset()


def run(*args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    status = main([*args, "--json"], stdout=out, stderr=err)
    return status, json.loads(out.getvalue() or "{}"), err.getvalue()


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in document["checks"]}


def alarm_named(system: LocalSystem, stack: str, logical_id: str) -> str:
    resource = system.client("cloudformation").describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


# --- doctor --stack ---------------------------------------------------------------------------------


def test_doctor_reads_a_deployed_stack_and_every_check_passes(local_system: LocalSystem, stack: str) -> None:
    # When doctor runs with --stack on the correct world
    status, document, err = run("doctor", "--stack", stack)
    # Then it read the guard's settings, topic and alarms from the stack, and every check passes
    assert status == 0, (document, err)
    assert statuses(document) == {
        "bucket-notifications": "pass",
        "cloudtrail": "pass",
        "cloudtrail-kms": "skip",  # the stack's SecurityHub is off
        "managed-keys": "skip",
        "subscriptions": "pass",
        "chat": "skip",
        "security-hub": "skip",
        "member-roles": "skip",
        "alarms": "pass",
    }
    [alarms] = [c for c in document["checks"] if c["name"] == "alarms"]
    assert alarms["detail"] == "6 alarm(s)"  # the template's alarms (HeartbeatAlarm is off by default)


def test_doctor_names_the_stack_alarm_in_alarm(local_system: LocalSystem, stack: str) -> None:
    # Given the stack's VerifyDLQ alarm firing
    name = alarm_named(local_system, stack, "VerifyDLQAlarm")
    local_system.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    # When doctor runs, Then the alarms check fails naming it, with the command that shows it
    status, document, _ = run("doctor", "--stack", stack)
    assert status == 2
    [alarms] = [c for c in document["checks"] if c["name"] == "alarms"]
    assert alarms["status"] == "fail"
    assert f"{name} (ALARM)" in alarms["detail"]
    assert name.startswith(f"{stack}-VerifyDLQAlarm-")


def test_doctor_says_a_training_bucket_does_not_exist(local_system: LocalSystem, stack: str) -> None:
    # Given the stack's training bucket deleted
    local_system.client("s3").delete_bucket(Bucket=BUCKET)
    # When doctor runs
    status, document, _ = run("doctor", "--stack", stack)
    # Then the bucket's check says it does not exist (not that the operator lacks permissions)
    assert status == 2
    [check] = [c for c in document["checks"] if c["name"] == "bucket-notifications"]
    assert check["detail"] == "the bucket does not exist"
    assert "TrainingBuckets" in check["fix"]
    assert "credentials" not in check["fix"]


def test_doctor_takes_the_region_from_the_profile(
    local_system: LocalSystem, stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no region variable, only a profile naming the region (as the AWS CLI reads it)
    config = tmp_path / "config"
    config.write_text(f"[default]\nregion = {local_system.region}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    clients.reset()
    # When doctor runs with --stack, Then it reads the stack in that region (no crash)
    status, document, err = run("doctor", "--stack", stack)
    assert status == 0, (document, err)


def test_a_stack_that_does_not_exist_is_a_usage_error(stack: str) -> None:
    # When doctor or status names a stack that is not there
    for command in ("doctor", "status"):
        status, document, err = run(command, "--stack", "no-such-stack")
        # Then the exit status is 1 and the message names the stack
        assert status == 1
        assert document == {}
        assert "--stack 'no-such-stack'" in err


# --- status --stack ---------------------------------------------------------------------------------


def test_status_before_any_audit_cannot_tell(local_system: LocalSystem, stack: str) -> None:
    # Given a deployed stack whose audit never ran
    # When status runs
    with boundary() as calls:
        status, document, err = run("status", "--stack", stack)
    # Then it cannot tell (exit 3): no audit, so no open findings counted; the alarms are read
    assert status == 3, (document, err)
    assert document["verdict"] == "unknown"
    assert document["audit"]["state"] == "unknown"
    assert "no audit has run yet" in document["audit"]["summary"]
    assert document["findings"]["state"] == "unknown"
    assert document["alarms"]["state"] == "healthy"
    assert len(document["alarms"]["states"]) == 6
    # And every call it made is a read it declares
    declared = {(s, op) for s, ops in operator.COMMANDS["status"].items() for op in ops}
    assert set(calls.log.calls) - declared == set()


def test_status_with_an_alarm_in_alarm_needs_attention(local_system: LocalSystem, stack: str) -> None:
    # Given the stack's FindingsUndelivered alarm firing
    name = alarm_named(local_system, stack, "FindingsUndeliveredAlarm")
    local_system.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    # When status runs
    status, document, _ = run("status", "--stack", stack)
    # Then attention is needed (exit 2), naming the alarm
    assert status == 2
    assert document["alarms"]["in_alarm"] == [name]
    # And people read it too
    out = io.StringIO()
    assert main(["status", "--stack", stack], stdout=out, stderr=io.StringIO()) == 2
    assert f"ALARM {name}" in out.getvalue()


def test_status_after_an_audit_counts_open_findings_and_escapes_what_it_shows(
    local_system: LocalSystem, stack: str
) -> None:
    # Given a bucket whose owner tag and one object's key carry hostile characters, the object
    # unencrypted (legacy), and an audit run in report mode
    s3 = local_system.client("s3")
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "owner", "Value": OWNER}]})
    put_legacy_unencrypted_object(s3, BUCKET, OBJECT_KEY, b"jpeg")
    audit(local_system)
    # When status runs
    status, document, err = run("status", "--stack", stack)
    # Then the audit finished, its open finding is counted by type, severity, owner and account
    assert status == 2, (document, err)
    assert document["audit"]["finished"] is True
    assert document["audit"]["buckets"] == [BUCKET]
    findings = document["findings"]
    assert findings["open"] == 1
    assert findings["by_type"] == {"OBJECT_UNENCRYPTED": 1}
    assert findings["by_severity"] == {"HIGH": 1}
    assert findings["by_owner"] == {OWNER: 1}
    assert findings["by_account"] == {local_system.account_id: 1}
    assert document["key_policy_changes"]["made_by_last_audit"] == 0
    assert "lookup-events" in document["key_policy_changes"]["cloudtrail"]
    # And the terminal output shows the owner escaped: no bidi override, no line break of its own
    out = io.StringIO()
    render.show("status", document, out)
    text = out.getvalue()
    assert "\u202e" not in text
    assert "\u2028" not in text
    assert "ml-team\\u202egnp.exe\\u2028FAKE: all healthy" in text


def test_status_terminal_output_escapes_control_characters() -> None:
    # Given a status document whose values carry terminal escapes and line breaks
    hostile = "team\x1b[2J\x1b]0;owned\x07\nverdict: healthy"
    document = {
        "verdict": "attention",
        "audit": {"state": "healthy", "summary": "finished", "run_id": "r1", "notes": [hostile]},
        "findings": {"state": "attention", "summary": "1 open", "open": 1, "by_owner": {hostile: 1}},
        "key_policy_changes": {
            "state": "healthy",
            "summary": "1",
            "listed": [
                {"since": "", "kms_key_arn": "arn:k", "kms_key_alias": hostile, "principal_arn": hostile, "account": ""}
            ],
        },
        "alarms": {"state": "attention", "summary": hostile, "states": {hostile: "ALARM"}},
    }
    # When it is shown to people
    out = io.StringIO()
    render.show("status", document, out)
    text = out.getvalue()
    # Then no escape sequence reaches the terminal and no value starts a line of its own
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\nverdict: healthy" not in text
    assert "team\\x1b[2J" in text


def test_preflight_and_doctor_terminal_output_escape_control_characters() -> None:
    # Given a preflight document and a doctor document whose values carry terminal escapes,
    # a bidirectional override and line breaks (an object key, a key's reason, a note, a fix)
    hostile = "images/a\x1b[2J\x1b]0;owned\x07\u202e\nverdict: ready"
    preflight = {
        "role": hostile,
        "verdict": "blocked",
        "keys": [
            {
                "verdict": "blocked",
                "key_arn": hostile,
                "needed_for": [f"s3://bucket/{hostile}", "s3://bucket/b.jpg"],
                "missing_actions": ["kms:Decrypt"],
                "reason": hostile,
            }
        ],
        "notes": [hostile],
    }
    doctor = {"checks": [{"status": "fail", "title": hostile, "detail": hostile, "fix": f"aws s3 ls {hostile}"}]}
    for command, document in (("preflight", preflight), ("doctor", doctor)):
        # When it is shown to people
        out = io.StringIO()
        render.show(command, document, out)
        text = out.getvalue()
        # Then no escape sequence or override reaches the terminal and no value starts a line of its own
        assert "\x1b" not in text, command
        assert "\x07" not in text, command
        assert "\u202e" not in text, command
        assert "\nverdict: ready" not in text, command
        assert "a\\x1b[2J" in text, command


def test_explain_terminal_output_shows_bidirectional_and_control_characters_as_escapes() -> None:
    # Given an explain document about an object whose key carries a bidirectional override and ESC
    document = {"resource": "s3://bucket/invoice\u202efdp.exe\x1b[2J", "findings": []}
    # When it is shown to people
    out = io.StringIO()
    render.show("explain", document, out)
    text = out.getvalue()
    # Then neither character reaches the terminal: both are JSON escapes
    assert "\u202e" not in text
    assert "\x1b" not in text
    assert "\\u202e" in text
