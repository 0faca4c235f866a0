"""Deterministic matplotlib charts for the audit report, returned as SVG ``data:`` URIs.

The SVG text is drawn as paths (``svg.fonttype = "path"``), so labels taken from the data cannot
become markup, and the PDF does not depend on a font for them. Ids come from a fixed hash salt
and the SVG carries no date, so the same numbers give the same bytes.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

OUTCOME_COLOURS = {
    "PASS": "#2e7d32",
    "FAIL": "#c62828",
    "INCONCLUSIVE": "#b26a00",
    "ERROR": "#6a1b9a",
}


@dataclass(frozen=True)
class ChartRow:
    """One slice: point value and interval as fractions (``None`` where unknown)."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    outcome: str


def interval_chart_svg(rows: Sequence[ChartRow], threshold: float) -> bytes:
    """A horizontal interval plot in percent: one line per slice, dashed threshold line."""
    with matplotlib.rc_context(
        {
            "svg.fonttype": "path",  # outlines: no font dependency, data cannot become markup
            "svg.hashsalt": "auditkit-report",  # deterministic ids
            "font.family": ["DejaVu Sans", "Noto Sans CJK SC"],  # a list: per-glyph fallback
            "font.size": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        height = 0.45 + 0.28 * max(len(rows), 1)
        fig = Figure(figsize=(6.2, height))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.16, right=0.97, bottom=0.3 / height, top=1 - 0.08 / height)
        xmax = threshold
        for y, row in enumerate(reversed(rows)):
            colour = OUTCOME_COLOURS.get(row.outcome, "#555555")
            low = row.low if row.low is not None else row.value
            high = row.high if row.high is not None else row.value
            if low is not None and high is not None:
                ax.plot([low * 100, high * 100], [y, y], color=colour, linewidth=2.2)
                xmax = max(xmax, high)
            if row.value is not None:
                ax.plot([row.value * 100], [y], "o", color=colour, markersize=5)
                xmax = max(xmax, row.value)
        ax.axvline(threshold * 100, color="#333333", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(rows)), [r.label for r in reversed(rows)])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        upper = xmax * 100 * 1.08
        ax.set_xlim(0, _nice(upper))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g} %"))
        ax.tick_params(axis="both", length=2)
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def interval_chart_data_uri(rows: Sequence[ChartRow], threshold: float) -> str:
    """:func:`interval_chart_svg` as a base64 ``data:image/svg+xml`` URI for an ``<img>``."""
    svg = interval_chart_svg(rows, threshold)
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def _nice(value: float) -> float:
    """Round an axis limit up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover
