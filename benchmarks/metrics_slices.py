"""Slice metrics from counts vs Fairlearn's MetricFrame, measured in one run.

1M parts x 144 slices (line x shift x camera x lighting x supplier = 3 x 2 x 4 x 2 x 3) x 3
metrics (escape, overkill and detection rate). Both compute every per-slice value, the
between-groups difference and ratio of each metric; the script prints both timings, the ratio
(goal >= 50x) and the largest absolute difference between the two sets of values (goal: 0).
Usage:

    python benchmarks/metrics_slices.py [--rows 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    true_positive_rate,
)

from auditkit.metrics.groups import by_group, rate_difference, rate_ratio, slice_counts

COLUMNS = {
    "line": ["L1", "L2", "L3"],
    "shift": ["day", "night"],
    "camera": ["top", "side", "front", "back"],
    "lighting": ["bright", "dim"],
    "supplier": ["S1", "S2", "S3"],
}
RATES = {
    "escape_rate": false_negative_rate,
    "overkill_rate": false_positive_rate,
    "detection_rate": true_positive_rate,
}


def make_units(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        c: np.asarray(v, dtype=object)[rng.integers(0, len(v), rows)] for c, v in COLUMNS.items()
    }
    d = rng.random(rows) < 0.3
    data["is_defect"] = d
    data["is_reject"] = np.where(d, rng.random(rows) > 0.05, rng.random(rows) < 0.03)
    return pd.DataFrame(data)


def ours(units: pd.DataFrame) -> tuple[dict[str, pd.Series], dict[str, tuple[float, float]]]:
    counts = slice_counts(units, list(COLUMNS))
    values = {r: by_group(counts, r)["value"] for r in RATES}
    spreads: dict[str, tuple[float, float]] = {}
    for r in RATES:
        diff, ratio = rate_difference(counts, r).value, rate_ratio(counts, r).value
        assert diff is not None and ratio is not None
        spreads[r] = (diff, ratio)
    return values, spreads


def fairlearn(units: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    mf = MetricFrame(
        metrics=RATES,
        y_true=units["is_defect"],
        y_pred=units["is_reject"],
        sensitive_features=units[list(COLUMNS)],
    )
    return mf.by_group, mf.difference(method="between_groups"), mf.ratio(method="between_groups")


def run(rows: int, seed: int) -> dict[str, float]:
    """Time both on the same data; the seconds, the speed-up and the largest value difference."""
    units = make_units(rows, seed)
    n_groups = int(np.prod([len(v) for v in COLUMNS.values()]))
    print(f"{rows:,} rows x {n_groups} slices x {len(RATES)} metrics")

    started = time.perf_counter()
    values, spreads = ours(units)
    t_ours = time.perf_counter() - started
    started = time.perf_counter()
    fl_by_group, fl_diff, fl_ratio = fairlearn(units)
    t_fl = time.perf_counter() - started

    max_abs = 0.0
    for r in RATES:
        theirs = fl_by_group[r].reindex(values[r].index).to_numpy(dtype=float)
        max_abs = max(max_abs, float(np.nanmax(np.abs(values[r].to_numpy() - theirs))))
        max_abs = max(max_abs, abs(spreads[r][0] - float(fl_diff[r])))
        max_abs = max(max_abs, abs(spreads[r][1] - float(fl_ratio[r])))
    print(f"auditkit (counts):     {t_ours:8.3f} s")
    print(f"fairlearn MetricFrame: {t_fl:8.3f} s")
    print(f"speed-up:              {t_fl / t_ours:8.1f}x (goal >= 50x)")
    print(f"max |difference| of per-slice values, differences and ratios: {max_abs:.3g}")
    print("values identical" if max_abs == 0.0 else "VALUES DIFFER")
    return {"ours_s": t_ours, "peer_s": t_fl, "speedup": t_fl / t_ours, "max_abs": max_abs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.rows, args.seed)


if __name__ == "__main__":
    main()
