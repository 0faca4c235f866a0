"""The baseline gate: a candidate run against a baseline (production) run on the same parts.

:func:`compare_runs` reads both run directories, refuses a baseline replayed on other images
(:class:`~auditkit.errors.DataError`, exit 5), and returns the paired counts that
``escape_rate_change`` / ``overkill_rate_change`` criteria judge, with the exact McNemar
p-value, Tango's paired interval and the parts whose decision changed
(:func:`auditkit.metrics.comparison.compare_to_baseline`). The result is the ``baseline`` block
of ``verdicts.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from auditkit.errors import DataError
from auditkit.metrics.classification import parts_from_images
from auditkit.metrics.comparison import PairedDifference, compare_to_baseline
from auditkit.models.card import ModelCard
from auditkit.run import RUN_FORMAT, RunDir

#: changed decisions listed in verdicts.json at most (the count is always complete)
MAX_CHANGED_LISTED = 1000


def _load(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    run = RunDir(run_dir)
    run.require_replay()
    info = run.read_json(run.run_json, RUN_FORMAT)
    return info, run.read_table(run.samples), run.read_table(run.predictions)


def _same_images(candidate: pd.DataFrame, baseline: pd.DataFrame) -> None:
    cols = ["sample_id", "part_id", "sha256", "label"]
    a = candidate[cols].astype(str).sort_values("sample_id").reset_index(drop=True)
    b = baseline[cols].astype(str).sort_values("sample_id").reset_index(drop=True)
    if len(a) != len(b) or not a.equals(b):
        only = set(a["sample_id"]) ^ set(b["sample_id"])
        detail = (
            f"{len(only)} sample(s) in only one run"
            if only
            else "the same sample ids with other image files, parts or labels"
        )
        raise DataError(
            f"the baseline run was replayed on different samples ({detail}); a paired "
            "comparison needs the same labelled images"
        )


def _pair(d: PairedDifference) -> dict[str, Any]:
    return {
        "b": d.b,
        "c": d.c,
        "n": d.n,
        "candidate_k": d.candidate.k,
        "baseline_k": d.baseline.k,
        "difference": d.difference,
        "p_value_mcnemar": d.p_value,
        "interval": {
            "low": d.low,
            "high": d.high,
            "method": d.interval_method,
            "level": d.level,
            "sided": d.sided,
        },
    }


def compare_runs(
    candidate_dir: Path, baseline_dir: Path, *, level: float = 0.95, sided: str = "one"
) -> dict[str, Any]:
    """Paired escape and overkill counts of the candidate run against the baseline run."""
    cand_info, cand_samples, cand_pred = _load(candidate_dir)
    base_info, base_samples, base_pred = _load(baseline_dir)
    _same_images(cand_samples, base_samples)
    cand_card = ModelCard.model_validate(cand_info["model"]["card"])
    base_card = ModelCard.model_validate(base_info["model"]["card"])
    cand = parts_from_images(cand_samples, cand_pred, good_class=cand_card.good_class)
    base = parts_from_images(base_samples, base_pred, good_class=base_card.good_class)
    result = compare_to_baseline(cand, base, level=level, sided=sided)
    changed = result.changed
    listed = changed.head(MAX_CHANGED_LISTED)
    return {
        "run_id": base_info["run_id"],
        "model_sha256": base_info["model"]["sha256"],
        "model": f"{base_card.name} {base_card.version}",
        "n_parts": result.n_parts,
        "parts_unscored": result.parts_unscored,
        "escape_rate": _pair(result.escape),
        "overkill_rate": _pair(result.overkill),
        "changed_decisions": {
            "total": len(changed),
            "by_change": {str(k): int(v) for k, v in changed["change"].value_counts().items()},
            "listed": [
                {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                for row in listed.to_dict(orient="records")
            ],
        },
    }
