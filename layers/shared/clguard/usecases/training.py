"""The grant path (docs/architecture.md §7, §8): a Rekognition training call → the caller gets exactly the key
access training needs, and every violation on the way is reported.

Handles CreateProjectVersion (manifests, KmsKeyId, output bucket; without manifests, the entries
of the project's TRAIN and TEST datasets), CreateDataset (its source manifest, or the entries of
its source dataset), UpdateDatasetEntries (inline Ground Truth lines, when CloudTrail recorded them)
and CopyProjectVersion (KmsKeyId, output bucket: a copy trains nothing, so no images are read).

Dataset entries are JSON Lines like a manifest's and go through the same scan, the same inline /
fan-out split and the same bounds; they are streamed one ListDatasetEntries page at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Final

from clguard.adapters import clients, rekognition, s3, sqs
from clguard.boundary import fanout, manifest
from clguard.boundary.config import Settings
from clguard.boundary.events import parse_training_call
from clguard.boundary.manifest import ManifestStats
from clguard.boundary.s3ref import S3ObjectRef
from clguard.boundary.work import ObjectWork
from clguard.errors import KeyUnreadable, Refused
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, KmsKeyResource, Outcome, ProjectVersionResource, Resource
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Unit
from clguard.rules import policy
from clguard.rules.policy import AccessNeed
from clguard.state.intents import Journal
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases.accounts import member_of, settings_for
from clguard.usecases.keyaccess import ensure_access
from clguard.usecases.keydecision import Context, KeyResult, KeyStatus
from clguard.usecases.objects import verify_object
from clguard.usecases.prefetch import HeadPrefetch
from clguard.usecases.trainingplan import TrainingPlan, plan_training, should_act

INLINE_IMAGE_LIMIT: Final = 1_000  # larger manifests fan their image checks out to the verify queue


@dataclass(slots=True)
class Summary:
    event_id: str
    event_name: str
    status: str
    reason: str
    caller: str | None = None
    principal: str | None = None
    objects_checked: int = 0
    manifests: int = 0
    datasets: int = 0
    fanout_messages: int = 0
    keys: dict[str, KeyStatus] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_name": self.event_name,
            "status": self.status,
            "reason": self.reason,
            "caller": self.caller,
            "principal": self.principal,
            "objects_checked": self.objects_checked,
            "manifests": self.manifests,
            "datasets": self.datasets,
            "fanout_messages": self.fanout_messages,
            "keys": {arn: status.value for arn, status in self.keys.items()},
            "findings": [{k: f[k] for k in ("finding_type", "outcome", "resource")} for f in self.findings],
        }


class TrainingRun:
    """Carries out a :class:`TrainingPlan`: checks its images and keys and keeps the summary."""

    def __init__(
        self,
        plan: TrainingPlan,
        settings: Settings,
        *,
        lambda_context: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        inline_limit: int | None = None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.origin = plan.origin
        self.publisher = Publisher(settings, lambda_context=lambda_context)
        self.unit = Unit(self.publisher)  # the invocation: retried by Lambda as a whole
        self.keys = KeyDirectory(fresh=True)  # a one-shot call is decided on what KMS says now
        # Lambda retries the event with no attempt count: the journal asks its index item.
        journal = Journal(settings.state_table, redelivered=None)
        self.ctx = Context(
            settings,
            self.publisher,
            self.keys,
            plan.event_id,
            self.origin,
            sleep=sleep,
            journal=journal,
            request=self.origin,
        )
        self.inline_limit = INLINE_IMAGE_LIMIT if inline_limit is None else inline_limit
        self.summary = Summary(plan.event_id, plan.event_name, "processed", "", plan.display_caller, plan.principal)
        self.key_needs: dict[str, set[AccessNeed]] = {}  # resolved CMK ARN -> needs (for refusals)
        self.checked: set[S3ObjectRef] = set()  # images checked inline (bounded by the inline limit)

    # --- steps ---------------------------------------------------------------------------------

    def run(self) -> Summary:
        plan = self.plan
        logger.info(
            "training call",
            extra={
                "event_name": plan.event_name,
                "caller": plan.display_caller,
                "identity_type": plan.caller.identity_type,
                "principal": plan.principal,
                "refusal": plan.refusal,
                "manifests": len(plan.manifests),
                "kms_key_id": next((reference for reference, _ in plan.keys), None),
            },
        )
        with self.unit:  # left by an error, it still sends the findings made (then the error goes on)
            for reference, need in plan.keys:
                self._ensure(reference, need)
            for location in plan.manifests:
                self._manifest(location)
            if plan.project_datasets:
                self._project_datasets(plan.project_datasets)
            if plan.source_dataset:
                self._dataset(plan.source_dataset, ProjectVersionResource(plan.source_dataset))
            if plan.inline_ground_truth:
                stats = ManifestStats()
                refs = manifest.scan([plan.inline_ground_truth], stats)
                self._images(refs, stats, ProjectVersionResource(plan.inline_dataset) if plan.inline_dataset else None)
            if plan.output_bucket:
                self._output_bucket(plan.output_bucket)
            self._publish_refusal()
            self.publisher.flush()  # the queued findings (then Security Hub): ``published`` is complete
            self.summary.findings = [f.document() for f in self.publisher.published]
        # Every finding was tried; one neither SNS nor the outbox took fails the invocation (the
        # unit's exit), so Lambda's retry (then the GrantDLQ) publishes it.
        return self.summary

    def _note_key(self, result: KeyResult, need: AccessNeed) -> None:
        arn = result.key.arn if result.key is not None else result.reference
        if result.key is not None:
            self.key_needs.setdefault(arn, set()).add(need)
        # Keep the most telling status seen for the key (several objects share one key).
        self.summary.keys[arn] = max(self.summary.keys.get(arn, KeyStatus.OK), result.status)

    def _ensure(self, reference: str, need: AccessNeed) -> None:
        result = ensure_access(self.ctx, reference, self.plan.wants(need))
        self._note_key(result, need)

    def _verify(self, work: ObjectWork, head_fn: Callable[[ObjectWork], s3.Head] | None = None) -> None:
        result = verify_object(work, self.ctx, head_fn)
        if result.status == "checked":
            self.summary.objects_checked += 1
        for key_result in result.key_results:
            self._note_key(key_result, AccessNeed.TRAINING_DATA)

    def _object(self, location: S3ObjectRef, reason: str) -> ObjectWork:
        return ObjectWork(
            location,
            source_event_id=self.plan.event_id,
            reason=reason,
            principals=self.plan.principals,
            anywhere=True,
            origin=self.origin,
        )

    def _manifest(self, location: S3ObjectRef) -> None:
        self.summary.manifests += 1
        self._verify(self._object(location, "manifest"))
        stats = ManifestStats()
        resource = location
        try:
            chunks = s3.iter_chunks(location)
        except Refused as error:
            self._manifest_finding(resource, f"the manifest could not be read: {error.code}")
            return
        # Errors while checking the images are the images' own (findings, or a retry), not the
        # manifest's.
        self._images(manifest.scan(chunks, stats), stats, resource)

    def _manifest_finding(self, resource: Resource | None, detail: str, *, scope: str = "") -> None:
        finding = Finding(
            finding_type=FindingType.MANIFEST_INVALID,
            outcome=Outcome.REPORTED,
            resource=resource or S3ObjectRef("(inline)", self.plan.event_name),
            detail=f"{detail} (for {self.origin})",
            source_event_id=self.plan.event_id,
            account=self.settings.account_id,
            region=self.settings.region,
            scope=scope,
            origin=self.origin,
        )
        self.publisher.publish(finding)

    # --- datasets ------------------------------------------------------------------------------

    def _project_datasets(self, project_arn: str) -> None:
        # The finding's resource is the version being trained; before CloudTrail names it (a
        # refused call we still act on), the project.
        resource = ProjectVersionResource(self.plan.version_arn or project_arn)
        try:
            project = rekognition.describe_project(project_arn)
        except Refused as error:
            self._manifest_finding(
                resource,
                f"the project's datasets could not be listed (DescribeProjects: {error.code}); "
                "the training images were not checked",
            )
            return
        if project is None:
            self._manifest_finding(
                resource, f"the project {project_arn} was not found; the training images were not checked"
            )
            return
        if not project.datasets:
            logger.info("the project has no datasets", extra={"project": project_arn})
            return
        for dataset in sorted(project.datasets, key=lambda d: (d.dataset_type != "TRAIN", d.arn)):
            if not dataset.readable:
                self.summary.datasets += 1
                message = f": {dataset.status_message}" if dataset.status_message else ""
                self._manifest_finding(
                    resource,
                    f"the {dataset.dataset_type} dataset {dataset.arn} is {dataset.status}{message}; "
                    "its images were not checked",
                    scope=f"{self.plan.event_id}:{dataset.arn}",
                )
                continue
            self._dataset(dataset.arn, resource, dataset.dataset_type)

    def _dataset(self, dataset_arn: str, resource: Resource, dataset_type: str = "") -> None:
        """Check the images of a dataset's entries, as the lines of a manifest."""
        self.summary.datasets += 1
        scope = f"{self.plan.event_id}:{dataset_arn}"
        name = f"the {dataset_type} dataset" if dataset_type else "the dataset"
        try:
            pages = rekognition.dataset_entry_pages(dataset_arn)
        except Refused as error:
            self._manifest_finding(
                resource,
                f"{name} {dataset_arn} could not be read (ListDatasetEntries: {error.code}); "
                "its images were not checked",
                scope=scope,
            )
            return
        stats = ManifestStats()
        lines = rekognition.entry_lines(_pages_until_refused(pages, stats))
        self._images(manifest.scan(lines, stats), stats, resource, scope=scope, what=f"{name} {dataset_arn}")

    def _images(
        self,
        refs: Iterator[S3ObjectRef],
        stats: ManifestStats,
        resource: Resource | None,
        *,
        scope: str = "",
        what: str = "manifest",
    ) -> None:
        """Check the images: inline for a small manifest, fanned out to the verify queue beyond
        ``inline_limit`` images (bounded memory either way)."""
        buffered: list[S3ObjectRef] = []
        for ref in refs:
            buffered.append(ref)
            if len(buffered) > self.inline_limit and self.settings.verify_queue_url:
                self._fan_out(chain(buffered, refs))
                buffered = []
                break
        fresh = [ref for ref in dict.fromkeys(buffered) if ref not in self.checked]
        if fresh:
            self.checked.update(fresh)
            works = [self._object(ref, "manifest image") for ref in fresh]
            prefetch = HeadPrefetch(works)
            try:
                for work in works:
                    self._verify(work, prefetch)
            finally:
                prefetch.close()
        if stats.problems:
            self._manifest_finding(resource, f"{what} problems: {stats.describe()}", scope=scope)

    def _fan_out(self, refs: Iterator[S3ObjectRef]) -> None:
        queue = self.settings.verify_queue_url
        assert queue is not None
        account = None if self.settings.account_id == self.settings.home else self.settings.account_id
        for body in fanout.messages(
            refs,
            source_event_id=self.plan.event_id,
            origin=self.origin,
            principals=self.plan.principals,
            account=account,
        ):
            sqs.send(queue, body)
            self.summary.fanout_messages += 1
        count("FanoutMessages", self.summary.fanout_messages)

    def _output_bucket(self, bucket: str) -> None:
        try:
            key = s3.bucket_default_kms_key(bucket)
        except Refused as error:
            logger.warning(
                "could not read the output bucket's default encryption",
                extra={"bucket": bucket, "error": error.code},
            )
            count("OutputBucketUnverifiable")
            return
        if key:
            self._ensure(key, AccessNeed.TRAINING_DATA)

    def _publish_refusal(self) -> None:
        """One PRINCIPAL_NOT_ALLOWED per principal per event, listing the keys it lacks."""
        if self.plan.refusal is None or not self.key_needs:
            return
        lacking = []
        for key_arn, needs in self.key_needs.items():
            lookup = self.keys.lookup(key_arn)
            if lookup.key is None or not lookup.key.customer_managed:
                continue
            arn = self.plan.caller.principal_arn
            try:
                document = self.keys.policy(key_arn)
            except KeyUnreadable:
                document = {}  # cannot tell: listed (its own KEY_UNUSABLE says why)
            facts = self.keys.request_facts(key_arn, document, home_account=self.settings.home)
            if arn and not policy.missing(document, arn, policy.specs_for(needs), key_arn, facts=facts):
                continue
            lacking.append(key_arn)
        if not lacking:
            return
        who = self.plan.display_caller or f"a {self.plan.caller.identity_type} caller"
        finding = Finding(
            finding_type=FindingType.PRINCIPAL_NOT_ALLOWED,
            outcome=Outcome.REFUSED,
            resource=KmsKeyResource(lacking[0]),
            detail=f"not granting {who} ({self.plan.caller.note}) access for {self.origin}: {self.plan.refusal}; "
            f"key(s): {', '.join(lacking)}",
            source_event_id=self.plan.event_id,
            account=self.settings.account_id,
            region=self.settings.region,
            principal_arn=self.plan.display_caller,
            kms_key_arn=lacking[0],
            origin=self.origin,
        )
        count("Refusals", account=self.settings.account_id)
        self.publisher.publish(finding)


def _pages_until_refused(pages: Iterator[list[str]], stats: ManifestStats) -> Iterator[list[str]]:
    """The pages; a later page that is refused (not transient: those retry the event) ends the
    read, and ``stats`` says so (the entries read so far are still checked)."""
    read = 0
    try:
        for page in pages:
            read += 1
            yield page
    except Refused as error:
        code = error.code
        stats.truncated = f"ListDatasetEntries failed after {read} page(s) ({code}); the rest was not checked"


def handle_training_event(
    event: Mapping[str, Any],
    settings: Settings,
    *,
    lambda_context: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    call = parse_training_call(event)
    logger.set_correlation_id(call.event_id)
    act, reason = should_act(call)
    if not act:
        logger.info("training call ignored", extra={"event_name": call.event_name, "reason": reason})
        count("EventsIgnored")
        return Summary(call.event_id, call.event_name, "ignored", reason).to_json()
    account_settings = settings_for(settings, call.account)
    if account_settings is None:
        reason = f"account {call.account} is neither this deployment's nor one of MEMBER_ACCOUNTS"
        logger.warning("training call ignored: nothing assumed, nothing changed", extra={"reason": reason})
        count("EventsForeignAccount")
        return Summary(call.event_id, call.event_name, "ignored", reason).to_json()
    plan = plan_training(call, account_settings)
    with clients.acting_in(member_of(account_settings)):
        run = TrainingRun(plan, account_settings, lambda_context=lambda_context, sleep=sleep)
        summary = run.run()
    summary.reason = reason
    return summary.to_json()
