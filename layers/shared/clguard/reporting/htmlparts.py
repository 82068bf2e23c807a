"""The audit page's HTML, safe by construction: every value that comes from outside (object keys,
ARNs, principals, details, notes, owners, exception reasons) is escaped for the context it lands in
(``docs/architecture.md`` §2, "The audit report is rows people act on"):

- element text and attribute values: ``text()`` (HTML-escaped, attributes always double-quoted;
  control, bidirectional and zero-width characters shown as visible ``\\u202e`` escapes, so a key
  cannot reorder or hide what is displayed; very long values cut with the number of characters left
  out — the exports carry them whole);
- inline JSON: ``script_json()`` (``<``, ``>``, ``&`` and the line separators as ``\\uXXXX``: no
  ``</script>``, ``<!--`` or ``<script`` can appear in the script element's text);
- SVG: the same ``text()``; numbers are formatted by us.

And the page's building blocks, which escape every value they are given: a table in a scrollable,
focusable region, and its cells.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Final

from clguard.reporting.rendering import reveal

TEXT_MAX: Final = 400  # characters of one value shown on the page


def visible(value: object) -> str:
    """The value as a person should see it: invisible and direction-changing characters as
    ``\\uXXXX``, cut to TEXT_MAX characters (with how many were left out). Not yet HTML-escaped."""
    raw = "" if value is None else str(value)
    shown = reveal(raw[:TEXT_MAX])
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


# --- building blocks ------------------------------------------------------------------------------


def data_table(
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


def text_cell(value: object, css: str = "") -> str:
    return f'<td class="{css}">{text(value)}</td>' if css else f"<td>{text(value)}</td>"


def number_cell(value: int) -> str:
    return f'<td class="n" data-sort="{value}">{value:,}</td>'


def code_cell(value: object) -> str:
    return f"<td><code>{text(value)}</code></td>"


def key_cell(arn: object, alias: object) -> str:
    """A key's ARN with its alias beside it (when it has one), both escaped."""
    if not alias:
        return code_cell(arn)
    return f'<td><code>{text(arn)}</code> <span class="alias">({text(alias)})</span></td>'
