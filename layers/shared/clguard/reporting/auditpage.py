"""The audit report as one self-contained HTML page, rendered on the server.

Every table is in the markup (it reads the same without JavaScript, printed, or in a mail
client's preview); the one inline script only adds sorting and filtering. Nothing is loaded
from anywhere: a Content-Security-Policy in the page allows only its own style and script, by
hash, so even a value that escaped its escaping could not run.

Every value that comes from outside is escaped for the context it lands in, by the building
blocks of ``reporting.htmlparts`` (``docs/architecture.md`` §2, "The audit report is rows people
act on"); the style, the script and the CSP are ``reporting.pagestyle``'s, the trend
``reporting.audittrend``'s. This module lays out the page: the summary, the rows by section and
type (the top TOP_N of each), the accounts, buckets, keys, failed trainings and notes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from clguard.reporting.audittrend import trend_section
from clguard.reporting.htmlparts import code_cell, data_table, key_cell, number_cell, script_json, text, text_cell
from clguard.reporting.pagestyle import CSP, SCRIPT, STYLE

TOP_N: Final = 50  # rows per group on the page; every row is in the exports

FINDING_WORDS: Final[Mapping[str, str]] = {
    "OBJECT_UNENCRYPTED": "Object not encrypted",
    "OBJECT_SSE_C": "Object encrypted with a customer-provided key (SSE-C)",
    "OBJECT_WRONG_ENCRYPTION": "Object encrypted, but not as required",
    "OBJECT_UNVERIFIABLE": "Object could not be checked",
    "KEY_UNUSABLE": "KMS key unusable",
    "KEY_ACCESS_MISSING": "Training principal lacks key access",
    "KEY_NOT_MANAGED": "Key access missing, key not opted in",
    "PRINCIPAL_NOT_ALLOWED": "Principal outside the guardrails",
    "KEY_POLICY_LIMIT": "Key policy would exceed its size limit",
    "MANIFEST_INVALID": "Manifest or dataset invalid",
    "TRAINING_FAILED": "Training failed for access",
    "EXCEPTIONS_INVALID": "Accepted-exceptions document invalid",
}


def words(finding_type: str) -> str:
    return FINDING_WORDS.get(finding_type, finding_type)


def _row_cells(row: Mapping[str, Any], *, show_type: bool) -> list[str]:
    severity = str(row.get("severity", ""))
    alias = row.get("kms_key_alias") if row.get("resource_type") == "kms-key" else ""
    cells = [
        key_cell(row.get("resource", ""), alias),
        text_cell(row.get("account", "")),
        text_cell(row.get("owner") or "—"),
    ]
    if show_type:
        cells.append(text_cell(words(str(row.get("finding_type", "")))))
    cells += [
        f'<td class="sev {text(severity)}">{text(severity)}</td>',
        text_cell(row.get("since", "")),
        text_cell(row.get("outcome", "")),
        text_cell(row.get("next_step", "")),
    ]
    return cells


_ROW_HEAD: Final = (("resource", False), ("account", False), ("owner", False))
_ROW_TAIL: Final = (("severity", False), ("since", False), ("outcome", False), ("what to do", False))


def _rows_table(table_id: str, caption: str, rows: Sequence[Mapping[str, Any]], *, show_type: bool) -> str:
    head = (*_ROW_HEAD, *((("finding", False),) if show_type else ()), *_ROW_TAIL)
    return data_table(table_id, caption, head, (_row_cells(r, show_type=show_type) for r in rows), css="rows")


def _shown(total: int, shown: int) -> str:
    if total == shown:
        return f"all {total:,}"
    return f"{shown:,} of {total:,} (all in the exports)"


# --- the page -----------------------------------------------------------------------------------------


def _group_totals(totals: Counter[str], label: str, table_id: str) -> str:
    head = ((label, False), ("open conditions", True))
    body = (
        [f'<th scope="row">{text(name)}</th>', number_cell(n)]
        for name, n in sorted(totals.items(), key=lambda i: (-i[1], i[0]))
    )
    return data_table(table_id, f"Open conditions by {label}", head, body)


def _buckets_table(buckets: Sequence[Mapping[str, Any]]) -> str:
    encryptions = sorted({e for b in buckets for e in b.get("by_encryption", {})})
    conditions = sorted({c for b in buckets for c in b.get("by_condition", {}) if c != "OK"})
    head = (
        ("bucket", False),
        ("objects", True),
        ("compliant", True),
        *((e, True) for e in encryptions),
        *((c, True) for c in conditions),
        ("gone", True),
    )
    rows = (
        [
            f'<th scope="row">{text(b.get("name", ""))}</th>',
            number_cell(int(b.get("objects", 0))),
            number_cell(int(b.get("compliant", 0))),
            *(number_cell(int(b.get("by_encryption", {}).get(e, 0))) for e in encryptions),
            *(number_cell(int(b.get("by_condition", {}).get(c, 0))) for c in conditions),
            number_cell(int(b.get("gone", 0))),
        ]
        for b in buckets
    )
    return data_table("buckets", "Objects per bucket, by encryption and by condition", head, rows)


def _accounts_table(accounts: Sequence[Mapping[str, Any]]) -> str:
    """The run per account (the own account first): its buckets, objects, compliant objects, the
    conditions found, and the keys in use."""
    head = (
        ("account", False),
        ("buckets", True),
        ("objects", True),
        ("compliant", True),
        ("conditions found", True),
        ("keys in use", True),
    )
    rows = (
        [
            f'<th scope="row">{text(a.get("account", ""))}</th>',
            number_cell(len(a.get("buckets", []))),
            number_cell(int(a.get("objects", 0))),
            number_cell(int(a.get("compliant", 0))),
            number_cell(sum(int(v) for c, v in a.get("by_condition", {}).items() if c != "OK")),
            number_cell(len(a.get("keys", []))),
        ]
        for a in accounts
    )
    return data_table("accounts", "The run per account", head, rows)


def _keys_table(keys: Sequence[Mapping[str, Any]]) -> str:
    rows: list[list[str]] = []
    for key in keys:
        for principal in key.get("principals", []):
            rows.append(
                [
                    key_cell(key.get("arn", ""), key.get("alias")),
                    text_cell(key.get("state", "")),
                    code_cell(principal.get("arn", "")),
                    text_cell(principal.get("how", "")),
                ]
            )
        for lacking in key.get("lacking", []):
            rows.append(
                [
                    key_cell(key.get("arn", ""), key.get("alias")),
                    text_cell(key.get("state", "")),
                    code_cell(lacking),
                    text_cell("LACKS ACCESS", "bad"),
                ]
            )
        if not key.get("principals") and not key.get("lacking"):
            rows.append(
                [
                    key_cell(key.get("arn", ""), key.get("alias")),
                    text_cell(key.get("state", "")),
                    text_cell("—"),
                    text_cell("—"),
                ]
            )
    head = (("key", False), ("state", False), ("principal", False), ("how", False))
    return data_table("keys", "KMS keys in use and who can use them for training", head, rows)


def _trainings_table(trainings: Sequence[Mapping[str, Any]]) -> str:
    head = (("project version", False), ("status message", False), ("diagnosis", False))
    rows = (
        [
            code_cell(t.get("arn", "")),
            text_cell(t.get("status_message", "")),
            text_cell(
                ("FIXED: " if t.get("fixed") else "OPEN: ") + str(t.get("diagnosis", "")),
                "ok" if t.get("fixed") else "bad",
            ),
        ]
        for t in trainings
    )
    return data_table("trainings", "Trainings that failed for access", head, rows)


class _Groups:
    """The rows split once: by section, open rows by finding type, and the counts by type, account,
    owner and bucket (one pass: a 100,000-row audit renders in well under a second)."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.sections: dict[str, list[Mapping[str, Any]]] = {"open": [], "fixed": [], "accepted": []}
        self.open_by_type: dict[str, list[Mapping[str, Any]]] = {}
        self.by_type: dict[str, Counter[str]] = {"open": Counter(), "fixed": Counter(), "accepted": Counter()}
        self.open_by: dict[str, Counter[str]] = {"account": Counter(), "owner": Counter(), "bucket": Counter()}
        for row in rows:
            section = str(row.get("section", "open"))
            finding_type = str(row.get("finding_type", ""))
            self.sections.setdefault(section, []).append(row)
            self.by_type.setdefault(section, Counter())[finding_type] += 1
            if section == "open":
                self.open_by_type.setdefault(finding_type, []).append(row)
                for name, counter in self.open_by.items():
                    counter[str(row.get(name) or "—")] += 1

    def count(self, section: str) -> int:
        return len(self.sections.get(section, ()))


def _row_sections(groups: _Groups) -> list[str]:
    """Open conditions (totals by account, owner and bucket; the top TOP_N rows of each type),
    changes of this run, accepted exceptions."""
    out: list[str] = []
    open_rows, fixed_rows, accepted_rows = (groups.sections[k] for k in ("open", "fixed", "accepted"))
    out.append('<h2 id="open">Open conditions</h2>')
    if not open_rows:
        out.append("<p>None: every object and key checked is compliant.</p>")
    else:
        for name, counter in groups.open_by.items():
            out.append(_group_totals(counter, name, f"open-by-{name}"))
        for finding_type, group in sorted(groups.open_by_type.items(), key=lambda i: (-len(i[1]), i[0])):
            shown = group[:TOP_N]
            out.append(f'<h3 id="open-{text(finding_type)}">{text(words(finding_type))} ({len(group):,})</h3>')
            out.append(
                _rows_table(
                    f"rows-open-{text(finding_type)}",
                    f"{words(finding_type)}: {_shown(len(group), len(shown))}",
                    shown,
                    show_type=False,
                )
            )
    out.append('<h2 id="fixed">Fixed this run</h2>')
    if fixed_rows:
        out.append(
            _rows_table(
                "rows-fixed",
                f"Fixed this run: {_shown(len(fixed_rows), min(len(fixed_rows), TOP_N))}",
                fixed_rows[:TOP_N],
                show_type=True,
            )
        )
    else:
        out.append("<p>Nothing was changed by this run.</p>")
    out.append('<h2 id="accepted">Accepted exceptions</h2>')
    if accepted_rows:
        head = (
            ("resource", False),
            ("finding", False),
            ("exception", False),
            ("reason", False),
            ("owner", False),
            ("expires", False),
        )
        body = (
            [
                code_cell(r.get("resource", "")),
                text_cell(words(str(r.get("finding_type", "")))),
                code_cell(r.get("exception_id", "")),
                text_cell(r.get("exception_reason", "")),
                text_cell(r.get("owner") or "—"),
                text_cell(r.get("exception_expires", "")),
            ]
            for r in accepted_rows[:TOP_N]
        )
        caption = f"Accepted exceptions: {_shown(len(accepted_rows), min(len(accepted_rows), TOP_N))}"
        out.append(data_table("rows-accepted", caption, head, body, css="rows"))
    else:
        out.append("<p>No finding of this run matched an accepted exception.</p>")
    return out


def render(data: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]]) -> str:
    """The page. ``rows``: every row of the run (the page shows the top TOP_N of each group, in
    the order given: most severe first); ``history``: the trend, oldest run first."""
    run_id = data.get("run_id", "")
    exports = data.get("exports", {})
    groups = _Groups(rows)
    out: list[str] = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{text(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>Custom Labels Guard audit {text(run_id)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body><main>",
        "<h1>Custom Labels Guard audit</h1>",
        f'<p class="meta" id="meta">Run <strong>{text(run_id)}</strong> started {text(data.get("started_at", ""))} '
        f"({text(data.get('mode', ''))} mode, {text(data.get('requirement', ''))}); "
        f"{int(data.get('objects_listed', 0)):,} objects listed in {text(data.get('duration_seconds', ''))} s; "
        f"account {text(data.get('account', ''))}, {text(data.get('region', ''))}.</p>",
    ]
    if exports:
        links = ", ".join(
            f'<a href="{text(href)}">{text(label)}</a>'
            for label, href in (
                ("CSV", exports.get("csv")),
                ("JSON Lines", exports.get("jsonl")),
                ("JSON", exports.get("json")),
            )
            if href
        )
        schema = "<code>audit-row.schema.json</code>"
        out.append(f'<p id="exports">Every row, in full: {links} (fields: the JSON Schema {schema}).</p>')
    out.append('<h2 id="summary">Summary</h2><ul class="totals" id="totals">')
    for label, value, key in (
        ("open conditions", groups.count("open"), "open"),
        ("fixed this run", groups.count("fixed"), "fixed"),
        ("accepted exceptions", groups.count("accepted"), "accepted"),
        ("objects checked", sum(int(b.get("objects", 0)) for b in data.get("buckets", [])), "objects"),
    ):
        out.append(f'<li data-total="{key}"><strong>{value:,}</strong>{text(label)}</li>')
    out.append("</ul>")
    if data.get("rows_dropped"):
        out.append(
            f"<p>{int(data['rows_dropped']):,} more rows were beyond the report's bound and are counted only.</p>"
        )
    by_type, fixed_by_type, accepted_by_type = (groups.by_type[k] for k in ("open", "fixed", "accepted"))
    all_types = sorted(set(by_type) | set(fixed_by_type) | set(accepted_by_type))
    out.append(
        data_table(
            "by-type",
            "Conditions by type",
            (("finding", False), ("type", False), ("open", True), ("fixed this run", True), ("accepted", True)),
            (
                [
                    f'<th scope="row">{text(words(t))}</th>',
                    code_cell(t),
                    number_cell(by_type[t]),
                    number_cell(fixed_by_type[t]),
                    number_cell(accepted_by_type[t]),
                ]
                for t in all_types
            ),
        )
    )
    out.append('<h2 id="trend-heading">Trend</h2>')
    out.append(trend_section(history))
    out += _row_sections(groups)
    if data.get("accounts"):
        out.append('<h2 id="accounts-heading">Accounts</h2>')
        out.append(_accounts_table(data["accounts"]))
    out.append('<h2 id="buckets-heading">Buckets</h2>')
    out.append(_buckets_table(data.get("buckets", [])))
    out.append('<h2 id="keys-heading">Keys in use</h2>')
    out.append(_keys_table(data.get("keys", [])))
    out.append('<h2 id="trainings-heading">Failed trainings</h2>')
    out.append(_trainings_table(data.get("trainings", [])))
    out.append('<h2 id="notes-heading">Notes</h2>')
    notes = data.get("notes", [])
    out.append(
        '<ul id="notes">' + "".join(f"<li>{text(n)}</li>" for n in notes) + "</ul>"
        if notes
        else '<p id="notes">No notes: every bucket was covered as configured.</p>'
    )
    summary = {
        "schema": data.get("schema", ""),
        "run_id": run_id,
        "totals": {k: groups.count(k) for k in ("open", "fixed", "accepted")},
        "open_by_type": dict(sorted(by_type.items())),
    }
    out.append(f'<script type="application/json" id="report-data">{script_json(summary)}</script>')
    out.append(f"</main><script>{SCRIPT}</script></body></html>\n")
    return "".join(out)
