"""member.yaml takes the same ManagedKeyTag as the central template (README: "the same ManagedKeyTag")."""

from __future__ import annotations

import re

import pytest

from localaws.template import REPO_ROOT, load_template

CENTRAL = load_template(REPO_ROOT / "template.yaml")["Parameters"]
MEMBER = load_template(REPO_ROOT / "member.yaml")["Parameters"]


VALUES = ["custom-labels-guard=managed", "custom-labels-guard=ml team", "custom-labels-guard="]


@pytest.mark.parametrize("value", VALUES)
def test_every_opt_in_tag_the_central_stack_takes_the_member_stack_takes(value: str) -> None:
    # Given a ManagedKeyTag value, as a deployer would give both stacks
    central = re.fullmatch(CENTRAL["ManagedKeyTag"]["AllowedPattern"], value) is not None
    # When member.yaml's parameter rule is applied to it
    member = re.fullmatch(MEMBER["ManagedKeyTag"]["AllowedPattern"], value) is not None
    # Then it agrees with the central template's: a tag the central stack edits keys by is one the member can name
    assert member == central


BUCKETS = ["custom-labels-training", "Legacy_Bucket.Name", "a" * 255, "ab", "has space", "x/y"]


@pytest.mark.parametrize("name", BUCKETS)
def test_every_training_bucket_the_central_stack_takes_the_member_stack_takes(name: str) -> None:
    # Given a training bucket name (legacy us-east-1 names may hold upper case and "_")
    central = re.fullmatch(CENTRAL["TrainingBuckets"]["AllowedPattern"], name) is not None
    # When member.yaml's parameter rule is applied to it
    member = re.fullmatch(MEMBER["TrainingBuckets"]["AllowedPattern"], name) is not None
    # Then it agrees with the central template's: a member can deploy for every bucket the guard serves
    assert member == central
