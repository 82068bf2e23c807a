"""The training plan: what a training call asks of the guard, decided from the call and the
settings alone, before any AWS call (the grant path then carries it out)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clguard.boundary.config import Settings, load_settings
from clguard.boundary.events import parse_training_call
from clguard.boundary.s3ref import S3ObjectRef
from clguard.rules.policy import AccessNeed
from clguard.usecases.trainingplan import TrainingPlan, plan_training
from tests.awscalls import boundary
from tests.eventsamples import ACCOUNT_ID, load_event

KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PROJECT = f"arn:aws:rekognition:us-east-1:{ACCOUNT_ID}:project/cats/1764360000000"
TRAIN_DATASET = f"arn:aws:rekognition:us-east-1:{ACCOUNT_ID}:project/cats/dataset/train/1764360300000"
TRAINER = f"arn:aws:iam::{ACCOUNT_ID}:role/ml/CustomLabelsTrainer"
ENV = {
    "AWS_REGION": "us-east-1",
    "ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:custom-labels-guard-alerts",
    "TRAINING_BUCKETS": "custom-labels-training",
    "STATE_TABLE": "custom-labels-guard-state",
}


@pytest.fixture
def settings() -> Settings:
    return load_settings(ENV, account_id=ACCOUNT_ID)


def plan_of(name: str, settings: Settings) -> TrainingPlan:
    return plan_training(parse_training_call(load_event(name)), settings)


def test_a_training_from_manifests_plans_its_key_manifests_and_output_bucket_without_calling_aws(
    settings: Settings,
) -> None:
    # Given a CreateProjectVersion with two manifests, a KmsKeyId and an output bucket
    call = parse_training_call(load_event("cloudtrail_create_project_version"))

    # When it is planned
    with boundary() as calls:
        plan = plan_training(call, settings)

    # Then no AWS call was made, and the plan names the trainer, what each key needs and where
    # the images are (the manifests rule: the project's datasets are not read)
    assert calls.log.count() == 0
    assert plan.principal == TRAINER
    assert plan.refusal is None
    assert plan.keys == ((KEY_ARN, AccessNeed.COPIED_IMAGES),)
    assert plan.manifests == (
        S3ObjectRef("custom-labels-training", "datasets/cats/train.manifest"),
        S3ObjectRef("custom-labels-training", "datasets/cats/test.manifest"),
    )
    assert plan.project_datasets is None
    assert plan.output_bucket == "custom-labels-output"
    assert plan.origin == f"CreateProjectVersion of {PROJECT} version cats-v1"
    assert plan.wants(AccessNeed.TRAINING_DATA) == {TRAINER: AccessNeed.TRAINING_DATA.specs}


def test_a_training_without_manifests_plans_the_projects_datasets(settings: Settings) -> None:
    # Given a CreateProjectVersion with neither TrainingData nor TestingData
    # When it is planned
    plan = plan_of("cloudtrail_create_project_version_datasets", settings)

    # Then the images are the entries of the project's datasets, reported on the new version
    assert plan.manifests == ()
    assert plan.project_datasets == PROJECT
    assert plan.version_arn is not None
    assert "/version/cats-v2/" in plan.version_arn


def test_a_copy_trains_nothing(settings: Settings) -> None:
    # Given a CopyProjectVersion (KmsKeyId, output bucket, no manifests)
    # When it is planned
    plan = plan_of("cloudtrail_copy_project_version", settings)

    # Then its keys are checked, but no images: a copy reads no datasets
    assert plan.keys == ((KEY_ARN, AccessNeed.COPIED_IMAGES),)
    assert plan.output_bucket == "custom-labels-output"
    assert (plan.manifests, plan.project_datasets, plan.source_dataset, plan.inline_ground_truth) == (
        (),
        None,
        None,
        None,
    )


def test_datasets_copied_or_updated_plan_their_images(settings: Settings) -> None:
    # Given a CreateDataset from another dataset, and an UpdateDatasetEntries with inline lines
    # When they are planned
    copied = plan_of("cloudtrail_create_dataset_from_dataset", settings)
    updated = plan_of("cloudtrail_update_dataset_entries", settings)

    # Then the first reads the source dataset's entries, the second the recorded lines
    assert copied.source_dataset == TRAIN_DATASET
    assert copied.keys == ()
    assert updated.inline_ground_truth is not None
    assert b"cat-004.jpg" in updated.inline_ground_truth


@pytest.mark.parametrize(
    "name", ["cloudtrail_create_project_version_root", "cloudtrail_create_project_version_other_account"]
)
def test_a_refused_caller_is_planned_with_nobody_to_grant(name: str, settings: Settings) -> None:
    # Given a training call by a caller outside the guardrails (root, another account)
    # When it is planned
    plan = plan_of(name, settings)

    # Then the plan says why, grants nobody, and still names the caller for the refusal finding
    assert plan.refusal
    assert plan.principal is None
    assert plan.principals == ()
    assert plan.wants(AccessNeed.COPIED_IMAGES) == {}
    assert plan.display_caller


def test_the_plan_is_frozen(settings: Settings) -> None:
    # Given a plan
    plan = plan_of("cloudtrail_create_project_version", settings)

    # When something tries to change it after the decision
    # Then it cannot: execution reads the plan, never rewrites it
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.output_bucket = "elsewhere"  # type: ignore[misc]


@given(refusal=st.one_of(st.none(), st.text(min_size=1)), arn=st.one_of(st.none(), st.just(TRAINER)))
def test_only_an_allowed_caller_is_wanted_on_a_key(refusal: str | None, arn: str | None) -> None:
    # Given a plan whose caller may or may not be refused
    plan = plan_of("cloudtrail_create_project_version", load_settings(ENV, account_id=ACCOUNT_ID))
    plan = dataclasses.replace(plan, refusal=refusal, caller=dataclasses.replace(plan.caller, principal_arn=arn))

    # When a key's need is asked for
    wants = plan.wants(AccessNeed.TRAINING_DATA)

    # Then exactly the allowed caller is wanted, with the need's statements
    expected = {arn: AccessNeed.TRAINING_DATA.specs} if arn and refusal is None else {}
    assert wants == expected
    assert plan.principals == tuple(expected)
