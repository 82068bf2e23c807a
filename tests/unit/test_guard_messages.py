"""Each message kind of the guard's own lives in one module with its encode, decode and version
(``fanout`` for ``clguard.verify-objects``, ``outbox`` for ``clguard.finding``), and the one entry
point for verify-queue bodies (``events.parse_verify_message``) reads what each encodes."""

from __future__ import annotations

import json

from clguard.boundary import fanout, outbox
from clguard.boundary.events import parse_verify_message
from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting.findings import Finding, FindingType, Outcome

EVENT_ID = "7fb16c5d-3c9c-4a6d-8b8f-ad7e2c4a6b59"


def test_an_outbox_message_is_read_back_into_the_same_finding() -> None:
    # Given a finding SNS did not take
    finding = Finding(
        FindingType.OBJECT_UNENCRYPTED,
        Outcome.REMEDIATED,
        S3ObjectRef("custom-labels-training", "cats/x y+z.jpg", "v-1"),
        "re-encrypted with the training key",
        EVENT_ID,
        "123456789012",
        "us-east-1",
        scope="hour-1",
    )
    # When the outbox encodes it and the verify queue's entry point reads it (from the guard)
    body = outbox.encode(finding)
    message = parse_verify_message(body, from_guard=True)
    # Then the message carries its kind and version, and decodes into the same finding
    assert json.loads(body)["kind"] == outbox.FINDING_KIND
    assert json.loads(body)["version"] == outbox.VERSION
    assert isinstance(message, outbox.FindingMessage)
    assert Finding.from_document(message.document, scope=message.scope) == finding


def test_both_verify_objects_encoders_write_a_version_their_decoder_reads() -> None:
    # Given a v1 message (manifest image checks) and a v2 message (the audit's fan-out)
    [v1] = fanout.messages([S3ObjectRef("b-1", "k")], source_event_id=EVENT_ID, origin="o", principals=[])
    packer = fanout.Packer(source_event_id=EVENT_ID, origin="o", principals=[], audit_run="run-1", bucket="b-1")
    packer.add(S3ObjectRef("b-1", "k"), "etag@t")
    v2 = packer.flush()
    assert v2 is not None
    # When each is decoded by the same module
    versions = [json.loads(body)["version"] for body in (v1, v2)]
    works = [fanout.decode(json.loads(body)) for body in (v1, v2)]
    # Then each version is one the decoder supports, and each carries its object
    assert versions == list(fanout.VERSIONS)
    assert [(w.ref.bucket, w.ref.key, w.reason) for [w] in works] == [
        ("b-1", "k", "manifest image"),
        ("b-1", "k", "audit"),
    ]
