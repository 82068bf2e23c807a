"""The unit of work (clguard.reporting.unitofwork): a change's write-ahead intent is acknowledged
(cleared) only when the span ended cleanly and every finding made in it was delivered; a unit
with an undelivered finding fails so that it is retried."""

from __future__ import annotations

from typing import Any

import pytest

from clguard.boundary.config import load_settings
from clguard.errors import RetryableError
from clguard.reporting.findings import Finding, FindingType, Outcome
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Change, Unit
from clguard.state.intents import Journal
from tests.awscalls import Boundary
from tests.world import ACCOUNT, BUCKET, REGION, TABLE, World

RESOURCE = f"s3://{BUCKET}/datasets/cats/images/cat-001.jpg"


def _finding(detail: str = "re-encrypted") -> Finding:
    from clguard.boundary.s3ref import S3ObjectRef  # noqa: PLC0415

    return Finding(
        finding_type=FindingType.OBJECT_UNENCRYPTED,
        outcome=Outcome.REMEDIATED,
        resource=S3ObjectRef(BUCKET, "datasets/cats/images/cat-001.jpg", None),
        detail=detail,
        source_event_id="evt-1",
        account=ACCOUNT,
        region=REGION,
    )


def _intents(world: World) -> list[dict[str, Any]]:
    return [i for i in world.ddb.scan(TableName=TABLE)["Items"] if i["id"]["S"].startswith("intent#")]


def _publisher(world: World) -> Publisher:
    return Publisher(load_settings(world.env(AWS_REGION=REGION), account_id=ACCOUNT), idempotent=False)


def test_a_delivered_change_is_acknowledged(world: World) -> None:
    # Given a change whose finding is written ahead
    publisher = _publisher(world)
    with Unit(publisher), Change(publisher, Journal(TABLE, redelivered=False), "evt-1", RESOURCE) as change:
        change.intend([_finding()])
        assert len(_intents(world)) == 1
        # When its finding is delivered
        assert change.report(_finding()) is True
    # Then the intent is cleared, and the unit finishes
    assert _intents(world) == []


def test_an_undelivered_change_keeps_its_intent_and_fails_its_unit(world: World, calls: Boundary) -> None:
    # Given SNS and the findings outbox both failing
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    publisher = _publisher(world)
    # When a change writes its finding ahead and reports it
    unit = Unit(publisher)
    with Change(publisher, Journal(TABLE, redelivered=False), "evt-1", RESOURCE) as change:
        change.intend([_finding()])
        assert change.report(_finding()) is False
    assert change.delivered is False
    with pytest.raises(RetryableError):
        unit.finish()
    # Then the unit failed (retried) and the intent is still there for the retry
    assert len(_intents(world)) == 1


def test_a_change_that_raised_is_not_acknowledged(world: World) -> None:
    # Given a change written ahead, that fails before it reports
    publisher = _publisher(world)

    def dies() -> None:
        with Change(publisher, Journal(TABLE, redelivered=False), "evt-1", RESOURCE) as change:
            change.intend([_finding()])
            raise RuntimeError("died")

    with pytest.raises(RuntimeError):
        dies()
    # Then its intent stays for the retry
    assert len(_intents(world)) == 1


def test_a_span_that_wrote_nothing_leaves_an_earlier_spans_intent(world: World, calls: Boundary) -> None:
    # Given one change of the resource whose finding was not delivered (its intent must stay)
    journal = Journal(TABLE, redelivered=False)
    calls.faults.add("Publish", "InternalError", status=500)
    calls.faults.add("SendMessage", "InternalError", status=500)
    publisher = _publisher(world)
    with Change(publisher, journal, "evt-1", RESOURCE) as first:
        first.intend([_finding()])
        first.report(_finding())
    # When a later span on the same resource writes nothing and finds nothing (a first delivery)
    with Change(publisher, journal, "evt-1", RESOURCE) as later:
        assert later.pending() is None
    # Then the earlier intent is still there: only a span that wrote or read it acknowledges it
    assert len(_intents(world)) == 1
