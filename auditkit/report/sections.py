"""View models of the report sections added for issue 7: scope, method details, sampling plan,
slice forest plots, curves, latency, energy and carbon, baseline, and the appendices.

Each function takes the typed run files (auditkit.evidence) and a formatter (``Formatter``)
and returns plain dicts and lists of preformatted strings for the template; none of them
writes markup. Tables
that may be missing in a run directory (``samples.parquet``, ``predictions.parquet``,
``timings.parquet``, ``power.parquet``) only add figures when present.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.evidence import (
    Interval,
    MetricEntry,
    MetricsDocument,
    RunRecord,
    VerdictsDocument,
)
from auditkit.report import charts
from auditkit.report.formatting import Formatter

_SKIP_SLICE_KEYS = {"scenario", "by"}
_FOREST_RATES = ("escape_rate", "overkill_rate")


def _read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path, columns=columns)
    except Exception:  # a damaged optional table only loses its figure
        return None


# --------------------------------------------------------------------------- scope


def scope_view(run: RunRecord, metrics: MetricsDocument, fmt: Formatter) -> dict[str, Any]:
    """What the results cover: the recorded conditions of the test parts, column by column."""
    values: dict[str, list[str]] = {}
    for entry in metrics.metrics:
        slc = entry.slice
        if len(slc) != 1 or set(slc) & (_SKIP_SLICE_KEYS | {"defect_class"}):
            continue
        (column, value), *_ = slc.items()
        seen = values.setdefault(str(column), [])
        if str(value) not in seen:
            seen.append(str(value))
    conditions = [(fmt.column(c), ", ".join(v)) for c, v in values.items()]
    labels = run.dataset.get("labels") or {}
    return {
        "conditions": conditions,
        "classes": ", ".join(str(k) for k in labels) or fmt.na,
    }


# --------------------------------------------------------------------------- method


def preprocessing_line(card: Mapping[str, Any], fmt: Formatter) -> str:
    spec = card.get("input") or {}
    if not spec:
        return fmt.na
    return str(fmt.t["preprocessing_line"]).format(
        height=fmt.any(spec.get("height")),
        width=fmt.any(spec.get("width")),
        color=fmt.any(spec.get("color")),
        resize=fmt.any(spec.get("resize")),
        layout=fmt.any(spec.get("layout")),
        mean=", ".join(fmt.num(m) for m in spec.get("mean") or []) or fmt.na,
        std=", ".join(fmt.num(s) for s in spec.get("std") or []) or fmt.na,
        dtype=spec.get("dtype", "float32"),
    )


def scenario_line(replay: Mapping[str, Any], fmt: Formatter) -> str:
    scenario = str(replay.get("scenario", ""))
    return str(fmt.t["scenario_line"]).format(
        scenario=fmt.lookup("scenario_name", scenario) if scenario else fmt.na,
        batch=fmt.any(replay.get("batch_size")),
        single=fmt.any(replay.get("single_stream_samples")),
        precision=fmt.any(replay.get("precision")),
    )


def hardware_line(host: Mapping[str, Any], fmt: Formatter) -> str:
    return str(fmt.t["host_line"]).format(
        platform=fmt.any(host.get("platform")),
        machine=fmt.any(host.get("machine")),
        cpus=fmt.any(host.get("cpu_count")),
    ) + (f"; {host['processor']}" if host.get("processor") else "")


# --------------------------------------------------------------------------- sampling plan


def sampling_view(
    run_dir: Path, run: RunRecord, metrics: MetricsDocument, fmt: Formatter
) -> dict[str, Any]:
    """Images and parts per reference class, and defective and good parts per slice."""
    dataset = run.dataset
    labels: dict[str, Any] = dict(dataset.get("labels") or {})
    parts_per_class: dict[str, int] = {}
    samples = _read_table(run_dir / "samples.parquet", ["part_id", "label"])
    if samples is not None and not samples.empty:
        counts = samples.drop_duplicates(["part_id", "label"])["label"].value_counts()
        parts_per_class = {str(k): int(v) for k, v in counts.items()}
    classes = [
        {
            "label": str(label),
            "images": fmt.count(n),
            "parts": fmt.count(parts_per_class[label]) if label in parts_per_class else fmt.na,
        }
        for label, n in labels.items()
    ]
    per_slice: dict[str, dict[str, Any]] = {}
    for entry in metrics.metrics:
        name, slc = entry.name, entry.slice
        if name not in ("escape_rate", "overkill_rate") or not slc:
            continue
        if set(slc) & _SKIP_SLICE_KEYS:
            continue
        key = json.dumps(slc, sort_keys=True)
        row = per_slice.setdefault(
            key,
            {
                "slice": fmt.slice(slc),
                "unit": fmt.lookup("unit", entry.unit or ""),
                "defective": fmt.na,
                "good": fmt.na,
            },
        )
        row["defective" if name == "escape_rate" else "good"] = fmt.count(entry.n)
    prevalence, escaped = _prevalence_lines(metrics, fmt)
    tallies = metrics.counts
    return {
        "classes": classes,
        "per_slice": list(per_slice.values()),
        "prevalence": prevalence,
        "escaped_ppm": escaped,
        "unreadable": fmt.count(tallies.get("images_unreadable", dataset.get("n_unreadable", 0))),
        "errors": fmt.count(tallies.get("images_error", dataset.get("n_error", 0))),
    }


def _prevalence_lines(metrics: MetricsDocument, fmt: Formatter) -> tuple[str | None, str | None]:
    """The production prevalence the run states (metrics.json ``prevalence``; an older file:
    the escaped-ppm entry's) with who stated it, and the escaped-ppm figure at it."""
    t = fmt.t
    ppm = next((e for e in metrics.metrics if e.name == "escaped_ppm" and not e.slice), None)
    value, source = None, None
    if metrics.prevalence is not None:
        value, source = metrics.prevalence.value, metrics.prevalence.source
    elif ppm is not None and ppm.prevalence is not None:
        value, source = ppm.prevalence, ppm.prevalence_source
    if value is None:
        return None, None
    stated = str(t["prevalence_line"]).format(
        value=fmt.share(float(value)), source=fmt.lookup("prevalence_source", source or "")
    )
    if ppm is None or ppm.value is None:
        return stated, None
    low = ppm.interval.low if ppm.interval else None
    high = ppm.interval.high if ppm.interval else None
    escaped = str(t["escaped_ppm_line"]).format(
        value=fmt.num(ppm.value), low=fmt.num(low), high=fmt.num(high)
    )
    return stated, escaped


# --------------------------------------------------------------------------- operating point


def parts_to_prove(target: float, level: float) -> int:
    """The fewest defective parts with which zero escapes prove ``escape rate <= target``: the
    exact one-sided upper bound of 0 of n is ``1 - (1 - level)^(1/n)``, at or below the target
    from ``n >= ln(1 - level) / ln(1 - target)`` (95 %, 5 %: 59; 95 %, 1 %: 299)."""
    needed = math.log(1.0 - level) / math.log(1.0 - target)
    return math.ceil(needed - 1e-9)


def zero_escape_view(metrics: MetricsDocument, fmt: Formatter) -> dict[str, Any] | None:
    """The certified zero-escape operating point (metrics.json ``escape_certified_threshold``,
    docs/metrics.md): per escape target, the all-parts row, then each slice that has a
    threshold, with the escapes and the overkill it gives there and their exact bounds; the
    slices too small to prove the target share one row that counts them (every entry is in
    Appendix A). None without an entry."""
    entries = [
        e
        for e in metrics.metrics
        if e.name == "escape_certified_threshold" and e.target is not None
    ]
    if not entries:
        return None
    t = fmt.t
    level = next((e.bound_level for e in entries if e.bound_level is not None), fmt.level)
    rows: list[dict[str, Any]] = []
    for target in sorted({float(e.target or 0) for e in entries}):
        group = [e for e in entries if float(e.target or 0) == target]
        needed = parts_to_prove(target, float(group[0].bound_level or level))
        small = [e for e in group if e.slice and _no_threshold(e)]
        for e in sorted(group, key=lambda e: bool(e.slice)):
            if e in small:
                continue
            row: dict[str, Any] = {"slice": fmt.slice(e.slice), "target": fmt.pct(target)}
            if _no_threshold(e) or e.escape is None or e.overkill is None:
                row["none"] = str(t["zero_escape_none"]).format(
                    n=fmt.count(e.n), needed=fmt.count(needed)
                )
            else:
                bound = e.escape.certified_upper
                bound = e.escape.high if bound is None else bound
                row.update(
                    none=None,
                    threshold=fmt.num(e.value, 4),
                    escaped=fmt.kn(e.escape.k, e.escape.n),
                    escape_bound=fmt.pct(bound),
                    overkill=fmt.kn(e.overkill.k, e.overkill.n),
                    overkill_bounds=f"{fmt.pct(e.overkill.value)} "
                    f"({_bounds(fmt, e.overkill.low, e.overkill.high)})",
                )
            rows.append(row)
        if small:
            largest = max(int(e.n or 0) for e in small)
            rows.append(
                {
                    "slice": str(t["zero_escape_small_slices"]).format(count=len(small)),
                    "target": fmt.pct(target),
                    "none": str(t["zero_escape_none_slices"]).format(
                        largest=fmt.count(largest), needed=fmt.count(needed)
                    ),
                }
            )
    return {
        "intro": str(t["zero_escape_intro"]).format(level=fmt.level_text(float(level))),
        "rows": rows,
    }


def _no_threshold(entry: MetricEntry) -> bool:
    return entry.value is None


def _bounds(fmt: Formatter, low: float | None, high: float | None) -> str:
    return f"{fmt.pct(low)} – {fmt.pct(high)}"


# --------------------------------------------------------------------------- forest plots


def forest_view(
    metrics: MetricsDocument, verdicts: VerdictsDocument, fmt: Formatter
) -> list[dict[str, Any]]:
    """One forest plot per rate: every slice and intersection with its interval."""
    out = []
    for rate in _FOREST_RATES:
        rows = [
            charts.ChartRow(
                label=fmt.slice(entry.slice),
                value=entry.value,
                low=entry.interval.low if entry.interval else None,
                high=entry.interval.high if entry.interval else None,
                outcome="NEUTRAL",
            )
            for entry in metrics.metrics
            if entry.name == rate and not set(entry.slice) & _SKIP_SLICE_KEYS
        ]
        if len(rows) < 2:
            continue
        threshold = next(
            (
                c.threshold
                for c in verdicts.criteria
                if c.metric == rate and c.threshold is not None
            ),
            None,
        )
        out.append(
            {
                "title": str(fmt.t["forest_title"]).format(metric=fmt.metric(rate)),
                "charts": charts.forest_chart_data_uris(rows, threshold),
                "caption": str(fmt.t["forest_caption"]).format(
                    level=fmt.level_text(),
                    threshold=fmt.value(rate, threshold) if threshold is not None else fmt.na,
                ),
            }
        )
    return out


# --------------------------------------------------------------------------- curves


def _part_scores(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(is_defect, score) per scored part; a part's score is the highest of its images."""
    columns = ["sample_id", "part_id", "is_defect", "status"]
    samples = _read_table(run_dir / "samples.parquet", columns)
    predictions = _read_table(run_dir / "predictions.parquet", ["sample_id", "score"])
    if samples is None or predictions is None or samples.empty:
        return None
    table = samples.merge(predictions, on="sample_id", how="left")
    table["ok"] = (table["status"] == "ok") & table["score"].notna()
    grouped = table.groupby("part_id", sort=True)
    scored = grouped["ok"].all()
    part_score = grouped["score"].max()[scored]
    defect = grouped["is_defect"].any()[scored]
    if part_score.empty or defect.nunique() < 2:
        return None
    return defect.to_numpy(dtype=bool), part_score.to_numpy(dtype=float)


def curves_view(run_dir: Path, metrics: MetricsDocument, fmt: Formatter) -> dict[str, Any] | None:
    """ROC and precision-recall curves of the part scores, with the operating point."""
    from auditkit.metrics.classification import pr_points, roc_points

    overall = {e.name: e.value for e in metrics.metrics if not e.slice}
    escape, overkill = overall.get("escape_rate"), overall.get("overkill_rate")
    precision = overall.get("precision")
    operating = None
    if escape is not None and overkill is not None:
        operating = (float(overkill), 1.0 - float(escape), float(precision or 0.0))
    parts = _part_scores(run_dir)
    roc = pr = None
    if parts is not None:
        roc_curve, pr_curve = roc_points(*parts), pr_points(*parts)
        if roc_curve is not None and pr_curve is not None:  # both kinds of part are there
            roc = (roc_curve.overkill_rate, roc_curve.detection_rate)
            pr = (pr_curve.detection_rate, pr_curve.precision)
    if roc is None and operating is None:
        return None
    t = fmt.t
    labels = {k: str(t[f"curve_{k}"]) for k in ("roc_x", "roc_y", "roc_title", "pr_x", "pr_y")}
    labels["pr_title"] = str(t["curve_pr_title"])
    labels["operating"] = str(t["curve_operating"])
    return {
        "chart": charts.curves_data_uri(roc, pr, operating, labels),
        "has_curves": roc is not None,
        "caption": str(t["curves_caption" if roc is not None else "operating_only_caption"]).format(
            auc=fmt.num(overall.get("roc_auc"), 4),
            ap=fmt.num(overall.get("pr_auc"), 4),
        ),
    }


# --------------------------------------------------------------------------- latency


def latency_view(
    run_dir: Path, run: RunRecord, metrics: MetricsDocument, fmt: Formatter
) -> dict[str, Any]:
    """Per-image latency histogram (single-stream scenario) and the percentile table."""
    t = fmt.t
    rows = []
    for entry in metrics.metrics:
        name = entry.name
        if not name.startswith(("latency_", "throughput_")):
            continue
        scenario = entry.slice.get("scenario", "")
        rows.append(
            {
                "measure": fmt.metric(name),
                "scenario": fmt.lookup("scenario", scenario) if scenario else fmt.na,
                "value": fmt.value(name, entry.value),
                "n": fmt.count(entry.n) if entry.n is not None else fmt.na,
            }
        )
    latency = (run.replay.get("latency") or {}).get("e2e") or {}
    bounds = []
    for q in ("p50", "p90", "p99"):
        value = latency.get(f"{q}_early_stopping_ms")
        if value is not None:
            bounds.append((q, f"{value:.2f} ms"))
    chart = None
    timings = _read_table(run_dir / "timings.parquet")
    if timings is not None and {"scenario", "e2e_s"} <= set(timings.columns):
        single = timings[timings["scenario"] == "single-stream"]["e2e_s"].dropna()
        if len(single) >= 10:
            ms = single.to_numpy(dtype=float) * 1000.0
            marks = [(q, float(np.percentile(ms, p))) for q, p in (("p50", 50), ("p99", 99))]
            chart = charts.histogram_data_uri(ms, marks, str(t["latency_x"]), str(t["latency_y"]))
    return {
        "rows": rows,
        "bounds": [(str(t["early_stopping_bound"]).format(q=q), v) for q, v in bounds],
        "chart": chart,
    }


# --------------------------------------------------------------------------- energy

#: unit of each meter field run.json records (energy/*.py ``describe`` and reading details);
#: "share" fields are 0..1 and print as percentages, fields not listed print as they are
_METER_UNITS = {
    "declared_watts": "W",
    "rated_watts": "W",
    "modelled_power_w": "W",
    "process_cpu_seconds": "s",
    "process_cpu_utilisation": "share",
    "host_cpu_utilisation": "share",
    "poll_seconds": "s",
    "counter_update_interval_s": "s",
    "clock_offset_s": "s",
    "clock_offset_resolution_s": "s",
    "estimate_rise_w": "W",
    "estimate_search_s": "s",
    "max_energy_range_uj": "µJ",
    "energy_j_by_domain": "J",
    "energy_j_by_device": "J",
}
#: meter fields said in other words: the formula and the source of the rated power
_METER_WORDED = {"formula", "watts_source"}
#: a window shorter than this is too short for a counter (energy/interface.py MIN_WINDOW_S)
_MIN_WINDOW_S = 10.0


def _meter_value(fmt: Formatter, key: str, value: Any) -> str:
    unit = _METER_UNITS.get(key)
    if isinstance(value, Mapping):
        return str(fmt.t["list_separator"]).join(
            f"{k}{fmt.t['colon']}{_meter_value(fmt, key, v)}" for k, v in value.items()
        )
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        # nvml devices: [{"index": 0, "name": "NVIDIA H100"}]
        return ", ".join(" ".join(fmt.any(x) for x in v.values()) for v in value)
    if unit == "share" and isinstance(value, int | float) and not isinstance(value, bool):
        return fmt.share(float(value))
    if unit and isinstance(value, int | float) and not isinstance(value, bool):
        return fmt.quantity(value, unit)
    if key == "clock_offset":
        return fmt.lookup("clock_offset_kind", value)
    return fmt.any(value)


def _meter_rows(meter: Mapping[str, Any], fmt: Formatter) -> list[tuple[str, str]]:
    """The meter block of run.json as labelled rows: the formula and the rated power's source
    in the catalogue's words, every other field with its unit; empty fields left out."""
    t = fmt.t
    rows: list[tuple[str, str]] = []
    if "formula" in meter:
        formula = "declared" if meter.get("declared_watts") is not None else "rated"
        rows.append((str(t["meter_formula"]), str(t["meter_formula_text"][formula])))
    source = meter.get("watts_source")
    if isinstance(source, str):
        rows.append((str(t["meter_watts_source"]), _watts_source(source, meter, fmt)))
    for key, value in meter.items():
        if key in _METER_WORDED or value is None or value == {} or value == []:
            continue
        label = fmt.lookup("meter_field", key) if key in t.get("meter_field", {}) else key
        rows.append((label, _meter_value(fmt, key, value)))
    return rows


def _watts_source(source: str, meter: Mapping[str, Any], fmt: Formatter) -> str:
    words = fmt.t["watts_source_text"]
    if source.startswith("--"):
        return str(words.get(source.strip("-"), source))
    cpus = meter.get("logical_cpus")
    rated = meter.get("rated_watts")
    if source.startswith("assumed") and isinstance(cpus, int) and isinstance(rated, int | float):
        return str(words["assumed"]).format(per_cpu=fmt.num(rated / cpus), cpus=cpus)
    return fmt.text(source)


def _uncertainty(energy: Mapping[str, Any], fmt: Formatter) -> list[str]:
    """What the figures cover and how far to trust them, from the facts run.json records (the
    same statements energy/protocol.py ``uncertainty`` makes, in the report's language)."""
    t = fmt.t
    method = str(energy.get("method", ""))
    window = energy.get("window") or {}
    idle = energy.get("idle") or {}
    seconds = window.get("seconds")
    out = [fmt.lookup("energy_scope", method)]
    interval = energy.get("sampling_interval_s")
    measured = bool(energy.get("measured"))
    if measured and isinstance(interval, int | float) and isinstance(seconds, int | float):
        share = interval / seconds if seconds > 0 else None
        out.append(
            str(t["uncertainty_edge"]).format(
                interval=fmt.quantity(interval, "s"),
                window=fmt.quantity(seconds, "s"),
                share=fmt.share(share) if share is not None else fmt.na,
            )
        )
    if isinstance(seconds, int | float) and seconds < _MIN_WINDOW_S:
        out.append(
            str(t["uncertainty_short_measured" if measured else "uncertainty_short"]).format(
                window=fmt.quantity(seconds, "s"), minimum=fmt.quantity(_MIN_WINDOW_S, "s")
            )
        )
    passes = window.get("passes")
    if isinstance(passes, int) and passes > 1:
        out.append(str(t["uncertainty_passes"]).format(passes=passes))
    if (idle.get("seconds") or 0) > 0:
        out.append(str(t["uncertainty_idle"]).format(idle=fmt.quantity(idle["seconds"], "s")))
    else:
        out.append(str(t["uncertainty_no_idle"]))
    if window.get("executor", "local") != "local":
        out.append(str(t["uncertainty_dask"]))
    if window.get("resumed"):
        out.append(str(t["uncertainty_resumed"]))
    return out


def _energy_quantity(fmt: Formatter, value: Any, unit: str, measured: bool) -> str:
    """A figure of the energy block with its unit and whether it was measured or modelled
    (a modelled figure is never called measured)."""
    if value is None:
        return fmt.na
    t = fmt.t
    how = f"{t['paren_open']}{t['energy_how']['measured' if measured else 'modelled']}"
    how += str(t["paren_close"])
    if unit == "J" and isinstance(value, int | float) and 0 < abs(value) < 1:
        return f"{fmt.quantity(value * 1000.0, 'mJ')}{how}"
    return f"{fmt.quantity(value, unit, 4)}{how}"


def energy_view(run_dir: Path, run: RunRecord, fmt: Formatter) -> dict[str, Any]:
    """The ``energy`` block of run.json (contract of issue 8) as a table of labelled rows."""
    t = fmt.t
    energy = run.energy
    method = energy.get("method")
    if not energy or method in (None, "off") or energy.get("energy_j") is None:
        return {"measured": None, "rows": [], "meter": [], "chart": None, "off": True}
    measured = bool(energy.get("measured"))
    rows: list[tuple[str, str]] = [
        (
            str(t["energy_method"]),
            str(t["energy_measured" if measured else "energy_modelled"]).format(
                method=fmt.lookup("energy_method_name", method)
            ),
        ),
        (str(t["energy_boundary"]), fmt.lookup("energy_boundary_name", energy.get("boundary"))),
    ]
    if energy.get("sampling_interval_s") is not None:
        rows.append((str(t["energy_interval"]), fmt.quantity(energy["sampling_interval_s"], "s")))
    idle = energy.get("idle") or {}
    if idle.get("power_w") is not None:
        rows.append(
            (
                str(t["energy_idle"]),
                str(t["energy_idle_line"]).format(
                    power=fmt.quantity(idle["power_w"], "W"),
                    seconds=fmt.quantity(idle.get("seconds"), "s"),
                ),
            )
        )
    window = energy.get("window") or {}
    images = window.get("images")
    if window:
        rows.append(
            (
                str(t["energy_window"]),
                str(t["energy_window_line"]).format(
                    seconds=fmt.quantity(window.get("seconds"), "s"),
                    images=fmt.count(images),
                    passes=fmt.num(window.get("passes")),
                ),
            )
        )
    figures = (
        ("energy_j", "J"),
        ("energy_above_idle_j", "J"),
        ("mean_power_w", "W"),
        ("j_per_image", "J"),
        ("wh_per_1000_inspections", "Wh"),
    )
    for key, unit in figures:
        if energy.get(key) is not None:
            rows.append(
                (str(t[f"energy_{key}"]), _energy_quantity(fmt, energy[key], unit, measured))
            )
    carbon = energy.get("carbon") or {}
    if carbon:
        rows.append(
            (
                str(t["carbon_intensity"]),
                str(t["carbon_intensity_line"]).format(
                    value=fmt.quantity(carbon.get("grid_intensity_g_per_kwh"), "gCO2e/kWh"),
                    source=fmt.text(carbon.get("source") or fmt.na),
                ),
            )
        )
        if carbon.get("embodied_g_per_1000") is not None:
            rows.append(
                (str(t["carbon_embodied"]), fmt.quantity(carbon["embodied_g_per_1000"], "gCO2e"))
            )
        if carbon.get("gco2e_per_1000_inspections") is not None:
            rows.append(
                (
                    str(t["carbon_total"]),
                    _energy_quantity(fmt, carbon["gco2e_per_1000_inspections"], "gCO2e", measured),
                )
            )
    rows.append(
        (str(t["energy_uncertainty"]), str(t["sentence_join"]).join(_uncertainty(energy, fmt)))
    )
    chart = None
    power = _read_table(run_dir / "power.parquet")
    if power is not None and {"t_s", "watts"} <= set(power.columns) and len(power) >= 2:
        chart = charts.power_data_uri(
            power["t_s"].to_numpy(dtype=float),
            power["watts"].to_numpy(dtype=float),
            str(t["power_x"]),
            str(t["power_y"]),
        )
    meter = _meter_rows(energy.get("meter") or {}, fmt)
    return {"measured": measured, "rows": rows, "meter": meter, "chart": chart, "off": False}


# --------------------------------------------------------------------------- baseline


def baseline_view(
    metrics: MetricsDocument, verdicts: VerdictsDocument, fmt: Formatter
) -> dict[str, Any] | None:
    """Comparison with a baseline run (verdicts.json ``baseline``, rubric/baseline.py): which
    run, the paired escape and overkill counts, and the parts whose decision changed."""
    baseline = verdicts.baseline or (metrics.model_extra or {}).get("baseline")
    if not isinstance(baseline, Mapping) or not baseline:
        return None
    t = fmt.t
    info = [
        (str(t["baseline_run"]), fmt.any(baseline.get("run_id"))),
        (str(t["baseline_model"]), fmt.any(baseline.get("model"))),
        (str(t["baseline_model_sha"]), fmt.any(baseline.get("model_sha256"))),
        (str(t["baseline_parts"]), fmt.count(baseline.get("n_parts"))),
        (str(t["baseline_unscored"]), fmt.count(baseline.get("parts_unscored"))),
    ]
    paired = []
    for rate in ("escape_rate", "overkill_rate"):
        pair = baseline.get(rate)
        if not isinstance(pair, Mapping):
            continue
        n = pair.get("n")
        interval = pair.get("interval") or {}
        paired.append(
            {
                "name": fmt.metric(rate),
                "baseline": fmt.kn(pair.get("baseline_k"), n),
                "candidate": fmt.kn(pair.get("candidate_k"), n),
                "difference": fmt.pp(pair.get("difference")),
                "interval": _pp_interval(fmt, interval),
                "new": fmt.count(pair.get("b")),
                "fixed": fmt.count(pair.get("c")),
                "p": fmt.num(pair.get("p_value_mcnemar")),
            }
        )
    level = next(
        (
            (baseline.get(r) or {}).get("interval") or {}
            for r in ("escape_rate", "overkill_rate")
            if (baseline.get(r) or {}).get("interval")
        ),
        {},
    )
    changed = baseline.get("changed_decisions") or {}
    by_change = [
        (fmt.lookup("decision_change", k), fmt.count(v))
        for k, v in (changed.get("by_change") or {}).items()
    ]
    listed = [
        {
            "part": fmt.any(row.get("part_id")),
            "defect_class": fmt.any(row.get("defect_class")),
            "baseline": _part_decision(fmt, row.get("baseline_reject")),
            "candidate": _part_decision(fmt, row.get("candidate_reject")),
            "change": fmt.lookup("decision_change", row.get("change")),
        }
        for row in changed.get("listed") or []
        if isinstance(row, Mapping)
    ]
    return {
        "info": info,
        "paired": paired,
        "interval_heading": str(t["baseline_note"]).format(
            level=fmt.level_text(level.get("level")) if level.get("level") else fmt.level_text(),
            sided=fmt.lookup("sided", level.get("sided", "")),
            method=fmt.lookup("interval_short", level.get("method", "")),
        ),
        "changed_total": fmt.count(changed.get("total", 0)),
        "by_change": by_change,
        "listed": listed,
        "listed_note": str(t["baseline_listed_note"]).format(
            shown=fmt.count(len(listed)), total=fmt.count(changed.get("total", len(listed)))
        ),
    }


def _part_decision(fmt: Formatter, rejected: Any) -> str:
    if rejected is None:
        return fmt.na
    return fmt.lookup("part_decision", "rejected" if rejected else "accepted")


def _pp_interval(fmt: Formatter, interval: Mapping[str, Any]) -> str:
    low, high = interval.get("low"), interval.get("high")
    if low is None and high is None:
        return fmt.na
    return f"{fmt.pp(low)} – {fmt.pp(high)}"


def _fmt_any(fmt: Formatter, name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fmt.any(value)
    return fmt.value(name, float(value))


def _interval_text(fmt: Formatter, name: str, interval: Interval | None) -> str:
    if interval is None or (interval.low is None and interval.high is None):
        return fmt.na
    return f"{_fmt_any(fmt, name, interval.low)} – {_fmt_any(fmt, name, interval.high)}"


# --------------------------------------------------------------------------- appendices


def metric_table(metrics: MetricsDocument, fmt: Formatter) -> list[dict[str, str]]:
    """Every entry of metrics.json, in file order."""
    out = []
    for entry in metrics.metrics:
        name = entry.name
        method = entry.interval.method if entry.interval else None
        how = entry.method  # energy entries say measured / modelled
        out.append(
            {
                "name": fmt.metric(name),
                "slice": fmt.slice(entry.slice),
                "unit": fmt.lookup("unit", entry.unit or "") or fmt.na,
                "value": _fmt_any(fmt, name, entry.value),
                "kn": fmt.kn(entry.k, entry.n),
                "interval": _interval_text(fmt, name, entry.interval),
                "method": fmt.lookup("interval_short", method)
                if method
                else fmt.lookup("energy_how", how)
                if how
                else "",
            }
        )
    return out


#: the run.json blocks Appendix C shows, in order, each under its own heading
_ENVIRONMENT_BLOCKS = ("tool", "host", "replay")
#: replay fields shown elsewhere in full (latency: chapter "Latency"; parity: Method)
_ENVIRONMENT_SKIPPED = {"latency"}


def environment_rows(run: RunRecord, fmt: Formatter) -> list[dict[str, Any]]:
    """Tool, host and replay settings of run.json as labelled tables, one per block: labels
    from the catalogue (``env_field``; an unknown field shows its own name), values in words
    (yes/no, "not applicable", units), nested settings as one row each."""
    groups: list[dict[str, Any]] = []
    ident = [
        (fmt.lookup("env_field", k), fmt.when(v) if k.endswith("_at") else str(v))
        for k, v in (
            ("run_id", run.run_id),
            ("started_at", run.started_at),
            ("finished_at", run.finished_at),
        )
        if k in run.model_fields_set
    ]
    if ident:
        groups.append({"title": str(fmt.t["env_block"]["run"]), "rows": ident})
    blocks = {"tool": run.tool, "host": run.host, "replay": run.replay}
    for block in _ENVIRONMENT_BLOCKS:
        rows = _setting_rows(blocks[block], fmt, ())
        if rows:
            groups.append({"title": fmt.lookup("env_block", block), "rows": rows})
    return groups


def _setting_rows(
    value: Mapping[str, Any], fmt: Formatter, path: tuple[str, ...]
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, item in value.items():
        if not path and key in _ENVIRONMENT_SKIPPED:
            continue
        label = " › ".join(fmt.lookup("env_field", k) for k in (*path, str(key)))
        if isinstance(item, Mapping) and item and len(path) < 2:
            rows.extend(_setting_rows(item, fmt, (*path, str(key))))
        elif isinstance(item, list) and any(isinstance(v, Mapping) for v in item):
            rows.append((label, fmt.count(len(item))))
        else:
            rows.append((label, fmt.any(item)))
    return rows


def glossary(strings: Mapping[str, Any]) -> list[tuple[str, str]]:
    entries: Iterable[Any] = strings.get("glossary") or []
    return [(str(e["term"]), str(e["text"])) for e in entries]
