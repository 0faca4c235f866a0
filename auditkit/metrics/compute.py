"""``metrics.json`` (``auditkit.metrics/1``, docs/run-format.md) from the run's tables.

:func:`compute_metrics` is pure: DataFrames and arrays in, a JSON-ready dict out (plain Python
ints, floats, strings, None; deterministic order; floats not rounded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from auditkit.errors import DataError
from auditkit.metrics.classification import (
    PART_COLUMNS,
    RATE_DEFINITIONS,
    balanced_accuracy,
    class_confusion_matrix,
    cohen_kappa,
    confusion_counts,
    escaped_ppm,
    f2_score,
    image_table,
    metadata_columns,
    parts_from_image_table,
    pr_auc,
    roc_auc,
    threshold_for_escape,
)
from auditkit.metrics.efficiency import LATENCY_QUANTILES, latency_summary
from auditkit.metrics.groups import rate_difference, rate_ratio, slice_counts
from auditkit.metrics.stats import (
    INTERVAL_METHODS,
    binomial_interval,
    binomial_intervals,
    tail_probability,
)

if TYPE_CHECKING:
    from auditkit.metrics.tasks import Bootstrap

__all__ = [
    "METRICS_FORMAT",
    "OVERALL_RATES",
    "SLICE_RATES",
    "compute_metrics",
    "operating_point_entries",
]

METRICS_FORMAT = "auditkit.metrics/1"

#: rates reported for the whole data set, in this order (then ``f1``)
OVERALL_RATES: tuple[str, ...] = (
    "escape_rate",
    "overkill_rate",
    "detection_rate",
    "precision",
    "false_call_share",
    "accuracy",
)
#: rates reported per metadata slice, in this order
SLICE_RATES: tuple[str, ...] = ("escape_rate", "overkill_rate", "detection_rate", "accuracy")
SPREAD_RATES: tuple[str, ...] = ("escape_rate", "overkill_rate")


class _RateRows:
    """Rate entries collected first, then given intervals in one vectorised call."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, dict[str, str], str]] = []  # position, name, slice, unit
        self.k: list[int] = []
        self.n: list[int] = []
        self.entries: list[dict[str, Any]] = []

    def add(self, name: str, slice_: dict[str, str], unit: str, k: int, n: int) -> None:
        self.rows.append((len(self.entries), name, slice_, unit))
        self.k.append(int(k))
        self.n.append(int(n))
        self.entries.append({})  # placeholder, filled by finish()

    def add_other(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)

    def add_counts(self, names: Sequence[str], counts: pd.DataFrame, unit: str) -> None:
        """One entry per rate name (outer) and slice (inner) of :func:`slice_counts` output."""
        cols = list(counts.index.names)
        keys = counts.index.to_list()
        for name in names:
            num, den = RATE_DEFINITIONS[name]
            k = counts[list(num)].sum(axis=1).to_numpy()
            n = counts[list(den)].sum(axis=1).to_numpy()
            for key, ki, ni in zip(keys, k, n, strict=True):
                values = key if isinstance(key, tuple) else (key,)
                slice_ = {str(c): str(v) for c, v in zip(cols, values, strict=True)}
                self.add(name, slice_, unit, int(ki), int(ni))

    def finish(self, level: float, method: str, sided: str) -> list[dict[str, Any]]:
        k = np.asarray(self.k, dtype=np.int64)
        n = np.asarray(self.n, dtype=np.int64)
        low, high = binomial_intervals(k, n, level=level, method=method, sided=sided)
        for (pos, name, slice_, unit), ki, ni, lo, hi in zip(
            self.rows, k.tolist(), n.tolist(), low.tolist(), high.tolist(), strict=True
        ):
            interval = (
                {"low": lo, "high": hi, "method": method, "level": level, "sided": sided}
                if ni
                else None
            )
            self.entries[pos] = {
                "name": name,
                "slice": slice_,
                "unit": unit,
                "value": ki / ni if ni else None,
                "k": ki,
                "n": ni,
                "interval": interval,
            }
        return self.entries


def _slice_specs(
    slice_columns: Sequence[str | Sequence[str]] | None, samples: pd.DataFrame
) -> list[list[str]]:
    if slice_columns is None:
        return [[c] for c in metadata_columns(samples)]
    specs: list[list[str]] = []
    for spec in slice_columns:
        cols = [spec] if isinstance(spec, str) else list(spec)
        if not cols:
            raise ValueError("an empty slice specification")
        missing = [c for c in cols if c not in samples.columns]
        if missing:
            raise DataError(f"samples table has no column(s) {missing} to slice by")
        specs.append(cols)
    return specs


def _value_entry(name: str, value: float | None) -> dict[str, Any]:
    """An overall part-level metric that is a value without k, n or interval."""
    return {
        "name": name,
        "slice": {},
        "unit": "part",
        "value": None if value is None else float(value),
        "k": None,
        "n": None,
        "interval": None,
    }


def _spread_entries(
    counts: pd.DataFrame, cols: Sequence[str], unit: str, level: float, sided: str
) -> list[dict[str, Any]]:
    """``<rate>_difference`` (with the Newcombe interval of the extreme pair) and
    ``<rate>_ratio`` of escape and overkill across the slices of one slicing; slice
    ``{"by": [columns]}`` (Fairlearn's "between groups")."""
    entries = []
    for rate in SPREAD_RATES:
        # a two-sided Newcombe interval at `level`, or two one-sided bounds at `level`
        difference = rate_difference(counts, rate, level=level, sided=sided)
        ratio = rate_ratio(counts, rate)
        for spread in (difference, ratio):
            interval = None
            if spread.low is not None and spread.high is not None:
                interval = {
                    "low": spread.low,
                    "high": spread.high,
                    "method": spread.method,
                    "level": level,
                    "sided": sided,
                }
            entries.append(
                {
                    "name": spread.name,
                    "slice": {"by": list(cols)},
                    "unit": unit,
                    "value": spread.value,
                    "k": None,
                    "n": None,
                    "interval": interval,
                    "largest": spread.largest,
                    "smallest": spread.smallest,
                }
            )
    return entries


def _ppm_entry(
    overall: Any, prevalence: tuple[float, str], level: float, method: str, sided: str
) -> dict[str, Any]:
    """``escaped_ppm`` at the stated prevalence; its bounds hold together at ``level`` as the
    run's other bounds do (``sided="two"``: each at ``(1 + level) / 2``)."""
    pi, source = prevalence
    each = level if sided == "one" else (1.0 + level) / 2.0
    ppm = escaped_ppm(
        overall.rate("escape_rate"), overall.rate("overkill_rate"), pi, level=each, method=method
    )
    interval = None
    if ppm.low is not None and ppm.high is not None:
        interval = {
            "low": ppm.low,
            "high": ppm.high,
            "method": f"{method}_bonferroni",
            "level": level,
            "sided": sided,
        }
    return {
        "name": "escaped_ppm",
        "slice": {},
        "unit": "part",
        "value": ppm.value,
        "k": None,
        "n": None,
        "interval": interval,
        "prevalence": float(pi),
        "prevalence_source": source,
    }


def operating_point_entries(
    is_defect: npt.ArrayLike,
    score: npt.ArrayLike,
    target: float,
    *,
    slices: dict[str, npt.NDArray[Any]] | None = None,
    level: float = 0.95,
    method: str = "clopper_pearson",
    sided: str = "one",
) -> list[dict[str, Any]]:
    """The certified zero-escape operating point for an escape ``target``, overall and per
    slice: :func:`auditkit.metrics.classification.threshold_for_escape`, the highest threshold
    (reject when ``score >= threshold``) whose one-sided upper bound on the escape rate (at
    ``level``; ``sided="two"``: the upper end of the two-sided interval, one-sided at ``(1 +
    level) / 2``) is at most ``target``, and what it costs.

    Two entries per slice (slice ``{}`` then ``{column: value}`` in sorted order, unit
    ``part``):

    * ``escape_certified_threshold``: ``value`` the threshold (null when no threshold
      qualifies, e.g. too few defective parts: 0 escapes in n bound the rate at
      ``1 - (1 - level)^(1/n)``), ``target``, ``bound_level``, and ``escape`` / ``overkill``
      ``{k, n, value, low, high}`` there (exact bounds);
    * ``overkill_at_escape_target``: the overkill rate at that threshold as a rate entry
      (``k``, ``n``, exact ``interval``), with ``target`` and ``threshold``; ``value`` null and
      ``no_threshold`` true when none qualifies. A rubric criterion reads it with
      ``params: {target: T}``.
    """
    d = np.asarray(is_defect, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    bound_level = level if sided == "one" else (1.0 + level) / 2.0
    groups: list[tuple[dict[str, str], npt.NDArray[np.bool_]]] = [({}, np.ones(d.size, bool))]
    for col, values in (slices or {}).items():
        for v in sorted(set(values.tolist())):
            groups.append(({col: str(v)}, values == v))
    out: list[dict[str, Any]] = []
    for slice_, mask in groups:
        point = threshold_for_escape(d[mask], s[mask], target, level=bound_level, method=method)
        n_good = int((~d[mask]).sum())
        n_def = int(d[mask].sum())
        common = {"target": float(target), "bound_level": bound_level}
        if point is None:
            out.append(
                {
                    "name": "escape_certified_threshold",
                    "slice": slice_,
                    "unit": "part",
                    "value": None,
                    "k": None,
                    "n": n_def,
                    "interval": None,
                    **common,
                    "escape": None,
                    "overkill": None,
                }
            )
            out.append(
                {
                    "name": "overkill_at_escape_target",
                    "slice": slice_,
                    "unit": "part",
                    "value": None,
                    "k": None,
                    "n": n_good,
                    "interval": None,
                    **common,
                    "threshold": None,
                    "no_threshold": True,
                    "n_defective": n_def,
                }
            )
            continue

        def rate(k: int, n: int) -> dict[str, Any]:
            lo, hi = (
                binomial_interval(k, n, level=level, method=method, sided=sided)
                if n
                else (None, None)
            )
            return {"k": k, "n": n, "value": k / n if n else None, "low": lo, "high": hi}

        esc, ovk = point.escape, point.overkill
        ovk_rate = rate(ovk.k, ovk.n)
        out.append(
            {
                "name": "escape_certified_threshold",
                "slice": slice_,
                "unit": "part",
                "value": point.threshold,
                "k": None,
                "n": esc.n,
                "interval": None,
                **common,
                "escape": {**rate(esc.k, esc.n), "certified_upper": point.escape_upper},
                "overkill": ovk_rate,
            }
        )
        interval = None
        if ovk.n:
            interval = {
                "low": ovk_rate["low"],
                "high": ovk_rate["high"],
                "method": method,
                "level": level,
                "sided": sided,
            }
        out.append(
            {
                "name": "overkill_at_escape_target",
                "slice": slice_,
                "unit": "part",
                "value": ovk_rate["value"],
                "k": ovk.k,
                "n": ovk.n,
                "interval": interval,
                **common,
                "threshold": point.threshold,
            }
        )
    return out


def compute_metrics(
    samples: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    classes: list[str],
    positive_classes: list[str],
    good_class: str = "good",
    level: float = 0.95,
    method: str = "clopper_pearson",
    sided: str = "one",
    slice_columns: Sequence[str | Sequence[str]] | None = None,
    latency_e2e_s: npt.ArrayLike | None = None,
    throughput_ips: float | None = None,
    bootstrap: Bootstrap | None = None,
    escape_targets: Sequence[float] = (),
    prevalence: tuple[float, str] | None = None,
) -> dict[str, Any]:
    """The content of ``metrics.json`` (``auditkit.metrics/1``), everything but ``run_id``.

    Parameters
    ----------
    samples, predictions : DataFrame
        ``samples.parquet`` and ``predictions.parquet`` of the run (docs/run-format.md).
    classes, positive_classes, good_class
        From the model card: all classes in output order, the defect classes, the good class.
    level, method, sided
        Interval settings for every rate (see :mod:`auditkit.metrics.stats`).
    slice_columns
        Metadata columns to slice by; an entry that is a list of columns slices by their
        intersection. Default: every metadata column (those beyond the standard columns), each
        alone.
    latency_e2e_s
        Per-image single-stream end-to-end seconds (``e2e_s`` of the ``single-stream`` rows of
        ``timings.parquet``); no latency metrics when None.
    throughput_ips
        Offline throughput in images per second; no throughput metric when None.
    bootstrap
        When given, ``f1`` gets a cluster-bootstrap interval over the scored parts
        (:class:`auditkit.metrics.tasks.Bootstrap`), and an entry per part-level metadata
        slice (``n`` = the slice's parts) with an interval over the slice's parts.
    escape_targets
        Escape rates to certify: per target, the zero-escape operating point
        (:func:`operating_point_entries`: ``escape_certified_threshold`` and
        ``overkill_at_escape_target``, overall and per part-level metadata slice).
    prevalence
        ``(pi, source)``: production prevalence of defective parts and where it was stated
        (``cli``, ``site``, ``rubric``, ``card``); adds ``escaped_ppm`` (escape and overkill
        rates reweighted to ``pi``, :func:`auditkit.metrics.classification.escaped_ppm`).

    Metrics, in this order (all rates with ``value = k / n``, ``k``, ``n`` and an interval;
    ``value`` and ``interval`` null when ``n == 0``):

    1. overall (slice ``{}``, unit ``part``): ``escape_rate``, ``overkill_rate``,
       ``detection_rate``, ``precision``, ``false_call_share``, ``accuracy``, then ``f1``
       (value only; ``k``, ``n``, ``interval`` null);
    2. ``escape_rate`` per defect class (slice ``{"defect_class": c}``, unit ``part``): each of
       ``positive_classes`` in card order (``n = 0`` when absent), then any other defect class of
       the data (including ``"a+b"`` for parts whose images disagree), sorted;
    3. per slice specification, per rate (``escape_rate``, ``overkill_rate``,
       ``detection_rate``, ``accuracy``), per value (sorted; ``"(missing)"`` for empty values):
       unit ``part`` when every column is constant within each part, else ``image`` (image
       labels and decisions, images with status ``ok``);
    4. ``latency_p50_ms``, ``latency_p90_ms``, ``latency_p99_ms`` (slice
       ``{"scenario": "single-stream"}``, unit ``image``, ``n`` = measurements, interval from
       order statistics, method ``"order_statistic"``; a bound that does not exist for this
       ``n`` is null), and ``throughput_ips`` (slice ``{"scenario": "offline"}``).

    Parts are scored only when all their images have status ``ok``; the others are counted in
    ``counts.parts_unscored`` and excluded from every part-level rate.
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    tail_probability(level, sided)
    level = float(level)

    images, part_codes, part_ids = image_table(samples, predictions, good_class)
    specs = _slice_specs(slice_columns, samples)
    meta = metadata_columns(samples)
    parts = parts_from_image_table(images, part_codes, part_ids, good_class, meta)
    # metadata carried to the part table (constant within every part)
    part_level = {c for c in meta if c in parts.columns and c not in PART_COLUMNS}

    scored = parts[parts["scored"].to_numpy()]
    p_defect = scored["is_defect"].to_numpy(dtype=bool)
    p_reject = scored["is_reject"].to_numpy(dtype=bool)
    ok_mask = images["_ok"].to_numpy(dtype=bool)

    rows = _RateRows()
    # 1. overall, part level
    overall = confusion_counts(p_defect, p_reject)
    tp, fp, tn, fn = overall
    for name in OVERALL_RATES:
        rate = overall.rate(name)
        rows.add(name, {}, "part", rate.k, rate.n)
    f1_den = 2 * tp + fp + fn
    f1_interval = None
    if bootstrap is not None and len(scored):
        from auditkit.metrics.bootstrap import weighted_f1

        resampled = weighted_f1(p_defect, p_reject, bootstrap.weights(scored["part_id"].tolist()))
        f1_interval = bootstrap.interval(resampled)
    rows.add_other(
        {
            "name": "f1",
            "slice": {},
            "unit": "part",
            "value": 2 * tp / f1_den if f1_den else None,
            "k": None,
            "n": None,
            "interval": f1_interval,
        }
    )
    if bootstrap is not None:
        # F1 per part-level metadata slice, with a bootstrap over the slice's parts
        from auditkit.metrics.bootstrap import weighted_f1

        for cols in specs:
            if len(cols) != 1 or cols[0] not in part_level:
                continue
            values = scored[cols[0]].astype(str).to_numpy()
            for v in sorted(set(values.tolist())):
                m = values == v
                d, r = p_defect[m], p_reject[m]
                den = int(2 * (d & r).sum() + (d ^ r).sum())
                weights = bootstrap.weights(scored["part_id"][m].tolist())
                rows.add_other(
                    {
                        "name": "f1",
                        "slice": {cols[0]: str(v)},
                        "unit": "part",
                        "value": 2 * int((d & r).sum()) / den if den else None,
                        "k": None,
                        "n": int(m.sum()),
                        "interval": bootstrap.interval(weighted_f1(d, r, weights)),
                    }
                )
    if prevalence is not None:
        rows.add_other(_ppm_entry(overall, prevalence, level, method, sided))

    for name, value in (
        ("f2", f2_score(p_defect, p_reject)),
        ("balanced_accuracy", balanced_accuracy(p_defect, p_reject)),
        ("kappa", cohen_kappa(p_defect, p_reject)),
    ):
        rows.add_other(_value_entry(name, value))
    if "score" in images.columns:
        # threshold-free: a part's defect score is the highest score of its images
        image_score = images["score"].to_numpy(dtype=float)
        part_score = np.full(len(parts), -np.inf)
        np.maximum.at(part_score, part_codes[ok_mask], image_score[ok_mask])
        scored_score = part_score[parts["scored"].to_numpy(dtype=bool)]
        rows.add_other(_value_entry("roc_auc", roc_auc(p_defect, scored_score)))
        rows.add_other(_value_entry("pr_auc", pr_auc(p_defect, scored_score)))
        slicings = [cols[0] for cols in specs if len(cols) == 1 and cols[0] in part_level]
        for target in dict.fromkeys(float(t) for t in escape_targets):
            for entry in operating_point_entries(
                p_defect,
                scored_score,
                target,
                slices={c: scored[c].astype(str).to_numpy() for c in slicings},
                level=level,
                method=method,
                sided=sided,
            ):
                rows.add_other(entry)

    # 2. escape rate per defect class, part level
    defective = scored[p_defect]
    by_class = slice_counts(
        defective,
        "defect_class",
        is_defect=np.ones(len(defective), dtype=bool),
        is_reject=defective["is_reject"].to_numpy(dtype=bool),
    )
    present = [str(c) for c in by_class.index]
    order = list(dict.fromkeys(positive_classes)) + sorted(
        c for c in present if c not in positive_classes
    )
    by_class = by_class.reindex(pd.Index(order, name="defect_class"), fill_value=0)
    rows.add_counts(["escape_rate"], by_class, "part")

    # 3. metadata slices, then the spread between each slicing's slices
    spreads: list[dict[str, Any]] = []
    for cols in specs:
        if all(c in part_level for c in cols):
            counts = slice_counts(scored, cols, is_defect=p_defect, is_reject=p_reject)
            unit = "part"
        else:
            counts = slice_counts(images.loc[ok_mask, [*cols, "is_defect", "is_reject"]], cols)
            unit = "image"
        rows.add_counts(SLICE_RATES, counts, unit)
        spreads.extend(_spread_entries(counts, cols, unit, level, sided))

    for entry in spreads:
        rows.add_other(entry)

    # 4. efficiency
    if latency_e2e_s is not None:
        # one-sided bounds at `level`; for sided="two" each at (1 + level) / 2
        bound_level = level if sided == "one" else (1.0 + level) / 2.0
        lat = latency_summary(latency_e2e_s, level=bound_level)
        for q in LATENCY_QUANTILES:
            rows.add_other(
                {
                    "name": f"latency_p{q}_ms",
                    "slice": {"scenario": "single-stream"},
                    "unit": "image",
                    "value": lat[f"p{q}_ms"],
                    "k": None,
                    "n": lat["n"],
                    "interval": {
                        "low": lat[f"p{q}_low_ms"],
                        "high": lat[f"p{q}_high_ms"],
                        "method": "order_statistic",
                        "level": level,
                        "sided": sided,
                    },
                }
            )
    if throughput_ips is not None:
        rows.add_other(
            {
                "name": "throughput_ips",
                "slice": {"scenario": "offline"},
                "unit": "image",
                "value": float(throughput_ips),
                "k": None,
                "n": None,
                "interval": None,
            }
        )
    metrics = rows.finish(level, method, sided)

    # counts and confusion matrices
    status = images["status"]
    n_scored = len(scored)
    counts_out = {
        "images": len(images),
        "images_ok": int((status == "ok").sum()),
        "images_unreadable": int((status == "unreadable").sum()),
        "images_error": int((status == "error").sum()),
        "parts": len(parts),
        "parts_scored": n_scored,
        "parts_unscored": len(parts) - n_scored,
    }
    class_cm: dict[str, Any] | None = None
    if "pred_label" in images.columns:
        y_true = images["label"][ok_mask]
        y_pred = images["pred_label"][ok_mask]
        seen = {str(v) for v in pd.unique(y_true)} | {str(v) for v in pd.unique(y_pred)}
        extra = sorted(seen - set(classes))
        labels = [*dict.fromkeys(classes), *extra]  # nothing left out of the matrix
        matrix = class_confusion_matrix(y_true, y_pred, labels)
        class_cm = {"unit": "image", "labels": labels, "matrix": matrix.tolist()}

    return {
        "format": METRICS_FORMAT,
        "unit": "part",
        "confidence_level": level,
        "interval_method": method,
        "sided": sided,
        "positive_classes": list(positive_classes),
        "counts": counts_out,
        "metrics": metrics,
        "confusion_matrix": {
            "unit": "part",
            "labels": [good_class, "defect"],
            "matrix": [[tn, fp], [fn, tp]],
        },
        "class_confusion_matrix": class_cm,
    }
