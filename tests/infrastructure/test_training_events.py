"""One list of training calls: the grant path's ``TRAINING_EVENTS`` is the list the central template's
rule matches and the list a member stack forwards (docs/architecture.md §2). A call added to one and
not the others would be either never delivered or delivered and ignored."""

from __future__ import annotations

from typing import Any

import pytest

from clguard.boundary.events import TRAINING_EVENTS
from tests.infrastructure.cfn_template import REPO_ROOT, load_template


def _event_names(template: dict[str, Any], rule: str) -> set[str]:
    pattern = template["Resources"][rule]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.rekognition"]
    return set(pattern["detail"]["eventName"])


@pytest.mark.parametrize(
    ("template_file", "rule"),
    [("template.yaml", "TrainingCallRule"), ("member.yaml", "ForwardTrainingCallRule")],
)
def test_every_template_routes_exactly_the_training_calls_the_grant_path_handles(template_file: str, rule: str) -> None:
    # Given the template's rule for Rekognition training calls
    template = load_template(REPO_ROOT / template_file)

    # When its eventName list is read
    names = _event_names(template, rule)

    # Then it is the grant path's list, no more and no less
    assert names == set(TRAINING_EVENTS)
