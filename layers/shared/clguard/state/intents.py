"""Write-ahead of the findings of changes: a change that lands just before the runtime dies
(timeout, out of memory) is still reported, by the retry.

Before a CopyObject, UpdateObjectEncryption or PutKeyPolicy, the finding(s) the change will
produce are put in the state table, keyed by the source event and the resource:

    {"id": "intent#<source event id>#<s3://bucket/key | key ARN>",
     "findings": "[{\"document\": {...}, \"scope\": \"\"}, ...]",   # what to publish
     "target": "SSE-S3" | "SSE-KMS with arn:…" | "",                 # the state the change makes
     "expiration": <epoch seconds>}                                    # DynamoDB TTL

After the finding is delivered (SNS or the outbox) the item is deleted. A retry of the same event
looks the item up before it decides anything: if the change is in place (the object has the
target encryption; the principal is in the key policy) it publishes the stored findings; if not,
it drops them, makes the change itself and reports that.

The lookup costs nothing on a first delivery: the verify function looks only when SQS
redelivers the record (``ApproximateReceiveCount`` > 1); the grant function (low volume, retried
by Lambda with no attempt count) reads one index item per event, which the first write-ahead
of the event creates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from clguard.adapters import dynamodb
from clguard.errors import AwsError
from clguard.observability import logger
from clguard.reporting.findings import Finding

INTENT_TTL_SECONDS: Final = 14 * 24 * 3600  # as long as SQS (and its DLQ) can keep the event


@dataclass(frozen=True, slots=True)
class Intent:
    findings: tuple[Finding, ...]
    target: str


def _entry(finding: Finding) -> dict[str, object]:
    """The finding as journaled: its document without ``change``, which repeats the first of
    ``changes`` (read back from ``changes``), so a write-ahead item stays well under DynamoDB's
    400 KB however large the statements are."""
    document = finding.document()
    if "changes" in document:
        document.pop("change", None)
    return {"document": document, "scope": finding.scope}


class Journal:
    """The write-ahead journal of one unit of work (a batch record, or a training event).

    ``redelivered``: True/False when the delivery says (SQS); None when it cannot (the grant
    function): then one index item per event says whether any intent was ever written.
    """

    def __init__(self, table: str, *, redelivered: bool | None) -> None:
        self.table = table
        self.redelivered = redelivered
        self._indexed: set[str] = set()
        self._index_seen: dict[str, bool] = {}
        self._written: dict[tuple[str, str], list[Finding]] = {}

    @staticmethod
    def _id(event_id: str, resource: str) -> str:
        return f"intent#{event_id}#{resource}"

    def record(self, event_id: str, resource: str, findings: Sequence[Finding], target: str = "") -> None:
        """Before the change: durably note what it will report. Raises if it cannot (the change
        must then not be made: the record or invocation is retried)."""
        expiration = {"N": str(int(time.time()) + INTENT_TTL_SECONDS)}
        if self.redelivered is None and event_id not in self._indexed:
            dynamodb.put(self.table, {"id": {"S": f"intents#{event_id}"}, "expiration": expiration})
            self._indexed.add(event_id)
        # One unit of work may write several times under one key (one principal at a time):
        # the item holds every finding not yet cleared.
        pending = self._written.setdefault((event_id, resource), [])
        pending.extend(f for f in findings if f.fingerprint() not in {p.fingerprint() for p in pending})
        dynamodb.put(
            self.table,
            {
                "id": {"S": self._id(event_id, resource)},
                "findings": {"S": json.dumps([_entry(f) for f in pending], ensure_ascii=True)},
                "target": {"S": target},
                "expiration": expiration,
            },
        )

    def _may_have(self, event_id: str) -> bool:
        if self.redelivered is not None:
            return self.redelivered
        if event_id not in self._index_seen:
            self._index_seen[event_id] = dynamodb.get(self.table, f"intents#{event_id}") is not None
        return self._index_seen[event_id]

    def pending(self, event_id: str, resource: str) -> Intent | None:
        """What an earlier attempt of this event wrote ahead for ``resource`` and did not clear."""
        if not self._may_have(event_id):
            return None
        item = dynamodb.get(self.table, self._id(event_id, resource))
        if item is None or int(item.get("expiration", {}).get("N", "0")) <= int(time.time()):
            return None
        entries = json.loads(item.get("findings", {}).get("S", "[]"))
        findings = tuple(Finding.from_document(e["document"], scope=str(e.get("scope") or "")) for e in entries)
        return Intent(findings, str(item.get("target", {}).get("S", "")))

    def clear(self, event_id: str, resource: str, *, written_only: bool = False) -> None:
        """After the findings were delivered (or the change did not happen). Best effort: a
        leftover intent is only looked at by a retry, which publishes it idempotently.
        ``written_only``: only if this journal wrote one (no call otherwise)."""
        if self._written.pop((event_id, resource), None) is None and written_only:
            return
        try:
            dynamodb.delete(self.table, self._id(event_id, resource))
        except AwsError as error:
            logger.warning("could not clear a write-ahead intent", extra={"resource": resource, "error": str(error)})
