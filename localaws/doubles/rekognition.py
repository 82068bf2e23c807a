"""Amazon Rekognition Custom Labels as documented (moto 5.2.5 has none of it): projects, datasets,
dataset entries and project versions.

``RekognitionCustomLabels`` reproduces the request and response shapes, paging and errors of the
Amazon Rekognition API Reference, "CreateProject", "DescribeProjects", "CreateDataset",
"DescribeDataset", "ListDatasetEntries" and "DescribeProjectVersions"
(https://docs.aws.amazon.com/rekognition/latest/APIReference/API_ListDatasetEntries.html and its
siblings); ``dataset_entry()`` writes one entry as the Custom Labels Developer Guide, "Creating a
manifest file" describes it (a SageMaker Ground Truth JSON Line).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

from moto.core.exceptions import ServiceException
from moto.rekognition.models import rekognition_backends
from moto.rekognition.responses import RekognitionResponse
from moto.s3.exceptions import S3ClientError
from moto.utilities.utils import get_partition

from localaws.doubles.base import Double

if TYPE_CHECKING:
    pass


_REKOGNITION_PAGE_MAX = 100  # MaxResults of all four operations: 1..100, default 100
_DATASET_TYPES = ("TRAIN", "TEST")
_BUSY_DATASET_STATUSES = frozenset({"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS"})
_FAILED_DATASET_STATUSES = frozenset({"CREATE_FAILED", "UPDATE_FAILED"})


class _RekognitionError(ServiceException):
    """A Rekognition error, serialized by moto with the Rekognition model (JSON protocol:
    ``__type`` = the code, ``message``)."""


def dataset_entry(bucket: str, key: str, label: str = "cat") -> str:
    """One Custom Labels dataset entry (a SageMaker Ground Truth JSON Line, image-level label)."""
    return json.dumps(
        {
            "source-ref": f"s3://{bucket}/{key}",
            "label": 1,
            "label-metadata": {
                "confidence": 1,
                "job-name": "labeling-job/label",
                "class-name": label,
                "human-annotated": "yes",
                "creation-date": "2026-11-28T20:00:00.000",
                "type": "groundtruth/image-classification",
            },
        },
        separators=(",", ":"),
    )


@dataclass
class _Dataset:
    arn: str
    project_arn: str
    dataset_type: str
    entries: Sequence[str]
    status: str = "CREATE_COMPLETE"
    status_message: str = "The dataset was successfully created from the manifest file."
    created: float = 0.0


@dataclass
class _ProjectVersion:
    arn: str
    name: str
    description: dict[str, Any]


@dataclass
class _Project:
    arn: str
    name: str
    created: float
    status: str = "CREATED"
    datasets: dict[str, _Dataset] = field(default_factory=dict)  # by type: TRAIN, TEST
    versions: dict[str, _ProjectVersion] = field(default_factory=dict)  # by version name


_CUSTOM_LABELS_STATE = "_localaws_custom_labels"  # set on moto's RekognitionBackend objects


@dataclass
class _CustomLabelsState:
    """An account's projects in one region; kept on moto's Rekognition backend, so moto's reset
    (``/moto-api/reset``, a new ``mock_aws``) forgets it as it forgets everything else."""

    projects: dict[str, _Project] = field(default_factory=dict)  # by name
    datasets: dict[str, _Dataset] = field(default_factory=dict)  # by ARN


def _arn_scope(arn: str) -> tuple[str, str]:
    """(account, region) of a Rekognition ARN (("", "") when it is not one)."""
    parts = arn.split(":")
    return (parts[4], parts[3]) if len(parts) > 5 and parts[2] == "rekognition" else ("", "")


class RekognitionCustomLabels(Double):
    """Rekognition Custom Labels projects, datasets and project versions (moto 5.2.5 has none).

    Operations (request and response shapes of the API reference, JSON protocol):
    ``CreateProject``; ``DescribeProjects`` (``ProjectNames``, ``MaxResults``, ``NextToken``;
    ``ProjectDescriptions[].Datasets[]`` = ``{CreationTimestamp, DatasetType, DatasetArn,
    Status, StatusMessage, StatusMessageCode}``); ``CreateDataset`` (``DatasetSource`` =
    ``GroundTruthManifest.S3Object`` read from moto's S3, or ``DatasetArn``: the source's
    entries are copied); ``DescribeDataset`` (``DatasetDescription`` with ``Status``,
    ``StatusMessage``, ``StatusMessageCode`` and ``DatasetStats``); ``ListDatasetEntries``
    (``DatasetEntries``: the JSON Lines; ``SourceRefContains`` and ``HasErrors`` filter);
    ``DescribeProjectVersions`` (``ProjectVersionDescriptions[]`` with ``ProjectVersionArn``,
    ``Status``, ``StatusMessage``, ``TrainingDataResult``, ``TestingDataResult``,
    ``OutputConfig``, ``KmsKeyId``; ``VersionNames`` narrows).

    Paging: every list answers at most ``MaxResults`` items (1..100, default 100; outside that
    range ``ValidationException``, as documented) and an opaque ``NextToken`` while more remain;
    a token that is not one of ours, or belongs to another request, is
    ``InvalidPaginationTokenException``. State is kept per account and region; datasets are keyed
    by project (one TRAIN, one TEST: a second of a type is ``ResourceAlreadyExistsException``),
    on moto's Rekognition backend objects (moto's reset clears them).

    Errors (``__type``): unknown dataset or project -> ``ResourceNotFoundException``; entries of a
    dataset still being created, updated or deleted -> ``ResourceInUseException``; of a failed
    one -> ``ResourceNotReadyException``; ``deny(arn)`` makes every call naming that project or
    dataset ARN (or the project's name in ``DescribeProjects``) fail ``AccessDeniedException``;
    ``throttle(operation, times)`` fails the next calls with ``ThrottlingException``.
    Helpers for tests and the demo: ``create_project``, ``create_dataset`` (entries may be any
    sequence, e.g. a lazy one for 250,000 lines), ``set_dataset_status``,
    ``create_project_version``. Not modelled: training itself, tags, project policies,
    ``ContainsLabels``/``Labeled``/``AfterCreationTime`` filters, the 1 MB response limit.
    """

    _OPERATIONS = (
        "create_project",
        "describe_projects",
        "create_dataset",
        "describe_dataset",
        "list_dataset_entries",
        "describe_project_versions",
    )

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._denied: set[str] = set()
        self._throttled: dict[str, int] = {}
        # Timestamps near now (a day ago, one second per resource): the audit reads failed
        # trainings of its look-back only (usecases.failed_trainings.LOOK_BACK_SECONDS).
        self._clock = float(int(time.time()) - 86_400)

    # --- helpers for tests and the demo ------------------------------------------------------

    def _tick(self) -> float:
        with self._lock:
            self._clock += 1.0
            return self._clock

    @staticmethod
    def _state(account: str, region: str) -> _CustomLabelsState:
        backend = rekognition_backends[account][region]
        state = getattr(backend, _CUSTOM_LABELS_STATE, None)
        if not isinstance(state, _CustomLabelsState):
            state = _CustomLabelsState()
            setattr(backend, _CUSTOM_LABELS_STATE, state)
        return state

    def create_project(self, name: str, *, account: str = "123456789012", region: str = "us-east-1") -> str:
        with self._lock:
            projects = self._state(account, region).projects
            if name in projects:
                raise _RekognitionError("ResourceInUseException", f"The project {name} already exists.")
            created = self._tick()
            arn = f"arn:{get_partition(region)}:rekognition:{region}:{account}:project/{name}/{int(created * 1000)}"
            projects[name] = _Project(arn, name, created)
            return arn

    def create_dataset(
        self,
        project_arn: str,
        dataset_type: str = "TRAIN",
        entries: Sequence[str] = (),
        *,
        status: str = "CREATE_COMPLETE",
        status_message: str = "",
    ) -> str:
        """A dataset of the project holding ``entries`` (kept as given: no copy)."""
        with self._lock:
            project = self._project_by_arn(project_arn)
            if dataset_type not in _DATASET_TYPES:
                raise _RekognitionError("InvalidParameterException", f"DatasetType {dataset_type} is not valid.")
            if dataset_type in project.datasets:
                raise _RekognitionError(
                    "ResourceAlreadyExistsException", f"A {dataset_type} dataset already exists in the project."
                )
            created = self._tick()
            head = project_arn.rsplit("/", 1)[0]
            arn = f"{head}/dataset/{dataset_type.lower()}/{int(created * 1000)}"
            dataset = _Dataset(arn, project_arn, dataset_type, entries, status, created=created)
            if status_message:
                dataset.status_message = status_message
            project.datasets[dataset_type] = dataset
            self._state(*_arn_scope(arn)).datasets[arn] = dataset
            return arn

    def set_dataset_status(self, dataset_arn: str, status: str, message: str = "") -> None:
        with self._lock:
            dataset = self._dataset_by_arn(dataset_arn)
            dataset.status = status
            dataset.status_message = message or status.replace("_", " ").lower()

    def create_project_version(
        self,
        project_arn: str,
        version_name: str,
        *,
        status: str = "TRAINING_COMPLETED",
        status_message: str = "",
        training_manifests: Sequence[tuple[str, str]] = (),
        testing_manifests: Sequence[tuple[str, str]] = (),
        output_bucket: str = "custom-labels-output",
        output_prefix: str = "output/",
        kms_key_id: str | None = None,
        ended_at: float | None = None,
    ) -> str:
        """A project version as DescribeProjectVersions shows it once training ended. Without
        manifests, its ``TrainingDataResult``/``TestingDataResult`` name none (dataset training).
        ``ended_at``: when its training ended (epoch seconds; default an hour after its creation)."""
        with self._lock:
            project = self._project_by_arn(project_arn)
            created = self._tick()
            head = project_arn.rsplit("/", 1)[0]
            arn = f"{head}/version/{version_name}/{int(created * 1000)}"

            def assets(manifests: Sequence[tuple[str, str]]) -> dict[str, Any]:
                return {
                    "Assets": [
                        {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": name}}}
                        for bucket, name in manifests
                    ]
                }

            description: dict[str, Any] = {
                "ProjectVersionArn": arn,
                "CreationTimestamp": created,
                "Status": status,
                "StatusMessage": status_message or status.replace("_", " ").capitalize(),
                "OutputConfig": {"S3Bucket": output_bucket, "S3KeyPrefix": output_prefix},
                "TrainingDataResult": {"Input": assets(training_manifests)},
                "TestingDataResult": {"Input": {**assets(testing_manifests), "AutoCreate": False}},
                "Feature": "CUSTOM_LABELS",
            }
            if status != "TRAINING_IN_PROGRESS":
                description["TrainingEndTimestamp"] = created + 3600 if ended_at is None else ended_at
            if kms_key_id:
                description["KmsKeyId"] = kms_key_id
            project.versions[version_name] = _ProjectVersion(arn, version_name, description)
            return arn

    def deny(self, arn: str) -> None:
        """Every later call naming ``arn`` (a project or dataset) fails AccessDeniedException."""
        with self._lock:
            self._denied.add(arn)

    def throttle(self, operation: str, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` (e.g. "ListDatasetEntries") are throttled."""
        with self._lock:
            self._throttled[operation] = self._throttled.get(operation, 0) + times

    # --- lookups -------------------------------------------------------------------------------

    def dataset_entries(self, dataset_arn: str) -> Sequence[str]:
        with self._lock:
            return self._dataset_by_arn(dataset_arn).entries

    def set_dataset_entries(self, dataset_arn: str, entries: Sequence[str]) -> None:
        """Replace a dataset's entries (as UpdateDatasetEntries would, once it completed)."""
        with self._lock:
            self._dataset_by_arn(dataset_arn).entries = entries

    def _project_by_arn(self, arn: str) -> _Project:
        account, region = _arn_scope(arn)
        if account:
            for project in self._state(account, region).projects.values():
                if project.arn == arn:
                    return project
        raise _RekognitionError("ResourceNotFoundException", f"The project {arn} does not exist.")

    def _dataset_by_arn(self, arn: str) -> _Dataset:
        account, region = _arn_scope(arn)
        dataset = self._state(account, region).datasets.get(arn) if account else None
        if dataset is None:
            raise _RekognitionError("ResourceNotFoundException", f"The dataset {arn} does not exist.")
        return dataset

    def _check(self, operation: str, *arns: str | None) -> None:
        with self._lock:
            left = self._throttled.get(operation, 0)
            if left > 0:
                self._throttled[operation] = left - 1
                raise _RekognitionError("ThrottlingException", "Rate exceeded.")
            if any(arn in self._denied for arn in arns if arn):
                raise _RekognitionError(
                    "AccessDeniedException",
                    f"User is not authorized to perform: rekognition:{operation} on resource {arns[0]}",
                )

    # --- paging --------------------------------------------------------------------------------

    @staticmethod
    def _page_size(resp: Any) -> int:
        value = resp._get_param("MaxResults")
        size = _REKOGNITION_PAGE_MAX if value is None else int(value)
        if not 1 <= size <= _REKOGNITION_PAGE_MAX:
            raise _RekognitionError(
                "ValidationException",
                f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy constraint: "
                f"Member must have value less than or equal to {_REKOGNITION_PAGE_MAX}",
            )
        return size

    @staticmethod
    def _token(request: str, offset: int) -> str:
        raw = json.dumps({"r": request, "o": offset}).encode()
        return base64.urlsafe_b64encode(raw).decode()

    @staticmethod
    def _offset(resp: Any, request: str) -> int:
        token = resp._get_param("NextToken")
        if not token:
            return 0
        decoded: Any = None
        try:
            decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        except (ValueError, binascii.Error):
            decoded = None
        offset = decoded.get("o") if isinstance(decoded, dict) else None
        if not isinstance(offset, int) or offset < 0 or decoded.get("r") != request:
            raise _RekognitionError("InvalidPaginationTokenException", "Invalid pagination token.")
        return offset

    def _page(self, resp: Any, request: str, items: Sequence[Any]) -> tuple[Sequence[Any], str | None]:
        size = self._page_size(resp)
        offset = self._offset(resp, request)
        chunk = items[offset : offset + size]
        more = offset + size < len(items)
        return chunk, (self._token(request, offset + size) if more else None)

    # --- operations ----------------------------------------------------------------------------

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        for name in self._OPERATIONS:
            handler = getattr(self, f"_op_{name}")

            def method(resp: RekognitionResponse, _handler: Callable[[Any], Any] = handler) -> str:
                return json.dumps(_handler(resp))

            method.__name__ = name
            yield patch.object(RekognitionResponse, name, method, create=True)

    def _op_create_project(self, resp: Any) -> dict[str, Any]:
        name = resp._get_param("ProjectName")
        self._check("CreateProject", name)
        return {"ProjectArn": self.create_project(str(name), account=resp.current_account, region=resp.region)}

    def _op_describe_projects(self, resp: Any) -> dict[str, Any]:
        names = resp._get_param("ProjectNames") or []
        with self._lock:
            projects = self._state(resp.current_account, resp.region).projects
            chosen = [p for n, p in sorted(projects.items()) if not names or n in names]
            self._check("DescribeProjects", *(p.arn for p in chosen))
            request = "DescribeProjects:" + ",".join(sorted(names))
            page, token = self._page(resp, request, chosen)
            out: dict[str, Any] = {"ProjectDescriptions": [self._project_json(p) for p in page]}
        if token:
            out["NextToken"] = token
        return out

    @staticmethod
    def _project_json(project: _Project) -> dict[str, Any]:
        return {
            "ProjectArn": project.arn,
            "CreationTimestamp": project.created,
            "Status": project.status,
            "Feature": "CUSTOM_LABELS",
            "Datasets": [
                {
                    "CreationTimestamp": d.created,
                    "DatasetType": d.dataset_type,
                    "DatasetArn": d.arn,
                    "Status": d.status,
                    "StatusMessage": d.status_message,
                    "StatusMessageCode": "CLIENT_ERROR" if d.status in _FAILED_DATASET_STATUSES else "SUCCESS",
                }
                for d in project.datasets.values()
            ],
        }

    def _op_create_dataset(self, resp: Any) -> dict[str, Any]:
        project_arn = str(resp._get_param("ProjectArn"))
        dataset_type = str(resp._get_param("DatasetType"))
        source = resp._get_param("DatasetSource") or {}
        self._check("CreateDataset", project_arn, source.get("DatasetArn"))
        entries: Sequence[str] = ()
        if source.get("DatasetArn"):
            with self._lock:
                entries = self._dataset_by_arn(str(source["DatasetArn"])).entries
        elif source.get("GroundTruthManifest"):
            s3_object = source["GroundTruthManifest"].get("S3Object") or {}
            entries = self._manifest_lines(resp.current_account, s3_object)
        return {"DatasetArn": self.create_dataset(project_arn, dataset_type, entries)}

    @staticmethod
    def _manifest_lines(account: str, s3_object: dict[str, Any]) -> list[str]:
        from moto.s3.models import s3_backends  # noqa: PLC0415 - the backend of this account

        backend = s3_backends[account]["aws"]
        try:
            key = backend.get_object(str(s3_object.get("Bucket")), str(s3_object.get("Name")), s3_object.get("Version"))
        except S3ClientError as error:
            raise _RekognitionError("InvalidS3ObjectException", "Unable to get object metadata from S3.") from error
        if key is None:
            raise _RekognitionError("InvalidS3ObjectException", "Unable to get object metadata from S3.")
        return [line for line in key.value.decode("utf-8", "replace").splitlines() if line.strip()]

    def _op_describe_dataset(self, resp: Any) -> dict[str, Any]:
        arn = str(resp._get_param("DatasetArn"))
        self._check("DescribeDataset", arn)
        with self._lock:
            d = self._dataset_by_arn(arn)
            return {
                "DatasetDescription": {
                    "CreationTimestamp": d.created,
                    "LastUpdatedTimestamp": d.created,
                    "Status": d.status,
                    "StatusMessage": d.status_message,
                    "StatusMessageCode": "CLIENT_ERROR" if d.status in _FAILED_DATASET_STATUSES else "SUCCESS",
                    "DatasetStats": {
                        "LabeledEntries": len(d.entries),
                        "TotalEntries": len(d.entries),
                        "TotalLabels": 1 if d.entries else 0,
                        "ErrorEntries": 0,
                    },
                }
            }

    def _op_list_dataset_entries(self, resp: Any) -> dict[str, Any]:
        arn = str(resp._get_param("DatasetArn"))
        self._check("ListDatasetEntries", arn)
        with self._lock:
            dataset = self._dataset_by_arn(arn)
            status = dataset.status
            entries = dataset.entries
        if status in _BUSY_DATASET_STATUSES:
            raise _RekognitionError("ResourceInUseException", f"The dataset {arn} is {status}.")
        if status in _FAILED_DATASET_STATUSES:
            raise _RekognitionError("ResourceNotReadyException", f"The dataset {arn} is {status}.")
        contains = resp._get_param("SourceRefContains")
        if contains or resp._get_param("HasErrors"):
            entries = [e for e in entries if (not contains or contains in e) and not resp._get_param("HasErrors")]
        request = f"ListDatasetEntries:{arn}:{contains or ''}"
        page, token = self._page(resp, request, entries)
        out: dict[str, Any] = {"DatasetEntries": list(page)}
        if token:
            out["NextToken"] = token
        return out

    def _op_describe_project_versions(self, resp: Any) -> dict[str, Any]:
        project_arn = str(resp._get_param("ProjectArn"))
        names = resp._get_param("VersionNames") or []
        self._check("DescribeProjectVersions", project_arn)
        with self._lock:
            project = self._project_by_arn(project_arn)
            versions = [v.description for n, v in project.versions.items() if not names or n in names]
        # Newest first, as AWS lists them.
        versions.sort(key=lambda v: -float(v["CreationTimestamp"]))
        page, token = self._page(resp, f"DescribeProjectVersions:{project_arn}:{','.join(names)}", versions)
        out: dict[str, Any] = {"ProjectVersionDescriptions": list(page)}
        if token:
            out["NextToken"] = token
        return out
