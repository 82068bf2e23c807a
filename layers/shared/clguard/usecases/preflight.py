"""``clguard preflight``: "if this role called CreateProjectVersion now, could training use every key
it needs?" (the contract: design §12; docs/architecture.md §12). Read-only.

No second implementation of the decision: the call is planned by the grant path's own planner
(``trainingplan.plan_training``, on the CloudTrail record the call would produce), each key is judged
by the checks ``keyaccess.ensure_access`` runs before it writes (``keydecision.usable`` and
``keydecision.decide``), and each object by the verify path's assessment (``rules.encryption``).
What differs is only what is done with the decision: it is printed, never carried out.

Verdicts per key: ``ready`` (already granted), ``guard-will-fix`` (the grant path would add it),
``blocked`` (it would not, or could not: ``reason``), ``unknown`` (it could not be read).
Images are sampled: at most ``sample`` images per manifest or dataset are inspected, and the
report says when the bound cut a source short.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from clguard.adapters import clients, rekognition, s3
from clguard.adapters.s3 import HeadStatus
from clguard.boundary import manifest
from clguard.boundary.config import Settings
from clguard.boundary.events import TrainingCall, lower_keys
from clguard.boundary.manifest import ManifestStats
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import KeyUnreadable, PolicyConflict, Refused
from clguard.rules import policy
from clguard.rules.encryption import Encryption, ObjectEncryption, UnknownEncryption, assess, classify
from clguard.rules.policy import AccessNeed
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases.accounts import member_of
from clguard.usecases.keydecision import KeyStatus, decide, usable
from clguard.usecases.trainingplan import TrainingPlan, plan_training

DEFAULT_SAMPLE: Final = 200  # images inspected per manifest or dataset


class Verdict(Enum):
    """Per key, from the best to the worst (the overall verdict is the worst key's)."""

    READY = "ready"
    GUARD_WILL_FIX = "guard-will-fix"
    UNKNOWN = "unknown"
    BLOCKED = "blocked"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)

    @property
    def exit_status(self) -> int:
        return {Verdict.BLOCKED: 2, Verdict.UNKNOWN: 3}.get(self, 0)


@dataclass(frozen=True, slots=True)
class Request:
    """The CreateProjectVersion parameters preflight is asked about."""

    role_arn: str  # the resolved role ARN (with its path)
    project_arn: str
    training_manifests: tuple[S3ObjectRef, ...] = ()
    testing_manifests: tuple[S3ObjectRef, ...] = ()
    kms_key_id: str | None = None
    output_bucket: str | None = None
    output_prefix: str = ""

    def call(self, account: str, region: str) -> TrainingCall:
        """The CloudTrail record this call would produce (what the grant function plans from)."""

        def assets(refs: Sequence[S3ObjectRef]) -> list[dict[str, Any]]:
            return [{"GroundTruthManifest": {"S3Object": {"Bucket": r.bucket, "Name": r.key}}} for r in refs]

        parameters: dict[str, Any] = {"ProjectArn": self.project_arn, "VersionName": "preflight"}
        if self.training_manifests:
            parameters["TrainingData"] = {"Assets": assets(self.training_manifests)}
        if self.testing_manifests:
            parameters["TestingData"] = {"Assets": assets(self.testing_manifests)}
        elif self.training_manifests:
            parameters["TestingData"] = {"AutoCreate": True}
        if self.kms_key_id:
            parameters["KmsKeyId"] = self.kms_key_id
        if self.output_bucket:
            parameters["OutputConfig"] = {"S3Bucket": self.output_bucket, "S3KeyPrefix": self.output_prefix}
        role_name = self.role_arn.rsplit("/", 1)[-1]
        identity = {
            "type": "AssumedRole",
            "arn": f"arn:{self.role_arn.split(':')[1]}:sts::{account}:assumed-role/{role_name}/clguard-preflight",
            "accountId": account,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": self.role_arn, "accountId": account}},
        }
        return TrainingCall(
            event_id=f"preflight-{uuid.uuid4()}",
            event_name="CreateProjectVersion",
            account=account,
            region=region,
            user_identity=identity,
            parameters=lower_keys(parameters),
            error_code=None,
            error_message=None,
        )


@dataclass(slots=True)
class KeyEntry:
    """One key (or one object without a usable key) and its verdict: the §12 ``keys`` entry."""

    key_arn: str | None
    verdict: Verdict = Verdict.READY
    needed_for: list[str] = field(default_factory=list)
    missing_actions: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def worsen(self, verdict: Verdict, reason: str | None = None, missing: Sequence[str] = ()) -> None:
        if verdict.rank > self.verdict.rank:
            self.verdict = verdict
        if reason and reason not in self.reasons:
            self.reasons.append(reason)
        self.missing_actions += [a for a in missing if a not in self.missing_actions]

    def document(self) -> dict[str, Any]:
        return {
            "key_arn": self.key_arn,
            "verdict": self.verdict.value,
            "needed_for": list(self.needed_for),
            "missing_actions": list(self.missing_actions),
            "reason": "; ".join(self.reasons) or None,
        }


@dataclass(slots=True)
class Report:
    role: str
    entries: dict[str, KeyEntry] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return max((e.verdict for e in self.entries.values()), key=lambda v: v.rank, default=Verdict.READY)

    @property
    def exit_status(self) -> int:
        return self.verdict.exit_status

    def document(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict.value,
            "role": self.role,
            "keys": [e.document() for e in self.entries.values()],
        }
        if self.notes:
            out["notes"] = list(self.notes)  # an extension: what was sampled or skipped
        return out


_VERDICTS: Final = {
    KeyStatus.OK: Verdict.READY,
    KeyStatus.GRANTED: Verdict.GUARD_WILL_FIX,
}


def _unwritable(
    keys: KeyDirectory, settings: Settings, key: Any, document: dict[str, Any], *, role: str, missing: Any
) -> str | None:
    """Why the write the grant path would make fails (keyattempt.attempt_write's pure checks), or None."""
    unwritable = policy.unwritable_principals(document)
    if unwritable:
        return f"the key policy names {', '.join(unwritable)} (a deleted principal): KMS refuses every write"
    try:
        facts = keys.request_facts(key.arn, document, home_account=settings.home)
        merge = policy.merge_grants(document, [(role, missing)], key_account=key.account, key_arn=key.arn, facts=facts)
    except PolicyConflict as conflict:
        return f"the guard's statement cannot be extended: {conflict}"
    size = policy.size_in_bytes(merge.document)
    if size > policy.MAX_POLICY_BYTES:
        return f"the key policy would be {size} bytes, over the {policy.MAX_POLICY_BYTES}-byte limit"
    return None


class Preflight:
    """Walks a training plan as the grant path would, reading only."""

    def __init__(self, plan: TrainingPlan, settings: Settings, role: str, *, sample: int = DEFAULT_SAMPLE) -> None:
        self.plan = plan
        self.settings = settings
        self.role = role
        self.sample = sample
        self.keys = KeyDirectory(fresh=True)  # as the grant path: what KMS says now
        self.report = Report(role)
        self.judged: set[tuple[str, AccessNeed]] = set()

    def run(self) -> Report:
        plan = self.plan
        for reference, need in plan.keys:
            self._key(reference, need, "KmsKeyId")
        for location in plan.manifests:
            self._object(location)
            self._manifest(location)
        if plan.project_datasets:
            self._project_datasets(plan.project_datasets)
        if plan.output_bucket:
            self._output(plan.output_bucket)
        return self.report

    # --- keys ------------------------------------------------------------------------------------

    def _entry(self, name: str, key_arn: str | None, use: str) -> KeyEntry:
        entry = self.report.entries.setdefault(name, KeyEntry(key_arn))
        if use not in entry.needed_for:
            entry.needed_for.append(use)
        return entry

    def _key(self, reference: str, need: AccessNeed, use: str) -> None:
        """The role's access to one key for one need, decided by the grant path's checks."""
        wants = {self.role: need.specs}
        try:
            key, problem = usable(self.keys, self.settings, reference, must_edit=bool(self.plan.wants(need)))
        except Refused as error:
            self._entry(reference, None, use).worsen(Verdict.UNKNOWN, f"DescribeKey failed: {error.code}")
            return
        arn = key.arn if key is not None else None
        entry = self._entry(arn or reference, arn, use)
        if problem is not None:
            entry.worsen(Verdict.BLOCKED, problem, policy.actions_of(need.specs))
            return
        assert key is not None
        if (key.arn, need) in self.judged:
            return
        self.judged.add((key.arn, need))
        try:
            document = self.keys.policy(key.arn)
            decision = decide(self.keys, self.settings, key, document, wants)[self.role]
        except KeyUnreadable as unreadable:
            entry.worsen(Verdict.UNKNOWN, f"the key could not be read: {unreadable}")
            return
        verdict = _VERDICTS.get(decision.status, Verdict.BLOCKED)
        reason = decision.reason
        if verdict is Verdict.GUARD_WILL_FIX:
            reason = _unwritable(self.keys, self.settings, key, document, role=self.role, missing=decision.missing)
            verdict = Verdict.GUARD_WILL_FIX if reason is None else Verdict.BLOCKED
        if decision.status is KeyStatus.REFUSED and self.plan.refusal:
            reason = self.plan.refusal
        entry.worsen(verdict, reason, policy.actions_of(decision.missing))

    # --- objects ---------------------------------------------------------------------------------

    def _object(self, ref: S3ObjectRef) -> None:
        """The key an object ends under (after the remediation the guard would make), as the verify
        path decides it (``usecases.objects.verify_object`` and ``remediation.remediate``): its encryption as
        read (``_encryption``), then as the guard leaves it (``_after_remediation``)."""
        encryption = self._encryption(ref)
        if encryption is None:
            return
        final = self._after_remediation(ref, encryption)
        if final.kind is Encryption.SSE_C:
            self._entry(ref.uri, None, ref.uri).worsen(Verdict.BLOCKED, "SSE-C: Rekognition cannot read it")
        elif final.kind.is_kms and final.kms_key_arn:
            self._key(final.kms_key_arn, AccessNeed.TRAINING_DATA, ref.uri)

    def _encryption(self, ref: S3ObjectRef) -> ObjectEncryption | None:
        """The object's encryption from HeadObject; None (with the object's verdict) when it is gone,
        unreadable, SSE-C or of an unknown encryption."""
        head = s3.head(ref)
        if head.status is HeadStatus.GONE:
            self._entry(ref.uri, None, ref.uri).worsen(Verdict.UNKNOWN, "the object does not exist")
            return None
        if head.status is HeadStatus.DENIED:
            self._entry(ref.uri, None, ref.uri).worsen(Verdict.UNKNOWN, f"the object cannot be read: {head.problem}")
            return None
        if head.status is HeadStatus.SSE_C:
            self._entry(ref.uri, None, ref.uri).worsen(
                Verdict.BLOCKED, "the object is SSE-C (customer-provided key): Rekognition cannot read it"
            )
            return None
        assert head.response is not None
        try:
            return classify(head.response)
        except UnknownEncryption as unknown:
            self._entry(ref.uri, None, ref.uri).worsen(
                Verdict.UNKNOWN, f"the object's encryption is unknown: {unknown}"
            )
            return None

    def _after_remediation(self, ref: S3ObjectRef, encryption: ObjectEncryption) -> ObjectEncryption:
        """The encryption the object has when Rekognition reads it: re-encrypted first when the
        guard would (enforce mode, a training bucket, a safe remediation)."""
        aws_managed = False
        if encryption.kind.is_kms and encryption.kms_key_arn:
            found = self.keys.lookup(encryption.kms_key_arn).key
            aws_managed = found is not None and not found.customer_managed
        assessment = assess(encryption, self.settings, aws_managed_key=aws_managed)
        fix = assessment.remediation
        in_training = ref.bucket in self.settings.training_buckets
        if not assessment.compliant and fix is not None and self.settings.enforce and in_training:
            return fix.target  # the guard re-encrypts it first (remediation.remediate)
        return encryption

    def _images(self, refs: Iterator[S3ObjectRef], what: str) -> None:
        for seen, ref in enumerate(refs):
            if seen >= self.sample:
                self.report.notes.append(f"{what}: only the first {self.sample} images were inspected (--sample)")
                return
            self._object(ref)

    def _manifest(self, location: S3ObjectRef) -> None:
        try:
            chunks = s3.iter_chunks(location)
            self._images(manifest.scan(chunks, ManifestStats()), location.uri)
        except Refused as error:
            self.report.notes.append(f"{location.uri}: the manifest could not be read ({error.code})")

    def _project_datasets(self, project_arn: str) -> None:
        try:
            project = rekognition.describe_project(project_arn)
        except Refused as error:
            self.report.notes.append(f"{project_arn}: DescribeProjects failed ({error.code}); images not checked")
            return
        if project is None:
            self.report.notes.append(f"{project_arn}: no such project; images not checked")
            return
        for dataset in sorted(project.datasets, key=lambda d: (d.dataset_type != "TRAIN", d.arn)):
            if not dataset.readable:
                self.report.notes.append(f"the {dataset.dataset_type} dataset {dataset.arn} is {dataset.status}")
                continue
            try:
                lines = rekognition.entry_lines(rekognition.dataset_entry_pages(dataset.arn))
                self._images(manifest.scan(lines, ManifestStats()), f"the {dataset.dataset_type} dataset")
            except Refused as error:
                self.report.notes.append(f"{dataset.arn}: ListDatasetEntries failed ({error.code})")

    def _output(self, bucket: str) -> None:
        try:
            key = s3.bucket_default_kms_key(bucket)
        except Refused as error:
            self.report.notes.append(f"s3://{bucket}: its default encryption could not be read ({error.code})")
            return
        if key:
            self._key(key, AccessNeed.TRAINING_DATA, "output")


def preflight(request: Request, settings: Settings, *, sample: int = DEFAULT_SAMPLE) -> Report:
    """The report for ``request`` (settings: the deployment's; the role's account picks the member)."""
    account = request.role_arn.split(":")[4]
    account_settings = settings.for_account(account)
    if account_settings is None:
        report = Report(request.role_arn)
        report.notes.append(f"account {account} is neither the guard's nor one of MEMBER_ACCOUNTS")
        report.entries["(account)"] = KeyEntry(
            None, Verdict.BLOCKED, [], [], [f"the guard does not serve account {account}"]
        )
        return report
    plan = plan_training(request.call(account, account_settings.region), account_settings)
    with clients.acting_in(member_of(account_settings)):
        return Preflight(plan, account_settings, request.role_arn, sample=sample).run()
