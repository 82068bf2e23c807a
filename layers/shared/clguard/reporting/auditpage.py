"""The audit report as one self-contained HTML page, rendered on the server.

Every table is in the markup (it reads the same without JavaScript, printed, or in a mail
client's preview); the one inline script only adds sorting and filtering. Nothing is loaded
from anywhere: a Content-Security-Policy in the page allows only its own style and script, by
hash, so even a value that escaped its escaping could not run.

Every value that comes from outside (object keys, ARNs, principals, details, notes, owners,
exception reasons) is escaped for the context it lands in (``docs/architecture.md`` §2, "The
audit report is rows people act on"):

- element text and attribute values: ``text()`` (HTML-escaped, attributes always double-quoted;
  control, bidirectional and zero-width characters shown as visible ``\\u202e`` escapes, so a key
  cannot reorder or hide what is displayed; very long values cut with the number of characters left
  out — the exports carry them whole);
- inline JSON: ``script_json()`` (``<``, ``>``, ``&`` and the line separators as ``\\uXXXX``: no
  ``</script>``, ``<!--`` or ``<script`` can appear in the script element's text);
- SVG: the same ``text()``; numbers are formatted by us.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from clguard.reporting.findings import Severity

TOP_N: Final = 50  # rows per group on the page; every row is in the exports
TEXT_MAX: Final = 400  # characters of one value shown on the page

# C0/C1 controls, bidirectional controls and isolates, zero-width and invisible formatting
# characters, line/paragraph separators, the BOM: shown as \uXXXX instead of acting.
_INVISIBLE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb]"
)


def visible(value: object) -> str:
    """The value as a person should see it: invisible and direction-changing characters as
    ``\\uXXXX``, cut to TEXT_MAX characters (with how many were left out). Not yet HTML-escaped."""
    raw = "" if value is None else str(value)
    shown = _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", raw[:TEXT_MAX])
    if len(raw) > TEXT_MAX:
        shown += f"… ({len(raw) - TEXT_MAX:,} more characters)"
    return shown


def text(value: object) -> str:
    """Element text or a double-quoted attribute value."""
    return html.escape(visible(value), quote=True)


def script_json(value: object) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    raw = json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


# The colour of each severity's cell (a class per finding severity, reporting.findings.Severity).
SEVERITY_COLOURS: Final[Mapping[Severity, str]] = {Severity.HIGH: "#9b1c1c", Severity.MEDIUM: "#7a4a00"}

_STYLE: Final = (
    """
:root{color-scheme:light}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:1rem;max-width:1400px;
color:#1a1a1a;background:#fff;overflow-wrap:break-word}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}h2{font-size:1.25rem;margin:1.6rem 0 .5rem;border-bottom:2px solid #444}
h3{font-size:1.05rem;margin:1.2rem 0 .4rem}
a{color:#0645ad}
.wrap{overflow-x:auto;max-width:100%;margin:0 0 1rem;border:1px solid #bbb}
.wrap:focus{outline:3px solid #0645ad}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:600;padding:.3rem .5rem;caption-side:top}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
td{min-width:5em}td:has(code){min-width:12em}
thead th{background:#eee}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;overflow-wrap:normal}
code{font:13px/1.3 ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.sev{font-weight:700}
"""
    + "".join(f".{severity}{{color:{colour}}}" for severity, colour in SEVERITY_COLOURS.items())
    + """
.bad{background:#fde8e8}.ok{background:#e6f4ea}
.meta{margin:.2rem 0}
.totals{display:flex;flex-wrap:wrap;gap:.6rem;padding:0;list-style:none}
.totals li{border:1px solid #888;padding:.4rem .7rem;min-width:8rem}
.totals strong{display:block;font-size:1.4rem}
figure{margin:0 0 1rem}
svg{max-width:100%;height:auto}
.filter{margin:.4rem 0}
th button{font:inherit;font-weight:700;background:none;border:0;padding:0;cursor:pointer;color:inherit;text-align:left}
@media (max-width:600px){body{padding:.5rem;font-size:14px}th,td{padding:.2rem .3rem}}
@media print{.filter,th button::after{display:none}.wrap{overflow:visible;border:0}a{color:#000}
h2{break-after:avoid}tr{break-inside:avoid}body{max-width:none}}
"""
)

# Sorting (a button in each header) and filtering (one box per table), added only when scripts
# run; nothing in the page depends on them.
_SCRIPT: Final = """
(function () {
  "use strict";
  function cellValue(row, index) {
    var cell = row.cells[index];
    return cell ? (cell.getAttribute("data-sort") || cell.textContent) : "";
  }
  document.querySelectorAll("table.rows").forEach(function (table) {
    var body = table.tBodies[0];
    if (!body) { return; }
    table.querySelectorAll("thead th").forEach(function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = th.textContent;
      th.textContent = "";
      th.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.classList.contains("n");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, index), y = cellValue(b, index);
          var order = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
    var label = document.createElement("label");
    label.className = "filter";
    label.textContent = "Filter rows: ";
    var input = document.createElement("input");
    input.type = "search";
    label.appendChild(input);
    table.parentNode.parentNode.insertBefore(label, table.parentNode);
    input.addEventListener("input", function () {
      var needle = input.value.toLowerCase();
      Array.prototype.forEach.call(body.rows, function (row) {
        row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) < 0;
      });
    });
  });
})();
"""

CSP: Final = (
    f"default-src 'none'; style-src '{_sha256(_STYLE)}'; script-src '{_sha256(_SCRIPT)}'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

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


# --- building blocks ------------------------------------------------------------------------------


def _table(
    table_id: str,
    caption: str,
    head: Sequence[tuple[str, bool]],
    rows: Iterable[Sequence[str]],
    *,
    css: str = "",
) -> str:
    """A table in a scrollable, focusable region. ``head``: (label, numeric); ``rows``: cells
    already rendered (``<td>`` or ``<th scope="row">``)."""
    th = "".join(f'<th scope="col"{' class="n"' if numeric else ""}>{text(label)}</th>' for label, numeric in head)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    classes = f' class="{css}"' if css else ""
    return (
        f'<div class="wrap" role="region" aria-labelledby="{table_id}-caption" tabindex="0">'
        f'<table id="{table_id}"{classes}><caption id="{table_id}-caption">{text(caption)}</caption>'
        f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _td(value: object, css: str = "") -> str:
    return f'<td class="{css}">{text(value)}</td>' if css else f"<td>{text(value)}</td>"


def _num(value: int) -> str:
    return f'<td class="n" data-sort="{value}">{value:,}</td>'


def _code(value: object) -> str:
    return f"<td><code>{text(value)}</code></td>"


def _key_cell(arn: object, alias: object) -> str:
    """A key's ARN with its alias beside it (when it has one), both escaped."""
    if not alias:
        return _code(arn)
    return f'<td><code>{text(arn)}</code> <span class="alias">({text(alias)})</span></td>'


def _row_cells(row: Mapping[str, Any], *, show_type: bool) -> list[str]:
    severity = str(row.get("severity", ""))
    alias = row.get("kms_key_alias") if row.get("resource_type") == "kms-key" else ""
    cells = [
        _key_cell(row.get("resource", ""), alias),
        _td(row.get("account", "")),
        _td(row.get("owner") or "—"),
    ]
    if show_type:
        cells.append(_td(words(str(row.get("finding_type", "")))))
    cells += [
        f'<td class="sev {text(severity)}">{text(severity)}</td>',
        _td(row.get("since", "")),
        _td(row.get("outcome", "")),
        _td(row.get("next_step", "")),
    ]
    return cells


_ROW_HEAD: Final = (("resource", False), ("account", False), ("owner", False))
_ROW_TAIL: Final = (("severity", False), ("since", False), ("outcome", False), ("what to do", False))


def _rows_table(table_id: str, caption: str, rows: Sequence[Mapping[str, Any]], *, show_type: bool) -> str:
    head = (*_ROW_HEAD, *((("finding", False),) if show_type else ()), *_ROW_TAIL)
    return _table(table_id, caption, head, (_row_cells(r, show_type=show_type) for r in rows), css="rows")


def _shown(total: int, shown: int) -> str:
    if total == shown:
        return f"all {total:,}"
    return f"{shown:,} of {total:,} (all in the exports)"


# --- the trend ------------------------------------------------------------------------------------

_PALETTE: Final = ("#1b5e20", "#0d47a1", "#b71c1c", "#4a148c", "#e65100", "#006064", "#3e2723", "#263238")
_DASHES: Final = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4", "3 6")


def trend_svg(history: Sequence[Mapping[str, Any]]) -> str:
    """Open conditions per type across the last runs: one line per type (colour and dash pattern
    and a label at its end: no colour-only meaning)."""
    runs = list(history)
    types = sorted({t for run in runs for t in run.get("open_by_type", {})})
    width, height, left, right, top, bottom = 720, 260, 48, 210, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([int(v) for run in runs for v in run.get("open_by_type", {}).values()] + [1])
    step = plot_w / max(len(runs) - 1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="trend-title trend-desc" width="{width}" height="{height}">',
        '<title id="trend-title">Open conditions per type, last runs</title>',
        f'<desc id="trend-desc">{len(runs)} runs; highest count {peak:,}. The table below has the numbers.</desc>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
        f'<text x="{left - 6}" y="{top + 5}" text-anchor="end" font-size="12" fill="#222">{peak:,}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="12" fill="#222">0</text>',
    ]
    if runs:
        parts.append(
            f'<text x="{left}" y="{height - 8}" font-size="12" fill="#222">{text(runs[0].get("started_at", ""))}</text>'
        )
        parts.append(
            f'<text x="{left + plot_w}" y="{height - 8}" font-size="12" fill="#222" text-anchor="end">'
            f"{text(runs[-1].get('started_at', ''))}</text>"
        )
    for index, finding_type in enumerate(types):
        colour, dash = _PALETTE[index % len(_PALETTE)], _DASHES[index % len(_DASHES)]
        points = [
            (left + i * step, top + plot_h - plot_h * int(run.get("open_by_type", {}).get(finding_type, 0)) / peak)
            for i, run in enumerate(runs)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5"{dashing} points="{path}"/>')
        for x, y in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        last_x, last_y = points[-1]
        parts.append(
            f'<text x="{last_x + 8:.1f}" y="{last_y + 4:.1f}" font-size="12" fill="{colour}">'
            f"{text(finding_type)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _trend_section(history: Sequence[Mapping[str, Any]]) -> str:
    if not history:
        return "<p>No earlier runs recorded yet.</p>"
    types = sorted({t for run in history for t in run.get("open_by_type", {})})
    table = _table(
        "trend",
        "Open conditions per type, per run (oldest first)",
        (("run", False), *((t, True) for t in types), ("total", True)),
        (
            [
                f'<th scope="row">{text(run.get("started_at") or run.get("run_id", ""))}</th>',
                *(_num(int(run.get("open_by_type", {}).get(t, 0))) for t in types),
                _num(sum(int(v) for v in run.get("open_by_type", {}).values())),
            ]
            for run in history
        ),
    )
    caption = f"<figcaption>Trend over the last {len(history)} runs.</figcaption>"
    return f'<figure id="trend-chart">{trend_svg(history)}{caption}</figure>{table}'


# --- the page -----------------------------------------------------------------------------------------


def _group_totals(totals: Counter[str], label: str, table_id: str) -> str:
    head = ((label, False), ("open conditions", True))
    body = (
        [f'<th scope="row">{text(name)}</th>', _num(n)]
        for name, n in sorted(totals.items(), key=lambda i: (-i[1], i[0]))
    )
    return _table(table_id, f"Open conditions by {label}", head, body)


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
            _num(int(b.get("objects", 0))),
            _num(int(b.get("compliant", 0))),
            *(_num(int(b.get("by_encryption", {}).get(e, 0))) for e in encryptions),
            *(_num(int(b.get("by_condition", {}).get(c, 0))) for c in conditions),
            _num(int(b.get("gone", 0))),
        ]
        for b in buckets
    )
    return _table("buckets", "Objects per bucket, by encryption and by condition", head, rows)


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
            _num(len(a.get("buckets", []))),
            _num(int(a.get("objects", 0))),
            _num(int(a.get("compliant", 0))),
            _num(sum(int(v) for c, v in a.get("by_condition", {}).items() if c != "OK")),
            _num(len(a.get("keys", []))),
        ]
        for a in accounts
    )
    return _table("accounts", "The run per account", head, rows)


def _keys_table(keys: Sequence[Mapping[str, Any]]) -> str:
    rows: list[list[str]] = []
    for key in keys:
        for principal in key.get("principals", []):
            rows.append(
                [
                    _key_cell(key.get("arn", ""), key.get("alias")),
                    _td(key.get("state", "")),
                    _code(principal.get("arn", "")),
                    _td(principal.get("how", "")),
                ]
            )
        for lacking in key.get("lacking", []):
            rows.append(
                [
                    _key_cell(key.get("arn", ""), key.get("alias")),
                    _td(key.get("state", "")),
                    _code(lacking),
                    _td("LACKS ACCESS", "bad"),
                ]
            )
        if not key.get("principals") and not key.get("lacking"):
            rows.append(
                [_key_cell(key.get("arn", ""), key.get("alias")), _td(key.get("state", "")), _td("—"), _td("—")]
            )
    head = (("key", False), ("state", False), ("principal", False), ("how", False))
    return _table("keys", "KMS keys in use and who can use them for training", head, rows)


def _trainings_table(trainings: Sequence[Mapping[str, Any]]) -> str:
    head = (("project version", False), ("status message", False), ("diagnosis", False))
    rows = (
        [
            _code(t.get("arn", "")),
            _td(t.get("status_message", "")),
            _td(
                ("FIXED: " if t.get("fixed") else "OPEN: ") + str(t.get("diagnosis", "")),
                "ok" if t.get("fixed") else "bad",
            ),
        ]
        for t in trainings
    )
    return _table("trainings", "Trainings that failed for access", head, rows)


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
                _code(r.get("resource", "")),
                _td(words(str(r.get("finding_type", "")))),
                _code(r.get("exception_id", "")),
                _td(r.get("exception_reason", "")),
                _td(r.get("owner") or "—"),
                _td(r.get("exception_expires", "")),
            ]
            for r in accepted_rows[:TOP_N]
        )
        caption = f"Accepted exceptions: {_shown(len(accepted_rows), min(len(accepted_rows), TOP_N))}"
        out.append(_table("rows-accepted", caption, head, body, css="rows"))
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
        f"<style>{_STYLE}</style>",
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
        _table(
            "by-type",
            "Conditions by type",
            (("finding", False), ("type", False), ("open", True), ("fixed this run", True), ("accepted", True)),
            (
                [
                    f'<th scope="row">{text(words(t))}</th>',
                    _code(t),
                    _num(by_type[t]),
                    _num(fixed_by_type[t]),
                    _num(accepted_by_type[t]),
                ]
                for t in all_types
            ),
        )
    )
    out.append('<h2 id="trend-heading">Trend</h2>')
    out.append(_trend_section(history))
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
    out.append(f"</main><script>{_SCRIPT}</script></body></html>\n")
    return "".join(out)
