"""A key disabled or scheduled for deletion closes its open Security Hub findings at once
(docs/architecture.md §5a; issue 23): the KMS CloudTrail event reaches the grant function, which
re-reads the key as the event's account and closes through the one closing path
(``Publisher.key_unusable``); the audit's sweep does the same for keys no event announced.
Against moto and the SecurityHubFindings double."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome
from clguard.reporting.securityhub import SecurityHubOutput
from clguard.state import openfindings
from clguard.state.keydirectory import clear_cache
from clguard.usecases import keylifecycle
from functions.grant_training_access import app as grant_app
from functions.verify_object_encryption import app as verify_app
from localaws.doubles import SecurityHubFindings
from tests.auditrun import run_audit
from tests.awscalls import Boundary
from tests.eventsamples import load_event, sqs_event
from tests.integration import test_many_accounts as many
from tests.integration.test_many_accounts import MEMBER, MEMBER_ROLE, Member
from tests.integration.test_securityhub_members import _enable_hub_in
from tests.world import ACCOUNT, REGION, TABLE, LambdaContext, World

member = many.member  # the member fixture: a member account the central deployment serves

OBJECT = "datasets/cats/images/cat-001.jpg"
OPEN = ("NEW", "ACTIVE", "FAILED")
CLOSED = ("RESOLVED", "ARCHIVED", "PASSED")


def _state(finding: dict[str, Any]) -> tuple[str, str, str]:
    return finding["Workflow"]["Status"], finding["RecordState"], finding["Compliance"]["Status"]


def _by_type(account: str = ACCOUNT) -> dict[str, dict[str, Any]]:
    return {
        f["ProductFields"]["CustomLabelsGuard/finding_type"]: f for f in SecurityHubFindings.findings(account, REGION)
    }


def _key_event(name: str, key_arn: str, account: str = ACCOUNT) -> dict[str, Any]:
    """The sample KMS CloudTrail event (events/) for another key and account."""
    event = load_event(name)
    detail = event["detail"]
    event["account"] = detail["recipientAccountId"] = account
    detail["requestParameters"]["keyId"] = key_arn.rsplit("/", 1)[1]
    detail["responseElements"]["keyId"] = key_arn
    for resource in detail["resources"]:
        resource["ARN"], resource["accountId"] = key_arn, account
    return event


def _grant(event: dict[str, Any]) -> dict[str, Any]:
    clear_cache()  # a later invocation: nothing remembered of the key
    result: dict[str, Any] = grant_app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))
    return result


def _open_access_finding(world: World) -> str:
    """Security Hub on, report mode: a trainer lacking access to the key under a training object
    has an open KEY_ACCESS_MISSING (raised by the verify function)."""
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(SECURITY_HUB="on", REMEDIATION_MODE="report")
    trainer = world.role("Trainer", "/ml/")
    key = world.key()
    world.put(OBJECT, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    world.env_set(TRAINING_PRINCIPALS=trainer)
    assert verify_app.lambda_handler(sqs_event(world.object_created(OBJECT)), LambdaContext()) == {
        "batchItemFailures": []
    }
    assert _state(_by_type()["KEY_ACCESS_MISSING"]) == OPEN
    return key


@pytest.mark.parametrize(
    ("sample", "state"),
    [("cloudtrail_kms_schedule_key_deletion", "PendingDeletion"), ("cloudtrail_kms_disable_key", "Disabled")],
)
def test_a_key_scheduled_for_deletion_or_disabled_closes_its_findings_at_once(
    world: World, calls: Boundary, sample: str, state: str
) -> None:
    # Given an open KEY_ACCESS_MISSING on a key
    key = _open_access_finding(world)
    # When a key administrator schedules the key's deletion (or disables it), and its CloudTrail
    # event reaches the grant function
    key_id = key.rsplit("/", 1)[1]
    if state == "PendingDeletion":
        world.kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    else:
        world.kms.disable_key(KeyId=key_id)
    calls.log.clear()
    summary = _grant(_key_event(sample, key))
    # Then the finding is archived and resolved now, saying why, and forgotten
    closed = _by_type()["KEY_ACCESS_MISSING"]
    assert _state(closed) == CLOSED
    assert closed["ProductFields"]["CustomLabelsGuard/closed"] == f"the key is {state}"
    assert openfindings.open_findings(TABLE, ACCOUNT, REGION, key) == []
    assert key not in openfindings.indexed_keys(TABLE, ACCOUNT, REGION)
    # and the summary counts it, after one fresh DescribeKey (never GetFindings, no SNS)
    assert (summary["status"], summary["key"], summary["state"], summary["closed"]) == ("processed", key, state, 1)
    assert calls.log.count("DescribeKey") == 1
    assert calls.log.count("GetFindings") == calls.log.count("Publish") == 0


def test_a_forged_event_naming_a_key_still_enabled_closes_nothing(world: World) -> None:
    # Given an open KEY_ACCESS_MISSING on a key that is still enabled
    key = _open_access_finding(world)
    # When a ScheduleKeyDeletion event names it (a forged record, or a call that failed)
    summary = _grant(_key_event("cloudtrail_kms_schedule_key_deletion", key))
    # Then the key, re-read, is enabled: nothing is closed
    assert (summary["state"], summary["closed"]) == ("Enabled", 0)
    assert _state(_by_type()["KEY_ACCESS_MISSING"]) == OPEN
    assert len(openfindings.open_findings(TABLE, ACCOUNT, REGION, key)) == 1


def test_a_key_kms_refuses_to_describe_closes_nothing_and_says_so(world: World, calls: Boundary) -> None:
    # Given an open finding on a disabled key the guard may no longer describe
    key = _open_access_finding(world)
    world.kms.disable_key(KeyId=key.rsplit("/", 1)[1])
    calls.faults.add("DescribeKey", "AccessDeniedException", message="not authorized", times=1)
    # When its DisableKey event arrives
    summary = _grant(_key_event("cloudtrail_kms_disable_key", key))
    # Then nothing is closed on a key the guard cannot see, and the summary says why
    assert summary["closed"] == 0
    assert summary["state"].startswith("not told")
    assert _state(_by_type()["KEY_ACCESS_MISSING"]) == OPEN


def test_a_key_deleted_since_the_event_closes_its_findings_as_deleted(world: World) -> None:
    # Given open findings recorded on a key KMS no longer knows (deleted after its waiting period)
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(SECURITY_HUB="on")
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-4000-8000-0000000000de"
    output = SecurityHubOutput(table=TABLE)
    output.add(_finding(key, ACCOUNT, "arn:aws:iam::123456789012:role/ml/Trainer"))
    output.flush()
    # When its ScheduleKeyDeletion event arrives late
    summary = _grant(_key_event("cloudtrail_kms_schedule_key_deletion", key))
    # Then the finding is archived: the key was deleted
    assert (summary["state"], summary["closed"]) == ("deleted", 1)
    assert _by_type()["KEY_ACCESS_MISSING"]["ProductFields"]["CustomLabelsGuard/closed"] == "the key was deleted"


def test_an_event_naming_a_key_of_another_account_reads_and_closes_nothing(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given the central key disabled with an open finding, and a member's DisableKey event that
    # names the central key (a member's forwarded events are the member's alone)
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(SECURITY_HUB="on")
    output = SecurityHubOutput(table=TABLE)
    output.add(_finding(member.central_key, ACCOUNT, "arn:aws:iam::123456789012:role/ml/Trainer"))
    output.flush()
    world.kms.disable_key(KeyId=member.central_key.rsplit("/", 1)[1])
    calls.log.clear()
    summary = _grant(_key_event("cloudtrail_kms_disable_key", member.central_key, account=MEMBER))
    # Then nothing is read, assumed or closed
    assert summary["status"] == "ignored"
    assert "belongs to account 123456789012" in summary["reason"]
    assert calls.log.count("DescribeKey") == calls.log.count("AssumeRole") == 0
    assert _state(_by_type()["KEY_ACCESS_MISSING"]) == OPEN


def test_a_members_key_event_acts_only_as_the_member_and_closes_in_the_members_hub(
    world: World, member: Member, calls: Boundary
) -> None:
    # Given Security Hub on in both accounts, an open finding on the member's key (in the member's
    # hub) and one on the central key, both keys disabled
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    _enable_hub_in(MEMBER)
    world.env_set(SECURITY_HUB="on")
    output = SecurityHubOutput(table=TABLE, home=ACCOUNT, member_role=lambda _account: MEMBER_ROLE)
    output.add(_finding(member.key, MEMBER, f"arn:aws:iam::{MEMBER}:role/ml/Trainer"))
    output.add(_finding(member.central_key, ACCOUNT, "arn:aws:iam::123456789012:role/ml/Trainer"))
    output.flush()
    member.world.kms.disable_key(KeyId=member.key.rsplit("/", 1)[1])
    world.kms.disable_key(KeyId=member.central_key.rsplit("/", 1)[1])
    calls.log.clear()
    # When the member's DisableKey event (forwarded by its member stack) reaches the grant function
    summary = _grant(_key_event("cloudtrail_kms_disable_key", member.key, account=MEMBER))
    # Then the member key was re-read through the member role, and its finding closed in the
    # member's own Security Hub; the central account's finding is untouched
    # (the central account's KMS does not know the member's key: read as the central account, it
    # would have been "deleted")
    assert (summary["status"], summary["state"], summary["closed"]) == ("processed", "Disabled", 1)
    assert calls.log.count("DescribeKey") == 1
    with pytest.raises(world.kms.exceptions.NotFoundException):
        world.kms.describe_key(KeyId=member.key)
    assert _state(_by_type(MEMBER)["KEY_ACCESS_MISSING"]) == CLOSED
    assert _state(_by_type(ACCOUNT)["KEY_ACCESS_MISSING"]) == OPEN


def test_without_security_hub_the_event_reads_nothing(world: World, calls: Boundary) -> None:
    # Given SECURITY_HUB off (the rule is then not deployed; a stray event must still do nothing)
    key = world.key()
    calls.log.clear()
    summary = _grant(_key_event("cloudtrail_kms_disable_key", key))
    # Then nothing is read
    assert summary["status"] == "ignored"
    assert calls.log.count("DescribeKey") == 0


def _finding(key: str, account: str, principal: str) -> Finding:
    return Finding(
        finding_type=FindingType.KEY_ACCESS_MISSING,
        outcome=Outcome.REPORTED,
        resource=KmsKeyResource(key),
        detail="lacks access",
        source_event_id="evt",
        account=account,
        region=REGION,
        principal_arn=principal,
        kms_key_arn=key,
    )


# --- the audit's sweep ----------------------------------------------------------------------------


def _open_on_keys(world: World, keys: list[str]) -> None:
    output = SecurityHubOutput(table=TABLE)
    for key in keys:
        output.add(_finding(key, ACCOUNT, "arn:aws:iam::123456789012:role/ml/Trainer"))
    output.flush()


def test_the_audit_sweeps_a_key_no_event_announced_and_closes_its_findings(audited: World, calls: Boundary) -> None:
    # Given open findings on two keys the audit's objects do not use: one disabled since (its
    # event was never delivered), one still enabled
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    audited.env_set(SECURITY_HUB="on")
    disabled, enabled = audited.key(), audited.key()
    _open_on_keys(audited, [disabled, enabled])
    audited.kms.disable_key(KeyId=disabled.rsplit("/", 1)[1])
    assert openfindings.indexed_keys(TABLE, ACCOUNT, REGION) == {disabled, enabled}
    calls.log.clear()
    # When the scheduled audit runs
    audited.put("old/a.jpg", ServerSideEncryption="AES256")
    run_audit(audited)
    # Then the disabled key's finding is closed, the enabled one's stays open, each key read once
    states = {f["Resources"][0]["Id"]: _state(f) for f in SecurityHubFindings.findings(ACCOUNT, REGION)}
    assert states == {disabled: CLOSED, enabled: OPEN}
    assert openfindings.indexed_keys(TABLE, ACCOUNT, REGION) == {enabled}
    assert calls.log.count("DescribeKey") == 2


def test_the_sweep_skips_keys_the_run_met_and_is_bounded(world: World, calls: Boundary, monkeypatch: Any) -> None:
    # Given open findings on seven disabled keys, one of which the run's checks met, and a sweep
    # bound of three keys a run
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(SECURITY_HUB="on")
    monkeypatch.setattr(keylifecycle, "MAX_SWEPT", 3)
    keys = [world.key() for _ in range(7)]
    _open_on_keys(world, keys)
    for key in keys:
        world.kms.disable_key(KeyId=key.rsplit("/", 1)[1])
    settings = _settings()
    # When two runs sweep
    calls.log.clear()
    first = keylifecycle.sweep(settings, "run-1", met=[keys[0]])
    # Then each re-reads at most three keys, never the one met, and says how many are left
    assert (first.reread, first.unusable, first.closed, first.left) == (3, 3, 3, 3)
    assert calls.log.count("DescribeKey") == 3
    assert "3 more beyond the bound of 3 a run" in (first.note() or "")
    second = keylifecycle.sweep(settings, "run-2", met=[keys[0]])
    assert second.reread == 3
    assert second.left == 0
    # and the key met was never re-read: its finding is still open (its own check decides it)
    assert openfindings.indexed_keys(TABLE, ACCOUNT, REGION) == {keys[0]}


def test_a_key_whose_record_expired_leaves_the_index_unread(world: World, calls: Boundary) -> None:
    # Given a key indexed with open findings whose record has expired (TTL)
    boto3.client("securityhub", region_name=REGION).enable_security_hub()
    world.env_set(SECURITY_HUB="on")
    key = world.key()
    _open_on_keys(world, [key])
    world.ddb.delete_item(TableName=TABLE, Key={"id": {"S": openfindings.item_id(ACCOUNT, REGION, key)}})
    calls.log.clear()
    # When the sweep runs
    swept = keylifecycle.sweep(_settings(), "run-1", met=[])
    # Then the key is not read, and leaves the index
    assert (swept.reread, swept.expired) == (0, 1)
    assert calls.log.count("DescribeKey") == 0
    assert openfindings.indexed_keys(TABLE, ACCOUNT, REGION) == frozenset()


def _settings() -> Any:
    import os  # noqa: PLC0415

    from clguard.boundary.config import current_settings  # noqa: PLC0415

    return current_settings(os.environ, account_id=ACCOUNT)


def test_the_keys_index_is_bounded_and_a_key_beyond_it_is_counted(world: World, monkeypatch: Any) -> None:
    # Given the keys index at its bound (3 here; MAX_INDEXED_KEYS is 1,000)
    del world
    monkeypatch.setattr(openfindings, "MAX_INDEXED_KEYS", 3)
    keys = [f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-4000-8000-00000000000{n}" for n in range(5)]
    assert openfindings.index(TABLE, ACCOUNT, REGION, keys[:3]) == 0
    # When more keys get open findings
    refused = openfindings.index(TABLE, ACCOUNT, REGION, keys[3:])
    # Then they are refused (counted by the caller: SecurityHubUnindexed) and the index stays at its bound
    assert refused == 2
    assert openfindings.indexed_keys(TABLE, ACCOUNT, REGION) == set(keys[:3])
    # and a key that leaves makes room again
    openfindings.unindex(TABLE, ACCOUNT, REGION, keys[:1])
    assert openfindings.index(TABLE, ACCOUNT, REGION, keys[3:4]) == 0
    assert openfindings.indexed_keys(TABLE, ACCOUNT, REGION) == {*keys[1:4]}
