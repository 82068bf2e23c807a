"""The audit page's style and script, and the Content-Security-Policy that allows exactly them (by
hash): nothing is loaded from anywhere, so even a value that escaped its escaping could not run.
The script only adds sorting and filtering; nothing in the page depends on it."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Final

from clguard.reporting.findings import Severity


def _sha256(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


# The colour of each severity's cell (a class per finding severity, reporting.findings.Severity).
SEVERITY_COLOURS: Final[Mapping[Severity, str]] = {Severity.HIGH: "#9b1c1c", Severity.MEDIUM: "#7a4a00"}

STYLE: Final = (
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
SCRIPT: Final = """
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
    f"default-src 'none'; style-src '{_sha256(STYLE)}'; script-src '{_sha256(SCRIPT)}'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
