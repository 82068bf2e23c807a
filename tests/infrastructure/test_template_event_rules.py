"""Every sample event reaches exactly the EventBridge rules it should, and no other."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.eventsamples import ACCOUNT_ID, REGION, all_event_names, load_event
from tests.infrastructure.cfn_template import event_matches, load_template, rule_patterns

OBJECT_CREATED = "ObjectCreatedRule"
S3_DATA_EVENT = "S3DataEventRule"
TRAINING_CALL = "TrainingCallRule"
KEY_LIFECYCLE = (
    "KeyLifecycleRule"  # deployed only with SecurityHub on (tests/infrastructure/test_key_lifecycle_rule.py)
)

# Which rules each sample must match. A new sample must be added here (see the test below).
EXPECTED_RULES: dict[str, set[str]] = {
    "s3_object_created": {OBJECT_CREATED},
    "s3_object_created_copy_echo": {OBJECT_CREATED},
    "s3_object_created_other_bucket": set(),
    "cloudtrail_s3_putobject": {S3_DATA_EVENT},
    "cloudtrail_s3_copyobject": {S3_DATA_EVENT},
    "cloudtrail_s3_completemultipartupload": {S3_DATA_EVENT},
    "cloudtrail_s3_putobject_default_sse_kms": {S3_DATA_EVENT},
    "cloudtrail_s3_putobject_dsse_kms": {S3_DATA_EVENT},
    "cloudtrail_s3_putobject_sse_c": {S3_DATA_EVENT},
    "cloudtrail_s3_putobject_no_encryption_fields": {S3_DATA_EVENT},
    "cloudtrail_create_project_version": {TRAINING_CALL},
    "cloudtrail_create_project_version_sso": {TRAINING_CALL},
    "cloudtrail_create_project_version_iam_user": {TRAINING_CALL},
    "cloudtrail_create_project_version_root": {TRAINING_CALL},
    "cloudtrail_create_project_version_other_account": {TRAINING_CALL},
    "cloudtrail_create_project_version_lowercamel": {TRAINING_CALL},
    "cloudtrail_create_project_version_alias_key": {TRAINING_CALL},
    "cloudtrail_create_project_version_error": {TRAINING_CALL},
    "cloudtrail_create_project_version_access_denied_kms": {TRAINING_CALL},
    "cloudtrail_create_project_version_access_denied_kms_scp": {TRAINING_CALL},
    "cloudtrail_create_project_version_other_event": set(),
    "cloudtrail_create_project_version_datasets": {TRAINING_CALL},
    "cloudtrail_create_dataset": {TRAINING_CALL},
    "cloudtrail_create_dataset_from_dataset": {TRAINING_CALL},
    "cloudtrail_update_dataset_entries": {TRAINING_CALL},
    "cloudtrail_copy_project_version": {TRAINING_CALL},
    "cloudtrail_kms_schedule_key_deletion": {KEY_LIFECYCLE},
    "cloudtrail_kms_disable_key": {KEY_LIFECYCLE},
    "scheduled_audit": set(),  # the audit's schedule rule has no event pattern
}


def matching_rules(patterns: dict[str, dict[str, Any]], event: dict[str, Any]) -> set[str]:
    return {rule for rule, pattern in patterns.items() if event_matches(pattern, event)}


def test_every_sample_event_has_an_expectation() -> None:
    # Given the sample events on disk
    names = set(all_event_names())

    # When compared with the expectations of this module
    # Then each sample says which rules it must match, and no expectation is stale
    assert names == set(EXPECTED_RULES)


def test_the_template_declares_the_three_rules() -> None:
    # Given the template
    # When its rules are listed
    patterns = rule_patterns(load_template())

    # Then they are the rules of docs/architecture.md §2 (the key lifecycle rule with Security Hub on)
    assert set(patterns) == {OBJECT_CREATED, S3_DATA_EVENT, TRAINING_CALL, KEY_LIFECYCLE}


@pytest.mark.parametrize("name", sorted(EXPECTED_RULES))
def test_sample_event_matches_exactly_its_rules(name: str) -> None:
    # Given the rules, deployed for the training bucket of the samples
    patterns = rule_patterns(load_template())

    # When the sample event is matched against every rule
    matched = matching_rules(patterns, load_event(name))

    # Then it reaches exactly the expected rules
    assert matched == EXPECTED_RULES[name]


def test_s3_rules_follow_the_training_buckets_parameter() -> None:
    # Given the rules deployed for other buckets, and for a list that includes the sample's bucket
    template = load_template()
    elsewhere = rule_patterns(template, {"TrainingBuckets": ["another-bucket"]})
    several = rule_patterns(template, {"TrainingBuckets": ["another-bucket", "custom-labels-training"]})

    # When S3 events of custom-labels-training arrive
    for name in ("s3_object_created", "cloudtrail_s3_putobject"):
        event = load_event(name)

        # Then only the deployment that lists the bucket routes them
        assert matching_rules(elsewhere, event) == set()
        assert matching_rules(several, event) == EXPECTED_RULES[name]


MEMBER = "111122223333"
STRANGER = "999988887777"


@pytest.mark.parametrize("name", ["s3_object_created", "cloudtrail_s3_putobject"])
def test_a_member_upload_matches_whatever_bucket_it_declares_and_a_stranger_s_does_not(name: str) -> None:
    # Given a central deployment serving MEMBER, whose TrainingBuckets do not list the bucket
    # the member declares (only the member's stack knows it)
    patterns = rule_patterns(load_template(), {"TrainingBuckets": ["central-only"], "MemberAccountIds": MEMBER})
    event = load_event(name)
    own, member, stranger = dict(event), {**event, "account": MEMBER}, {**event, "account": STRANGER}

    # When the upload's event comes from the member, a stranger, or the own account
    # Then the member's reaches its rule (the verify function decides from its declaration);
    # neither a stranger's nor the own account's upload to a bucket it does not list does
    assert matching_rules(patterns, member) == EXPECTED_RULES[name]
    assert matching_rules(patterns, stranger) == set()
    assert matching_rules(patterns, own) == set()


def test_rekognition_rule_only_takes_training_calls() -> None:
    # Given a CreateProjectVersion event
    patterns = rule_patterns(load_template())
    event = load_event("cloudtrail_create_project_version")

    # When it comes from another service or names another API
    other_source = {**event, "source": "aws.sagemaker"}
    other_name = {**event, "detail": {**event["detail"], "eventName": "DeleteProject"}}

    # Then no rule takes it
    assert matching_rules(patterns, other_source) == set()
    assert matching_rules(patterns, other_name) == set()


def test_matcher_semantics() -> None:
    # Given small patterns using each construct the matcher supports
    event = {"source": "aws.s3", "detail": {"tags": ["a", "b"], "size": 5, "key": "x/y.jpg"}}

    # When / Then: exact values, list fields, nested objects, missing fields and filters
    assert event_matches({"source": ["aws.s3"]}, event)
    assert not event_matches({"source": ["aws.s3x"]}, event)
    assert event_matches({"detail": {"tags": ["b"]}}, event)
    assert not event_matches({"detail": {"tags": ["c"]}}, event)
    assert not event_matches({"detail": {"missing": ["x"]}}, event)
    assert event_matches({"detail": {"missing": [{"exists": False}]}}, event)
    assert not event_matches({"detail": {"size": [{"exists": False}]}}, event)
    assert not event_matches({"detail": {"size": ["5"]}}, event)
    assert event_matches({"detail": {"key": [{"prefix": "x/"}]}}, event)
    assert event_matches({"detail": {"key": [{"suffix": ".jpg"}]}}, event)
    assert not event_matches({"detail": {"key": [{"anything-but": ["x/y.jpg"]}]}}, event)
    assert not event_matches({"source": {"nested": ["aws.s3"]}}, event)
    assert event_matches({"$or": [{"source": ["x"]}, {"detail": {"size": [5]}}]}, event)
    assert not event_matches({"$or": [{"source": ["x"]}, {"detail": {"size": [6]}}]}, event)
    assert not event_matches({"source": ["x"], "$or": [{"detail": {"size": [5]}}]}, event)
    with pytest.raises(NotImplementedError):
        event_matches({"detail": {"size": [{"numeric": [">", 1]}]}}, event)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(variable, value)
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)


def _drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.usefixtures("aws_credentials")
def test_matcher_agrees_with_moto_eventbridge() -> None:
    with mock_aws():
        # Given the template's rules on moto's EventBridge, each routed to its own queue
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        patterns = rule_patterns(load_template())
        queue_urls = {}
        for rule, pattern in patterns.items():
            queue_url = sqs.create_queue(QueueName=rule)["QueueUrl"]
            queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{rule}"
            events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
            queue_urls[rule] = queue_url

        # When every sample event is put on the bus (its detail tagged so we can recognise it)
        for name in all_event_names():
            event = load_event(name)
            detail = {**event["detail"], "sampleName": name, "sampleNonce": str(uuid.uuid4())}
            response = events.put_events(
                Entries=[
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(detail),
                        "Resources": event["resources"],
                        "Time": datetime.fromisoformat(event["time"]),
                    }
                ]
            )
            assert response["FailedEntryCount"] == 0

        # Then moto routed each sample to exactly the rules our matcher names
        routed: dict[str, set[str]] = {name: set() for name in all_event_names()}
        for rule, queue_url in queue_urls.items():
            for body in _drain(sqs, queue_url):
                routed[body["detail"]["sampleName"]].add(rule)
        ours = {name: matching_rules(patterns, load_event(name)) for name in all_event_names()}
        assert routed == ours
        assert any(routed.values())  # not vacuous: moto did deliver


def test_sample_events_are_distinct_and_well_formed() -> None:
    # Given every sample event
    events = {name: load_event(name) for name in all_event_names()}

    # When their identifiers are collected
    ids = [event["id"] for event in events.values()]
    event_ids = [event["detail"]["eventID"] for event in events.values() if "eventID" in event["detail"]]

    # Then each has its own EventBridge id and CloudTrail eventID, of the account and region used
    assert len(set(ids)) == len(ids)
    assert len(set(event_ids)) == len(event_ids)
    for name, event in events.items():
        uuid.UUID(event["id"])
        assert event["account"] == ACCOUNT_ID, name
        assert event["region"] == REGION, name
        datetime.fromisoformat(event["time"])
        if event["detail-type"] == "AWS API Call via CloudTrail":
            assert event["detail"]["eventID"], name
            assert event["detail"]["recipientAccountId"] == ACCOUNT_ID, name
            assert event["source"] == "aws." + event["detail"]["eventSource"].split(".")[0], name


def test_load_event_returns_independent_copies() -> None:
    # Given a sample loaded once and modified
    first = load_event("s3_object_created.json")
    first["detail"]["bucket"]["name"] = "changed"

    # When it is loaded again (with or without the suffix)
    second = load_event("s3_object_created")

    # Then the change did not leak
    assert second["detail"]["bucket"]["name"] == "custom-labels-training"


OU = "ou-ab12-cd34ef56"


@pytest.mark.parametrize("name", ["s3_object_created", "cloudtrail_s3_putobject", "cloudtrail_create_project_version"])
def test_with_a_member_ou_every_account_the_bus_admits_reaches_the_functions(name: str) -> None:
    # Given a central deployment whose members are an OU's accounts (the bus admits only the
    # organization: OrganizationId), and whose TrainingBuckets do not list the member's bucket
    parameters = {
        "TrainingBuckets": ["central-only"],
        "MemberOrganizationalUnitId": OU,
        "OrganizationId": "o-a1b2c3d4e5",
    }
    patterns = rule_patterns(load_template(), parameters)
    event = load_event(name)

    # When the event comes from another account of the organization
    # Then its rule matches it: the function decides from the OU's listing (an account outside
    # the OU is EventsForeignAccount there), since no pattern can name an OU's accounts
    assert matching_rules(patterns, {**event, "account": MEMBER}) == EXPECTED_RULES[name]
    assert matching_rules(patterns, {**event, "account": STRANGER}) == EXPECTED_RULES[name]
