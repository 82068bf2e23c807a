"""The grant path for training from a project's own datasets (the flow AWS recommends): a
CreateProjectVersion without manifests reads the TRAIN and TEST datasets' entries, streamed, and
treats them as manifest lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from clguard.errors import RetryableError
from clguard.rules import policy
from functions.grant_training_access import app
from localaws.doubles import RekognitionCustomLabels, dataset_entry
from tests.awscalls import Boundary
from tests.world import ACCOUNT, BUCKET, LambdaContext, World

TRAINER = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
DATA_ENGINEER = f"arn:aws:iam::{ACCOUNT}:role/data/DataEngineer"
TRAIN_IMAGES = 110  # two pages of ListDatasetEntries (100 + 10)
TEST_IMAGES = 10


def grant(event: dict[str, Any]) -> dict[str, Any]:
    return app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))


def trainers(world: World, key: str) -> list[str]:
    statement = world.statement(key, policy.TRAINING_DATA.sid)
    return [] if statement is None else policy.as_list(statement["Principal"]["AWS"])


def images(prefix: str, count: int) -> list[str]:
    return [f"datasets/cats/{prefix}/img-{n:05}.jpg" for n in range(count)]


@dataclass
class Project:
    world: World
    rekognition: RekognitionCustomLabels
    arn: str
    train_key: str  # the TRAIN images' key
    test_key: str  # the TEST images' key
    train: str  # dataset ARNs
    test: str

    def event(self, name: str = "cloudtrail_create_project_version_datasets") -> dict[str, Any]:
        """The sample event, for this world's project (the double's ARNs carry its own timestamps)."""
        event = self.world.training_event(name)
        params = event["detail"]["requestParameters"]
        params["ProjectArn"] = self.arn
        params.pop("KmsKeyId", None)  # the sample's key is not in this world
        elements = event["detail"].get("responseElements") or {}
        if "projectVersionArn" in elements:
            elements["projectVersionArn"] = f"{self.arn.rsplit('/', 1)[0]}/version/cats-v2/1764361200000"
        return event

    @property
    def version_arn(self) -> str:
        return f"{self.arn.rsplit('/', 1)[0]}/version/cats-v2/1764361200000"


def put_images(world: World, names: list[str], key: str) -> None:
    for name in names:
        world.put(name, ServerSideEncryption="aws:kms", SSEKMSKeyId=key)


@pytest.fixture
def project(world: World) -> Project:
    """The trainer and a data engineer; a project whose TRAIN images (110) are under one managed
    CMK and TEST images (10) under another; the datasets were created by the data engineer."""
    world.role("CustomLabelsTrainer", "/ml/")
    world.role("DataEngineer", "/data/")
    train_key, test_key = world.key(), world.key()
    train_images, test_images = images("train", TRAIN_IMAGES), images("test", TEST_IMAGES)
    put_images(world, train_images, train_key)
    put_images(world, test_images, test_key)
    rekognition = world.behaviour[RekognitionCustomLabels]
    arn = rekognition.create_project("cats")
    train = rekognition.create_dataset(arn, "TRAIN", [dataset_entry(BUCKET, i) for i in train_images])
    test = rekognition.create_dataset(arn, "TEST", [dataset_entry(BUCKET, i) for i in test_images])
    return Project(world, rekognition, arn, train_key, test_key, train, test)


def manifest_invalid(world: World) -> list[dict[str, Any]]:
    return [f for f in world.findings() if f["finding_type"] == "MANIFEST_INVALID"]


def test_dataset_only_training_grants_the_trainer_on_every_image_key(project: Project, calls: Boundary) -> None:
    # Given a project whose TRAIN and TEST images are under two managed CMKs the trainer lacks
    w = project.world

    # When the trainer calls CreateProjectVersion without manifests (training from the datasets)
    summary = grant(project.event())

    # Then the trainer can decrypt both keys, every image was checked, every page was read
    assert trainers(w, project.train_key) == [TRAINER]
    assert trainers(w, project.test_key) == [TRAINER]
    assert summary["datasets"] == 2
    assert summary["objects_checked"] == TRAIN_IMAGES + TEST_IMAGES
    assert calls.log.count("DescribeProjects") == 1
    assert calls.log.count("ListDatasetEntries") == 3  # TRAIN 100 + 10, TEST 10
    assert {(f["finding_type"], f["outcome"]) for f in w.findings()} == {("KEY_ACCESS_MISSING", "REMEDIATED")}


def test_the_data_engineer_is_not_granted_for_the_trainers_training(project: Project) -> None:
    # Given datasets created by a data engineer
    # When a different role, the trainer, trains from them
    grant(project.event())

    # Then only the principal that trains is granted (the one Rekognition uses for the images)
    assert DATA_ENGINEER not in trainers(project.world, project.train_key)
    assert trainers(project.world, project.train_key) == [TRAINER]


def test_every_page_is_read_an_unencrypted_image_on_the_last_page_is_reported(world: World) -> None:
    # Given a TRAIN dataset of 250 entries (pages of 100, 100, 50) whose very last image has no
    # encryption at all (a legacy object)
    world.role("CustomLabelsTrainer", "/ml/")
    key = world.key()
    names = images("train", 250)
    put_images(world, names[:-1], key)
    world.put_legacy(names[-1])
    rekognition = world.behaviour[RekognitionCustomLabels]
    arn = rekognition.create_project("cats")
    rekognition.create_dataset(arn, "TRAIN", [dataset_entry(BUCKET, name) for name in names])
    project = Project(world, rekognition, arn, key, key, "", "")

    # When the trainer trains from the datasets
    summary = grant(project.event())

    # Then the last page's image is reported (and, in enforce mode, re-encrypted)
    unencrypted = [f for f in world.findings() if f["finding_type"] == "OBJECT_UNENCRYPTED"]
    assert [f["resource"]["key"] for f in unencrypted] == [names[-1]]
    assert summary["objects_checked"] == 250
    assert world.head(names[-1]).get("ServerSideEncryption") == "AES256"


def test_an_image_under_a_key_that_has_not_opted_in_gives_key_not_managed(project: Project) -> None:
    # Given a TEST dataset image under a CMK without the opt-in tag
    w = project.world
    unmanaged = w.key(managed=False)
    before = w.policy(unmanaged)
    name = "datasets/cats/test/unmanaged.jpg"
    w.put(name, ServerSideEncryption="aws:kms", SSEKMSKeyId=unmanaged)
    entries = project.rekognition.dataset_entries(project.test)
    project.rekognition.set_dataset_entries(project.test, [*entries, dataset_entry(BUCKET, name)])

    # When the trainer trains from the datasets
    grant(project.event())

    # Then the key is reported as not managed and left untouched; the managed keys are granted
    refused = [f for f in w.findings() if f["finding_type"] == "KEY_NOT_MANAGED"]
    assert [(f["outcome"], f["kms_key_arn"]) for f in refused] == [("REFUSED", unmanaged)]
    assert w.policy(unmanaged) == before
    assert trainers(w, project.test_key) == [TRAINER]


def test_a_request_with_manifests_still_uses_them(project: Project, calls: Boundary) -> None:
    # Given a project with datasets, and a request that names manifests (under a third key)
    w = project.world
    manifest_key = w.key()
    line = dataset_entry(BUCKET, images("train", 1)[0]).encode()
    for name in ("datasets/cats/train.manifest", "datasets/cats/test.manifest"):
        w.put(name, line, ServerSideEncryption="aws:kms", SSEKMSKeyId=manifest_key)
    event = project.event("cloudtrail_create_project_version")

    # When the trainer trains with those manifests
    summary = grant(event)

    # Then the manifests rule: the datasets are not read, the TEST images' key is not granted
    assert calls.log.count("DescribeProjects") == 0
    assert calls.log.count("ListDatasetEntries") == 0
    assert summary["datasets"] == 0
    assert trainers(w, manifest_key) == [TRAINER]
    assert trainers(w, project.test_key) == []


@pytest.mark.parametrize("problem", ["AccessDeniedException", "CREATE_IN_PROGRESS", "ResourceNotFoundException"])
def test_an_unreadable_dataset_is_reported_and_the_rest_still_granted(
    project: Project, calls: Boundary, problem: str
) -> None:
    # Given a TRAIN dataset the guard cannot read: forbidden, still being created, or gone
    if problem == "AccessDeniedException":
        project.rekognition.deny(project.train)
    elif problem == "CREATE_IN_PROGRESS":
        project.rekognition.set_dataset_status(project.train, "CREATE_IN_PROGRESS")
    else:
        calls.faults.add("ListDatasetEntries", "ResourceNotFoundException", times=1)  # the first: TRAIN

    # When the trainer trains from the datasets
    summary = grant(project.event())

    # Then one MANIFEST_INVALID names that dataset, on the version being trained, and the TEST
    # dataset's key is still granted
    (finding,) = manifest_invalid(project.world)
    assert finding["outcome"] == "REPORTED"
    assert finding["resource"] == {"type": "rekognition-project-version", "arn": project.version_arn}
    assert project.train in finding["detail"]
    assert problem in finding["detail"]
    assert trainers(project.world, project.test_key) == [TRAINER]
    assert trainers(project.world, project.train_key) == []
    assert summary["datasets"] == 2


def test_two_unreadable_datasets_are_two_findings(project: Project) -> None:
    # Given both datasets forbidden to the guard
    project.rekognition.deny(project.train)
    project.rekognition.deny(project.test)

    # When the trainer trains from them
    grant(project.event())

    # Then each dataset is its own finding (same version, same event: not collapsed into one)
    details = [f["detail"] for f in manifest_invalid(project.world)]
    assert len(details) == 2
    assert any(project.train in d for d in details)
    assert any(project.test in d for d in details)


def test_a_throttled_dataset_read_is_retried_never_dropped(project: Project, calls: Boundary) -> None:
    # Given ListDatasetEntries throttled for longer than the SDK's retries
    calls.faults.add("ListDatasetEntries", "ThrottlingException", times=8)

    # When the trainer trains from the datasets
    # Then the invocation fails retryably (Lambda retries the event) and reports nothing as done
    with pytest.raises(RetryableError):
        grant(project.event())
    assert manifest_invalid(project.world) == []

    # And when the retry runs after the throttling ended, the keys are granted
    calls.faults.faults.clear()
    grant(project.event())
    assert trainers(project.world, project.train_key) == [TRAINER]
    assert trainers(project.world, project.test_key) == [TRAINER]


def test_a_refused_later_page_reports_the_dataset_and_keeps_what_was_read(project: Project, calls: Boundary) -> None:
    # Given the TRAIN dataset's second page refused (AccessDenied after the first page)
    calls.faults.add("ListDatasetEntries", "AccessDeniedException", times=1, after=1)

    # When the trainer trains from the datasets
    summary = grant(project.event())

    # Then the dataset is reported as read in part, and what was read is still granted
    (finding,) = manifest_invalid(project.world)
    assert "after 1 page(s)" in finding["detail"]
    assert summary["objects_checked"] == 100 + TEST_IMAGES
    assert trainers(project.world, project.train_key) == [TRAINER]


def test_create_dataset_from_another_dataset_reads_the_source_entries(project: Project) -> None:
    # Given the data engineer copies the TRAIN dataset into a new one (DatasetSource.DatasetArn)
    event = project.event("cloudtrail_create_dataset_from_dataset")
    event["detail"]["requestParameters"]["DatasetSource"]["DatasetArn"] = project.train

    # When the guard sees the CreateDataset call
    summary = grant(event)

    # Then the source dataset's images were checked and the caller granted on their key
    assert summary["datasets"] == 1
    assert summary["objects_checked"] == TRAIN_IMAGES
    assert trainers(project.world, project.train_key) == [DATA_ENGINEER]


def test_copy_project_version_reads_no_dataset(project: Project, calls: Boundary) -> None:
    # Given a CopyProjectVersion (a copy of a trained model: no training, no images read)
    event = project.event("cloudtrail_copy_project_version")

    # When the guard sees it
    grant(event)

    # Then no dataset is read
    assert calls.log.count("ListDatasetEntries") == 0
    assert calls.log.count("DescribeProjects") == 0


def test_a_large_dataset_fans_out_like_a_large_manifest(world: World) -> None:
    # Given a TRAIN dataset of 2,500 entries (beyond the inline limit of 1,000)
    world.role("CustomLabelsTrainer", "/ml/")
    rekognition = world.behaviour[RekognitionCustomLabels]
    arn = rekognition.create_project("cats")
    names = images("train", 2_500)
    rekognition.create_dataset(arn, "TRAIN", [dataset_entry(BUCKET, n) for n in names])

    # When the trainer trains from it
    summary = grant(Project(world, rekognition, arn, "", "", "", "").event())

    # Then the image checks went to the verify queue, each once, carrying the trainer
    bodies = [m["Body"] for m in world.drain_queue()]
    objects = [o for body in bodies for o in json.loads(body)["objects"]]
    assert summary["fanout_messages"] == len(bodies) > 0
    assert sorted(o["key"] for o in objects) == sorted(names)
    assert all(json.loads(body)["principals"] == [TRAINER] for body in bodies)
