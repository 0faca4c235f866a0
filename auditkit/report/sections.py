"""View models of the report sections added for issue 7: scope, method details, sampling plan,
slice forest plots, curves, latency, energy and carbon, baseline, and the appendices.

Each function takes the parsed run files and a formatter (``render._Fmt``) and returns plain
dicts and lists of preformatted strings for the template; none of them writes markup. Tables
that may be missing in a run directory (``samples.parquet``, ``predictions.parquet``,
``timings.parquet``, ``power.parquet``) only add figures when present.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from auditkit.report import charts

if TYPE_CHECKING:  # pragma: no cover
    from auditkit.report.render import _Fmt

_SKIP_SLICE_KEYS = {"scenario", "by"}
_FOREST_RATES = ("escape_rate", "overkill_rate")


def _read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path, columns=columns)
    except Exception:  # a damaged optional table only loses its figure
        return None


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


# --------------------------------------------------------------------------- scope


def scope_view(run: Mapping[str, Any], metrics: Mapping[str, Any], fmt: _Fmt) -> dict[str, Any]:
    """What the results cover: the recorded conditions of the test parts, column by column."""
    values: dict[str, list[str]] = {}
    for entry in metrics.get("metrics") or []:
        slc = entry.get("slice") or {}
        if len(slc) != 1 or set(slc) & (_SKIP_SLICE_KEYS | {"defect_class"}):
            continue
        (column, value), *_ = slc.items()
        seen = values.setdefault(str(column), [])
        if str(value) not in seen:
            seen.append(str(value))
    conditions = [(fmt.column(c), ", ".join(v)) for c, v in values.items()]
    dataset = run.get("dataset") or {}
    labels = dataset.get("labels") or {}
    return {
        "conditions": conditions,
        "classes": ", ".join(str(k) for k in labels) or fmt.na,
    }


# --------------------------------------------------------------------------- method


def preprocessing_line(card: Mapping[str, Any], fmt: _Fmt) -> str:
    spec = card.get("input") or {}
    if not spec:
        return fmt.na
    return str(fmt.t["preprocessing_line"]).format(
        height=spec.get("height", fmt.na),
        width=spec.get("width", fmt.na),
        color=spec.get("color", fmt.na),
        resize=spec.get("resize", fmt.na),
        layout=spec.get("layout", fmt.na),
        mean=", ".join(_num(m) for m in spec.get("mean") or []) or fmt.na,
        std=", ".join(_num(s) for s in spec.get("std") or []) or fmt.na,
        dtype=spec.get("dtype", "float32"),
    )


def scenario_line(replay: Mapping[str, Any], fmt: _Fmt) -> str:
    scenario = str(replay.get("scenario", ""))
    return str(fmt.t["scenario_line"]).format(
        scenario=fmt.lookup("scenario_name", scenario) if scenario else fmt.na,
        batch=replay.get("batch_size", fmt.na),
        single=replay.get("single_stream_samples", fmt.na),
        precision=replay.get("precision", fmt.na),
    )


def hardware_line(host: Mapping[str, Any], fmt: _Fmt) -> str:
    return str(fmt.t["host_line"]).format(
        platform=host.get("platform", fmt.na),
        machine=host.get("machine", fmt.na),
        cpus=host.get("cpu_count", fmt.na),
    ) + (f"; {host['processor']}" if host.get("processor") else "")


# --------------------------------------------------------------------------- sampling plan


def sampling_view(run_dir: Path, run: Mapping[str, Any], metrics: Mapping[str, Any], fmt: _Fmt):
    """Images and parts per reference class, and defective and good parts per slice."""
    dataset = run.get("dataset") or {}
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
    for entry in metrics.get("metrics") or []:
        name = entry.get("name")
        slc = entry.get("slice") or {}
        if name not in ("escape_rate", "overkill_rate") or not slc:
            continue
        if set(slc) & _SKIP_SLICE_KEYS:
            continue
        key = json.dumps(slc, sort_keys=True)
        row = per_slice.setdefault(
            key,
            {
                "slice": fmt.slice(slc),
                "unit": fmt.lookup("unit", entry.get("unit", "")),
                "defective": fmt.na,
                "good": fmt.na,
            },
        )
        row["defective" if name == "escape_rate" else "good"] = fmt.count(entry.get("n"))
    prevalence = None
    for entry in metrics.get("metrics") or []:
        if entry.get("prevalence") is not None:
            prevalence = fmt.pct(float(entry["prevalence"]))
            break
    tallies = metrics.get("counts") or {}
    return {
        "classes": classes,
        "per_slice": list(per_slice.values()),
        "prevalence": prevalence,
        "unreadable": fmt.count(tallies.get("images_unreadable", dataset.get("n_unreadable", 0))),
        "errors": fmt.count(tallies.get("images_error", dataset.get("n_error", 0))),
    }


# --------------------------------------------------------------------------- forest plots


def forest_view(
    metrics: Mapping[str, Any], verdicts: Mapping[str, Any], fmt: _Fmt
) -> list[dict[str, Any]]:
    """One forest plot per rate: every slice and intersection with its interval."""
    out = []
    entries = list(metrics.get("metrics") or [])
    for rate in _FOREST_RATES:
        rows = []
        for entry in entries:
            slc = entry.get("slice") or {}
            if entry.get("name") != rate or set(slc) & _SKIP_SLICE_KEYS:
                continue
            interval = entry.get("interval") or {}
            rows.append(
                charts.ChartRow(
                    label=fmt.slice(slc),
                    value=entry.get("value"),
                    low=interval.get("low"),
                    high=interval.get("high"),
                    outcome="NEUTRAL",
                )
            )
        if len(rows) < 2:
            continue
        threshold = next(
            (
                c.get("threshold")
                for c in verdicts.get("criteria") or []
                if c.get("metric") == rate and isinstance(c.get("threshold"), int | float)
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


def curves_view(run_dir: Path, metrics: Mapping[str, Any], fmt: _Fmt) -> dict[str, Any] | None:
    """ROC and precision-recall curves of the part scores, with the operating point."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    overall = {
        e.get("name"): e.get("value") for e in metrics.get("metrics") or [] if not e.get("slice")
    }
    escape, overkill = overall.get("escape_rate"), overall.get("overkill_rate")
    precision = overall.get("precision")
    operating = None
    if escape is not None and overkill is not None:
        operating = (float(overkill), 1.0 - float(escape), float(precision or 0.0))
    parts = _part_scores(run_dir)
    roc = pr = None
    if parts is not None:
        defect, score = parts
        fpr, tpr, _ = roc_curve(defect, score, drop_intermediate=True)
        prec, rec, _ = precision_recall_curve(defect, score, drop_intermediate=True)
        roc, pr = (fpr, tpr), (rec[::-1], prec[::-1])
    if roc is None and operating is None:
        return None
    t = fmt.t
    labels = {k: str(t[f"curve_{k}"]) for k in ("roc_x", "roc_y", "roc_title", "pr_x", "pr_y")}
    labels["pr_title"] = str(t["curve_pr_title"])
    labels["operating"] = str(t["curve_operating"])
    auc = overall.get("roc_auc")
    ap = overall.get("pr_auc")
    return {
        "chart": charts.curves_data_uri(roc, pr, operating, labels),
        "has_curves": roc is not None,
        "caption": str(t["curves_caption" if roc is not None else "operating_only_caption"]).format(
            auc=_num(auc, 4) if auc is not None else fmt.na,
            ap=_num(ap, 4) if ap is not None else fmt.na,
        ),
    }


# --------------------------------------------------------------------------- latency


def latency_view(run_dir: Path, run: Mapping[str, Any], metrics: Mapping[str, Any], fmt: _Fmt):
    """Per-image latency histogram (single-stream scenario) and the percentile table."""
    t = fmt.t
    rows = []
    for entry in metrics.get("metrics") or []:
        name = str(entry.get("name", ""))
        if not name.startswith(("latency_", "throughput_")):
            continue
        scenario = (entry.get("slice") or {}).get("scenario", "")
        rows.append(
            {
                "measure": fmt.metric(name),
                "scenario": fmt.lookup("scenario", scenario) if scenario else fmt.na,
                "value": fmt.value(name, entry.get("value")),
                "n": fmt.count(entry.get("n")) if entry.get("n") is not None else fmt.na,
            }
        )
    latency = ((run.get("replay") or {}).get("latency") or {}).get("e2e") or {}
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


def energy_view(run_dir: Path, run: Mapping[str, Any], fmt: _Fmt) -> dict[str, Any]:
    """The ``energy`` block of run.json (contract of issue 8) in plain words."""
    t = fmt.t
    energy = run.get("energy") or {}
    method = energy.get("method")
    if not energy or method in (None, "off") or energy.get("energy_j") is None:
        return {"measured": None, "rows": [], "chart": None, "off": True}
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
    meter = energy.get("meter") or {}
    if meter:
        rows.append(
            (
                str(t["energy_meter"]),
                "; ".join(f"{k}: {_num(v)}" for k, v in meter.items() if not isinstance(v, dict)),
            )
        )
    if energy.get("sampling_interval_s") is not None:
        rows.append((str(t["energy_interval"]), f"{energy['sampling_interval_s']:g} s"))
    idle = energy.get("idle") or {}
    if idle.get("power_w") is not None:
        rows.append(
            (
                str(t["energy_idle"]),
                f"{idle['power_w']:.1f} W ({_num(idle.get('seconds'))} s)",
            )
        )
    window = energy.get("window") or {}
    if window:
        rows.append(
            (
                str(t["energy_window"]),
                str(t["energy_window_line"]).format(
                    seconds=_num(window.get("seconds")),
                    images=fmt.count(window.get("images")),
                    passes=window.get("passes", fmt.na),
                ),
            )
        )

    def num(key: str, unit: str, digits: int = 4) -> None:
        value = energy.get(key)
        if value is not None:
            rows.append((str(t[f"energy_{key}"]), f"{_num(value, digits)} {unit}"))

    num("energy_j", "J")
    num("energy_above_idle_j", "J")
    num("mean_power_w", "W")
    num("j_per_image", "J")
    num("wh_per_1000_inspections", "Wh")
    carbon = energy.get("carbon") or {}
    if carbon:
        rows.append(
            (
                str(t["carbon_intensity"]),
                f"{_num(carbon.get('grid_intensity_g_per_kwh'))} gCO2e/kWh "
                f"({carbon.get('source', fmt.na)})",
            )
        )
        if carbon.get("embodied_g_per_1000") is not None:
            rows.append((str(t["carbon_embodied"]), f"{_num(carbon['embodied_g_per_1000'])} gCO2e"))
        if carbon.get("gco2e_per_1000_inspections") is not None:
            rows.append(
                (str(t["carbon_total"]), f"{_num(carbon['gco2e_per_1000_inspections'])} gCO2e")
            )
    if energy.get("uncertainty"):
        rows.append((str(t["energy_uncertainty"]), str(energy["uncertainty"])))
    chart = None
    power = _read_table(run_dir / "power.parquet")
    if power is not None and {"t_s", "watts"} <= set(power.columns) and len(power) >= 2:
        chart = charts.power_data_uri(
            power["t_s"].to_numpy(dtype=float),
            power["watts"].to_numpy(dtype=float),
            str(t["power_x"]),
            str(t["power_y"]),
        )
    return {"measured": measured, "rows": rows, "chart": chart, "off": False}


# --------------------------------------------------------------------------- baseline


def baseline_view(
    metrics: Mapping[str, Any], verdicts: Mapping[str, Any], fmt: _Fmt
) -> dict[str, Any] | None:
    """Comparison with a baseline run, when the evaluation recorded one (rendered generically)."""
    baseline = verdicts.get("baseline") or metrics.get("baseline")
    rows = []
    for entry in metrics.get("metrics") or []:
        name = str(entry.get("name", ""))
        if "baseline" not in name and "mcnemar" not in name:
            continue
        interval = entry.get("interval") or {}
        rows.append(
            {
                "name": fmt.metric(name),
                "slice": fmt.slice(entry.get("slice")),
                "value": _fmt_any(fmt, name, entry.get("value")),
                "interval": _interval_text(fmt, name, interval),
            }
        )
    if not baseline and not rows:
        return None
    info = _flatten(baseline) if isinstance(baseline, Mapping) else []
    return {"info": info, "rows": rows}


def _fmt_any(fmt: _Fmt, name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fmt.na if value is None else str(value)
    return fmt.value(name, float(value))


def _interval_text(fmt: _Fmt, name: str, interval: Mapping[str, Any]) -> str:
    low, high = interval.get("low"), interval.get("high")
    if low is None and high is None:
        return fmt.na
    return f"{_fmt_any(fmt, name, low)} – {_fmt_any(fmt, name, high)}"


# --------------------------------------------------------------------------- appendices


def metric_table(metrics: Mapping[str, Any], fmt: _Fmt) -> list[dict[str, str]]:
    """Every entry of metrics.json, in file order."""
    out = []
    for entry in metrics.get("metrics") or []:
        name = str(entry.get("name", ""))
        interval = entry.get("interval") or {}
        method = interval.get("method")
        extra = entry.get("method")  # energy entries say measured / modelled
        out.append(
            {
                "name": fmt.metric(name),
                "slice": fmt.slice(entry.get("slice")),
                "unit": fmt.lookup("unit", entry.get("unit") or "") or fmt.na,
                "value": _fmt_any(fmt, name, entry.get("value")),
                "kn": fmt.kn(entry.get("k"), entry.get("n")),
                "interval": _interval_text(fmt, name, interval),
                "method": fmt.lookup("interval_short", method) if method else str(extra or ""),
            }
        )
    return out


def _flatten(value: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    if isinstance(value, Mapping) and depth < 4:
        out: list[tuple[str, str]] = []
        for key, item in value.items():
            out.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key), depth + 1))
        return out
    if isinstance(value, list):
        if all(not isinstance(v, Mapping | list) for v in value):
            return [(prefix, ", ".join(_num(v) for v in value))]
        return [(prefix, json.dumps(value, ensure_ascii=False, sort_keys=True)[:300])]
    return [(prefix, _num(value, 6))]


def environment_rows(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """tool, host and replay settings of run.json, flattened to ``a.b.c: value``."""
    rows: list[tuple[str, str]] = []
    for key in ("run_id", "started_at", "finished_at"):
        if key in run:
            rows.append((key, str(run[key])))
    for key in ("tool", "host", "replay"):
        rows.extend(_flatten(run.get(key) or {}, key))
    return rows


def glossary(strings: Mapping[str, Any]) -> list[tuple[str, str]]:
    entries: Iterable[Any] = strings.get("glossary") or []
    return [(str(e["term"]), str(e["text"])) for e in entries]
