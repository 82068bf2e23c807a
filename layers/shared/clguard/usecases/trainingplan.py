"""What a Rekognition training call asks of the guard (docs/architecture.md §7), decided from the
call and the settings alone, without an AWS call: its request parameters read whatever their case
(``request_of``), whether the guard acts on it at all (``should_act``: a refused call grants
nothing, but for a kms: AccessDenied), and the :class:`TrainingPlan` -- who would be granted (or
why nobody is), which keys it names and what each needs, which manifests and datasets hold its
images, and its output bucket. ``usecases.training`` carries the plan out; ``clguard preflight``
decides with it too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.boundary.config import Settings
from clguard.boundary.events import TRAINING_EVENTS, TrainingCall
from clguard.boundary.parsing import object_value, text_value
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import InvalidEvent
from clguard.rules import policy
from clguard.rules.arns import partition_of_region
from clguard.rules.policy import AccessNeed
from clguard.rules.principals import Caller, refusal_reason, resolve_caller

MAX_INLINE_GROUND_TRUTH: Final = 5 * 1024 * 1024


@dataclass(slots=True)
class TrainingRequest:
    project: str | None = None
    version_name: str | None = None
    kms_key_id: str | None = None
    manifests: list[S3ObjectRef] = field(default_factory=list)
    output_bucket: str | None = None
    inline_ground_truth: bytes | None = None
    source_dataset: str | None = None  # CreateDataset's DatasetSource.DatasetArn
    version_arn: str | None = None  # the version CreateProjectVersion created (responseElements)

    def describe(self, event_name: str) -> str:
        target = " ".join(x for x in (self.project, self.version_name and f"version {self.version_name}") if x)
        return f"{event_name} of {target}" if target else event_name


def _manifest_location(ground_truth: Any, where: str) -> S3ObjectRef | None:
    s3_object = object_value(object_value(ground_truth, where).get("s3object"), f"{where}.S3Object")
    bucket = text_value(s3_object.get("bucket"), f"{where}.S3Object.Bucket")
    name = text_value(s3_object.get("name"), f"{where}.S3Object.Name")
    if not bucket or not name:
        return None
    return S3ObjectRef(bucket, name, text_value(s3_object.get("version"), f"{where}.S3Object.Version"))


def _assets(data: Any, where: str) -> Iterator[S3ObjectRef]:
    assets = object_value(data, where).get("assets")
    if assets is None:
        return
    if not isinstance(assets, list):
        raise InvalidEvent(f"{where}.Assets must be a list")
    for index, asset in enumerate(assets):
        location = _manifest_location(object_value(asset, f"{where}.Assets[{index}]").get("groundtruthmanifest"), where)
        if location is not None:
            yield location


def request_of(call: TrainingCall) -> TrainingRequest:
    """Read the request parameters, whatever their case (lower-cased by the parser)."""
    p = call.parameters
    request = TrainingRequest(
        project=text_value(p.get("projectarn") or p.get("destinationprojectarn") or p.get("datasetarn"), "ProjectArn"),
        version_name=text_value(p.get("versionname"), "VersionName"),
        kms_key_id=text_value(p.get("kmskeyid"), "KmsKeyId"),
        output_bucket=text_value(
            object_value(p.get("outputconfig"), "OutputConfig").get("s3bucket"), "OutputConfig.S3Bucket"
        ),
    )
    request.manifests.extend(_assets(p.get("trainingdata"), "TrainingData"))
    request.manifests.extend(_assets(p.get("testingdata"), "TestingData"))
    source = object_value(p.get("datasetsource"), "DatasetSource")
    location = _manifest_location(source.get("groundtruthmanifest"), "DatasetSource.GroundTruthManifest")
    if location is not None:
        request.manifests.append(location)
    request.source_dataset = text_value(source.get("datasetarn"), "DatasetSource.DatasetArn")
    version_arn = call.response.get("projectversionarn")
    request.version_arn = version_arn if isinstance(version_arn, str) and version_arn else None
    blob = object_value(p.get("changes"), "Changes").get("groundtruth")
    if isinstance(blob, str) and blob:
        try:
            decoded = base64.b64decode(blob[: MAX_INLINE_GROUND_TRUTH * 2], validate=True)
        except (binascii.Error, ValueError):
            decoded = blob.encode()
        request.inline_ground_truth = decoded[:MAX_INLINE_GROUND_TRUTH]
    request.manifests = list(dict.fromkeys(request.manifests))
    return request


def should_act(call: TrainingCall) -> tuple[bool, str]:
    """docs/architecture.md §7: a refused call grants nothing, except AccessDenied naming a kms: action (the
    caller lacked key access; grant it so the retry succeeds)."""
    if call.event_name not in TRAINING_EVENTS:
        return False, f"{call.event_name} is not a training call"
    if not call.parameters:
        # Every training call names at least its project: a record without request parameters
        # (null or redacted) says nothing to grant on.
        return False, "the record has no request parameters: nothing to grant"
    if call.error_code is None:
        return True, "the call succeeded"
    message = call.error_message or ""
    if call.error_code.startswith("AccessDenied") and "kms:" in message:
        # AWS says "with an explicit deny in a <type> policy" for a Deny statement (SCP, IAM,
        # boundary, session or the key's own): it overrides any Allow a grant could add.
        lowered = message.lower()
        if "with an explicit deny" in lowered:
            return False, f"{call.error_code}: an explicit deny refused the kms: action; no key-policy grant lifts it"
        # An implicit deny of a policy that only limits (an SCP, a permissions boundary, a session
        # policy): what it does not allow, no key policy can (IAM policy evaluation logic).
        ceiling = next((c for c in _CEILINGS if f"because no {c} allows" in lowered), None)
        if ceiling is not None:
            return False, f"{call.error_code}: no {ceiling} allows the kms: action; no key-policy grant lifts it"
        return True, f"{call.error_code} names a kms: action: granting so that the retry succeeds"
    return False, f"the call was refused by AWS ({call.error_code}): nothing to grant"


# The policy types that only set a maximum: an action they do not allow is refused whatever the
# key policy grants (IAM User Guide, "Policy evaluation logic"; AccessDenied messages word their
# implicit denies "because no <type> allows the <action> action").
_CEILINGS: Final = ("service control policy", "resource control policy", "permissions boundary", "session policy")


@dataclass(frozen=True, slots=True)
class TrainingPlan:
    """What one training call asks of the guard, decided from the call and the settings alone
    (no AWS call): who would be granted (or why nobody is), which keys it names and what each
    needs, which manifests and datasets hold its images, and its output bucket.

    :class:`TrainingRun` carries it out, in this order: the KmsKeyId, the manifests, the project's
    datasets, the source dataset, the inline Ground Truth, the output bucket, then the refusal."""

    event_id: str
    event_name: str
    origin: str  # what asked, for the findings' detail and origin: "CreateProjectVersion of …"
    caller: Caller
    display_caller: str | None  # the caller as a person reads it (its ARN even when refused)
    refusal: str | None  # why the caller may not be granted; None: it may
    keys: tuple[tuple[str, AccessNeed], ...] = ()  # key references the call names, with their need
    manifests: tuple[S3ObjectRef, ...] = ()
    project_datasets: str | None = None  # the project whose TRAIN and TEST datasets are trained from
    source_dataset: str | None = None  # CreateDataset's DatasetSource.DatasetArn
    inline_ground_truth: bytes | None = None
    inline_dataset: str | None = None  # the dataset UpdateDatasetEntries writes the inline lines to
    output_bucket: str | None = None  # its default key is needed for the training data
    version_arn: str | None = None  # the version CreateProjectVersion created (responseElements)

    @property
    def principal(self) -> str | None:
        """The principal to grant: the caller, unless it is refused."""
        return self.caller.principal_arn if self.refusal is None else None

    @property
    def principals(self) -> tuple[str, ...]:
        return (self.principal,) if self.principal else ()

    def wants(self, need: AccessNeed) -> dict[str, tuple[policy.StatementSpec, ...]]:
        """What ``ensure_access`` is asked to make hold on a key with ``need``."""
        return {principal: need.specs for principal in self.principals}


def plan_training(call: TrainingCall, settings: Settings) -> TrainingPlan:
    """Decide what the call asks (parsing its parameters and resolving its caller)."""
    request = request_of(call)
    caller = resolve_caller(call.user_identity)
    identity = call.user_identity if isinstance(call.user_identity, dict) else {}
    arn = identity.get("arn")
    # CreateProjectVersion without manifests trains from the project's datasets (the request's
    # manifests rule when there are any).
    from_datasets = call.event_name == "CreateProjectVersion" and not request.manifests and bool(request.project)
    return TrainingPlan(
        event_id=call.event_id,
        event_name=call.event_name,
        origin=request.describe(call.event_name),
        caller=caller,
        display_caller=caller.principal_arn or (arn if isinstance(arn, str) else None),
        refusal=refusal_reason(
            caller.principal_arn,
            key_account=settings.account_id,
            key_partition=partition_of_region(settings.region),
            patterns=settings.allowed_principal_patterns,
        ),
        keys=((request.kms_key_id, AccessNeed.COPIED_IMAGES),) if request.kms_key_id else (),
        manifests=tuple(request.manifests),
        project_datasets=request.project if from_datasets else None,
        source_dataset=request.source_dataset,
        inline_ground_truth=request.inline_ground_truth,
        inline_dataset=request.project if request.inline_ground_truth else None,
        output_bucket=request.output_bucket,
        version_arn=request.version_arn,
    )
