"""Candidate vs baseline model on the same parts: paired escape and overkill differences.

When a new model version is to replace the one on the line, both are replayed on the *same*
labelled parts. Each part then has two decisions, and the comparison is paired:

====  ====================================================  ===================================
b     the event (escape / overkill) under the candidate only  new escapes, new overkill
c     the event under the baseline only                       escapes fixed, overkill removed
====  ====================================================  ===================================

over ``n`` parts of the rate's denominator (defective parts for escape, good parts for
overkill). The difference ``candidate rate - baseline rate = (b - c) / n`` gets the exact
McNemar p-value (:func:`~auditkit.metrics.stats.mcnemar_exact`) and Tango's paired score
interval (:func:`~auditkit.metrics.stats.paired_difference_interval`). Parts concordant under
both models carry no information about the difference beyond ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from auditkit.errors import DataError
from auditkit.metrics.classification import Rate
from auditkit.metrics.stats import mcnemar_exact, paired_difference_interval, tail_probability

__all__ = ["CHANGES", "BaselineComparison", "PairedDifference", "compare_to_baseline"]

#: the kinds of decision change, in the order of :attr:`BaselineComparison.changed`
CHANGES: tuple[str, ...] = ("new escape", "escape fixed", "new overkill", "overkill fixed")


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Candidate minus baseline of one rate on the same parts.

    ``difference = candidate.value - baseline.value = (b - c) / n`` (None when ``n == 0``);
    ``p_value``: exact two-sided McNemar on ``(b, c)`` (1 when ``b + c == 0``); ``low`` /
    ``high``: Tango's score interval at ``level`` / ``sided`` (None when ``n == 0``).
    """

    name: str
    candidate: Rate
    baseline: Rate
    difference: float | None
    b: int
    c: int
    n: int
    p_value: float
    low: float | None
    high: float | None
    level: float
    sided: str
    test: str = "mcnemar_exact"
    interval_method: str = "tango"


@dataclass(frozen=True, slots=True)
class BaselineComparison:
    """Result of :func:`compare_to_baseline`.

    ``changed``: one row per part whose decision changed, sorted by ``part_id``, with columns
    ``part_id``, ``is_defect``, ``baseline_reject``, ``candidate_reject`` and ``change`` (one
    of :data:`CHANGES`), plus ``defect_class`` when the candidate table has it.
    ``n_parts``: parts compared (scored in both runs); ``parts_unscored``: parts left out
    because either run could not score them.
    """

    escape: PairedDifference
    overkill: PairedDifference
    changed: pd.DataFrame
    n_parts: int
    parts_unscored: int


def _check(table: pd.DataFrame, which: str) -> pd.DataFrame:
    for col in ("part_id", "is_defect", "is_reject"):
        if col not in table.columns:
            raise DataError(f"{which} part table has no {col!r} column")
    if table["part_id"].isna().any():
        raise DataError(f"{which} part table: part_id is missing for some parts")
    if table["part_id"].duplicated().any():
        raise DataError(f"{which} part table: part_id is not unique")
    return table.set_index("part_id", drop=False)


def _paired(
    name: str,
    cand_event: npt.NDArray[np.bool_],
    base_event: npt.NDArray[np.bool_],
    level: float,
    sided: str,
) -> PairedDifference:
    n = int(cand_event.size)
    b = int(np.sum(cand_event & ~base_event))
    c = int(np.sum(~cand_event & base_event))
    k_cand, k_base = int(cand_event.sum()), int(base_event.sum())
    low = high = diff = None
    if n:
        diff = (b - c) / n
        low, high = paired_difference_interval(b, c, n, level=level, sided=sided)
    return PairedDifference(
        name=name,
        candidate=Rate(k_cand, n),
        baseline=Rate(k_base, n),
        difference=diff,
        b=b,
        c=c,
        n=n,
        p_value=mcnemar_exact(b, c),
        low=low,
        high=high,
        level=float(level),
        sided=sided,
    )


def compare_to_baseline(
    candidate: pd.DataFrame,
    baseline: pd.DataFrame,
    *,
    level: float = 0.95,
    sided: str = "two",
) -> BaselineComparison:
    """Paired escape and overkill differences of a candidate model against a baseline.

    Parameters
    ----------
    candidate, baseline : DataFrame
        Part tables of the two runs (:func:`~auditkit.metrics.classification.
        parts_from_images`): ``part_id`` (unique), ``is_defect``, ``is_reject`` (nullable:
        ``<NA>`` for an unscored part).
    level, sided
        Of the paired intervals (default: two-sided 95 %).

    Raises :class:`~auditkit.errors.DataError` when the two tables do not hold the same parts
    (a paired comparison on different parts would be meaningless) or disagree on which parts
    are defective.
    """
    tail_probability(level, sided)
    cand = _check(candidate, "candidate")
    base = _check(baseline, "baseline")
    only_c = cand.index.difference(base.index)
    only_b = base.index.difference(cand.index)
    if len(only_c) or len(only_b):
        examples = [str(p) for p in [*only_c[:3], *only_b[:3]]]
        raise DataError(
            f"candidate and baseline hold different parts: {len(only_c)} only in the candidate, "
            f"{len(only_b)} only in the baseline (e.g. {', '.join(examples)}); a paired "
            "comparison needs the same parts"
        )
    base = base.reindex(cand.index)
    defect = cand["is_defect"].to_numpy(dtype=bool)
    if (defect != base["is_defect"].to_numpy(dtype=bool)).any():
        raise DataError("candidate and baseline disagree on is_defect for some parts")
    c_rej = cand["is_reject"].astype("boolean")
    b_rej = base["is_reject"].astype("boolean")
    scored = ~(c_rej.isna().to_numpy() | b_rej.isna().to_numpy())
    c_r = c_rej.to_numpy(dtype=bool, na_value=False)
    b_r = b_rej.to_numpy(dtype=bool, na_value=False)

    d = defect & scored
    g = ~defect & scored
    escape = _paired("escape_rate", ~c_r[d], ~b_r[d], level, sided)
    overkill = _paired("overkill_rate", c_r[g], b_r[g], level, sided)

    changed_mask = scored & (c_r != b_r)
    kind = np.where(
        defect, np.where(b_r, CHANGES[0], CHANGES[1]), np.where(c_r, CHANGES[2], CHANGES[3])
    )
    cols: dict[str, object] = {
        "part_id": cand["part_id"].to_numpy()[changed_mask],
        "is_defect": defect[changed_mask],
        "baseline_reject": b_r[changed_mask],
        "candidate_reject": c_r[changed_mask],
        "change": kind[changed_mask],
    }
    if "defect_class" in cand.columns:
        cols["defect_class"] = cand["defect_class"].to_numpy()[changed_mask]
    changed = pd.DataFrame(cols).sort_values("part_id", kind="stable").reset_index(drop=True)
    return BaselineComparison(
        escape=escape,
        overkill=overkill,
        changed=changed,
        n_parts=int(scored.sum()),
        parts_unscored=int((~scored).sum()),
    )
