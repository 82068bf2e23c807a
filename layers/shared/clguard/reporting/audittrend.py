"""The audit page's trend: open conditions per type across the last runs, as inline SVG (one line
per type, told apart by colour, dash pattern and a label: no colour-only meaning) and as a table
with the numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from clguard.reporting.htmlparts import data_table, number_cell, text

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


def trend_section(history: Sequence[Mapping[str, Any]]) -> str:
    if not history:
        return "<p>No earlier runs recorded yet.</p>"
    types = sorted({t for run in history for t in run.get("open_by_type", {})})
    table = data_table(
        "trend",
        "Open conditions per type, per run (oldest first)",
        (("run", False), *((t, True) for t in types), ("total", True)),
        (
            [
                f'<th scope="row">{text(run.get("started_at") or run.get("run_id", ""))}</th>',
                *(number_cell(int(run.get("open_by_type", {}).get(t, 0))) for t in types),
                number_cell(sum(int(v) for v in run.get("open_by_type", {}).values())),
            ]
            for run in history
        ),
    )
    caption = f"<figcaption>Trend over the last {len(history)} runs.</figcaption>"
    return f'<figure id="trend-chart">{trend_svg(history)}{caption}</figure>{table}'
