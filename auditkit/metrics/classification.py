"""Accept/reject metrics of an inspection classifier, in manufacturing words.

Positive = defect = reject. For a set of units (parts or images) with ground truth ``is_defect``
and decision ``is_reject``:

====  =========================  ==========================
TP    defective and rejected     caught defect
FN    defective and accepted     escape (miss, slip)
FP    good and rejected          overkill (false reject)
TN    good and accepted          correct accept
====  =========================  ==========================

Each rate is a :class:`Rate` ``(k, n)`` with ``value = k / n``; :data:`RATE_DEFINITIONS` is the
single table of numerators and denominators that every function here and the slice code use.

The decision unit is usually the *part*: :func:`parts_from_images` turns the image tables of a
run directory (``samples.parquet``, ``predictions.parquet``) into one row per part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import rankdata as _st_rankdata

from auditkit.errors import DataError
from auditkit.metrics.stats import binomial_interval, binomial_intervals
from auditkit.run import SAMPLE_COLUMNS as STANDARD_SAMPLE_COLUMNS

__all__ = [
    "MISSING",
    "RATE_DEFINITIONS",
    "STANDARD_SAMPLE_COLUMNS",
    "STATUSES",
    "ConfusionCounts",
    "EscapedPpm",
    "OperatingPoint",
    "PrPoints",
    "Rate",
    "RocPoints",
    "accuracy",
    "balanced_accuracy",
    "class_confusion_matrix",
    "cohen_kappa",
    "confusion_counts",
    "detection_rate",
    "escape_rate",
    "escaped_ppm",
    "f1_score",
    "f2_score",
    "false_call_share",
    "fbeta_score",
    "metadata_columns",
    "normalise_slice_values",
    "overkill_rate",
    "parts_from_images",
    "per_class_rates",
    "pr_auc",
    "pr_points",
    "precision",
    "rates_by_threshold",
    "roc_auc",
    "roc_points",
    "slice_codes",
    "threshold_for_escape",
]


#: The slice value given to empty or missing metadata: such rows are sliced, never dropped.
MISSING = "(missing)"

#: rate name -> (counts summed in the numerator k, counts summed in the denominator n)
RATE_DEFINITIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "escape_rate": (("fn",), ("tp", "fn")),
    "overkill_rate": (("fp",), ("fp", "tn")),
    "detection_rate": (("tp",), ("tp", "fn")),
    "precision": (("tp",), ("tp", "fp")),
    "false_call_share": (("fp",), ("tp", "fp")),
    "accuracy": (("tp", "tn"), ("tp", "fp", "tn", "fn")),
}


@dataclass(frozen=True, slots=True)
class Rate:
    """A binomial proportion: ``k`` events out of ``n`` trials.

    ``value`` is ``k / n``, or None when ``n == 0`` (no evidence: never reported as 0).
    """

    k: int
    n: int

    def __post_init__(self) -> None:
        if not 0 <= self.k <= self.n:
            raise ValueError(f"a rate needs 0 <= k <= n, got k={self.k}, n={self.n}")

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None


class ConfusionCounts(NamedTuple):
    """Binary confusion counts ``(tp, fp, tn, fn)`` of defect (positive) vs reject."""

    tp: int
    fp: int
    tn: int
    fn: int

    def rate(self, name: str) -> Rate:
        """The rate ``name`` (a key of :data:`RATE_DEFINITIONS`) from these counts."""
        num, den = RATE_DEFINITIONS[name]
        d = self._asdict()
        return Rate(k=int(sum(d[c] for c in num)), n=int(sum(d[c] for c in den)))


def _as_bool(x: npt.ArrayLike, name: str) -> npt.NDArray[np.bool_]:
    a = np.asarray(x)
    if a.ndim != 1:
        a = a.ravel()
    if a.dtype != np.bool_:
        if a.dtype == object or not np.all((a == 0) | (a == 1)):
            raise ValueError(f"{name} must be boolean (or 0/1)")
        a = a.astype(bool)
    return a


def confusion_counts(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> ConfusionCounts:
    """Count TP, FP, TN, FN over units with truth ``is_defect`` and decision ``is_reject``.

    ``TP = defect & reject``, ``FP = ~defect & reject``, ``TN = ~defect & ~reject``,
    ``FN = defect & ~reject``. Equal to ``sklearn.metrics.confusion_matrix(is_defect,
    is_reject, labels=[False, True]).ravel()`` reordered as ``(tp, fp, tn, fn)``.
    """
    d = _as_bool(is_defect, "is_defect")
    r = _as_bool(is_reject, "is_reject")
    if d.shape != r.shape:
        raise ValueError("is_defect and is_reject must have the same length")
    tn, fp, fn, tp = np.bincount(d.astype(np.intp) * 2 + r, minlength=4)
    return ConfusionCounts(tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn))


def escape_rate(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> Rate:
    """Escape (miss) rate: ``k = FN``, ``n = TP + FN`` (defective units). 1 - detection rate."""
    return confusion_counts(is_defect, is_reject).rate("escape_rate")


def overkill_rate(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> Rate:
    """Overkill (false reject) rate: ``k = FP``, ``n = FP + TN`` (good units)."""
    return confusion_counts(is_defect, is_reject).rate("overkill_rate")


def detection_rate(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> Rate:
    """Detection rate (recall): ``k = TP``, ``n = TP + FN`` (defective units)."""
    return confusion_counts(is_defect, is_reject).rate("detection_rate")


def precision(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> Rate:
    """Precision: ``k = TP``, ``n = TP + FP`` (rejected units)."""
    return confusion_counts(is_defect, is_reject).rate("precision")


def false_call_share(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> Rate:
    """False-call share of rejects: ``k = FP``, ``n = TP + FP`` (rejected units); 1 - precision."""
    return confusion_counts(is_defect, is_reject).rate("false_call_share")


def accuracy(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> Rate:
    """Effectiveness (accuracy): ``k = TP + TN``, ``n = TP + FP + TN + FN`` (all units)."""
    return confusion_counts(is_defect, is_reject).rate("accuracy")


def f1_score(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> float | None:
    """F1 of the defect class: ``2 TP / (2 TP + FP + FN)``.

    None when ``2 TP + FP + FN == 0`` (no defective unit and no reject), where scikit-learn
    returns 0 with a warning.
    """
    c = confusion_counts(is_defect, is_reject)
    den = 2 * c.tp + c.fp + c.fn
    return 2 * c.tp / den if den else None


def _codes_in(values: npt.ArrayLike, labels: list[str]) -> npt.NDArray[np.intp]:
    """Position of each value in ``labels`` (-1 when absent), hashing only distinct values."""
    v = values if isinstance(values, pd.Series) else np.asarray(values, dtype=object).ravel()
    codes, uniques = pd.factorize(v, use_na_sentinel=True)
    lookup = np.append(pd.Index(labels, dtype=object).get_indexer(pd.Index(uniques)), -1)
    return lookup[codes].astype(np.intp)


def class_confusion_matrix(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, labels: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Multi-class confusion matrix: ``C[i, j]`` = units of true class ``labels[i]`` predicted as
    ``labels[j]``.

    Same as ``sklearn.metrics.confusion_matrix(y_true, y_pred, labels=labels)``, including that
    units whose true or predicted class is not in ``labels`` are not counted: pass every class
    that occurs if none may be left out.
    """
    labels = list(labels)
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct")
    m = len(labels)
    t = _codes_in(y_true, labels)
    p = _codes_in(y_pred, labels)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred must have the same length")
    keep = (t >= 0) & (p >= 0)
    flat = np.bincount(t[keep] * m + p[keep], minlength=m * m)
    return flat.reshape(m, m).astype(np.int64)


# --------------------------------------------------------------------------- parts


def metadata_columns(samples: pd.DataFrame) -> list[str]:
    """The metadata columns of a samples table: every column not in
    :data:`STANDARD_SAMPLE_COLUMNS`, in table order, except ``mask`` (ground truth)."""
    return [c for c in samples.columns if c not in STANDARD_SAMPLE_COLUMNS and c != "mask"]


def slice_codes(values: pd.Series) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.object_]]:
    """Factorise metadata into slice values: ``(codes, labels)`` with ``labels[codes]`` the text
    of each row; NaN/None/empty (or blank) values become ``"(missing)"``. ``labels`` is sorted.
    """
    raw_codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
    text = [str(u) for u in uniques]
    text = [t if t.strip() != "" else MISSING for t in text]
    if (raw_codes < 0).any():
        text.append(MISSING)  # code -1 indexes the last entry
    labels = np.array(sorted(set(text)), dtype=object)
    remap = np.searchsorted(labels, np.array(text, dtype=object)).astype(np.intp)
    codes = remap[raw_codes] if len(remap) else raw_codes.astype(np.intp)
    return codes, labels


def normalise_slice_values(values: pd.Series) -> pd.Series:
    """Metadata as slice values: text, with NaN/None/empty (or blank) values as ``"(missing)"``."""
    codes, labels = slice_codes(values)
    return pd.Series(labels[codes], index=values.index, name=values.name, dtype=object)


#: image statuses of ``samples.parquet``
STATUSES: tuple[str, ...] = ("ok", "unreadable", "error")

#: columns of the part table that metadata never overwrites
PART_COLUMNS = frozenset(
    {"part_id", "n_images", "n_images_ok", "scored", "is_defect", "is_reject", "defect_class"}
)


def _same_values(a: pd.Series, b: pd.Series) -> bool:
    """Whether two columns hold the same values in the same order (cheap, vectorised)."""
    if len(a) != len(b):
        return False
    a = a.reset_index(drop=True)
    b = b.reset_index(drop=True)
    try:
        return bool((a == b).all()) and not bool(a.isna().any() or b.isna().any())
    except (TypeError, ValueError):
        return False


def _positions(haystack: pd.Series, needles: pd.Series) -> npt.NDArray[np.intp]:
    """Position in ``haystack`` (unique values) of each of ``needles``, -1 when absent."""
    try:  # Arrow's hash lookup is several times faster than pandas' on 1M strings
        found = pc.index_in(
            pa.array(needles, from_pandas=True), value_set=pa.array(haystack, from_pandas=True)
        )
        return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.intp)
    except (pa.ArrowException, TypeError, ValueError):
        return np.asarray(pd.Index(haystack).get_indexer(needles), dtype=np.intp)


def image_table(
    samples: pd.DataFrame, predictions: pd.DataFrame, good_class: str
) -> tuple[pd.DataFrame, npt.NDArray[np.intp], pd.Index]:
    """Samples joined with ``is_reject`` / ``pred_label``; checks the run-format contract.

    Returns the image table (``part_id`` = ``sample_id`` and ``is_defect`` added when missing,
    a boolean ``_ok`` for status ``ok``), the part code of each image and the sorted part ids.
    A given ``is_defect`` must equal ``label != good_class``; ``sample_id`` must be unique; every
    image with status ``ok`` must have exactly one prediction and no other image may have one.
    """
    for col in ("sample_id", "label", "status"):
        if col not in samples.columns:
            raise DataError(f"samples table has no {col!r} column")
    for col in ("sample_id", "is_reject"):
        if col not in predictions.columns:
            raise DataError(f"predictions table has no {col!r} column")
    images = samples.reset_index(drop=True)
    sid = images["sample_id"]
    if sid.isna().any():
        raise DataError("samples table: sample_id is missing for some images")
    if "part_id" not in images.columns:
        images = images.assign(part_id=sid)
    if images["part_id"].isna().any():
        raise DataError("samples table: part_id is missing for some images")
    part_codes, part_ids = pd.factorize(images["part_id"], sort=True)
    part_codes = part_codes.astype(np.intp)
    # sample_id unique: free when every part is one image named by its sample_id
    one_image_parts = len(part_ids) == len(images) and _same_values(images["part_id"], sid)
    if not one_image_parts and sid.duplicated().any():
        raise DataError("samples table: sample_id is not unique")

    status = images["status"]
    unknown = ~status.isin(STATUSES)
    if unknown.any():
        bad = sorted({str(v) for v in status[unknown].unique()})
        raise DataError(f"samples table: unknown status {bad}; expected one of {STATUSES}")
    ok = (status == "ok").to_numpy(dtype=bool)

    # row of predictions for each image, -1 where none
    pred_sid = predictions["sample_id"].reset_index(drop=True)
    ok_rows = np.flatnonzero(ok)
    row_of_image = np.full(len(images), -1, dtype=np.intp)
    if _same_values(sid.iloc[ok_rows], pred_sid):  # replay writes predictions in sample order
        row_of_image[ok_rows] = np.arange(len(ok_rows))
    else:
        pos = _positions(sid, pred_sid)
        if (pos < 0).any():
            raise DataError(
                f"predictions table: {int((pos < 0).sum())} prediction(s) for unknown sample_id"
            )
        if (np.bincount(pos, minlength=len(images)) > 1).any():
            raise DataError("predictions table: sample_id is not unique")
        row_of_image[pos] = np.arange(len(pos))
        has_pred = row_of_image >= 0
        if (has_pred & ~ok).any():
            raise DataError(
                f"predictions table: {int((has_pred & ~ok).sum())} prediction(s) for images "
                "whose status is not 'ok'"
            )
        if (ok & ~has_pred).any():
            raise DataError(
                f"predictions table: {int((ok & ~has_pred).sum())} image(s) with status 'ok' "
                "have no prediction"
            )
    reject_values = predictions["is_reject"]
    if reject_values.isna().any():
        raise DataError("predictions table: is_reject is missing for some images")
    reject = np.zeros(len(images), dtype=bool)
    reject[ok_rows] = reject_values.to_numpy(dtype=bool)[row_of_image[ok_rows]]
    new: dict[str, Any] = {"_ok": ok, "is_reject": reject}
    if "pred_label" in predictions.columns:
        new["pred_label"] = pd.array(predictions["pred_label"].array).take(
            row_of_image, allow_fill=True
        )
    if "score" in predictions.columns:
        score = np.full(len(images), np.nan)
        score[ok_rows] = predictions["score"].to_numpy(dtype=float)[row_of_image[ok_rows]]
        new["score"] = score

    if images["label"].isna().any():
        raise DataError("samples table: label is missing for some images")
    is_defect = (images["label"] != good_class).to_numpy(dtype=bool)
    if "is_defect" in images.columns:
        given = images["is_defect"]
        if given.isna().any() or (given.to_numpy(dtype=bool) != is_defect).any():
            raise DataError(f"samples table: is_defect disagrees with label != {good_class!r}")
    images = images.drop(columns=[c for c in ("is_reject", "pred_label") if c in images.columns])
    images = images.assign(is_defect=is_defect, **new)
    return images, part_codes, pd.Index(part_ids)


def parts_from_image_table(
    images: pd.DataFrame,
    codes: npt.NDArray[np.intp],
    part_ids: pd.Index,
    good_class: str,
    metadata: Sequence[str],
) -> pd.DataFrame:
    n_parts = len(part_ids)
    n_images = np.bincount(codes, minlength=n_parts)
    ok = images["_ok"].to_numpy(dtype=bool)
    defect = images["is_defect"].to_numpy(dtype=bool)
    reject = images["is_reject"].to_numpy(dtype=bool)
    n_ok = np.bincount(codes, weights=ok, minlength=n_parts).astype(np.int64)
    part_defect = np.bincount(codes, weights=defect, minlength=n_parts) > 0
    part_reject = np.bincount(codes, weights=reject & ok, minlength=n_parts) > 0
    scored = n_ok == n_images

    # defect class: distinct defect labels of the part's defective images, sorted, "+"-joined.
    # Encoded per part as a bit set over the sorted defect labels, so that the joined text is
    # built once per distinct combination, not once per part.
    lab_codes, lab_names = pd.factorize(images["label"][defect], sort=True)
    n_lab = len(lab_names)
    class_code = np.zeros(n_parts, dtype=np.int64)  # 0 = good
    if n_lab:
        bits = np.zeros(n_parts, dtype=np.int64)  # 0 = no defect label
        if n_lab <= 62:
            np.bitwise_or.at(bits, codes[defect], np.left_shift(1, lab_codes.astype(np.int64)))
        else:  # very many defect classes: one key per distinct combination, via a groupby
            combos = (
                pd.DataFrame({"c": codes[defect], "l": lab_codes})
                .drop_duplicates()
                .sort_values(["c", "l"])
                .groupby("c")["l"]
                .agg(lambda ls: "+".join(str(lab_names[i]) for i in ls))
            )
            keys, uniq_combo = pd.factorize(combos, sort=True)
            bits[combos.index.to_numpy()] = keys + 1
        uniq_bits, inverse = np.unique(bits, return_inverse=True)
        names = []
        for b in uniq_bits.tolist():
            if b == 0:
                names.append(good_class)
            elif n_lab <= 62:
                names.append("+".join(str(lab_names[i]) for i in range(n_lab) if b >> i & 1))
            else:
                names.append(str(uniq_combo[b - 1]))
        class_names = pd.Index(names, dtype=object)
        class_code = inverse.ravel()
    else:
        class_names = pd.Index([good_class], dtype=object)
    defect_class = pd.Series(class_names.take(class_code), dtype="str")

    is_reject = pd.array(part_reject, dtype="boolean")
    is_reject[~scored] = pd.NA
    table: dict[str, object] = {
        "part_id": part_ids,
        "n_images": n_images.astype(np.int64),
        "n_images_ok": n_ok,
        "scored": scored,
        "is_defect": part_defect,
        "is_reject": is_reject,
        "defect_class": defect_class.array,
    }

    if metadata:
        all_singletons = n_parts == len(images)
        if all_singletons:
            first = np.empty(n_parts, dtype=np.intp)
            first[codes] = np.arange(len(codes))
        else:
            order = np.argsort(codes, kind="stable")
            starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
            first = order[starts]  # first image (table order) of each part
        for col in metadata:
            if col in PART_COLUMNS:
                continue
            vcodes, vlabels = slice_codes(images[col])
            if not all_singletons:
                sorted_codes = vcodes[order]
                lo = np.minimum.reduceat(sorted_codes, starts)
                hi = np.maximum.reduceat(sorted_codes, starts)
                if (lo != hi).any():
                    continue  # varies within a part: sliced at the image level
            table[col] = pd.array(vlabels, dtype="str").take(vcodes[first])
    return pd.DataFrame(table)


def parts_from_images(
    samples: pd.DataFrame, predictions: pd.DataFrame, *, good_class: str = "good"
) -> pd.DataFrame:
    """Aggregate images to the decision unit, the *part* (one row per ``part_id``, sorted).

    Columns:

    * ``part_id``; ``n_images``; ``n_images_ok`` (images with status ``ok``);
    * ``scored``: every image of the part has status ``ok``. Unscored parts stay in the table
      and must be counted (``counts.parts_unscored``), never pooled into rates;
    * ``is_defect``: any image of the part is labelled defective;
    * ``is_reject`` (nullable boolean): any image of the part is rejected; ``<NA>`` for unscored
      parts;
    * ``defect_class``: the part's defect label, or the sorted distinct defect labels joined with
      ``"+"`` when its images disagree; ``good_class`` for good parts;
    * every metadata column that is constant within every part, as slice values (text; empty
      or NaN values are ``"(missing)"``). Columns that vary within a part (``camera`` for
      two-view parts) are left out: slice them at the image level.

    Raises :class:`~auditkit.errors.DataError` when the tables break the run-format contract
    (duplicate ``sample_id``, a prediction for an image that is not ``ok``, an ``ok`` image
    without a prediction).
    """
    images, codes, part_ids = image_table(samples, predictions, good_class)
    return parts_from_image_table(images, codes, part_ids, good_class, metadata_columns(samples))


# --------------------------------------------------------------------------- summary scores


def fbeta_score(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike, beta: float) -> float | None:
    """F-beta of the defect class: ``(1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)``.

    ``beta > 1`` weighs escapes more than overkill. None when the denominator is 0 (no
    defective unit and no reject), where scikit-learn's ``fbeta_score`` returns 0 with a
    warning.
    """
    if not beta > 0:
        raise ValueError("beta must be positive")
    c = confusion_counts(is_defect, is_reject)
    b2 = float(beta) ** 2
    den = (1.0 + b2) * c.tp + b2 * c.fn + c.fp
    return (1.0 + b2) * c.tp / den if den else None


def f2_score(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> float | None:
    """F2 of the defect class: :func:`fbeta_score` with ``beta = 2``, ``5 TP / (5 TP + 4 FN +
    FP)``: an escape costs four times an overkill. None when ``5 TP + 4 FN + FP == 0``."""
    return fbeta_score(is_defect, is_reject, 2.0)


def balanced_accuracy(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike) -> float | None:
    """Balanced accuracy: ``(detection rate + (1 - overkill rate)) / 2``
    ``= (TP / (TP + FN) + TN / (TN + FP)) / 2``.

    When only one kind of unit is present, the mean is over that kind alone (all good:
    ``TN / (TN + FP)``; all defective: ``TP / (TP + FN)``), as scikit-learn's
    ``balanced_accuracy_score``. None when there are no units.
    """
    c = confusion_counts(is_defect, is_reject)
    recalls = []
    if c.tp + c.fn:
        recalls.append(c.tp / (c.tp + c.fn))
    if c.tn + c.fp:
        recalls.append(c.tn / (c.tn + c.fp))
    return sum(recalls) / len(recalls) if recalls else None


def _factorize_pair(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], int]:
    t = np.asarray(y_true, dtype=object).ravel()
    p = np.asarray(y_pred, dtype=object).ravel()
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred must have the same length")
    codes, uniques = pd.factorize(np.concatenate([t, p]), use_na_sentinel=False)
    return codes[: t.size].astype(np.intp), codes[t.size :].astype(np.intp), len(uniques)


def cohen_kappa(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float | None:
    """Cohen's kappa between the reference labels and the model's (or an inspector's).

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o = sum_i C_ii / N`` (observed agreement) and
    ``p_e = sum_i (row_i / N)(col_i / N)`` (chance agreement from the margins), over the
    confusion matrix ``C`` of every label that occurs (binary ``is_defect``/``is_reject`` or
    class names). None when ``p_e == 1`` (a single label in both, kappa undefined; scikit-learn
    returns NaN) or when there are no units. Equals ``sklearn.metrics.cohen_kappa_score``.
    """
    t, p, m = _factorize_pair(y_true, y_pred)
    n = t.size
    if n == 0:
        return None
    cm = np.bincount(t * m + p, minlength=m * m).reshape(m, m).astype(np.float64)
    po = np.trace(cm) / n
    pe = float(cm.sum(axis=1) @ cm.sum(axis=0)) / (n * n)
    if pe >= 1.0:
        return None
    return float((po - pe) / (1.0 - pe))


def _scores(
    is_defect: npt.ArrayLike, score: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    d = _as_bool(is_defect, "is_defect")
    s = np.asarray(score, dtype=np.float64).ravel()
    if d.shape != s.shape:
        raise ValueError("is_defect and score must have the same length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return d, s


def roc_auc(is_defect: npt.ArrayLike, score: npt.ArrayLike) -> float | None:
    """Area under the ROC curve of the defect score (higher score = more likely defective).

    The Mann–Whitney form: ``(R_d - n_d (n_d + 1) / 2) / (n_d n_g)``, ``R_d`` the sum of the
    mid-ranks of the defective units' scores, ``n_d``/``n_g`` defective/good units: the
    probability that a random defective unit outscores a random good one, ties counting 1/2.
    None when either kind of unit is absent (undefined; scikit-learn raises). Equals
    ``sklearn.metrics.roc_auc_score``.
    """
    d, s = _scores(is_defect, score)
    n_d = int(d.sum())
    n_g = d.size - n_d
    if n_d == 0 or n_g == 0:
        return None
    ranks = _st_rankdata(s)
    return float((ranks[d].sum() - n_d * (n_d + 1) / 2.0) / (n_d * n_g))


def _curve(
    d: npt.NDArray[np.bool_], s: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Distinct thresholds (descending) and cumulative TP, FP when rejecting ``score >= t``."""
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    d_sorted = d[order]
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])  # last of each score
    tps = np.cumsum(d_sorted, dtype=np.int64)[last]
    fps = (last + 1) - tps
    return s_sorted[last], tps, fps.astype(np.int64)


def pr_auc(is_defect: npt.ArrayLike, score: npt.ArrayLike) -> float | None:
    """Average precision of the defect score: ``sum_t (R_t - R_{t-1}) P_t``.

    Over the distinct score thresholds ``t`` in decreasing order (reject ``score >= t``),
    ``P_t = TP / (TP + FP)`` and ``R_t = TP / (TP + FN)`` (detection rate), ``R_0 = 0``: the
    step-wise area under the precision–recall curve, without interpolation. None when no unit
    is defective (undefined; scikit-learn returns 0 with a warning). Equals
    ``sklearn.metrics.average_precision_score``.
    """
    d, s = _scores(is_defect, score)
    n_d = int(d.sum())
    if n_d == 0:
        return None
    _, tps, fps = _curve(d, s)
    prec = tps / (tps + fps)
    recall_steps = np.diff(np.r_[0, tps]) / n_d
    return float(np.sum(recall_steps * prec))


def rates_by_threshold(is_defect: npt.ArrayLike, score: npt.ArrayLike) -> pd.DataFrame:
    """Every rate for every operating threshold (reject when ``score >= threshold``).

    One row per distinct score, in decreasing order, after a first row with threshold ``+inf``
    (reject nothing). Columns: ``threshold``, ``tp``, ``fp``, ``tn``, ``fn`` (int64),
    ``escape_rate = fn / (tp + fn)`` (NaN without defective units), ``overkill_rate = fp / (fp +
    tn)`` (NaN without good units), ``detection_rate = 1 - escape_rate``, ``precision = tp /
    (tp + fp)`` and ``false_call_share = 1 - precision`` (NaN when nothing is rejected),
    ``accuracy = (tp + tn) / N``. One sort and a cumulative sum, no loop over thresholds.
    ``overkill_rate`` and ``detection_rate`` equal ``fpr`` and ``tpr`` of
    ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``, whose thresholds are the same;
    ``precision`` and ``detection_rate`` those of ``sklearn.metrics.precision_recall_curve``.
    """
    d, s = _scores(is_defect, score)
    thr, tps, fps = _curve(d, s)
    thr = np.r_[np.inf, thr]
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    n_d = int(d.sum())
    n_g = d.size - n_d
    fns = n_d - tps
    tns = n_g - fps
    rejected = tps + fps
    with np.errstate(divide="ignore", invalid="ignore"):
        escape = np.where(n_d > 0, fns / max(n_d, 1), np.nan)
        overkill = np.where(n_g > 0, fps / max(n_g, 1), np.nan)
        prec = np.where(rejected > 0, tps / np.maximum(rejected, 1), np.nan)
    return pd.DataFrame(
        {
            "threshold": thr,
            "tp": tps,
            "fp": fps,
            "tn": tns,
            "fn": fns,
            "escape_rate": escape,
            "overkill_rate": overkill,
            "detection_rate": 1.0 - escape,
            "precision": prec,
            "false_call_share": 1.0 - prec,
            "accuracy": (tps + tns) / d.size if d.size else np.full(thr.size, np.nan),
        }
    )


class RocPoints(NamedTuple):
    """The points of a ROC curve, thresholds descending (see :func:`roc_points`)."""

    threshold: npt.NDArray[np.float64]
    overkill_rate: npt.NDArray[np.float64]
    detection_rate: npt.NDArray[np.float64]


class PrPoints(NamedTuple):
    """The points of a precision-recall curve, thresholds descending (see :func:`pr_points`)."""

    threshold: npt.NDArray[np.float64]
    detection_rate: npt.NDArray[np.float64]
    precision: npt.NDArray[np.float64]


def roc_points(
    is_defect: npt.ArrayLike, score: npt.ArrayLike, *, drop_intermediate: bool = True
) -> RocPoints | None:
    """The ROC curve: ``(overkill_rate, detection_rate) = (FP / n_g, TP / n_d)`` per threshold.

    The first point is threshold ``+inf`` (reject nothing: ``(0, 0)``), then one point per
    distinct score in decreasing order (reject ``score >= threshold``), the last ``(1, 1)``.
    With ``drop_intermediate``, a point whose step in FP and in TP from the point before equals
    its step to the point after (both second differences zero, so it lies on the straight line
    between them and the drawn curve does not change) is left out; the first and the last
    distinct score always stay. None when either kind of unit is absent (undefined). Equals
    ``sklearn.metrics.roc_curve(is_defect, score, drop_intermediate=...)``: ``fpr``, ``tpr``
    and ``thresholds``.
    """
    d, s = _scores(is_defect, score)
    n_d = int(d.sum())
    n_g = d.size - n_d
    if n_d == 0 or n_g == 0:
        return None
    thr, tps, fps = _curve(d, s)
    if drop_intermediate and thr.size > 2:
        corner = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
        keep = np.flatnonzero(np.r_[True, corner, True])
        thr, tps, fps = thr[keep], tps[keep], fps[keep]
    return RocPoints(
        threshold=np.r_[np.inf, thr],
        overkill_rate=np.r_[0, fps] / n_g,
        detection_rate=np.r_[0, tps] / n_d,
    )


def pr_points(
    is_defect: npt.ArrayLike, score: npt.ArrayLike, *, drop_intermediate: bool = True
) -> PrPoints | None:
    """The precision-recall curve: ``(detection_rate, precision) = (TP / n_d, TP / (TP + FP))``.

    The first point is threshold ``+inf`` at ``(0, 1)`` (nothing rejected; precision taken as 1,
    the curve's usual start), then one point per distinct score in decreasing order (reject
    ``score >= threshold``; at least one unit is rejected, so precision is defined). With
    ``drop_intermediate``, a point whose TP equals that of both its neighbours (inside a
    vertical run at one detection rate) is left out, so each run keeps its first and last
    points; the first and the last distinct score always stay. None when no unit is defective
    (detection rate undefined). Equals ``sklearn.metrics.precision_recall_curve(is_defect,
    score, drop_intermediate=...)`` read backwards: ``recall[::-1]``, ``precision[::-1]`` and
    ``+inf`` followed by ``thresholds[::-1]``.
    """
    d, s = _scores(is_defect, score)
    n_d = int(d.sum())
    if n_d == 0:
        return None
    thr, tps, fps = _curve(d, s)
    if drop_intermediate and thr.size > 2:
        changes = (np.diff(tps[:-1]) != 0) | (np.diff(tps[1:]) != 0)
        keep = np.flatnonzero(np.r_[True, changes, True])
        thr, tps, fps = thr[keep], tps[keep], fps[keep]
    return PrPoints(
        threshold=np.r_[np.inf, thr],
        detection_rate=np.r_[0.0, tps / n_d],
        precision=np.r_[1.0, tps / (tps + fps)],
    )


class OperatingPoint(NamedTuple):
    """A threshold chosen for a target escape rate (see :func:`threshold_for_escape`)."""

    threshold: float
    escape: Rate
    escape_upper: float
    overkill: Rate
    level: float
    method: str


def threshold_for_escape(
    is_defect: npt.ArrayLike,
    score: npt.ArrayLike,
    target: float,
    level: float = 0.95,
    method: str = "clopper_pearson",
) -> OperatingPoint | None:
    """The highest threshold whose one-sided upper bound on escape at ``level`` is ``<= target``.

    Units are rejected when ``score >= threshold``; thresholds are the distinct scores. Escape
    rises with the threshold, so the highest qualifying threshold has the least overkill among
    those demonstrating the target. Returns the threshold, the escape :class:`Rate`, its upper
    bound (:func:`~auditkit.metrics.stats.binomial_intervals`, ``sided="one"``) and the
    overkill at that threshold; None when no threshold qualifies (e.g. too few defective
    units: 0 escapes in ``n`` give a bound of ``1 - (1 - level)^(1/n)``).
    """
    if not 0.0 < target < 1.0:
        raise ValueError("target must lie strictly between 0 and 1")
    table = rates_by_threshold(is_defect, score).iloc[1:]  # +inf rejects nothing: escape = 1
    n_d = table["tp"].to_numpy() + table["fn"].to_numpy()
    if table.empty or n_d[0] == 0:
        return None
    _, upper = binomial_intervals(table["fn"].to_numpy(), n_d, level=level, method=method)
    ok = np.flatnonzero(upper <= target)
    if ok.size == 0:
        return None
    i = int(ok[0])  # thresholds are descending: the first qualifying row is the highest
    row = table.iloc[i]
    return OperatingPoint(
        threshold=float(row["threshold"]),
        escape=Rate(k=int(row["fn"]), n=int(n_d[i])),
        escape_upper=float(upper[i]),
        overkill=Rate(k=int(row["fp"]), n=int(row["fp"] + row["tn"])),
        level=float(level),
        method=method,
    )


class EscapedPpm(NamedTuple):
    """Escaped parts per million at a production prevalence (see :func:`escaped_ppm`)."""

    value: float | None
    low: float | None
    high: float | None
    prevalence: float
    level: float | None


def _ppm(fnr: float, fpr: float, prevalence: float) -> float | None:
    num = prevalence * fnr
    den = num + (1.0 - prevalence) * (1.0 - fpr)
    return 1e6 * num / den if den > 0 else None


def escaped_ppm(
    escape: Rate | float,
    overkill: Rate | float,
    prevalence: float,
    level: float = 0.95,
    method: str = "clopper_pearson",
) -> EscapedPpm:
    """Escaped defective parts per million *accepted* parts at production prevalence ``pi``.

    ``ppm = 1e6 pi FNR / (pi FNR + (1 - pi)(1 - FPR))`` with FNR the escape rate and FPR the
    overkill rate: the share of defective parts among those the line ships. Test sets are
    defect-enriched, so the rates are reweighted to the stated ``pi`` (print it beside the
    number). The formula rises with both rates, so with :class:`Rate` inputs the bounds are
    the formula at the rates' one-sided bounds, each at ``1 - (1 - level) / 2`` (Bonferroni
    over the two rates): ``low`` at the lower bounds, ``high`` at the upper bounds, each
    holding at ``level``. With float inputs there are no bounds. ``value`` (and a bound) is
    None when a rate has ``n == 0`` or the denominator is 0 (nothing accepted).
    """
    if not 0.0 <= prevalence <= 1.0:
        raise ValueError("prevalence must lie in [0, 1]")

    def point(r: Rate | float) -> float | None:
        return r.value if isinstance(r, Rate) else float(r)

    fnr, fpr = point(escape), point(overkill)
    value = None if fnr is None or fpr is None else _ppm(fnr, fpr, prevalence)
    if not (isinstance(escape, Rate) and isinstance(overkill, Rate)):
        return EscapedPpm(value, None, None, float(prevalence), None)
    if value is None:
        return EscapedPpm(None, None, None, float(prevalence), float(level))
    each = 1.0 - (1.0 - level) / 2.0
    e_lo, e_hi = binomial_interval(escape.k, escape.n, each, method=method, sided="one")
    o_lo, o_hi = binomial_interval(overkill.k, overkill.n, each, method=method, sided="one")
    return EscapedPpm(
        value,
        _ppm(e_lo, o_lo, prevalence),
        _ppm(e_hi, o_hi, prevalence),
        float(prevalence),
        float(level),
    )


def per_class_rates(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, labels: Sequence[str]
) -> pd.DataFrame:
    """Per-class recall and precision of a multi-class model, from one confusion matrix.

    Indexed by ``labels``; columns ``support`` (units of that true class), ``recall_k = C_ii``,
    ``recall_n = sum_j C_ij`` (row), ``recall = C_ii / row`` (NaN when the class never
    occurs), ``precision_k = C_ii``, ``precision_n = sum_j C_ji`` (column, units predicted as
    that class), ``precision = C_ii / column`` (NaN when never predicted). Only units whose
    true and predicted classes are both in ``labels`` count (as
    :func:`class_confusion_matrix`). Equals ``sklearn.metrics.precision_recall_fscore_support(
    y_true, y_pred, labels=labels, average=None, zero_division=nan)`` when every label
    occurring is listed.
    """
    cm = class_confusion_matrix(y_true, y_pred, labels)
    diag = np.diag(cm).astype(np.int64)
    rows = cm.sum(axis=1).astype(np.int64)
    cols = cm.sum(axis=0).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(rows > 0, diag / np.maximum(rows, 1), np.nan)
        prec = np.where(cols > 0, diag / np.maximum(cols, 1), np.nan)
    return pd.DataFrame(
        {
            "support": rows,
            "recall_k": diag,
            "recall_n": rows,
            "recall": recall,
            "precision_k": diag,
            "precision_n": cols,
            "precision": prec,
        },
        index=pd.Index(list(labels), name="class", dtype=object),
    )
