"""The findings plane against moto (docs/architecture.md §5, §5a, §5b): Security Hub beside SNS,
accepted exceptions, owner routing and key aliases."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import boto3
import pytest

from clguard.adapters import securityhub
from clguard.boundary.config import load_settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting import asff
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome
from clguard.reporting.publisher import Publisher
from clguard.reporting.securityhub import SecurityHubOutput, TokenBucket
from functions.verify_object_encryption import app
from localaws.doubles import SecurityHubFindings
from tests.awscalls import Boundary
from tests.eventsamples import sqs_event
from tests.world import ACCOUNT, BUCKET, REGION, LambdaContext, World

PARAMETER = "/guard/exceptions"
ARCHIVE_EXCEPTION = {
    "id": "archive-sse-c",
    "finding_types": ["OBJECT_SSE_C", "OBJECT_UNENCRYPTED"],
    "resources": [f"s3://{BUCKET}/archive/*"],
    "reason": "vendor archive, read by the vendor's own pipeline",
    "owner": "ml-platform",
    "expires": "2099-03-31",
}


def _finding(key: str = "archive/a.jpg", **changes: Any) -> Finding:
    finding = Finding(
        finding_type=FindingType.OBJECT_UNENCRYPTED,
        outcome=Outcome.REPORTED,
        resource=S3ObjectRef(BUCKET, key),
        detail="object had no server-side encryption; left as is (report mode)",
        source_event_id="evt-1",
        account=ACCOUNT,
        region=REGION,
    )
    return replace(finding, **changes)


def _publisher(world: World, **env: str) -> Publisher:
    return Publisher(load_settings(world.env(AWS_REGION=REGION, **env), account_id=ACCOUNT), idempotent=False)


def _hub() -> Any:
    client = boto3.client("securityhub", region_name=REGION)
    client.enable_security_hub()
    return client


def _hub_findings() -> list[dict[str, Any]]:
    return SecurityHubFindings.findings(ACCOUNT, REGION)


def _no_wait() -> TokenBucket:
    return TokenBucket(clock=lambda: 0.0, sleep=lambda _s: None)


# --- Security Hub -------------------------------------------------------------------------------


def test_an_open_condition_then_its_fix_is_one_security_hub_finding_resolved_and_archived(world: World) -> None:
    # Given Security Hub enabled and SECURITY_HUB=on
    _hub()
    publisher = _publisher(world, SECURITY_HUB="on")
    # When a condition is reported (and the unit of work ends), then found fixed by a later event
    publisher.publish(_finding(outcome=Outcome.REPORTED, source_event_id="evt-1"))
    publisher.flush()
    first = _hub_findings()
    publisher.publish(_finding(outcome=Outcome.REMEDIATED, source_event_id="evt-2", detail="re-encrypted"))
    publisher.flush()
    # Then there was one open finding, and it is now the same finding, fixed: updated, not duplicated
    assert [(f["Workflow"], f["RecordState"], f["Compliance"]) for f in first] == [
        ({"Status": "NEW"}, "ACTIVE", {"Status": "FAILED"})
    ]
    (fixed,) = _hub_findings()
    assert fixed["Id"] == first[0]["Id"]
    assert (fixed["Workflow"], fixed["RecordState"], fixed["Compliance"]) == (
        {"Status": "RESOLVED"},
        "ARCHIVED",
        {"Status": "PASSED"},
    )
    assert asff.problems(fixed) == []
    # and SNS carried both findings
    assert [f["outcome"] for f in world.findings()] == ["REPORTED", "REMEDIATED"]


def test_security_hub_off_imports_nothing(world: World) -> None:
    _hub()
    publisher = _publisher(world)
    publisher.publish(_finding())
    publisher.flush()
    assert publisher.security_hub is None
    assert _hub_findings() == []
    assert len(world.findings()) == 1


def test_a_disabled_security_hub_never_stops_sns(world: World, calls: Boundary) -> None:
    # Given SECURITY_HUB=on but Security Hub not enabled in the account (the double refuses it, as AWS does)
    publisher = _publisher(world, SECURITY_HUB="on")
    # When a finding is published and the unit of work ends
    sent = publisher.publish(_finding())
    publisher.flush()
    # Then SNS has it, Security Hub was tried once and refused, and nothing raised
    assert sent
    assert len(world.findings()) == 1
    assert calls.log.count("BatchImportFindings") == 1
    assert _hub_findings() == []


def test_a_burst_of_10000_findings_takes_at_most_101_import_calls(aws: Any, calls: Boundary) -> None:
    # Given Security Hub enabled and 10,000 distinct findings (one upload burst)
    _hub()
    output = SecurityHubOutput(pace=_no_wait(), sleep=lambda _s: None)
    # When they are all handed to the Security Hub output and the unit of work ends
    for i in range(10_000):
        output.add(_finding(key=f"images/{i:05}.jpg", source_event_id=f"evt-{i}"))
    output.flush()
    # Then at most 101 BatchImportFindings calls carried them, and every one is in Security Hub
    assert calls.log.count("BatchImportFindings") <= 101
    assert output.imported == 10_000
    assert len(_hub_findings()) == 10_000


def test_the_pace_keeps_to_the_documented_rate() -> None:
    # Given the token bucket of BatchImportFindings (10 a second, bursts of 30) on a fake clock
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(clock=lambda: now[0], sleep=sleep)
    # When 100 calls are made at once
    for _ in range(100):
        bucket.take()
    # Then the first 30 go at once and the other 70 take 7 seconds
    assert sum(slept) == pytest.approx(7.0)


def test_failed_findings_are_retried_then_counted_and_logged(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Security Hub that refuses one finding once, and another one always
    _hub()
    once, always = _finding(key="images/once.jpg"), _finding(key="images/always.jpg")
    refused = {asff.finding_id(once): 1, asff.finding_id(always): 1_000}
    real = securityhub.import_findings

    def flaky(findings: list[dict[str, Any]]) -> list[securityhub.Rejected]:
        out = []
        for f in findings:
            if refused.get(f["Id"], 0) > 0:
                refused[f["Id"]] -= 1
                out.append(securityhub.Rejected(f["Id"], "InternalException", "try again"))
        taken = [f for f in findings if f["Id"] not in {r.finding_id for r in out}]
        return out + (real(taken) if taken else [])

    monkeypatch.setattr(securityhub, "import_findings", flaky)
    logged: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "clguard.reporting.securityhub.logger.error",
        lambda message, extra=None, **_: logged.append({"message": message, **(extra or {})}),
    )
    output = SecurityHubOutput(pace=_no_wait(), sleep=lambda _s: None)
    # When both are imported
    output.add(once)
    output.add(always)
    output.flush()
    # Then the first got in on the retry, the second is counted as failed, with its id logged
    ids = {f["Id"] for f in _hub_findings()}
    assert asff.finding_id(once) in ids
    assert asff.finding_id(always) not in ids
    assert output.failed == [asff.finding_id(always)]
    assert [entry["failed"][0]["id"] for entry in logged] == [asff.finding_id(always)]


def test_throttling_is_backed_off_and_retried(aws: Any, calls: Boundary) -> None:
    # Given Security Hub throttling the first two imports
    _hub()
    calls.faults.add("BatchImportFindings", "TooManyRequestsException", status=429, times=2)
    slept: list[float] = []
    output = SecurityHubOutput(pace=_no_wait(), sleep=slept.append)
    # When a finding is imported
    output.add(_finding())
    output.flush()
    # Then it got in after backing off twice
    assert len(_hub_findings()) == 1
    assert len(slept) == 2


# --- accepted exceptions ------------------------------------------------------------------------


def _parameter(document: Any) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    boto3.client("ssm", region_name=REGION).put_parameter(Name=PARAMETER, Value=text, Type="String", Overwrite=True)


def test_a_muted_finding_is_still_on_sns_marked_and_suppressed_in_security_hub(world: World) -> None:
    # Given an accepted exception for the archive prefix, and Security Hub on
    _hub()
    _parameter({"exceptions": [ARCHIVE_EXCEPTION]})
    publisher = _publisher(world, SECURITY_HUB="on", EXCEPTIONS=f"ssm:{PARAMETER}")
    # When a finding under the prefix and one elsewhere are published
    publisher.publish(_finding(key="archive/a.jpg"))
    publisher.publish(_finding(key="images/b.jpg"))
    publisher.flush()
    # Then both are on the machine topic; the muted one says so in its document and attribute
    muted, plain = world.published()
    assert muted.finding["suppressed"] == {
        "exception_id": "archive-sse-c",
        "reason": ARCHIVE_EXCEPTION["reason"],
        "owner": "ml-platform",
        "expires": "2099-03-31",
    }
    assert muted.attributes["suppressed"]["Value"] == "true"
    assert "suppressed" not in plain.finding
    assert plain.attributes["suppressed"]["Value"] == "false"
    assert "archive-sse-c" in muted.structure["email"]
    # and Security Hub holds the muted one SUPPRESSED with the exception in its note
    by_key = {f["Resources"][0]["Id"].rsplit("/", 1)[-1]: f for f in _hub_findings()}
    assert by_key["a.jpg"]["Workflow"] == {"Status": "SUPPRESSED"}
    assert "archive-sse-c" in by_key["a.jpg"]["Note"]["Text"]
    assert by_key["b.jpg"]["Workflow"] == {"Status": "NEW"}


def test_an_exception_changes_reporting_only(world: World) -> None:
    # Given an exception for an object that enforce mode re-encrypts
    _parameter({"exceptions": [ARCHIVE_EXCEPTION]})
    publisher = _publisher(world, EXCEPTIONS=f"ssm:{PARAMETER}")
    # When the remediator's finding is published
    publisher.publish(_finding(outcome=Outcome.REMEDIATED))
    # Then its outcome is what the remediator did; only the reporting fields changed
    (published,) = world.findings()
    assert published["outcome"] == "REMEDIATED"
    assert published["suppressed"]["exception_id"] == "archive-sse-c"


def test_an_expired_exception_alerts_again_saying_so(world: World) -> None:
    _parameter({"exceptions": [{**ARCHIVE_EXCEPTION, "expires": "2020-01-01"}]})
    publisher = _publisher(world, EXCEPTIONS=f"ssm:{PARAMETER}")
    publisher.publish(_finding())
    (published,) = world.published()
    assert "suppressed" not in published.finding
    assert published.attributes["suppressed"]["Value"] == "false"
    assert "archive-sse-c (expired 2020-01-01)" in published.finding["detail"]


def test_an_invalid_document_mutes_nothing_and_is_reported_once_per_version(world: World) -> None:
    # Given a document with a bare "*"
    _parameter({"exceptions": [{**ARCHIVE_EXCEPTION, "resources": ["*"]}]})
    settings_env = {"EXCEPTIONS": f"ssm:{PARAMETER}"}
    # When two functions' publishers publish findings it would have matched
    for _ in range(2):
        publisher = Publisher(load_settings(world.env(AWS_REGION=REGION, **settings_env), account_id=ACCOUNT))
        publisher.publish(_finding(key="archive/a.jpg"))
        publisher.publish(_finding(key="archive/b.jpg"))
        publisher.flush()  # the end of that function's unit of work: what it queued is sent
    # Then nothing is muted, and one EXCEPTIONS_INVALID names the problem and the document
    documents = world.findings()
    invalid = [d for d in documents if d["finding_type"] == "EXCEPTIONS_INVALID"]
    assert len(invalid) == 1
    assert invalid[0]["severity"] == "MEDIUM"
    assert invalid[0]["outcome"] == "REPORTED"
    assert invalid[0]["resource"] == {"type": "exceptions", "location": f"ssm:{PARAMETER}"}
    assert "resources[0]" in invalid[0]["detail"]
    assert "wildcards only" in invalid[0]["detail"]
    assert all("suppressed" not in d for d in documents)


def test_a_changed_document_takes_effect_within_five_minutes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a warm container that read a document without exceptions
    clock = [1_000.0]
    monkeypatch.setattr("clguard.reporting.exceptions.clock", lambda: clock[0])
    _parameter({"exceptions": []})
    publisher = _publisher(world, EXCEPTIONS=f"ssm:{PARAMETER}")
    publisher.publish(_finding(source_event_id="evt-1"))
    # When the document gains an exception, and 4 then 5 minutes pass
    _parameter({"exceptions": [ARCHIVE_EXCEPTION]})
    clock[0] += 240
    publisher.publish(_finding(source_event_id="evt-2"))
    clock[0] += 60
    publisher.publish(_finding(source_event_id="evt-3"))
    # Then the cached copy served the first 4 minutes, and the change applies from 5 minutes on
    assert ["suppressed" in d for d in world.findings()] == [False, False, True]


def test_an_exceptions_document_in_s3_is_read_too(world: World) -> None:
    world.s3.put_object(
        Bucket=BUCKET, Key="guard/exceptions.json", Body=json.dumps({"exceptions": [ARCHIVE_EXCEPTION]})
    )
    publisher = _publisher(world, EXCEPTIONS=f"s3://{BUCKET}/guard/exceptions.json")
    publisher.publish(_finding())
    assert world.findings()[0]["suppressed"]["exception_id"] == "archive-sse-c"


def test_an_unreadable_document_mutes_nothing_and_is_reported(world: World) -> None:
    publisher = _publisher(world, EXCEPTIONS="ssm:/guard/missing")
    publisher.publish(_finding())
    types = sorted(d["finding_type"] for d in world.findings())
    assert types == ["EXCEPTIONS_INVALID", "OBJECT_UNENCRYPTED"]
    assert (
        "could not be read" in next(d for d in world.findings() if d["finding_type"] == "EXCEPTIONS_INVALID")["detail"]
    )


# --- owner routing and key aliases ------------------------------------------------------------


def test_the_owner_comes_from_the_buckets_tag_as_a_field_and_an_attribute(world: World) -> None:
    # Given a training bucket tagged team=vision-team (OWNER_TAG_KEY=team)
    world.s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "team", "Value": "vision-team"}]})
    publisher = _publisher(world, OWNER_TAG_KEY="team")
    # When an object finding is published
    publisher.publish(_finding())
    # Then the owner is in the document and in the message attributes (for SNS filter policies)
    (published,) = world.published()
    assert published.finding["owner"] == "vision-team"
    assert published.attributes["owner"]["Value"] == "vision-team"


def test_without_the_tag_there_is_no_owner(world: World) -> None:
    publisher = _publisher(world)
    publisher.publish(_finding())
    (published,) = world.published()
    assert "owner" not in published.finding
    assert "owner" not in published.attributes


def test_a_key_finding_has_the_keys_owner_and_its_alias_next_to_the_arn(world: World, calls: Boundary) -> None:
    # Given a key tagged owner=crypto-team, with an alias
    key = world.key(alias="alias/training-data")
    world.kms.tag_resource(KeyId=key, Tags=[{"TagKey": "owner", "TagValue": "crypto-team"}])
    publisher = _publisher(world)
    # When two findings about the key are published
    for event in ("evt-1", "evt-2"):
        publisher.publish(
            Finding(
                finding_type=FindingType.KEY_UNUSABLE,
                outcome=Outcome.REPORTED,
                resource=KmsKeyResource(key),
                detail="the key is disabled",
                source_event_id=event,
                account=ACCOUNT,
                region=REGION,
                kms_key_arn=key,
            )
        )
    # Then people read the alias next to the ARN; machines keep the ARN; the owner is the key's
    first = world.published()[0]
    assert f"{key} (alias/training-data)" in first.structure["email"]
    assert f"{key} (alias/training-data)" in json.loads(first.structure["https"])["content"]["description"]
    assert first.finding["kms_key_arn"] == key
    assert first.finding["resource"] == {"type": "kms-key", "arn": key}
    assert first.finding["kms_key_alias"] == "alias/training-data"
    assert first.finding["owner"] == "crypto-team"
    # and the alias and tags were read once for the key
    assert calls.log.count("ListAliases") == 1


# --- through the verify function ----------------------------------------------------------------


def test_a_verify_batch_imports_its_findings_once_at_the_end_and_fails_no_record(world: World, calls: Boundary) -> None:
    # Given Security Hub on, an owner tag, an exception for part of the bucket, and 30 legacy objects
    _hub()
    _parameter({"exceptions": [{**ARCHIVE_EXCEPTION, "finding_types": ["OBJECT_UNENCRYPTED"]}]})
    world.s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "owner", "Value": "vision-team"}]})
    world.env_set(SECURITY_HUB="on", EXCEPTIONS=f"ssm:{PARAMETER}", REMEDIATION_MODE="report")
    keys = [f"{'archive' if i % 3 == 0 else 'images'}/{i:02}.jpg" for i in range(30)]
    for key in keys:
        world.put_legacy(key)
    # When the verify function handles them as one SQS batch
    result = app.lambda_handler(sqs_event(*[world.object_created(k) for k in keys]), LambdaContext())
    # Then no record failed, SNS carried 30 findings (10 muted), and one import call carried all 30
    assert result == {"batchItemFailures": []}
    documents = world.findings()
    assert len(documents) == 30
    assert sum("suppressed" in d for d in documents) == 10
    assert {d["owner"] for d in documents} == {"vision-team"}
    assert calls.log.count("BatchImportFindings") == 1
    hub = _hub_findings()
    assert len(hub) == 30
    assert sum(f["Workflow"]["Status"] == "SUPPRESSED" for f in hub) == 10
