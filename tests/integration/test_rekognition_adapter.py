"""clguard.adapters.rekognition against the RekognitionCustomLabels double: every page, streamed."""

from __future__ import annotations

from clguard.adapters import rekognition
from localaws.doubles import AwsBehaviour, RekognitionCustomLabels, dataset_entry
from tests.awscalls import Boundary
from tests.world import BUCKET


def test_every_project_is_listed_across_pages(aws: AwsBehaviour, calls: Boundary) -> None:
    # Given 150 projects (DescribeProjects answers at most 100 per page)
    double = aws[RekognitionCustomLabels]
    created = {double.create_project(f"p{n:03}") for n in range(150)}

    # When the adapter lists them
    listed = {p.arn for p in rekognition.projects()}

    # Then all are there, from two pages
    assert listed == created
    assert calls.log.count("DescribeProjects") == 2


def test_describe_project_by_arn_returns_its_datasets(aws: AwsBehaviour) -> None:
    # Given a project with TRAIN and TEST datasets, and another project
    double = aws[RekognitionCustomLabels]
    arn = double.create_project("cats")
    double.create_project("dogs")
    train = double.create_dataset(arn, "TRAIN", [dataset_entry(BUCKET, "a.jpg")])
    test = double.create_dataset(arn, "TEST", [], status="CREATE_IN_PROGRESS")

    # When it is described by its ARN (and an unknown ARN)
    project = rekognition.describe_project(arn)
    missing = rekognition.describe_project(arn.replace("cats", "owls"))

    # Then its datasets come with type and status (readable only when complete)
    assert project is not None
    assert {(d.arn, d.dataset_type, d.readable) for d in project.datasets} == {
        (train, "TRAIN", True),
        (test, "TEST", False),
    }
    assert missing is None
    assert rekognition.describe_project("not-an-arn") is None
    assert rekognition.describe_dataset(train).status == "CREATE_COMPLETE"


def test_dataset_entries_are_streamed_one_page_at_a_time(aws: AwsBehaviour, calls: Boundary) -> None:
    # Given a dataset of 250 entries
    double = aws[RekognitionCustomLabels]
    dataset = double.create_dataset(
        double.create_project("cats"), "TRAIN", [dataset_entry(BUCKET, f"{n}.jpg") for n in range(250)]
    )

    # When the first page is taken, then the rest
    pages = rekognition.dataset_entry_pages(dataset)
    first = next(pages)
    after_first = calls.log.count("ListDatasetEntries")
    rest = list(pages)

    # Then a page is requested only when needed, and every entry arrives as one JSON Line
    assert after_first == 1
    assert [len(p) for p in [first, *rest]] == [100, 100, 50]
    lines = list(rekognition.entry_lines(iter([first, *rest])))
    assert len(lines) == 250
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)


def test_project_versions_are_listed_across_pages(aws: AwsBehaviour) -> None:
    # Given a project with 120 versions
    double = aws[RekognitionCustomLabels]
    project = double.create_project("cats")
    for n in range(120):
        double.create_project_version(project, f"v{n}", status="TRAINING_FAILED" if n == 7 else "TRAINING_COMPLETED")

    # When the adapter lists them (and one by name)
    versions = list(rekognition.project_versions(project))
    named = list(rekognition.project_versions(project, ["v7"]))

    # Then all 120 come back, and the named one with its status
    assert len({v["ProjectVersionArn"] for v in versions}) == 120
    assert [v["Status"] for v in named] == ["TRAINING_FAILED"]
