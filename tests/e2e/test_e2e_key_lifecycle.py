"""With SecurityHub on, a KMS key disabled or scheduled for deletion goes through the template's
KeyLifecycleRule on the local system to the grant function (docs/architecture.md §5a)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localaws.runtime import LocalSystem
from tests.e2e.conftest import TRAINING_BUCKET
from tests.eventsamples import load_event


@pytest.fixture(scope="module")
def hub_system() -> Iterator[LocalSystem]:
    with LocalSystem({"TrainingBuckets": TRAINING_BUCKET, "SecurityHub": "on"}) as system:
        yield system


@pytest.mark.parametrize("name", ["cloudtrail_kms_schedule_key_deletion", "cloudtrail_kms_disable_key"])
def test_a_key_lifecycle_event_reaches_the_grant_function_once(hub_system: LocalSystem, name: str) -> None:
    # Given the sample KMS CloudTrail event (its key does not exist in the fresh local account)
    hub_system.reset()
    event = load_event(name)
    # When it is put on the local default bus
    routed = hub_system.put_event(event)
    invocations = [i for i in hub_system.drain() if i.function != "DigestFunction"]
    # Then KeyLifecycleRule alone matched and the grant function ran once on it, re-read the key
    # (KMS: not found) and coped: nothing to close, no error, nothing for a DLQ
    assert routed.rules == ["KeyLifecycleRule"]
    [invocation] = invocations
    assert invocation.function == "GrantTrainingAccessFunction"
    assert invocation.error is None, invocation.output[-2000:]
    assert (invocation.result["status"], invocation.result["state"], invocation.result["closed"]) == (
        "processed",
        "deleted",
        0,
    )
    assert hub_system.dead_letters()["GrantDLQ"] == 0
