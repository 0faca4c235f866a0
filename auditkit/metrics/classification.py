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

from auditkit.errors import DataError
from auditkit.run import SAMPLE_COLUMNS as STANDARD_SAMPLE_COLUMNS

__all__ = [
    "MISSING",
    "RATE_DEFINITIONS",
    "STANDARD_SAMPLE_COLUMNS",
    "STATUSES",
    "ConfusionCounts",
    "Rate",
    "accuracy",
    "class_confusion_matrix",
    "confusion_counts",
    "detection_rate",
    "escape_rate",
    "f1_score",
    "false_call_share",
    "metadata_columns",
    "normalise_slice_values",
    "overkill_rate",
    "parts_from_images",
    "precision",
    "slice_codes",
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
    :data:`STANDARD_SAMPLE_COLUMNS`, in table order."""
    return [c for c in samples.columns if c not in STANDARD_SAMPLE_COLUMNS]


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
_PART_COLUMNS = frozenset(
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


def _image_table(
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


def _parts_from_image_table(
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
            if col in _PART_COLUMNS:
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
    images, codes, part_ids = _image_table(samples, predictions, good_class)
    return _parts_from_image_table(images, codes, part_ids, good_class, metadata_columns(samples))
