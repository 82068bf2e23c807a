"""The findings plane without AWS: muted findings in the digest, and the exceptions checker that
runs before a document is deployed (docs/architecture.md §5b)."""

from __future__ import annotations

import copy
import io
import json
import uuid
from pathlib import Path
from typing import Any

from clguard.usecases import digest
from localaws.exceptions_check import main
from tests.eventsamples import load_sqs_event

MUTE = {
    "exception_id": "vendor-archive",
    "reason": "vendor archive *not* ours <b>",
    "owner": "ml-platform",
    "expires": "2099-01-01",
}


def _records(n: int, *, muted: int) -> list[dict[str, Any]]:
    template = load_sqs_event("digest_findings")["Records"][0]
    out = []
    for i in range(n):
        record = copy.deepcopy(template)
        document = json.loads(record["body"])
        document["resource"]["key"] = f"archive/{i:04}.jpg"
        document["source_event_id"] = f"evt-{i}"
        if i < muted:
            document["suppressed"] = MUTE
        record["body"] = json.dumps(document)
        record["messageId"] = str(uuid.uuid5(uuid.NAMESPACE_OID, f"record-{i}"))
        out.append(record)
    return out


def test_muted_findings_are_counted_in_the_digest_not_alerted() -> None:
    # Given a batch of 5 findings of one kind and place, 3 of them muted by an accepted exception
    records = _records(5, muted=3)
    # When the digest plans the messages for people
    messages = digest.plan(digest.parse_record(r) for r in records)
    # Then the 2 others are one digest, and the 3 muted ones one quiet count ("3 accepted exceptions")
    alerts = [m for m in messages if m.attributes.get("message_kind") != "accepted_exceptions"]
    (quiet,) = [m for m in messages if m.attributes.get("message_kind") == "accepted_exceptions"]
    assert digest.findings_counted(alerts) == 2
    assert "3 accepted exceptions" in quiet.subject
    assert "3 accepted exceptions" in quiet.email
    assert quiet.default["count"] == 3
    # and every record is accounted for exactly once
    assert sorted(rid for m in messages for rid in m.record_ids) == sorted(r["messageId"] for r in records)
    assert digest.findings_counted(messages) == 5
    # and the exception's reason is shown, never interpreted by Slack's markdown
    assert "*not*" not in quiet.chat["content"]["description"]


def test_a_duplicate_delivery_of_a_muted_finding_is_counted_once() -> None:
    records = _records(1, muted=1)
    again = copy.deepcopy(records[0])
    again["messageId"] = "redelivered"
    messages = digest.plan(digest.parse_record(r) for r in [*records, again])
    (quiet,) = messages
    assert quiet.default["count"] == 1
    assert sorted(quiet.record_ids) == sorted([records[0]["messageId"], "redelivered"])


EXCEPTIONS = {
    "exceptions": [
        {
            "id": "vendor-archive",
            "finding_types": ["OBJECT_WRONG_ENCRYPTION"],
            "resources": ["s3://custom-labels-training/archive/0*"],
            "reason": "vendor archive",
            "expires": "2099-01-01",
        }
    ]
}


def _findings_file(tmp_path: Path) -> Path:
    documents = [json.loads(r["body"]) for r in _records(3, muted=0)]
    documents[2]["resource"]["key"] = "images/cat.jpg"
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"findings": documents}))
    return path


def test_the_checker_shows_which_current_findings_a_document_would_mute(tmp_path: Path) -> None:
    # Given a document and the current findings (the audit's JSON report shape)
    document = tmp_path / "exceptions.json"
    document.write_text(json.dumps(EXCEPTIONS))
    out = io.StringIO()
    # When it is checked
    status = main([str(document), "--findings", str(_findings_file(tmp_path))], out=out)
    # Then it is valid, and the two archive findings are listed as muted, the third not
    assert status == 0
    assert "2 of 3 findings would be muted" in out.getvalue()
    assert "archive/0000.jpg" in out.getvalue()
    assert "images/cat.jpg" not in out.getvalue()


def test_the_checker_refuses_an_invalid_document_with_the_functions_message(tmp_path: Path) -> None:
    document = tmp_path / "exceptions.yaml"
    document.write_text("exceptions:\n  - id: all\n    finding_types: [OBJECT_SSE_C]\n    resources: ['*']\n")
    out = io.StringIO()
    status = main([str(document)], out=out)
    assert status == 2
    assert "missing required field(s) reason, expires" in out.getvalue()


def test_the_checker_names_expired_exceptions(tmp_path: Path) -> None:
    document = tmp_path / "exceptions.json"
    document.write_text(json.dumps(EXCEPTIONS))
    out = io.StringIO()
    status = main([str(document), "--findings", str(_findings_file(tmp_path)), "--today", "2099-01-02"], out=out)
    assert status == 0
    assert "0 of 3 findings would be muted" in out.getvalue()
    assert "expired vendor-archive" in out.getvalue()


def test_the_checker_usage_error_is_1(tmp_path: Path) -> None:
    assert main([str(tmp_path / "missing.json")], out=io.StringIO()) == 1


def test_the_digest_shows_a_keys_alias_next_to_its_arn() -> None:
    # Given two findings of one kind about one key that has an alias
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    records = _records(2, muted=0)
    for i, record in enumerate(records):
        document = json.loads(record["body"])
        document.update(
            finding_type="KEY_UNUSABLE",
            severity="HIGH",
            resource={"type": "kms-key", "arn": key},
            kms_key_arn=key,
            kms_key_alias="alias/training-data",
            source_event_id=f"key-{i}",
        )
        record["body"] = json.dumps(document)
    # When the digest groups them
    (message,) = digest.plan(digest.parse_record(r) for r in records)
    # Then people read the alias next to the ARN
    assert f"{key} (alias/training-data)" in message.email
