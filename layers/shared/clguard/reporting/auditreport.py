"""The audit's report: the same data as JSON and as one self-contained HTML page.

The page carries its data as JSON in a ``<script type="application/json">`` element and renders
its tables with a few lines of inline JavaScript (no network, no external file): what a person
opens from the reports bucket, and what the headless-browser test reads back.

Per bucket: objects by encryption and by condition; per key in use: the principals that can use
it for training and how they got it; failed trainings and their diagnosis; the run's notes.
"""

from __future__ import annotations

import html
import json
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any, Final

from clguard.adapters import clients, s3
from clguard.boundary.config import Settings
from clguard.errors import AwsError, KeyUnreadable, MemberUnreachable
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
    candidates: dict[str, None] = {}
    for statement in policy.statements(document):
        principal = statement.get("Principal")
        named = policy.as_list(principal.get("AWS")) if isinstance(principal, Mapping) else [principal]
        candidates.update((str(p), None) for p in named if isinstance(p, str))
    candidates.update((p, None) for p in settings.training_principals)
    principals = []
    for candidate in candidates:
        for index, statement in enumerate(policy.statements(document)):
            if policy.is_granted({"Statement": [statement]}, candidate, TRAINING_DATA, lookup.key.arn):
                sid = str(statement.get("Sid") or f"#{index + 1}")
                how = f"added by the guard (statement {sid})" if sid in OWNED_SIDS else f"key policy statement {sid}"
                if candidate.endswith(":root"):
                    how += ": the account's IAM policies decide who else"
                principals.append({"arn": candidate, "how": how})
                break
    granted = {p["arn"] for p in principals}
    lacking = [p for p in settings.training_principals if p not in granted]
    return {"arn": lookup.key.arn, "state": lookup.key.state, "principals": principals, "lacking": lacking}


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


def build(settings: Settings, run_id: str, plain: Mapping[str, Any]) -> dict[str, Any]:
    """The report's data, from the run record."""
    buckets: dict[str, dict[str, Any]] = {
        b: {"name": b, "objects": 0, "by_encryption": Counter(), "by_condition": Counter(), "gone": 0}
        for b in plain.get("buckets", [])
    }
    for (bucket, encryption, condition), value in (
        (parts, value) for parts, value in _counts(plain, "n") if len(parts) == 3
    ):
        entry = buckets.setdefault(
            bucket, {"name": bucket, "objects": 0, "by_encryption": Counter(), "by_condition": Counter(), "gone": 0}
        )
        entry["objects"] += value
        entry["by_encryption"][encryption] += value
        entry["by_condition"][condition] += value
    for (bucket, *_), value in _counts(plain, "gone"):
        if bucket in buckets:
            buckets[bucket]["gone"] += value
    findings_by_type: defaultdict[str, int] = defaultdict(int)
    for entry in buckets.values():
        for condition, value in entry["by_condition"].items():
            if condition != "OK":
                findings_by_type[condition] += value
    alerts = {parts[0]: value for parts, value in _counts(plain, "a")}
    trainings = json.loads(str(plain.get("trainings") or "[]"))
    for training in trainings:
        findings_by_type["TRAINING_FAILED"] += 1
        if training.get("alerted"):
            alerts["TRAINING_FAILED"] = alerts.get("TRAINING_FAILED", 0) + 1
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


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Custom Labels Guard audit __TITLE__</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0 0 1.5em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{background:#fde8e8}.ok{background:#e8f6ea}
</style></head>
<body>
<h1>Custom Labels Guard audit</h1>
<p id="meta"></p>
<h2>Buckets</h2><table id="buckets"></table>
<h2>Keys in use</h2><table id="keys"></table>
<h2>Failed trainings</h2><table id="trainings"></table>
<h2>Notes</h2><ul id="notes"></ul>
<noscript>This report renders its tables with JavaScript; the same data is in the JSON report.</noscript>
<script type="application/json" id="report-data">__DATA__</script>
<script>
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  function cell(row, text, cls) {
    var td = document.createElement("td"); td.textContent = String(text);
    if (cls) { td.className = cls; } row.appendChild(td); return td;
  }
  function table(id, head, rows) {
    var t = document.getElementById(id), tr = document.createElement("tr");
    head.forEach(function (h) { var th = document.createElement("th"); th.textContent = h; tr.appendChild(th); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var row = document.createElement("tr");
      r.forEach(function (c) { cell(row, c.v, c.c); }); t.appendChild(row);
    });
  }
  var encs = {}, conds = {};
  data.buckets.forEach(function (b) {
    Object.keys(b.by_encryption).forEach(function (e) { encs[e] = 1; });
    Object.keys(b.by_condition).forEach(function (c) { if (c !== "OK") { conds[c] = 1; } });
  });
  encs = Object.keys(encs).sort(); conds = Object.keys(conds).sort();
  table("buckets", ["bucket", "objects", "compliant"].concat(encs, conds, ["gone"]),
    data.buckets.map(function (b) {
      return [{v: b.name}, {v: b.objects, c: "n"}, {v: b.compliant, c: "n ok"}]
        .concat(encs.map(function (e) { return {v: b.by_encryption[e] || 0, c: "n"}; }))
        .concat(conds.map(function (c) { return {v: b.by_condition[c] || 0, c: "n bad"}; }))
        .concat([{v: b.gone, c: "n"}]);
    }));
  table("keys", ["key", "state", "principal", "how"], [].concat.apply([], data.keys.map(function (k) {
    var rows = k.principals.map(function (p) { return [{v: k.arn}, {v: k.state}, {v: p.arn}, {v: p.how}]; });
    k.lacking.forEach(function (p) { rows.push([{v: k.arn}, {v: k.state}, {v: p}, {v: "LACKS ACCESS", c: "bad"}]); });
    return rows;
  })));
  table("trainings", ["project version", "status message", "diagnosis"], data.trainings.map(function (t) {
    return [{v: t.arn}, {v: t.status_message}, {v: t.diagnosis, c: t.fixed ? "ok" : "bad"}];
  }));
  data.notes.forEach(function (n) {
    var li = document.createElement("li"); li.textContent = n; document.getElementById("notes").appendChild(li);
  });
  document.getElementById("meta").textContent = "Run " + data.run_id + " started " + data.started_at +
    " (" + data.mode + " mode, " + data.requirement + "), " + data.objects_listed + " objects listed, " +
    data.duration_seconds + " s; account " + data.account + ", " + data.region + ".";
})();
</script>
</body></html>
"""


def render_html(data: Mapping[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=True, sort_keys=True).replace("</", "<\\/")
    return _PAGE.replace("__TITLE__", html.escape(str(data.get("run_id", "")))).replace("__DATA__", payload)


def write(data: Mapping[str, Any], *, bucket: str, prefix: str) -> dict[str, str]:
    """Put the JSON and the HTML page under ``<prefix><run id>/``; their s3:// URLs."""
    base = f"{prefix}{data['run_id']}/"
    body = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode()
    s3.put_object(bucket, base + "report.json", body, "application/json")
    s3.put_object(bucket, base + "report.html", render_html(data).encode(), "text/html; charset=utf-8")
    return {"json": f"s3://{bucket}/{base}report.json", "html": f"s3://{bucket}/{base}report.html"}


def summary_document(data: Mapping[str, Any], locations: Mapping[str, str]) -> dict[str, Any]:
    return {
        "run_id": data["run_id"],
        "account": data["account"],
        "region": data["region"],
        "started_at": data["started_at"],
        "duration_seconds": data["duration_seconds"],
        "buckets": len(data["buckets"]),
        "objects": sum(int(b["objects"]) for b in data["buckets"]),
        "objects_listed": data["objects_listed"],
        "conditions_by_type": data["conditions_by_type"],
        "new_alerts_by_type": data["new_alerts_by_type"],
        "report": dict(locations),
    }


def summary_subject(data: Mapping[str, Any]) -> str:
    new = sum(int(v) for v in data["new_alerts_by_type"].values())
    objects = sum(int(b["objects"]) for b in data["buckets"])
    return f"[AUDIT] Custom Labels Guard: {new} new findings, {len(data['buckets'])} buckets, {objects} objects"[:99]


def summary_text(data: Mapping[str, Any], locations: Mapping[str, str]) -> str:
    lines = [
        f"Custom Labels Guard audit {data['run_id']} ({data['mode']} mode) finished in {data['duration_seconds']} s.",
        f"Buckets: {len(data['buckets'])}; objects checked: {sum(int(b['objects']) for b in data['buckets'])}.",
        "Conditions found: " + (", ".join(f"{k} {v}" for k, v in data["conditions_by_type"].items()) or "none") + ".",
        "New alerts: " + (", ".join(f"{k} {v}" for k, v in data["new_alerts_by_type"].items()) or "none") + ".",
        f"Report: {locations.get('html', '')} (data: {locations.get('json', '')})",
    ]
    lines += [f"Note: {note}" for note in data["notes"]]
    return "\n".join(lines)
