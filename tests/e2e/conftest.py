"""One LocalSystem (moto server on loopback, template.yaml deployed) per test module.

Starting and stopping the server takes about a second, so a module shares one; ``system`` gives
each test a fresh account on it (moto reset, template deployed again, records cleared).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localaws.runtime import LocalSystem

TRAINING_BUCKET = "custom-labels-training"


@pytest.fixture(scope="module")
def local_system() -> Iterator[LocalSystem]:
    # enforce: these flows test what the guard does (the template itself starts in report)
    with LocalSystem({"TrainingBuckets": TRAINING_BUCKET, "RemediationMode": "enforce"}) as system:
        yield system


@pytest.fixture
def system(local_system: LocalSystem) -> LocalSystem:
    local_system.reset()
    return local_system
