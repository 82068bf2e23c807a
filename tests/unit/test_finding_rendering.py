"""The finding (docs/architecture.md §5, a contract) and the three renderings SNS delivers."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting import htmlparts, rendering
from clguard.reporting.findings import (
    SEVERITY,
    Finding,
    FindingType,
    KmsKeyResource,
    MemberRoleResource,
    Outcome,
    PolicyChange,
    ProjectVersionResource,
    Severity,
)
from clguard.reporting.rendering import (
    change_sentence,
    chat_message,
    email_text,
    message_attributes,
    next_steps,
    sns_message,
    subject,
)
from clguard.rules import policy

ACCOUNT = "123456789012"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DATASET_ARN = f"arn:aws:rekognition:us-east-1:{ACCOUNT}:project/cats/dataset/train/1764360300000"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
VERSION_ARN = f"arn:aws:rekognition:us-east-1:{ACCOUNT}:project/cats/version/cats.2026-11-20/1732000000000"
CONTRACT_FIELDS = {
    "schema_version",
    "finding_type",
    "severity",
    "outcome",
    "account",
    "region",
    "resource",
    "principal_arn",
    "kms_key_arn",
    "detail",
    "source_event_id",
    "observed_at",
}
# docs/architecture.md §5, copied from the table (not from the code).
DESIGN_SEVERITY = {
    "OBJECT_UNENCRYPTED": "HIGH",
    "OBJECT_SSE_C": "HIGH",
    "OBJECT_WRONG_ENCRYPTION": "MEDIUM",
    "OBJECT_UNVERIFIABLE": "MEDIUM",
    "KEY_UNUSABLE": "HIGH",
    "KEY_ACCESS_MISSING": "MEDIUM",
    "KEY_NOT_MANAGED": "MEDIUM",
    "PRINCIPAL_NOT_ALLOWED": "HIGH",
    "KEY_POLICY_LIMIT": "HIGH",
    "MANIFEST_INVALID": "MEDIUM",
    "EXCEPTIONS_INVALID": "MEDIUM",
    "TRAINING_FAILED": "HIGH",
    "MEMBER_UNREACHABLE": "HIGH",  # the project's extension (README, Organizations)
}
# The outcomes the contract (docs/architecture.md §5) names for each finding type.
DESIGN_OUTCOMES: dict[FindingType, tuple[Outcome, ...]] = {
    FindingType.OBJECT_UNENCRYPTED: (Outcome.REMEDIATED, Outcome.REPORTED, Outcome.FAILED),
    FindingType.OBJECT_SSE_C: (Outcome.REPORTED,),
    FindingType.OBJECT_WRONG_ENCRYPTION: (Outcome.REMEDIATED, Outcome.REPORTED, Outcome.FAILED),
    FindingType.OBJECT_UNVERIFIABLE: (Outcome.REPORTED,),
    FindingType.KEY_UNUSABLE: (Outcome.REPORTED,),
    # REFUSED: an explicit Deny of the key policy cancels the access (issue 9; README "Guarantees")
    FindingType.KEY_ACCESS_MISSING: (Outcome.REMEDIATED, Outcome.REPORTED, Outcome.REFUSED, Outcome.FAILED),
    FindingType.KEY_NOT_MANAGED: (Outcome.REFUSED,),
    FindingType.PRINCIPAL_NOT_ALLOWED: (Outcome.REFUSED,),
    FindingType.KEY_POLICY_LIMIT: (Outcome.REFUSED,),
    FindingType.MANIFEST_INVALID: (Outcome.REPORTED,),
    FindingType.EXCEPTIONS_INVALID: (Outcome.REPORTED,),
    FindingType.TRAINING_FAILED: (Outcome.REPORTED, Outcome.REMEDIATED),
    # REFUSED: a member's declaration names a bucket S3 says is another account's (README, Organizations)
    FindingType.MEMBER_UNREACHABLE: (Outcome.REPORTED, Outcome.REFUSED),
}
PAIRS = [(t, o) for t, outcomes in DESIGN_OUTCOMES.items() for o in outcomes]


def _object_finding(**changes: Any) -> Finding:
    finding = Finding(
        finding_type=FindingType.OBJECT_UNENCRYPTED,
        outcome=Outcome.REMEDIATED,
        resource=S3ObjectRef("train-data", "images/a.jpg"),
        detail="object had no server-side encryption; re-encrypted in place with SSE-S3",
        source_event_id="17793124-05d4-b198-2fde-7ededc63b103",
        account=ACCOUNT,
        region="us-east-1",
        observed_at="2026-11-28T20:00:00Z",
    )
    return replace(finding, **changes)


def _key_finding(**changes: Any) -> Finding:
    finding = Finding(
        finding_type=FindingType.KEY_ACCESS_MISSING,
        outcome=Outcome.REMEDIATED,
        resource=KmsKeyResource(KEY_ARN),
        detail=f"{TRAINER} lacked kms:Decrypt, kms:GenerateDataKey on {KEY_ARN}; added it",
        source_event_id="7fb16c5d-3c9c-4a6d-8b8f-ad7e2c4a6b59",
        account=ACCOUNT,
        region="us-east-1",
        principal_arn=TRAINER,
        kms_key_arn=KEY_ARN,
        observed_at="2026-11-28T20:10:00Z",
    )
    return replace(finding, **changes)


def _training_finding(**changes: Any) -> Finding:
    finding = Finding(
        finding_type=FindingType.TRAINING_FAILED,
        outcome=Outcome.REPORTED,
        resource=ProjectVersionResource(VERSION_ARN),
        detail=f"training failed (access): {TRAINER} lacks kms:Decrypt on {KEY_ARN}",
        source_event_id="audit-2026-11-28T20:00:00Z",
        account=ACCOUNT,
        region="us-east-1",
        kms_key_arn=KEY_ARN,
        observed_at="2026-11-28T20:00:00Z",
    )
    return replace(finding, **changes)


def _finding_for(finding_type: FindingType, outcome: Outcome) -> Finding:
    if finding_type is FindingType.TRAINING_FAILED:
        return _training_finding(outcome=outcome)
    if finding_type is FindingType.MEMBER_UNREACHABLE:
        return replace(
            _key_finding(finding_type=finding_type, outcome=outcome),
            resource=MemberRoleResource("arn:aws:iam::444455556666:role/CustomLabelsGuardMember"),
            account="444455556666",
            kms_key_arn=None,
            detail="the audit could not act in member account 444455556666 through its role: AccessDenied",
        )
    if finding_type.name.startswith(("OBJECT_", "MANIFEST_")):
        return _object_finding(finding_type=finding_type, outcome=outcome)
    return _key_finding(finding_type=finding_type, outcome=outcome)


# --- the document -----------------------------------------------------------------------------


def test_document_of_the_design_example() -> None:
    # Given the contract's example finding (docs/architecture.md §5)
    finding = _object_finding()
    # When its document is built
    # Then it is exactly the contract's document
    assert finding.document() == {
        "schema_version": "1",
        "finding_type": "OBJECT_UNENCRYPTED",
        "severity": "HIGH",
        "outcome": "REMEDIATED",
        "account": ACCOUNT,
        "region": "us-east-1",
        "resource": {"type": "s3-object", "bucket": "train-data", "key": "images/a.jpg", "version_id": None},
        "principal_arn": None,
        "kms_key_arn": None,
        "detail": "object had no server-side encryption; re-encrypted in place with SSE-S3",
        "source_event_id": "17793124-05d4-b198-2fde-7ededc63b103",
        "observed_at": "2026-11-28T20:00:00Z",
    }


@pytest.mark.parametrize(("finding_type", "outcome"), PAIRS)
def test_document_has_exactly_the_contract_fields_and_types(finding_type: FindingType, outcome: Outcome) -> None:
    # Given a finding of any type and outcome
    finding = _finding_for(finding_type, outcome)
    # When its document is built and sent as JSON
    document = json.loads(json.dumps(finding.document()))
    # Then it has exactly the contract's fields, with the contract's types
    assert set(document) == CONTRACT_FIELDS
    assert document["schema_version"] == "1"
    assert document["finding_type"] == finding_type.value
    assert document["severity"] == DESIGN_SEVERITY[finding_type.value]
    assert document["outcome"] in {"REMEDIATED", "REPORTED", "REFUSED", "FAILED"}
    assert re.fullmatch(r"[0-9]{12}", document["account"])
    for name in ("region", "detail", "source_event_id", "observed_at"):
        assert isinstance(document[name], str)
    for name in ("principal_arn", "kms_key_arn"):
        assert document[name] is None or isinstance(document[name], str)
    resource = document["resource"]
    if resource["type"] == "s3-object":
        assert set(resource) == {"type", "bucket", "key", "version_id"}
    elif resource["type"] == "rekognition-project-version":
        assert resource == {"type": "rekognition-project-version", "arn": VERSION_ARN}
    elif resource["type"] == "iam-role":
        assert resource == {"type": "iam-role", "arn": "arn:aws:iam::444455556666:role/CustomLabelsGuardMember"}
    else:
        assert resource == {"type": "kms-key", "arn": KEY_ARN}


def test_severity_table_matches_the_design() -> None:
    # Given the severity table
    # Then every finding type has the contract's severity (docs/architecture.md §5), and no others
    assert {t.value: s.value for t, s in SEVERITY.items()} == DESIGN_SEVERITY
    assert {t.value for t in FindingType} == set(DESIGN_SEVERITY)
    assert {t.value: t.severity.value for t in FindingType} == DESIGN_SEVERITY
    assert {o.value for o in Outcome} == {"REMEDIATED", "REPORTED", "REFUSED", "FAILED"}


def test_default_observed_at_is_utc_iso() -> None:
    # Given a finding created without observed_at
    finding = Finding(FindingType.OBJECT_SSE_C, Outcome.REPORTED, S3ObjectRef("b", "k"), "d", "e", ACCOUNT, "us-east-1")
    # Then it is stamped in UTC, to the second, with a Z
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", finding.observed_at)


def test_version_id_is_in_the_resource() -> None:
    # Given a finding about a versioned object
    finding = _object_finding(resource=S3ObjectRef("b", "k", "v-3"))
    # Then the version is in the document and the email
    assert finding.document()["resource"]["version_id"] == "v-3"
    assert "version v-3" in email_text(finding)


@pytest.mark.parametrize(
    "finding",
    [
        _object_finding(),
        _object_finding(resource=S3ObjectRef("b", "猫/画像.jpg", "v1"), kms_key_arn=KEY_ARN),
        _key_finding(),
        _key_finding(outcome=Outcome.FAILED, principal_arn=None, scope="2026-11-28T20"),
        _object_finding(
            finding_type=FindingType.MANIFEST_INVALID,
            outcome=Outcome.REPORTED,
            resource=ProjectVersionResource(VERSION_ARN),
            scope=f"event:{DATASET_ARN}",
        ),
    ],
)
def test_from_document_round_trips(finding: Finding) -> None:
    # Given a finding
    # When rebuilt from its JSON document (as the findings outbox does)
    rebuilt = Finding.from_document(json.loads(json.dumps(finding.document())), scope=finding.scope)
    # Then it is equal, with the same fingerprint
    assert rebuilt == finding
    assert rebuilt.fingerprint() == finding.fingerprint()


# --- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_ignores_when_and_how_it_was_described() -> None:
    # Given the same condition observed twice, described differently
    first = _key_finding()
    again = _key_finding(observed_at="2026-11-29T08:00:00Z", detail="another wording")
    # Then the fingerprint is the same
    assert first.fingerprint() == again.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", first.fingerprint())


@pytest.mark.parametrize(
    "change",
    [
        {"outcome": Outcome.FAILED},
        {"finding_type": FindingType.KEY_NOT_MANAGED},
        {"resource": KmsKeyResource(KEY_ARN.replace("1234abcd", "9999abcd"))},
        {"principal_arn": f"arn:aws:iam::{ACCOUNT}:role/Other"},
        {"kms_key_arn": None},
        {"source_event_id": "another-event"},
        {"scope": "2026-11-28T20"},
        {"account": "111122223333"},  # the same key seen from a member: another condition
    ],
)
def test_fingerprint_differs_by_condition_outcome_resource_and_event(change: dict[str, Any]) -> None:
    # Given a finding and one that differs in what identifies it
    # Then their fingerprints differ
    assert _key_finding(**change).fingerprint() != _key_finding().fingerprint()


def test_scope_replaces_the_event_in_the_fingerprint() -> None:
    # Given two events about the same key in the same scope (e.g. the same hour)
    first = _key_finding(scope="hour-20", source_event_id="event-1")
    second = _key_finding(scope="hour-20", source_event_id="event-2")
    # Then they are the same finding; another scope is not
    assert first.fingerprint() == second.fingerprint()
    assert first.fingerprint() != _key_finding(scope="hour-21", source_event_id="event-1").fingerprint()


def test_object_fingerprint_differs_by_key_and_version() -> None:
    # Given findings about different objects
    base = _object_finding()
    # Then key and version are part of the identity
    assert base.fingerprint() != _object_finding(resource=S3ObjectRef("train-data", "images/b.jpg")).fingerprint()
    assert base.fingerprint() != _object_finding(resource=S3ObjectRef("train-data", "images/a.jpg", "v")).fingerprint()


# --- subject ----------------------------------------------------------------------------------


def test_subject_of_a_short_resource() -> None:
    # Given a finding about a short key
    # Then the subject is the whole label
    assert subject(_object_finding()) == "[HIGH] OBJECT_UNENCRYPTED s3://train-data/images/a.jpg"
    # And a key ARN too long for the room keeps its start and the end of its key id
    key_subject = _assert_subject_rules(_key_finding())
    assert key_subject.startswith("[MEDIUM] KEY_ACCESS_MISSING arn:aws:kms:us-east-1:")
    assert key_subject.endswith("-12ab-34cd-56ef-1234567890ab")
    assert "..." in key_subject


def _assert_subject_rules(finding: Finding) -> str:
    text = subject(finding)
    prefix = f"[{finding.severity.value}] {finding.finding_type.value} "
    assert text.startswith(prefix)
    assert len(text) < 100
    assert re.fullmatch(r"[\x20-\x7e]+", text), text
    assert "\n" not in text
    assert "\r" not in text
    return text


@settings(max_examples=200, deadline=None)
@given(
    bucket=st.text(max_size=80),
    key=st.text(max_size=3000),
    finding_type=st.sampled_from(list(FindingType)),
)
def test_subject_rules_hold_for_any_key(bucket: str, key: str, finding_type: FindingType) -> None:
    # Given a finding about an object with any (huge, unicode, control-character) key
    finding = _object_finding(finding_type=finding_type, resource=S3ObjectRef(bucket, key))
    # When its subject is built
    text = _assert_subject_rules(finding)
    # Then the label keeps its beginning when it is cut
    assert text[len(f"[{finding.severity.value}] {finding.finding_type.value} ") :].startswith("s3://"[: len(text)])


def test_subject_of_a_huge_key_keeps_both_ends() -> None:
    # Given a key far longer than a subject
    finding = _object_finding(resource=S3ObjectRef("train-data", "start/" + "猫" * 900 + "/end.jpg"))
    # When its subject is built
    text = _assert_subject_rules(finding)
    # Then it keeps the beginning and the end, with an ellipsis
    assert "s3://train-data/start/" in text
    assert text.endswith("/end.jpg")
    assert "..." in text


# --- email ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("finding_type", "outcome"), PAIRS)
def test_email_says_what_where_what_was_done_and_next(finding_type: FindingType, outcome: Outcome) -> None:
    # Given a finding of any type, with an outcome the contract names for it
    finding = _finding_for(finding_type, outcome)
    # When rendered for email
    text = email_text(finding)
    # Then it says what happened, where, what was done and what to do next (the key by its ARN
    # once, on the line that names it: elsewhere "the key", since this finding has no alias)
    arn = finding.kms_key_arn
    assert f"What happened: {finding.detail.replace(arn, 'the key') if arn else finding.detail}" in text
    assert "Where: " in text
    assert finding.resource.label() in text
    assert ACCOUNT in text
    assert "What was done: " in text
    assert "What to do next:" in text
    assert next_steps(finding)
    for step in next_steps(finding):
        assert step in text
    assert finding_type.value in text
    assert outcome.value in text
    assert finding.source_event_id in text


def test_email_names_principal_and_key() -> None:
    # Given an object finding that concerns a key and a principal
    finding = _object_finding(kms_key_arn=KEY_ARN, principal_arn=TRAINER)
    # When rendered
    text = email_text(finding)
    # Then both are named
    assert f"KMS key: {KEY_ARN}" in text
    assert f"Principal: {TRAINER}" in text


# The bound every finding type's e-mail keeps with ordinary values (measured before the brevity
# pass: up to 1,162 characters and 12 lines, the key ARN twice in every key finding).
EMAIL_MAX_CHARS = 900
EMAIL_MAX_LINES = 11


@pytest.mark.parametrize(("finding_type", "outcome"), PAIRS)
@pytest.mark.parametrize("alias", [None, "alias/training-data"])
def test_email_is_short_and_names_the_key_arn_once(
    finding_type: FindingType, outcome: Outcome, alias: str | None
) -> None:
    # Given a finding of any type whose detail names its key (as the grant path's details do)
    finding = replace(_finding_for(finding_type, outcome), key_alias=alias)
    # When rendered for e-mail
    text = email_text(finding)
    # Then the key's ARN appears at most once, with its alias beside it when there is one
    assert text.count(KEY_ARN) <= 1
    if KEY_ARN in text and alias:
        assert f"{KEY_ARN} ({alias})" in text
    # And the e-mail stays within the stated bound
    assert len(text) <= EMAIL_MAX_CHARS, len(text)
    assert text.count("\n") + 1 <= EMAIL_MAX_LINES


def test_outcome_texts_differ() -> None:
    # Given the same finding with each outcome
    texts = {email_text(_key_finding(outcome=o)).split("What was done: ")[1].split("\n")[0] for o in Outcome}
    # Then each outcome is described differently
    assert len(texts) == len(Outcome)


# --- chat (Amazon Q Developer in chat applications) -------------------------------------------


@pytest.mark.parametrize(("finding_type", "outcome"), PAIRS)
def test_chat_message_schema(finding_type: FindingType, outcome: Outcome) -> None:
    # Given a finding
    finding = _finding_for(finding_type, outcome)
    # When rendered for chat
    message = json.loads(json.dumps(chat_message(finding)))
    # Then it follows the custom notification schema
    assert message["version"] == "1.0"
    assert message["source"] == "custom"
    content = message["content"]
    assert content["textType"] == "client-markdown"
    assert isinstance(content["title"], str)
    assert finding_type.value in content["title"]
    assert isinstance(content["description"], str)
    assert finding.detail.replace("`", "'") in content["description"]
    assert isinstance(content["nextSteps"], list)
    assert content["nextSteps"]
    assert all(isinstance(step, str) for step in content["nextSteps"])


def test_chat_description_is_bounded() -> None:
    # Given a finding with a huge detail
    finding = _key_finding(detail="x" * 50_000)
    # When rendered for chat
    description = chat_message(finding)["content"]["description"]
    # Then the description is cut and says so
    assert len(description) <= 7_000
    assert description.endswith("(truncated)")


def test_chat_backticks_cannot_break_the_markdown() -> None:
    # Given a key with backticks
    finding = _object_finding(resource=S3ObjectRef("b", "a`b``c.jpg"))
    # When rendered for chat
    description = chat_message(finding)["content"]["description"]
    # Then the key's backticks are neutralised inside the code span
    assert "`s3://b/a'b''c.jpg`" in description


# --- SNS --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "finding",
    [
        _object_finding(),
        _key_finding(outcome=Outcome.REFUSED, finding_type=FindingType.PRINCIPAL_NOT_ALLOWED),
        _object_finding(resource=S3ObjectRef("b", 'ünï"code\n\\key')),
    ],
)
def test_sns_message_structure(finding: Finding) -> None:
    # Given a finding
    # When the SNS message (MessageStructure=json) is built
    message = json.loads(sns_message(finding))
    # Then it has the three protocols: default is the document, https the chat message, email the text
    assert set(message) >= {"default", "email", "https"}
    assert json.loads(message["default"]) == finding.document()
    assert json.loads(message["https"]) == chat_message(finding)
    assert message["email"] == email_text(finding)


@pytest.mark.parametrize(("finding_type", "outcome"), PAIRS)
def test_message_attributes(finding_type: FindingType, outcome: Outcome) -> None:
    # Given a finding
    finding = _finding_for(finding_type, outcome)
    # When its message attributes are built
    attributes = message_attributes(finding)
    # Then subscribers can filter on type, severity and outcome, all Strings
    assert attributes == {
        "finding_type": {"DataType": "String", "StringValue": finding_type.value},
        "severity": {"DataType": "String", "StringValue": DESIGN_SEVERITY[finding_type.value]},
        "outcome": {"DataType": "String", "StringValue": outcome.value},
        # §5 (findings plane): always present, so a filter policy can select unmuted findings
        "suppressed": {"DataType": "String", "StringValue": "false"},
    }


def test_severity_values() -> None:
    # Given the severities
    # Then only HIGH and MEDIUM exist (docs/architecture.md §5 uses no others)
    assert {s.value for s in Severity} == {"HIGH", "MEDIUM"}


def _granted_change(principal: str = TRAINER, existing: tuple[str, ...] = ()) -> tuple[PolicyChange, ...]:
    """The change a real merge makes: ``principal`` added to the training-data statement."""
    document: dict[str, Any] = {"Version": "2012-10-17", "Statement": []}
    if existing:
        document = policy.merge_grants(
            document, [(p, (policy.TRAINING_DATA,)) for p in existing], key_account=ACCOUNT
        ).document
    merge = policy.merge_grants(document, [(principal, (policy.TRAINING_DATA,))], key_account=ACCOUNT)
    sid = policy.TRAINING_DATA.sid
    return (PolicyChange(sid, merge.before[sid], merge.after[sid]),)


SENTENCE = "added role/ml/CustomLabelsTrainer to CustomLabelsGuardTrainingData: kms:Decrypt, kms:GenerateDataKey"


def test_structured_change_renders_as_a_sentence_in_email_and_slack() -> None:
    # Given a REMEDIATED grant whose structured change adds the trainer to an existing statement
    other = f"arn:aws:iam::{ACCOUNT}:role/Other"
    finding = _key_finding(change=_granted_change(existing=(other,)))
    # When it is rendered for e-mail and for Slack
    email = email_text(finding)
    description = chat_message(finding)["content"]["description"]
    # Then both say in words what changed, naming only the added principal
    assert f"What changed: {SENTENCE}" in email
    assert (
        "*Changed:* added `role/ml/CustomLabelsTrainer` to `CustomLabelsGuardTrainingData`: "
        "kms:Decrypt, kms:GenerateDataKey" in description
    )
    assert "role/Other" not in email
    # And no statement JSON is shown to people
    assert '"Sid"' not in email
    assert '"Sid"' not in description


def test_a_new_statement_is_called_new() -> None:
    # Given a grant that created the remediator's statement
    [change] = _granted_change()
    # When it is put in words
    # Then the sentence says the statement is new
    assert change_sentence(change) == (
        "added role/ml/CustomLabelsTrainer to CustomLabelsGuardTrainingData (new statement): "
        "kms:Decrypt, kms:GenerateDataKey"
    )


def test_change_is_an_optional_field_of_the_document_and_survives_the_outbox() -> None:
    # Given a grant finding with a change, and one without
    changed = _key_finding(change=_granted_change())
    plain = _key_finding()
    # When their documents are built
    document = changed.document()
    # Then the change is there as {sid, before, after}, the schema version unchanged
    assert document["schema_version"] == "1"
    assert document["change"] == changed.change[0].to_json()
    assert document["change"]["before"] is None
    assert TRAINER in document["change"]["after"]["Principal"]["AWS"]
    # And a finding without a change has exactly the contract's fields
    assert set(plain.document()) == CONTRACT_FIELDS
    # And the change is rebuilt from the document (what the findings outbox carries)
    assert Finding.from_document(json.loads(json.dumps(document))) == changed


def _copied_images_change() -> tuple[PolicyChange, ...]:
    """The two statements a first KmsKeyId grant changes (Grant and Use), as the remediator records them."""
    merge = policy.merge_grants(
        {"Statement": []},
        [(TRAINER, (policy.COPIED_IMAGES_GRANT, policy.COPIED_IMAGES_USE))],
        key_account=ACCOUNT,
    )
    return tuple(PolicyChange(sid, merge.before[sid], merge.after[sid]) for sid in merge.before)


def test_several_changed_statements_are_all_in_changes_and_change_keeps_the_contract_shape() -> None:
    # Given a grant that changed two statements (the copied-images key)
    change = _copied_images_change()
    finding = _key_finding(change=change)
    # When its document and e-mail are built
    document = finding.document()
    # Then the change is a list of both, and the e-mail has one sentence per statement
    assert [c["sid"] for c in document["changes"]] == [policy.COPIED_IMAGES_GRANT.sid, policy.COPIED_IMAGES_USE.sid]
    # And ``change`` keeps the contract's shape (one object): the first statement changed
    assert document["change"] == document["changes"][0]
    # And the document read back has both statements
    assert Finding.from_document(json.loads(json.dumps(document))).change == change
    assert email_text(finding).count("What changed: added role/ml/CustomLabelsTrainer") == 2
    assert "kms:CreateGrant (with its condition)" in email_text(finding)


def test_a_document_an_earlier_version_wrote_with_a_list_in_change_reads_back_whole() -> None:
    # Given a document as the previous version wrote it (several changes as a list in ``change``,
    # no ``changes``), e.g. still in the findings outbox during a deployment
    change = _copied_images_change()
    document = _key_finding(change=change).document()
    document["change"] = document.pop("changes")
    # When it is read
    read = Finding.from_document(json.loads(json.dumps(document)))
    # Then both statements are there
    assert [c.sid for c in read.change] == [policy.COPIED_IMAGES_GRANT.sid, policy.COPIED_IMAGES_USE.sid]


def test_detail_prose_is_never_put_in_a_code_block() -> None:
    # Given a finding whose detail happens to contain the word "statement" (a hand-edited
    # statement's description)
    finding = _key_finding(
        outcome=Outcome.FAILED,
        detail="not adding x: statement CustomLabelsGuardTrainingData was edited by hand; `*` allowed",
    )
    # When rendered for Slack
    description = chat_message(finding)["content"]["description"]
    # Then the whole detail is the bold summary, neutralised, with no code block
    first_line = description.split("\n")[0]
    assert first_line.startswith("*not adding x: statement CustomLabelsGuardTrainingData")
    assert "```" not in description
    assert "`*`" not in first_line


def test_an_unreadable_dataset_renders_on_the_version_with_dataset_next_steps() -> None:
    # Given a dataset the guard could not read, reported on the version being trained
    finding = _object_finding(
        finding_type=FindingType.MANIFEST_INVALID,
        outcome=Outcome.REPORTED,
        resource=ProjectVersionResource(VERSION_ARN),
        detail=f"the TRAIN dataset {DATASET_ARN} could not be read (ListDatasetEntries: AccessDeniedException)",
    )

    # When it is rendered
    document, text = finding.document(), email_text(finding)

    # Then the resource is the contract's rekognition-project-version, and the next steps are about
    # the dataset, not manifest lines
    assert document["resource"] == {"type": "rekognition-project-version", "arn": VERSION_ARN}
    assert subject(finding).startswith("[MEDIUM] MANIFEST_INVALID arn:aws:rekognition:")
    assert "ListDatasetEntries" in next_steps(finding)[0]
    assert VERSION_ARN in text


def test_training_failed_document_names_the_project_version() -> None:
    # Given a TRAINING_FAILED finding of the audit
    finding = _training_finding()
    # When its document is built and rebuilt from the document (the outbox's round trip)
    document = finding.document()
    again = Finding.from_document(document)
    # Then it is HIGH, its resource is the project version, and the round trip keeps it
    assert (document["severity"], document["resource"]) == (
        "HIGH",
        {"type": "rekognition-project-version", "arn": VERSION_ARN},
    )
    assert again.resource == finding.resource
    assert VERSION_ARN in email_text(finding)


@given(
    st.lists(st.sampled_from(["a", "b", "ml/c", "x_y"]), unique=True, max_size=3),
    st.sampled_from(["new", "d", "ml/e"]),
)
@settings(max_examples=50, deadline=None)
def test_the_sentence_names_exactly_the_added_principal(existing: list[str], new: str) -> None:
    # Given any owned statement and a principal it lacks
    arns = tuple(f"arn:aws:iam::{ACCOUNT}:role/{name}" for name in existing)
    [change] = _granted_change(f"arn:aws:iam::{ACCOUNT}:role/{new}", arns)
    # When the change is put in words
    sentence = change_sentence(change)
    # Then it names the added principal and none of those already there
    assert sentence.startswith(f"added role/{new} to ")
    assert all(f"role/{name} " not in sentence and f"role/{name}," not in sentence for name in existing)


# --- one rule of what people cannot see (e-mail, Slack, CLI, the audit page) -----------------------

_NOTHING_SHOWN = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40))
def test_one_line_leaves_nothing_invisible_and_never_merges_two_texts(text: str) -> None:
    # Given any text an outsider may put in an object key, a tag or a principal
    shown = rendering.one_line(text)
    page = htmlparts.visible(text)
    # Then no character that renders as nothing, acts, or passes for a space is left raw, on any channel
    for out in (shown, page):
        assert not [c for c in out if unicodedata.category(c) in _NOTHING_SHOWN or (c.isspace() and c != " ")]
        assert not [c for c in out if c in "\u3164\uffa0\u115f\u1160\u2800\u034f" or 0xFE00 <= ord(c) <= 0xFE0F]
    # And two different texts never read the same (the backslash is escaped too)
    assert rendering.one_line(text + "\\") != shown


def test_tag_characters_and_fillers_are_shown_as_escapes_a_person_can_read() -> None:
    # Given an object key that hides " grant Admin" in tag characters, and one with a Hangul filler
    smuggled = "cat.jpg" + "".join(chr(0xE0000 + ord(c)) for c in " grant") + "\U000e007f"
    # Then each hidden character is a visible escape, in the terminal/e-mail/Slack and on the page alike
    assert (
        rendering.one_line(smuggled)
        == "cat.jpg\\U000e0020\\U000e0067\\U000e0072\\U000e0061\\U000e006e\\U000e0074\\U000e007f"
    )
    assert htmlparts.text("cat\u3164.jpg") == "cat\\u3164.jpg"
    assert rendering.one_line("a\u00a0b\\c") == "a\\xa0b\\\\c"
    # And text people can read stays as it is, accents and scripts included
    assert rendering.one_line("Ünïcødé 画像 صورة.jpg") == "Ünïcødé 画像 صورة.jpg"
