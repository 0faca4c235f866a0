"""Runtime parity: do the replayed scores equal the vendor's own outputs for the same images?

A vendor (or the line's own logger) can hand over the scores its deployed runtime produced for
some images. If the audit's replay of the same file gives other scores, the audit is not
testing what runs on the line (another runtime, execution provider, precision or preprocessing),
so the difference is recorded in ``run.json`` (``replay.runtime_parity``) and printed in the
report.

The reference table (CSV or Parquet) has ``sample_id`` (or ``path``, relative to the data root)
and ``score`` (the defect score) and/or ``score__<class>`` columns, as in ``predictions.parquet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.errors import DataError, first_line

_KEYS = ("sample_id", "path")


def _read_reference(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"reference outputs not found: {path}") from None
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise DataError(f"cannot read reference outputs {path}: {first_line(exc)}") from None


def compare_reference_outputs(
    reference_path: Path,
    samples: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    operating_threshold: float,
) -> dict[str, Any]:
    """Compare a vendor's reference outputs with the replayed predictions.

    Returns ``n_reference`` (rows given), ``n_compared`` (rows whose image was scored in this
    replay), ``n_not_scored`` (given, but unreadable or unknown here: listed, never dropped
    silently), ``max_abs_difference`` per compared column, and the decision agreement: the
    reference decision ``score >= operating_threshold`` against the replayed ``is_reject``
    (``decisions_agree`` of ``n_compared``).
    """
    reference = _read_reference(reference_path)
    key = next((k for k in _KEYS if k in reference.columns), None)
    if key is None:
        raise DataError(f"reference outputs {reference_path.name} need a sample_id or path column")
    columns = [c for c in reference.columns if c == "score" or c.startswith("score__")]
    unknown = [c for c in columns if c not in predictions.columns]
    if not columns or unknown:
        wanted = ", ".join(c for c in predictions.columns if c.startswith("score"))
        raise DataError(
            f"reference outputs {reference_path.name}: no usable score column "
            f"(expected some of: {wanted})"
        )
    if reference[columns].isna().any().any():
        raise DataError(f"reference outputs {reference_path.name}: missing or NaN scores")
    ids = samples[["sample_id", "path"]].astype(str)
    reference = reference.assign(**{key: reference[key].astype(str)})
    joined = reference.merge(ids, on=key, how="left").merge(
        predictions, on="sample_id", how="left", suffixes=("_reference", "")
    )
    compared = joined[joined["is_reject"].notna()]
    result: dict[str, Any] = {
        "file": str(reference_path),
        "n_reference": len(reference),
        "n_compared": len(compared),
        "n_not_scored": len(reference) - len(compared),
        "max_abs_difference": {},
        "decisions_agree": None,
    }
    for column in columns:
        diff = np.abs(
            compared[f"{column}_reference"].to_numpy(float) - compared[column].to_numpy(float)
        )
        result["max_abs_difference"][column] = float(diff.max()) if len(diff) else None
    if "score" in columns and len(compared):
        reference_reject = compared["score_reference"].to_numpy(float) >= operating_threshold
        agree = reference_reject == compared["is_reject"].to_numpy(bool)
        result["decisions_agree"] = int(agree.sum())
    return result
