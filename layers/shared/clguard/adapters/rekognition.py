"""Rekognition Custom Labels: projects, their datasets and dataset entries, project versions.

Every listing is paged with ``NextToken`` at the documented maximum page size (100) and streamed:
a dataset of 250,000 entries is read one page (at most 100 JSON Lines) at a time, never collected.
Errors are the project's own (``clguard.errors``): callers decide what a ``Refused`` (missing,
forbidden) resource means; ``Transient`` ones are retried by the unit of work.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from clguard.adapters.clients import aws, client, translated

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "DescribeProjects": ("rekognition:DescribeProjects",),
    "DescribeDataset": ("rekognition:DescribeDataset",),
    "ListDatasetEntries": ("rekognition:ListDatasetEntries",),
    "DescribeProjectVersions": ("rekognition:DescribeProjectVersions",),
}

PAGE_SIZE: Final = 100  # the documented maximum of MaxResults for all four operations

# arn:aws:rekognition:us-east-1:123456789012:project/<name>/<creation ms>
PROJECT_ARN: Final = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):rekognition:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"project/(?P<name>[a-zA-Z0-9_.\-]{1,255})/(?P<stamp>\d+)"
)
# arn:aws:rekognition:...:project/<name>/dataset/<train|test>/<creation ms>
DATASET_ARN: Final = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):rekognition:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"project/(?P<name>[a-zA-Z0-9_.\-]{1,255})/dataset/(?P<type>train|test)/(?P<stamp>\d+)"
)

# Datasets whose entries can be listed (the others are being created, updated or deleted, or failed).
READABLE_STATUSES: Final = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset as DescribeProjects (``Datasets``) or DescribeDataset describes it."""

    arn: str
    dataset_type: str  # TRAIN | TEST
    status: str
    status_message: str = ""

    @property
    def readable(self) -> bool:
        return self.status in READABLE_STATUSES


@dataclass(frozen=True, slots=True)
class Project:
    arn: str
    status: str  # CREATING | CREATED | DELETING
    datasets: tuple[Dataset, ...]


def project_name(project_arn: str) -> str | None:
    """The name in a project ARN (None when it is not one)."""
    match = PROJECT_ARN.fullmatch(project_arn)
    return match["name"] if match else None


def _dataset(raw: Mapping[str, Any], arn: str | None = None) -> Dataset:
    found = arn or str(raw.get("DatasetArn", ""))
    kind = raw.get("DatasetType")
    if not kind:
        match = DATASET_ARN.fullmatch(found)
        kind = match["type"].upper() if match else ""
    return Dataset(found, str(kind), str(raw.get("Status", "")), str(raw.get("StatusMessage", "") or ""))


def _project(raw: Mapping[str, Any]) -> Project:
    datasets = tuple(_dataset(d) for d in raw.get("Datasets", []) or [])
    return Project(str(raw.get("ProjectArn", "")), str(raw.get("Status", "")), datasets)


@aws
def projects() -> Iterator[Project]:
    """Every Custom Labels project of the account and region (DescribeProjects, every page)."""
    kwargs: dict[str, Any] = {"MaxResults": PAGE_SIZE}
    while True:
        page = client("rekognition").describe_projects(**kwargs)
        for raw in page.get("ProjectDescriptions", []) or []:
            yield _project(raw)
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token


@aws
def custom_labels_project_arns() -> Iterator[str]:
    """The ARN of every Custom Labels project of the account and region (DescribeProjects, every
    page; projects of other features skipped)."""
    kwargs: dict[str, Any] = {"MaxResults": PAGE_SIZE}
    while True:
        page = client("rekognition").describe_projects(**kwargs)
        for raw in page.get("ProjectDescriptions", []) or []:
            if raw.get("Feature", "CUSTOM_LABELS") == "CUSTOM_LABELS" and raw.get("ProjectArn"):
                yield str(raw["ProjectArn"])
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token


@aws
def describe_project(project_arn: str) -> Project | None:
    """The project with this ARN (DescribeProjects by its name, every page), or None if absent."""
    name = project_name(project_arn)
    if name is None:
        return None
    kwargs: dict[str, Any] = {"ProjectNames": [name], "MaxResults": PAGE_SIZE}
    while True:
        page = client("rekognition").describe_projects(**kwargs)
        for raw in page.get("ProjectDescriptions", []):
            if raw.get("ProjectArn") == project_arn:
                return _project(raw)
        token = page.get("NextToken")
        if not token:
            return None
        kwargs["NextToken"] = token


@aws
def describe_dataset(dataset_arn: str) -> Dataset:
    description = client("rekognition").describe_dataset(DatasetArn=dataset_arn)["DatasetDescription"]
    return _dataset(description, dataset_arn)


@aws
def dataset_entry_pages(dataset_arn: str) -> Iterator[list[str]]:
    """The dataset's entries, one page (≤ 100 JSON Lines) at a time. Each page is requested only
    when the previous one has been consumed, so memory holds one page whatever the dataset size.
    The first page is requested eagerly: a missing or forbidden dataset raises here."""
    rekognition = client("rekognition")
    first = rekognition.list_dataset_entries(DatasetArn=dataset_arn, MaxResults=PAGE_SIZE)

    def pages() -> Iterator[list[str]]:
        with translated():
            yield from _pages()

    def _pages() -> Iterator[list[str]]:
        page = first
        while True:
            yield list(page.get("DatasetEntries", []) or [])
            token = page.get("NextToken")
            if not token:
                return
            page = rekognition.list_dataset_entries(DatasetArn=dataset_arn, MaxResults=PAGE_SIZE, NextToken=token)

    return pages()


def entry_lines(pages: Iterator[Sequence[str]]) -> Iterator[bytes]:
    """The entries of ``pages`` as newline-terminated JSON Lines (what ``manifest.scan`` reads)."""
    for page in pages:
        for entry in page:
            yield entry.encode("utf-8", "replace") + b"\n"


@aws
def project_versions(project_arn: str, version_names: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """Every ProjectVersionDescription of the project (DescribeProjectVersions, every page),
    streamed; ``version_names`` (at most 10, as AWS allows) narrows it."""
    kwargs: dict[str, Any] = {"ProjectArn": project_arn, "MaxResults": PAGE_SIZE}
    if version_names:
        kwargs["VersionNames"] = list(version_names)
    while True:
        page = client("rekognition").describe_project_versions(**kwargs)
        yield from page.get("ProjectVersionDescriptions", []) or []
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token
