"""Numbers, labels, reasons and times in the report's language: the formatter that the report's
view model (:mod:`auditkit.report.render`) and its sections (:mod:`auditkit.report.sections`)
share.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from auditkit.evidence import Coded, DataGapReason, Judged
from auditkit.rubric import reasons as _reasons

#: comparison operators as the report prints them
OP_SYMBOLS = {"<=": "≤", ">=": "≥", "<": "<", ">": ">", "==": "="}
_RATE_SUFFIXES = ("_rate", "_share")
_RATE_NAMES = {"effectiveness", "accuracy"}


class Formatter:
    """Number and label formatting in the report's language."""

    def __init__(self, strings: Mapping[str, Any], level: float) -> None:
        self.t = strings
        self.level = level
        self.na = strings["not_available"]

    def level_text(self, level: float | None = None) -> str:
        value = self.level if level is None else level
        return f"{value * 100:g} %"

    @staticmethod
    def is_rate(metric: str) -> bool:
        return metric.endswith(_RATE_SUFFIXES) or metric in _RATE_NAMES

    def pct(self, value: float | None) -> str:
        return self.na if value is None else f"{value * 100:.2f} %"

    def value(self, metric: str, value: float | None) -> str:
        if value is None:
            return self.na
        if self.is_rate(metric):
            return self.pct(value)
        for suffix in ("_difference", "_change"):  # a difference of two rates
            if metric.endswith(suffix) and self.is_rate(metric.removesuffix(suffix)):
                return self.pp(value)
        if metric.startswith("latency_") and metric.endswith("_ms"):
            return f"{value:.1f} ms"
        if metric.startswith("throughput_"):
            text = self.count(round(value)) if value >= 1000 else f"{value:.1f}"
            return f"{text} {self.t['images_per_s']}"
        if metric.startswith("model_"):
            return f"{value:,.0f}"
        if metric == "p_value" and 0 <= value < 0.0001:
            return "< 0.0001"  # a p-value this small is printed as a bound, not as 1e-13
        return f"{value:.4g}"

    def text(self, value: Any) -> str:
        """Text from the rubric or the evaluation (titles, reasons, data gaps) in the report's
        language when the catalogue knows it: an exact translation (``known_text``), else the
        catalogue's ``reason_patterns`` (regular expressions) applied in order, else as is."""
        text = str(value)
        known = self.t.get("known_text") or {}
        if text in known:
            return str(known[text])
        for rule in self.t.get("reason_patterns") or []:
            text = re.sub(str(rule["match"]), str(rule["replace"]), text)
        return text

    def reason(self, row: Coded, metric: str) -> str:
        """A criterion's, slice's or data gap's reason in the report's language: from its
        ``reason_code`` and ``reason_args`` with the catalogue's ``reason`` templates
        (verdicts.json of this version); an older verdicts.json without codes falls back to
        :meth:`text`."""
        code = row.reason_code
        templates = self.t.get("reason") or {}
        if not code or code not in templates:
            return self.text(row.reason)
        args = {key: self._reason_arg(key, x) for key, x in row.reason_args.items()}
        notes = [
            {"code": n.code, "args": {k: self._reason_arg(k, x) for k, x in n.args.items()}}
            for n in row.reason_notes
        ]
        return _reasons.render(
            str(code),
            args,
            notes,
            templates=templates,
            words=self.t.get("reason_words") or {},
            value=lambda x: self.value(metric, x),
            percent=lambda x: self.level_pct(x),
            separator=str(self.t.get("reason_separator", "; ")),
        )

    def gap(self, coded: DataGapReason) -> str:
        """A data gap of ``verdicts.json`` ``data_gap_reasons`` in the report's language:
        "criterion [slice]: reason" (the criterion and slice omitted for a gap of the run)."""
        text = self.reason(coded, coded.metric or "")
        if not coded.criterion:
            return text
        where = (
            coded.criterion
            if coded.slice is None
            else f"{coded.criterion} [{self.slice(coded.slice)}]"
        )
        return f"{where}{self.t.get('colon', ': ')}{text}"

    def _reason_arg(self, key: str, x: Any) -> Any:
        # symbols and identifiers the catalogue knows are shown in the report's words
        if key in ("op", "relation") and isinstance(x, str):
            return OP_SYMBOLS.get(x, x)
        if key == "metric" and isinstance(x, str):
            return self.metric(x)
        if key == "by" and isinstance(x, str):
            return ", ".join(
                " × ".join(self.column(c.strip()) for c in part.split(" × "))
                for part in x.split(", ")
            )
        if key == "method" and isinstance(x, str):
            return self.lookup("energy_method_name", x)
        if key == "boundary" and isinstance(x, str):
            return self.lookup("energy_boundary_name", x)
        return x

    def level_pct(self, value: Any) -> str:
        """A confidence level or share as a percentage, to 4 significant digits."""
        if not isinstance(value, int | float):
            return self.na
        return f"{value * 100:.4g} %"

    def bounds_label(self, row: Judged) -> str:
        """What ``low`` and ``high`` of a row are (see :meth:`bounds_words`)."""
        return self.bounds_words(row.bounds_sided, row.low_level, row.high_level, bool(row.holm))

    def bounds_words(
        self, sided: str | None, low: float | None, high: float | None, holm: bool = False
    ) -> str:
        """Two one-sided bounds at a level, a two-sided interval at a level, or bounds at
        their own (Holm) levels; empty when the evidence does not say."""
        labels = self.t.get("bounds_label") or {}
        if sided is None or not labels:
            return ""
        if holm:
            key = (
                "holm"
                if low is not None and high is not None
                else ("holm_upper_only" if low is None else "holm_lower_only")
            )
            return str(labels[key]).format(low=self.level_pct(low), high=self.level_pct(high))
        if sided == "two":
            return str(labels["two"]).format(level=self.level_pct(low))
        if low == high:
            return str(labels["one"]).format(level=self.level_pct(low))
        return str(labels["mixed"]).format(low=self.level_pct(low), high=self.level_pct(high))

    def kn(self, k: int | None, n: int | None) -> str:
        if k is None:
            return self.na if n is None else f"n = {n}"
        return f"{k}/{n}"

    def lookup(self, table: str, key: Any) -> str:
        return str(self.t.get(table, {}).get(key, key))

    def metric(self, name: str) -> str:
        return self.lookup("metric", name)

    def column(self, name: str) -> str:
        return self.lookup("column", name)

    def slice(self, slc: Mapping[str, Any] | None) -> str:
        if not slc:
            return str(self.t["overall"])
        parts = []
        for key, value in slc.items():
            if isinstance(value, list):  # spread entries: {"by": ["line", "shift"]}
                value = " × ".join(self.column(str(v)) for v in value)
            parts.append(f"{self.column(key)} = {value}")
        return ", ".join(parts)

    def slice_value(self, slc: Mapping[str, Any] | None) -> str:
        if slc and len(slc) == 1:
            value = next(iter(slc.values()))
            if isinstance(value, list):  # a spread row: the columns compared
                return " × ".join(self.column(str(v)) for v in value)
            return str(value)
        return self.slice(slc)

    def statistic(self, name: str | None) -> str:
        if not name:
            return self.na
        return self.lookup("statistic", name).format(level=self.level_text())

    def threshold(self, metric: str, op: str | None, threshold: float | None) -> str:
        symbol = OP_SYMBOLS.get(op or "", op or "")
        return f"{symbol} {self.value(metric, threshold)}".strip()

    def count(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            return self.any(value)
        return f"{value:,}".replace(",", str(self.t.get("thousands_separator", " ")))

    # The one place where evidence values become words: every section formats through these,
    # so no page ever shows a Python repr (None, True, {...}) or a JSON fragment.

    def num(self, value: Any, digits: int = 3) -> str:
        """A number for people: thousands separated, ``digits`` significant digits, never in
        exponent notation; None is "not applicable", a bool is yes/no."""
        if value is None:
            return self.na
        if isinstance(value, bool):
            return str(self.t["yes" if value else "no"])
        if isinstance(value, int):
            return self.count(value)
        if not isinstance(value, float):
            return self.text(value)
        if value != value:  # NaN
            return self.na
        if abs(value) >= 10**digits:
            return self.count(round(value))
        text = np.format_float_positional(
            value, precision=digits, unique=False, fractional=False, trim="-"
        )
        return text.rstrip(".")

    def quantity(self, value: Any, unit: str, digits: int = 3) -> str:
        """``value`` with its unit (``"14.7 W"``); "not applicable" alone when there is none."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return self.num(value, digits)
        return f"{self.num(value, digits)} {unit}".rstrip()

    def pp(self, value: float | None) -> str:
        """A difference of two rates, in percentage points."""
        if value is None:
            return self.na
        text = f"{value * 100:.2f}"
        if text in ("-0.00", "0.00") and value != 0:  # never print "-0.00": say how small
            text = self.num(value * 100, 2)
        return f"{text} {self.t['percentage_points']}"

    def share(self, value: float | None) -> str:
        """A share (0..1) as a percentage with the precision a reader needs."""
        return self.na if value is None else f"{self.num(value * 100, 3)} %"

    def field(self, key: Any) -> str:
        """The label of a field of the evidence (``filter`` → "Parts judged"); a field the
        catalogue does not know (a later rubric's) shows its own name, an identifier."""
        labels = self.t.get("field") or {}
        return str(labels.get(str(key), key))

    def any(self, value: Any) -> str:
        """Any evidence value in words: numbers as :meth:`num`, text through the catalogue,
        lists joined, mappings as labelled pairs. Never a repr, never JSON."""
        if value is None or isinstance(value, bool | int | float):
            return self.num(value)
        if isinstance(value, str):
            return self.text(value) if value else self.na
        if isinstance(value, Mapping):
            parts = [
                f"{self.field(k)}{self.t['colon']}{self.any(v)}"
                for k, v in value.items()
                if v is not None and v != {} and v != []
            ]
            return str(self.t["list_separator"]).join(parts) or self.na
        if isinstance(value, list | tuple):
            return ", ".join(self.any(v) for v in value) or self.na
        return str(value)

    @staticmethod
    def when(stamp: str | None) -> str:
        if not stamp:
            return "—"
        try:
            moment = parse_utc(stamp)
        except ValueError:
            return stamp
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_utc(stamp: str) -> datetime:
    """An ISO 8601 time stamp (``Z`` or an offset; none means UTC) as an aware UTC datetime."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
