"""The demo's table of handler invocations says what each one was given, the digest's findings included."""

from __future__ import annotations

import json
from io import StringIO

from rich.console import Console

from localaws.observed import Invocation
from localaws.report import invocation_table
from tests.eventsamples import load_sqs_event


def test_a_digest_invocation_lists_the_findings_it_was_given() -> None:
    # Given a digest invocation on the alerts topic's raw findings (events/sqs/digest_findings.json)
    batch = load_sqs_event("digest_findings")
    findings = [json.loads(record["body"]) for record in batch["Records"]]
    invocation = Invocation("DigestFunction", "SQS DigestQueue", findings, batch)

    # When the invocation table is rendered
    out = StringIO()
    Console(file=out, width=200).print(invocation_table([invocation]))
    text = out.getvalue()

    # Then each row names the finding type and outcome, not "None None"
    assert "None None" not in text
    assert f"{findings[0]['finding_type']} {findings[0]['outcome']}" in text
