"""Failed trainings: every Custom Labels project version that ended TRAINING_FAILED for a reason
of access (the Custom Labels guide, "Debugging a failed model training": S3 bucket permissions
incorrect, unable to write to the output bucket, failed to copy images, images bucket
permissions invalid) is one ``TRAINING_FAILED`` finding, once per version ever (a permanent
marker in STATE_TABLE), with a diagnosis: the keys its data uses and which TRAINING_PRINCIPALS
lack access to them now. In enforce mode the guard first grants TRAINING_PRINCIPALS on the
managed keys of the version's manifests (as for an upload). When nobody lacks access any more,
the finding says "retry the training" (outcome REMEDIATED). Other failures are logged, not alerted.
The copied-images key (``KmsKeyId``) is diagnosed, not granted: it needs the caller, whom
DescribeProjectVersions does not name (the grant path handles it at CreateProjectVersion).

Look-back: only versions whose training ended (``TrainingEndTimestamp``, else
``CreationTimestamp``) within LOOK_BACK_SECONDS (30 days) are read; an older failure was alerted
when it was recent, or is history. That window is what bounds the markers
(:mod:`clguard.state.trainingalerts`: their TTL is longer than it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from clguard.adapters import rekognition, s3
from clguard.adapters.s3 import HeadStatus
from clguard.boundary.config import Settings
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import KeyUnreadable, Refused
from clguard.observability import count, logger
from clguard.reporting.findings import Finding, FindingType, Outcome, ProjectVersionResource
from clguard.reporting.publisher import Publisher
from clguard.reporting.unitofwork import Change
from clguard.rules import policy
from clguard.rules.encryption import UnknownEncryption, classify
from clguard.state import trainingalerts
from clguard.state.intents import Journal
from clguard.state.keydirectory import KeyDirectory
from clguard.usecases.keyaccess import ensure_access
from clguard.usecases.keydecision import Context

ACCESS_RELATED: Final = re.compile(
    r"permission|access|denied|not authori[sz]ed|forbidden|unable to write|failed to copy|kms|decrypt|encrypt",
    re.IGNORECASE,
)


LOOK_BACK_SECONDS: Final = 30 * 24 * 3600


def ended_at(description: dict[str, Any]) -> float | None:
    """When the version's training ended (epoch seconds): TrainingEndTimestamp, else
    CreationTimestamp; None when it says neither."""
    for name in ("TrainingEndTimestamp", "CreationTimestamp"):
        value = description.get(name)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def in_look_back(description: dict[str, Any], now: float) -> bool:
    """Whether the audit reads this version: its training ended within the look-back (a version
    whose end is unknown is read: never a failure left unsaid)."""
    ended = ended_at(description)
    return ended is None or now - ended <= LOOK_BACK_SECONDS


def access_related(status_message: str) -> bool:
    return bool(ACCESS_RELATED.search(status_message or ""))


def projects() -> Iterator[str]:
    """Every Custom Labels project ARN of the account and region (DescribeProjects, every page)."""
    return rekognition.custom_labels_project_arns()


def _manifests(description: dict[str, Any]) -> list[S3ObjectRef]:
    found = []
    for result in ("TrainingDataResult", "TestingDataResult"):
        for asset in (description.get(result) or {}).get("Input", {}).get("Assets", []) or []:
            location = (asset.get("GroundTruthManifest") or {}).get("S3Object") or {}
            if location.get("Bucket") and location.get("Name"):
                found.append(S3ObjectRef(str(location["Bucket"]), str(location["Name"])))
    return found


# --- the diagnosis: one check per rule -----------------------------------------------------------
#
# diagnose(version) runs these, in order (each reads or decides one thing):
#
#   _keys_used         the keys the version's data uses, and why: the copied-images key (KmsKeyId),
#                        then each training/testing manifest's key (_manifest_key);
#   _manifest_key      one manifest: inside TRAINING_BUCKETS, found by HeadObject, its encryption
#                        readable -> its KMS key (or a note saying why it was not inspected);
#   _grant             with TRAINING_PRINCIPALS set: each ensured on the manifests' keys (as for an
#                        upload), and what was granted now or by an earlier attempt of this run;
#   _who_lacks         one key: unusable, its policy unreadable, or the principals it does not grant;
#   fixed              REMEDIATED only when the guard granted something now and nobody lacks access.


def diagnose(
    settings: Settings,
    description: dict[str, Any],
    keys: KeyDirectory,
    publisher: Publisher,
    run_id: str,
    *,
    journal: Journal | None = None,
) -> dict[str, Any]:
    """The keys the version's data uses and who lacks training access to them now. In enforce
    mode the guard first ensures TRAINING_PRINCIPALS on the data's keys (exactly as for an
    upload: guardrails, opt-in tag, lock), so "fixed" can say: retry the training."""
    used, notes = _keys_used(settings, description)
    granted = (
        _grant(settings, used, description=description, keys=keys, publisher=publisher, run_id=run_id, journal=journal)
        if settings.training_principals
        else []
    )
    lacking: dict[str, list[str]] = {}
    for reference in used:
        lacks = _who_lacks(settings, keys, reference)
        if lacks is not None:
            lacking[lacks[0]] = lacks[1]
    # REMEDIATED means the guard changed something that fixed it: a grant now, and nobody lacking.
    fixed = not lacking and bool(used) and bool(granted)
    return {
        "keys": used,
        "lacking": lacking,
        "notes": notes,
        "fixed": fixed,
        "granted": granted,
        "principals": list(settings.training_principals),
    }


def _keys_used(settings: Settings, description: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Key ARN (or id) -> what uses it; and the notes of what was not inspected."""
    used: dict[str, str] = {}
    notes: list[str] = []
    if description.get("KmsKeyId"):
        used[str(description["KmsKeyId"])] = "copied images (KmsKeyId)"
    manifests = _manifests(description)
    if not manifests:
        notes.append("trained from the project's datasets: see the keys of the training buckets")
    for manifest in manifests:
        key, note = _manifest_key(settings, manifest)
        if note:
            notes.append(note)
        elif key:
            used.setdefault(key, f"manifest {manifest.uri}")
    return used, notes


def _manifest_key(settings: Settings, manifest: S3ObjectRef) -> tuple[str | None, str | None]:
    """One manifest's KMS key (None: not KMS-encrypted), or the note saying why it was not inspected."""
    if manifest.bucket not in settings.training_buckets:
        return None, f"manifest {manifest.uri} is outside TRAINING_BUCKETS: not inspected"
    head = s3.head(manifest)
    if head.status is not HeadStatus.FOUND or head.response is None:
        return None, f"manifest {manifest.uri}: {head.status.value} {head.problem}".strip()
    try:
        encryption = classify(head.response)
    except UnknownEncryption as unknown:
        return None, f"manifest {manifest.uri}: {unknown}"
    return encryption.kms_key_arn, None


def _grant(
    settings: Settings,
    used: dict[str, str],
    *,
    description: dict[str, Any],
    keys: KeyDirectory,
    publisher: Publisher,
    run_id: str,
    journal: Journal | None,
) -> list[str]:
    """TRAINING_PRINCIPALS ensured on the manifests' keys: "<principal> on <key>" for each grant."""
    version_arn = str(description.get("ProjectVersionArn", ""))
    ctx = Context(
        settings=settings,
        publisher=publisher,
        keys=keys,
        source_event_id=f"audit-{run_id}",
        origin=f"the failed training {version_arn}",
        scope=f"training-failed:{version_arn}",
        # A grant that lands just before the invocation dies is reported by its retry.
        journal=journal or Journal(settings.state_table, redelivered=None),
    )
    wants = dict.fromkeys(settings.training_principals, (policy.TRAINING_DATA,))
    granted: list[str] = []
    for reference, why in used.items():
        if not why.startswith("manifest"):
            continue
        result = ensure_access(ctx, reference, wants)
        # Granted now, or by an earlier attempt of this run whose report is replayed now.
        replayed = [
            f.principal_arn
            for f in result.published
            if f.finding_type is FindingType.KEY_ACCESS_MISSING
            and f.outcome is Outcome.REMEDIATED
            and f.principal_arn
            and f.principal_arn not in result.granted
        ]
        granted += [f"{p} on {result.key.arn if result.key else reference}" for p in (*result.granted, *replayed)]
    return granted


def _who_lacks(settings: Settings, keys: KeyDirectory, reference: str) -> tuple[str, list[str]] | None:
    """The key (its ARN when known) and what keeps TRAINING_PRINCIPALS from it now; None: nothing."""
    lookup = keys.lookup(reference)
    if lookup.key is None or not lookup.key.usable:
        return reference, [f"key unusable: {lookup.problem or (lookup.key.state if lookup.key else '')}"]
    try:
        document = keys.policy(lookup.key.arn)
    except KeyUnreadable as unreadable:  # this key's problem alone: diagnosed, the audit goes on
        return lookup.key.arn, [f"unknown: the guard cannot read its policy ({unreadable})"]
    facts = keys.request_facts(lookup.key.arn, document, home_account=settings.home)
    missing = [
        p
        for p in settings.training_principals
        if policy.missing(document, p, (policy.TRAINING_DATA,), lookup.key.arn, facts=facts)
    ]
    return (lookup.key.arn, missing) if missing else None


def _diagnosis_text(status_message: str, found: dict[str, Any]) -> str:
    parts = [f"training failed: {status_message!r}"]
    if found["keys"]:
        parts.append("keys its data uses: " + ", ".join(f"{k} ({why})" for k, why in found["keys"].items()))
    for key, who in found["lacking"].items():
        parts.append(f"lacking access to {key} now: {', '.join(who)}")
    parts += found["notes"]
    if found["granted"]:
        parts.append("the guard has granted " + ", ".join(found["granted"]))
    if found["fixed"]:
        parts.append("every training principal has access now: retry the training")
    elif found["keys"] and not found["lacking"]:
        parts.append(
            "every TRAINING_PRINCIPALS entry has access to these keys (none is set)"
            if not found.get("principals")
            else "every TRAINING_PRINCIPALS entry already has access to these keys: check the trainer's own access"
        )
    elif not found["lacking"] and not found["keys"]:
        parts.append("no customer managed key found in its data; check the S3 bucket policies and the trainer's IAM")
    return "; ".join(parts)


def audit(settings: Settings, publisher: Publisher, run_id: str, *, now: float | None = None) -> list[dict[str, Any]]:
    """Every access-related failed training of the look-back, for the report; each alerted once
    per version."""
    now = time.time() if now is None else now
    keys = KeyDirectory()
    journal = Journal(settings.state_table, redelivered=None)
    out: list[dict[str, Any]] = []
    try:
        project_arns = list(projects())
    except Refused as error:
        logger.warning("cannot list Custom Labels projects; trainings not audited", extra={"error": str(error)})
        return [{"arn": "", "status_message": str(error), "diagnosis": "projects could not be listed", "fixed": False}]
    for project_arn in project_arns:
        try:
            versions = list(rekognition.project_versions(project_arn))
        except Refused as error:
            logger.warning("cannot describe project versions", extra={"project": project_arn, "error": str(error)})
            continue
        for description in versions:
            if description.get("Status") != "TRAINING_FAILED":
                continue
            if not in_look_back(description, now):
                count("TrainingsFailedBeyondLookBack")
                continue
            arn = str(description.get("ProjectVersionArn", ""))
            message = str(description.get("StatusMessage", ""))
            if not access_related(message):
                logger.info(
                    "training failed for a reason other than access", extra={"version": arn, "status_message": message}
                )
                count("TrainingsFailedOther")
                continue
            found = diagnose(settings, description, keys, publisher, run_id, journal=journal)
            entry = {
                "arn": arn,
                "status_message": message,
                "diagnosis": _diagnosis_text(message, found),
                "fixed": found["fixed"],
                "alerted": False,
            }
            if not trainingalerts.alerted(settings.state_table, arn):
                with Change(publisher, journal, f"audit-{run_id}", arn) as change:
                    finding = _reported(settings, change, message=message, found=found)
                    entry.update(diagnosis=finding.detail, fixed=finding.outcome is Outcome.REMEDIATED)
                    change.report(finding)
                    # Not delivered: no marker (and the intent stays), so the retry (or the next run) reports it.
                    if change.delivered:
                        trainingalerts.mark_alerted(settings.state_table, arn, run_id, now=now)
                        entry["alerted"] = True
                        count("TrainingsFailed")
            out.append(entry)
    return out


def _reported(settings: Settings, change: Change, *, message: str, found: dict[str, Any]) -> Finding:
    """The version's TRAINING_FAILED finding, written ahead before it is published (its
    ``reporting.unitofwork.Change``): a retry of the run whose first attempt died after publishing and
    before the marker publishes the same finding again (idempotent: nothing new), not a second
    diagnosis (the grant made then is no longer "made now": it would read REPORTED, "check the
    trainer's own access", beside the REMEDIATED one already sent)."""
    event_id, arn = change.event_id, change.resource
    stored = change.pending()
    if stored is not None and stored.findings:
        return stored.findings[0]
    first_key = next(iter(found["lacking"] or found["keys"]), None)
    finding = Finding(
        finding_type=FindingType.TRAINING_FAILED,
        outcome=Outcome.REMEDIATED if found["fixed"] else Outcome.REPORTED,
        resource=ProjectVersionResource(arn),
        detail=_diagnosis_text(message, found),
        source_event_id=event_id,
        account=settings.account_id,
        region=settings.region,
        kms_key_arn=first_key if first_key and first_key.startswith("arn:") else None,
        scope="training-failed",
    )
    change.intend([finding])
    return finding
