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
from typing import Any

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

OUTCOME_COLOURS = {
    "PASS": "#2e7d32",
    "FAIL": "#c62828",
    "INCONCLUSIVE": "#b26a00",
    "ERROR": "#6a1b9a",
    "NEUTRAL": "#1f3a5f",
}


@dataclass(frozen=True)
class ChartRow:
    """One slice: point value and interval as fractions (``None`` where unknown)."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    outcome: str


def interval_chart_svg(
    rows: Sequence[ChartRow], threshold: float, *, draw_threshold: bool = True
) -> bytes:
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
        fig.subplots_adjust(left=0.3, right=0.97, bottom=0.3 / height, top=1 - 0.08 / height)
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
        if draw_threshold:
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


def interval_chart_data_uri(
    rows: Sequence[ChartRow], threshold: float, *, draw_threshold: bool = True
) -> str:
    """:func:`interval_chart_svg` as a base64 ``data:image/svg+xml`` URI for an ``<img>``."""
    svg = interval_chart_svg(rows, threshold, draw_threshold=draw_threshold)
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


# --------------------------------------------------------------------------- more charts

_BLUE = "#1f3a5f"
_GREY = "#555555"


def _rc(**extra: object) -> Any:
    rc: dict[str, object] = {
        "svg.fonttype": "path",
        "svg.hashsalt": "auditkit-report",
        "font.family": ["DejaVu Sans", "Noto Sans CJK SC"],
        "font.size": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    rc.update(extra)
    return rc


def _svg(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def forest_chart_data_uris(
    rows: Sequence[ChartRow],
    threshold: float | None,
    *,
    per_chart: int = 28,
) -> list[str]:
    """Interval (forest) plots of ``rows``, split into charts of at most ``per_chart`` rows so
    that no chart is taller than a page. One dashed threshold line when ``threshold`` is given.
    """
    out = []
    limit = threshold if threshold is not None else 0.0
    for start in range(0, len(rows), per_chart):
        chunk = rows[start : start + per_chart]
        out.append(interval_chart_data_uri(chunk, limit, draw_threshold=threshold is not None))
    return out


def curves_data_uri(
    roc: tuple[Any, Any] | None,
    pr: tuple[Any, Any] | None,
    operating: tuple[float, float, float] | None,
    labels: dict[str, str],
) -> str:
    """ROC (overkill rate vs detection rate) and precision-recall curves, side by side, with the
    operating point ``(overkill, detection, precision)`` marked. Without curves (no scores in
    the run), only the operating point is drawn in ROC space."""
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(6.6, 2.7))
        FigureCanvasSVG(fig)
        ax1, ax2 = fig.subplots(1, 2)
        fig.subplots_adjust(left=0.09, right=0.98, bottom=0.17, top=0.9, wspace=0.3)
        if roc is not None:
            ax1.plot(roc[0], roc[1], color=_BLUE, linewidth=1.4, drawstyle="steps-post")
        ax1.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=0.6, linestyle=":")
        ax1.set_xlabel(labels["roc_x"])
        ax1.set_ylabel(labels["roc_y"])
        ax1.set_title(labels["roc_title"], fontsize=8.5)
        if pr is not None:
            ax2.plot(pr[0], pr[1], color=_BLUE, linewidth=1.4, drawstyle="steps-post")
        ax2.set_xlabel(labels["pr_x"])
        ax2.set_ylabel(labels["pr_y"])
        ax2.set_title(labels["pr_title"], fontsize=8.5)
        if operating is not None:
            fpr, tpr, precision = operating
            ax1.plot([fpr], [tpr], "o", color="#c62828", markersize=5, label=labels["operating"])
            ax2.plot([tpr], [precision], "o", color="#c62828", markersize=5)
            ax1.legend(loc="lower right", frameon=False, fontsize=7)
        for ax in (ax1, ax2):
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(color="#e5e5e5", linewidth=0.5)
            ax.set_axisbelow(True)
            ax.tick_params(length=2)
        return _svg(fig)


def histogram_data_uri(
    values: Any, marks: Sequence[tuple[str, float]], xlabel: str, ylabel: str
) -> str:
    """A histogram of ``values`` with a vertical line per ``(label, value)`` mark."""
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(6.2, 2.2))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.09, right=0.98, bottom=0.2, top=0.95)
        ax.hist(list(values), bins=40, color="#7f99bf", edgecolor="white", linewidth=0.3)
        ymax = ax.get_ylim()[1]
        for i, (label, value) in enumerate(marks):
            ax.axvline(value, color=_GREY, linestyle="--", linewidth=0.8)
            ax.text(value, ymax * (0.92 - 0.1 * i), f" {label}", fontsize=7, color=_GREY)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.tick_params(length=2)
        return _svg(fig)


def power_data_uri(t_s: Any, watts: Any, xlabel: str, ylabel: str) -> str:
    """Power over time (a line)."""
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(6.2, 2.0))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.09, right=0.98, bottom=0.22, top=0.95)
        ax.plot(list(t_s), list(watts), color=_BLUE, linewidth=1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(color="#e5e5e5", linewidth=0.5)
        ax.tick_params(length=2)
        return _svg(fig)


def metric_bars_data_uri(
    categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], xlabel: str
) -> str:
    """Horizontal bars of metrics on [0, 1]: one group per category (a class, or one metric),
    one bar per series (e.g. AP@[.50:.95] and AP@.50), a missing value left empty."""
    with matplotlib.rc_context(_rc()):
        height = 0.45 + 0.28 * len(categories) * max(1, len(series))
        fig = Figure(figsize=(6.2, min(height, 7.5)))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.22, right=0.97, bottom=0.5 / height + 0.05, top=0.97)
        width = 0.8 / max(1, len(series))
        colours = [_BLUE, "#7f99bf", "#b0bec5"]
        for j, (label, values) in enumerate(series):
            ys = [i + (j - (len(series) - 1) / 2) * width for i in range(len(categories))]
            xs = [0.0 if v is None else float(v) for v in values]
            ax.barh(ys, xs, height=width * 0.9, color=colours[j % 3], label=label)
            for y, v in zip(ys, values, strict=True):
                if v is not None:
                    ax.text(float(v) + 0.01, y, f"{float(v):.2f}", va="center", fontsize=6.5)
        ax.set_yticks(range(len(categories)), list(categories))
        ax.invert_yaxis()
        ax.set_xlim(0, 1.08)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.5)
        ax.set_axisbelow(True)
        ax.tick_params(length=2)
        if len(series) > 1:
            ax.legend(loc="lower right", frameon=False, fontsize=7)
        return _svg(fig)
