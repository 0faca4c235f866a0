"""The deployment page's charts as inline SVG, drawn as text (pure; no JavaScript).

The report's charts are matplotlib SVG in ``data:`` URIs (:mod:`auditkit.report.charts`); a
page cannot use those — the server's Content-Security-Policy (``default-src 'self'``) refuses
``data:`` images — and matplotlib would cost more than the page's whole time budget. So these
are written directly: presentation attributes only (no ``style``), every text escaped here
(:func:`markupsafe.escape`), deterministic, the same numbers giving the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import escape

#: verdict and outcome colours, those of the report (auditkit.report.charts)
COLOURS = {
    "ACCEPT": "#2e7d32",
    "CONDITIONAL": "#b26a00",
    "HOLD": "#6a1b9a",
    "REJECT": "#c62828",
    "PASS": "#2e7d32",
    "FAIL": "#c62828",
    "INCONCLUSIVE": "#b26a00",
    "ERROR": "#6a1b9a",
}
_GREY = "#555555"
_GRID = "#dddddd"
_FLAG = "#c62828"
_FONT = 'font-family="DejaVu Sans, Noto Sans CJK SC, sans-serif"'


def _n(x: float) -> str:
    """A coordinate, rounded so the bytes do not depend on float noise."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class TimelineMark:
    """One audit on the time axis: its day, verdict (colour), whether it is flagged as a
    regression, the link to it and the words of its tooltip."""

    day: date
    verdict: str
    flagged: bool
    href: str
    label: str


def timeline(marks: Sequence[TimelineMark], *, title: str, flag_word: str) -> str:
    """Audits as dots on a time line (first to last audit), coloured by verdict; a flagged
    regression ringed in red with ``flag_word`` above it; the first and last days below."""
    width, height, left, right, axis = 760, 96, 40, 40, 52
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" {_FONT} '
        f'font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{axis}" x2="{width - right}" y2="{axis}" stroke="{_GREY}" '
        'stroke-width="1"/>',
    ]
    if marks:
        first = min(m.day for m in marks)
        last = max(m.day for m in marks)
        span = max((last - first).days, 1)

        def x_of(day: date) -> float:
            if first == last:
                return (left + width - right) / 2
            return left + (width - left - right) * (day - first).days / span

        for m in marks:
            x = x_of(m.day)
            colour = COLOURS.get(m.verdict, _GREY)
            parts.append(f'<a href="{escape(m.href)}">')
            parts.append(f"<title>{escape(m.label)}</title>")
            if m.flagged:
                parts.append(
                    f'<circle cx="{_n(x)}" cy="{axis}" r="10" fill="none" stroke="{_FLAG}" '
                    'stroke-width="2"/>'
                )
                parts.append(
                    f'<text x="{_n(x)}" y="{axis - 16}" text-anchor="middle" fill="{_FLAG}" '
                    f'font-weight="bold">{escape(flag_word)}</text>'
                )
            parts.append(f'<circle cx="{_n(x)}" cy="{axis}" r="6" fill="{colour}"/>')
            parts.append("</a>")
        parts.append(
            f'<text x="{left}" y="{axis + 28}" fill="{_GREY}">{escape(first.isoformat())}</text>'
        )
        if last != first:
            parts.append(
                f'<text x="{width - right}" y="{axis + 28}" text-anchor="end" '
                f'fill="{_GREY}">{escape(last.isoformat())}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class IntervalMark:
    """One audit's figure of a metric: value and interval (None where unknown), outcome
    (colour), the label under it and the words of its tooltip."""

    value: float | None
    low: float | None
    high: float | None
    outcome: str
    label: str
    tip: str


def nice_top(value: float) -> float:
    """An axis top: ``value`` rounded up to 1, 2, 2.5 or 5 times a power of ten (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-12):
            return float(step * power)
    return float(10 * power)  # pragma: no cover


def intervals(
    marks: Sequence[IntervalMark],
    *,
    threshold: float | None,
    tick: Callable[[float], str],
    title: str,
    max_labels: int = 12,
) -> str:
    """A metric across audits: one column per audit (oldest left), a dot at the value and a
    vertical line over the interval, coloured by outcome; a dashed line at ``threshold``.
    ``tick`` words an axis value (the report's formatter); at most ``max_labels`` labels."""
    width, height, left, right, top, bottom = 760, 220, 70, 16, 12, 42
    inner_w, inner_h = width - left - right, height - top - bottom
    values = [v for m in marks for v in (m.value, m.low, m.high) if v is not None]
    if threshold is not None:
        values.append(threshold)
    ymax = nice_top(max(values, default=0.0) * 1.05)
    ymin = min(0.0, min(values, default=0.0))

    def y_of(v: float) -> float:
        return top + inner_h * (1 - (v - ymin) / (ymax - ymin))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" {_FONT} '
        f'font-size="11">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        v = ymin + (ymax - ymin) * i / 4
        y = y_of(v)
        parts.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{width - right}" y2="{_n(y)}" '
            f'stroke="{_GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{_GREY}">'
            f"{escape(tick(v))}</text>"
        )
    if threshold is not None:
        y = y_of(threshold)
        parts.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{width - right}" y2="{_n(y)}" stroke="#333333" '
            'stroke-width="1" stroke-dasharray="5 3"/>'
        )
    step = inner_w / max(len(marks), 1)
    every = max(1, math.ceil(len(marks) / max_labels))
    for i, m in enumerate(marks):
        x = left + step * (i + 0.5)
        colour = COLOURS.get(m.outcome, _GREY)
        parts.append(f"<g><title>{escape(m.tip)}</title>")
        low = m.low if m.low is not None else m.value
        high = m.high if m.high is not None else m.value
        if low is not None and high is not None:
            parts.append(
                f'<line x1="{_n(x)}" y1="{_n(y_of(low))}" x2="{_n(x)}" y2="{_n(y_of(high))}" '
                f'stroke="{colour}" stroke-width="2.5"/>'
            )
        if m.value is not None:
            parts.append(f'<circle cx="{_n(x)}" cy="{_n(y_of(m.value))}" r="4" fill="{colour}"/>')
        parts.append("</g>")
        if i % every == 0:
            parts.append(
                f'<text x="{_n(x)}" y="{height - bottom + 16}" text-anchor="middle" '
                f'fill="{_GREY}">{escape(m.label)}</text>'
            )
    parts.append(
        f'<line x1="{left}" y1="{top + inner_h}" x2="{width - right}" y2="{top + inner_h}" '
        f'stroke="{_GREY}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return "".join(parts)
