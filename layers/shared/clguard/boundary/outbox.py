"""The findings-outbox message (our own shape): a finding SNS did not take, put on the verify
queue to be published by the verify function.

    {"kind": "clguard.finding", "version": 1, "scope": "<the finding's scope>", "finding": {<its document>},
     "in_progress": true}   # optional: deferred because its idempotency record was in progress

``in_progress``: the publisher met the finding's idempotency record in progress, left by a live
publisher or by a dead one (killed between its claim and its acknowledgement). The consumer waits
for that record to complete or expire rather than publish beside a live publisher.

``encode`` is what the publisher sends; ``decode`` what ``events.parse_verify_message`` returns for
it. The version is written, not required on reading (the first outbox messages had none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from clguard.boundary.parsing import required_object
from clguard.reporting.findings import Finding

FINDING_KIND: Final = "clguard.finding"
VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class FindingMessage:
    document: dict[str, Any]
    scope: str
    in_progress: bool = False


def encode(finding: Finding, *, in_progress: bool = False) -> str:
    """The outbox message of ``finding``."""
    message: dict[str, Any] = {
        "kind": FINDING_KIND,
        "version": VERSION,
        "scope": finding.scope,
        "finding": finding.document(),
    }
    if in_progress:
        message["in_progress"] = True
    return json.dumps(message, ensure_ascii=False)


def decode(message: Mapping[str, Any]) -> FindingMessage:
    """A ``clguard.finding`` message (already parsed as JSON): its finding document and scope."""
    document = required_object(message, "finding", FINDING_KIND)
    return FindingMessage(document, str(message.get("scope") or ""), message.get("in_progress") is True)
