"""The audit report's data (docs/architecture.md §2, the audit), from the run record: per bucket,
objects by encryption and by condition; per key in use, the principals that can use it for
training and how they got it (a member's key read through that member's role); per account, its
buckets, totals and keys; failed trainings and their diagnosis; the open conditions and new
alerts by type; the run's notes. ``reporting.auditreport`` writes it beside the rows and the page.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any, Final

from clguard.adapters import clients
from clguard.boundary.config import Settings
from clguard.errors import AwsError, KeyUnreadable, MemberUnreachable
from clguard.reporting import labels
from clguard.rules import policy
from clguard.rules.arns import account_of
from clguard.rules.policy import OWNED_SIDS, TRAINING_DATA
from clguard.state.keydirectory import KeyDirectory

SCHEMA: Final = "clguard.audit-report/1"


def _counts(plain: Mapping[str, Any], prefix: str) -> list[tuple[list[str], int]]:
    return [
        (name.split("|")[1:], value)
        for name, value in plain.items()
        if name.startswith(prefix + "|") and isinstance(value, int)
    ]


def key_principals(settings: Settings, key_arn: str, keys: KeyDirectory) -> dict[str, Any]:
    """Who can use the key for training (kms:Decrypt and kms:GenerateDataKey) and through which
    statement; which TRAINING_PRINCIPALS cannot."""
    lookup = keys.lookup(key_arn)
    if lookup.key is None:
        return {"arn": key_arn, "state": lookup.problem or "not found", "principals": [], "lacking": []}
    try:
        document = keys.policy(lookup.key.arn)
    except (AwsError, KeyUnreadable) as error:
        return {"arn": key_arn, "state": f"policy unreadable: {error}", "principals": [], "lacking": []}
    principals = []
    for candidate in _candidates(settings, document):
        how = _how_granted(document, candidate, lookup.key.arn)
        if how is not None:
            principals.append({"arn": candidate, "how": how})
    granted = {p["arn"] for p in principals}
    lacking = [p for p in settings.training_principals if p not in granted]
    return {
        "arn": lookup.key.arn,
        "alias": labels.alias_of(lookup.key.arn) or "",
        "state": lookup.key.state,
        "principals": principals,
        "lacking": lacking,
    }


def _candidates(settings: Settings, document: Mapping[str, Any]) -> dict[str, None]:
    """Every principal the policy names, then TRAINING_PRINCIPALS (in order, once each)."""
    candidates: dict[str, None] = {}
    for statement in policy.statements(document):
        principal = statement.get("Principal")
        named = policy.as_list(principal.get("AWS")) if isinstance(principal, Mapping) else [principal]
        candidates.update((str(p), None) for p in named if isinstance(p, str))
    candidates.update((p, None) for p in settings.training_principals)
    return candidates


def _how_granted(document: Mapping[str, Any], candidate: str, key_arn: str) -> str | None:
    """The first statement that alone grants ``candidate`` the training data actions, said in words."""
    for index, statement in enumerate(policy.statements(document)):
        if policy.is_granted({"Statement": [statement]}, candidate, TRAINING_DATA, key_arn):
            sid = str(statement.get("Sid") or f"#{index + 1}")
            how = f"added by the guard (statement {sid})" if sid in OWNED_SIDS else f"key policy statement {sid}"
            if candidate.endswith(":root"):
                how += ": the account's IAM policies decide who else"
            return how
    return None


def key_entry(settings: Settings, key_arn: str, keys: KeyDirectory) -> dict[str, Any]:
    """``key_principals`` read in the key's own account: a member's key only through that
    member's role (design §11), with the member's guardrails; ``account`` names the owner."""
    account = account_of(key_arn) or settings.home
    if account == settings.home or not settings.serves(account):
        return {**key_principals(settings, key_arn, keys), "account": account}
    member = settings.for_account(account) or settings
    try:
        with clients.acting_in(clients.Member(account, settings.member_role_arn(account))):
            entry = key_principals(member, key_arn, keys)
    except MemberUnreachable as error:
        entry = {"arn": key_arn, "state": f"not read: {error}", "principals": [], "lacking": []}
    return {**entry, "account": account}


def accounts_view(
    settings: Settings, buckets: list[dict[str, Any]], keys: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The per-account view of a run: each account's buckets, object and condition totals, keys."""
    view: dict[str, dict[str, Any]] = {}
    for bucket in buckets:
        entry = view.setdefault(
            bucket["account"],
            {"account": bucket["account"], "buckets": [], "objects": 0, "compliant": 0, "by_condition": Counter()},
        )
        entry["buckets"].append(bucket["name"])
        entry["objects"] += bucket["objects"]
        entry["compliant"] += bucket["compliant"]
        entry["by_condition"].update(bucket["by_condition"])
    for key in keys:
        view.setdefault(
            key["account"],
            {"account": key["account"], "buckets": [], "objects": 0, "compliant": 0, "by_condition": Counter()},
        ).setdefault("keys", []).append(key["arn"])
    return [
        {**entry, "by_condition": dict(sorted(entry["by_condition"].items())), "keys": entry.get("keys", [])}
        for _, entry in sorted(view.items(), key=lambda item: (item[0] != settings.home, item[0]))
    ]


def _bucket_entry(name: str) -> dict[str, Any]:
    return {"name": name, "objects": 0, "by_encryption": Counter(), "by_condition": Counter(), "gone": 0}


def _bucket_tallies(plain: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per bucket: objects by encryption and by condition (``n|bucket|encryption|condition``), and
    objects seen gone (``gone|bucket|…``); every bucket of the run, even one with no object."""
    buckets = {b: _bucket_entry(b) for b in plain.get("buckets", [])}
    for (bucket, encryption, condition), value in (
        (parts, value) for parts, value in _counts(plain, "n") if len(parts) == 3
    ):
        entry = buckets.setdefault(bucket, _bucket_entry(bucket))
        entry["objects"] += value
        entry["by_encryption"][encryption] += value
        entry["by_condition"][condition] += value
    for (bucket, *_), value in _counts(plain, "gone"):
        if bucket in buckets:
            buckets[bucket]["gone"] += value
    return buckets


def _condition_totals(
    buckets: Mapping[str, Mapping[str, Any]], plain: Mapping[str, Any], trainings: list[dict[str, Any]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Open conditions by finding type (objects not OK, failed trainings) and new alerts by type."""
    findings_by_type: defaultdict[str, int] = defaultdict(int)
    for entry in buckets.values():
        for condition, value in entry["by_condition"].items():
            if condition != "OK":
                findings_by_type[condition] += value
    alerts = {parts[0]: value for parts, value in _counts(plain, "a")}
    for training in trainings:
        findings_by_type["TRAINING_FAILED"] += 1
        if training.get("alerted"):
            alerts["TRAINING_FAILED"] = alerts.get("TRAINING_FAILED", 0) + 1
    return findings_by_type, alerts


def build(settings: Settings, run_id: str, plain: Mapping[str, Any]) -> dict[str, Any]:
    """The report's data, from the run record."""
    buckets = _bucket_tallies(plain)
    trainings = json.loads(str(plain.get("trainings") or "[]"))
    findings_by_type, alerts = _condition_totals(buckets, plain, trainings)
    keys = KeyDirectory()
    started = float(plain.get("started") or time.time())
    owners: dict[str, str] = json.loads(str(plain.get("bucket_accounts") or "{}"))
    bucket_rows = [
        {
            **entry,
            "account": owners.get(str(entry["name"]), settings.home),
            "by_encryption": dict(sorted(entry["by_encryption"].items())),
            "by_condition": dict(sorted(entry["by_condition"].items())),
            "compliant": entry["by_condition"].get("OK", 0),
        }
        for entry in sorted(buckets.values(), key=lambda e: str(e["name"]))
    ]
    key_rows = [key_entry(settings, arn, keys) for arn in plain.get("keys", [])]
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "account": settings.account_id,
        "region": settings.region,
        "started_at": plain.get("started_at", ""),
        "duration_seconds": round(time.time() - started, 1),
        "mode": plain.get("mode", settings.remediation_mode.value),
        "requirement": plain.get("requirement", settings.encryption_requirement.value),
        "reports_bucket": plain.get("reports_bucket", ""),
        "reports_prefix": plain.get("reports_prefix", ""),
        "objects_listed": int(plain.get("listed_objects", 0)),
        "buckets": bucket_rows,
        "keys": key_rows,
        # Per account (the deployment's own first): the data the report's per-account section shows.
        "accounts": accounts_view(settings, bucket_rows, key_rows),
        "trainings": trainings,
        "conditions_by_type": dict(sorted(findings_by_type.items())),
        "new_alerts_by_type": dict(sorted(alerts.items())),
        "notes": list(plain.get("notes", [])),
    }
