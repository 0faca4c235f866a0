"""``metrics.json`` entries of the detection, anomaly and segmentation tasks, and the model's
size and compute (docs/metrics.md).

Pure: tables and sequences of 2-D arrays in (the caller may pass lazy sequences that read one
map at a time), entries out. Every entry has the ``auditkit.metrics/1`` keys ``name, slice,
unit, value, k, n, interval``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from auditkit.errors import DataError
from auditkit.metrics.detection import (
    coco_metrics,
    decisions_by_part,
    detection_decisions,
    inspection_rates,
)
from auditkit.metrics.segmentation import (
    aupro,
    f1_max,
    image_auroc,
    iou_dice,
    map_score_range,
    pixel_auroc,
)
from auditkit.metrics.stats import binomial_interval, part_weights, percentile_bounds

__all__ = [
    "Bootstrap",
    "anomaly_entries",
    "class_overlap_entries",
    "detection_entries",
    "model_entries",
    "segmentation_entries",
    "slice_masks",
]

#: COCO numbers written for a detector, in this order (names of :func:`coco_metrics`)
COCO_NAMES = (
    *("map", "map_50", "map_75"),
    *(f"map_{area}" for area in ("small", "medium", "large")),
    *(f"ar_{k}" for k in (1, 10, 100)),
)


@dataclass(frozen=True)
class Bootstrap:
    """How every bootstrap interval of a run is drawn: ``resamples`` cluster resamples by part
    from ``numpy.random.default_rng(seed)`` (:func:`auditkit.metrics.stats.part_weights` over
    the rows a metric reads), percentile bounds at ``level`` / ``sided``."""

    level: float = 0.95
    sided: str = "one"
    resamples: int = 1000
    seed: int = 0

    def record(self) -> dict[str, Any]:
        """``metrics.json`` ``bootstrap``: what reproduces every bootstrap interval."""
        return {
            "method": "cluster_percentile",
            "unit": "part",
            "resamples": self.resamples,
            "seed": self.seed,
        }

    def weights(self, parts: Sequence[Any]) -> npt.NDArray[np.int64]:
        return part_weights(
            np.asarray([str(p) for p in parts], dtype=object),
            n_resamples=self.resamples,
            seed=self.seed,
        )

    def interval(self, resampled: npt.ArrayLike) -> dict[str, Any] | None:
        """The interval of an entry from its resampled values; None with < 2 valid ones."""
        low, high = percentile_bounds(resampled, level=self.level, sided=self.sided)
        if low is None or high is None:
            return None
        return {
            "low": low,
            "high": high,
            "method": "cluster_bootstrap",
            "level": self.level,
            "sided": self.sided,
            "resamples": self.resamples,
            "seed": self.seed,
        }


def _exact(k: int, n: int, level: float, method: str, sided: str) -> dict[str, Any] | None:
    if not n:
        return None
    low, high = binomial_interval(k, n, level=level, method=method, sided=sided)
    return {"low": low, "high": high, "method": method, "level": level, "sided": sided}


def _entry(
    name: str,
    value: float | None,
    *,
    unit: str,
    slice_: dict[str, Any] | None = None,
    k: int | None = None,
    n: int | None = None,
    interval: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "slice": dict(slice_ or {}),
        "unit": unit,
        "value": None if value is None or not np.isfinite(value) else float(value),
        "k": k,
        "n": n,
        "interval": interval,
        **(extra or {}),
    }


def model_entries(complexity: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``model_parameters``, ``model_flops_per_image`` (1 multiply-add = 2 FLOPs, Conv/Gemm/
    MatMul at batch 1) and ``model_file_bytes`` from run.json's ``model.complexity``."""
    if not complexity:
        return []
    return [
        _entry("model_parameters", complexity.get("parameters"), unit="model"),
        _entry(
            "model_flops_per_image",
            complexity.get("flops_per_image"),
            unit="model",
            extra={"rule": complexity.get("rule")},
        ),
        _entry("model_file_bytes", complexity.get("file_bytes"), unit="model"),
    ]


def detection_entries(
    samples: pd.DataFrame,
    gt: pd.DataFrame,
    detections: pd.DataFrame,
    *,
    classes: Sequence[str],
    match_iou: float,
    score_threshold: float,
    level: float,
    method: str,
    sided: str,
    bootstrap: Bootstrap | None = None,
) -> list[dict[str, Any]]:
    """COCO box metrics over the scored images (pycocotools definitions, via
    :func:`auditkit.metrics.detection.coco_metrics`: ``map`` = AP@[.50:.95], ``map_50``,
    ``map_75``, ..., ``ar_100``; ``ap`` and ``ap_50`` per class, slice ``{"class": c}``), then
    the inspection view at the part level (:func:`detection_decisions` with the card's
    ``match_iou`` and the operating threshold, :func:`decisions_by_part`):
    ``detection_escape_rate`` (a defective part none of whose ground-truth boxes is matched by a
    detection), ``detection_overkill_rate`` and ``box_miss_rate`` (unit ``box``), with bounds.

    With ``bootstrap``: ``map_50_95`` (= ``map``), ``map_50``, ``ap`` and ``ap_50`` per class
    get cluster-bootstrap intervals (:func:`auditkit.metrics.bootstrap.weighted_ap`), and are
    also written per metadata column value (``map_50_95``, ``map_50`` slice ``{column: value}``;
    ``ap``, ``ap_50`` slice ``{"class": c, column: value}``): pycocotools on the slice's images
    (the others weigh 0), the interval from resamples of the slice's parts; also written:
    ``recall_at_iou`` (matched ground-truth boxes at the operating threshold, entry ``iou`` =
    the card's match IoU and 0.5, exact interval over boxes), ``false_calls_per_image``
    (counting detections that match no ground truth at the match IoU, per scored image,
    bootstrap interval), and ``detection_escape_rate`` / ``detection_overkill_rate`` per
    metadata column value (part level when the column is constant within every part, else
    image level) and ``detection_escape_rate`` per defect class (the part's label).
    """
    ok = samples[samples["status"].to_numpy() == "ok"]
    ids = ok["sample_id"].astype(str).tolist()
    keep = set(ids)
    gt = gt[gt["sample_id"].astype(str).isin(keep)].assign(
        sample_id=lambda t: t["sample_id"].astype(str)
    )
    unknown = sorted(set(gt["class"].astype(str)) - set(classes))
    if unknown:
        raise DataError(
            f"ground-truth box classes not among the model card's classes: {', '.join(unknown)} "
            f"(card classes: {', '.join(classes)})"
        )
    detections = detections.assign(sample_id=detections["sample_id"].astype(str))
    coco = coco_metrics(gt, detections, image_ids=ids, classes=classes)
    parts_of_images = ok["part_id"].astype(str).tolist()
    boot: dict[str, dict[str, Any] | None] = {}
    sliced: list[dict[str, Any]] = []
    if bootstrap is not None and ids:
        from auditkit.metrics.bootstrap import evaluate_boxes, weighted_ap

        evaluation = evaluate_boxes(gt, detections, image_ids=ids, classes=classes)
        ap = weighted_ap(evaluation, bootstrap.weights(parts_of_images))
        with np.errstate(all="ignore"), _quiet():
            boot["map"] = bootstrap.interval(np.nanmean(ap, axis=(1, 2)))
            boot["map_50"] = bootstrap.interval(np.nanmean(ap[:, 0, :], axis=1))
            for k, cls in enumerate(classes):
                boot[f"ap/{cls}"] = bootstrap.interval(np.nanmean(ap[:, :, k], axis=1))
                boot[f"ap_50/{cls}"] = bootstrap.interval(ap[:, 0, k])
        # per metadata slice: the images of the slice weigh 1, the others 0 (equal to
        # pycocotools on the slice's images); resamples draw the slice's parts
        for slice_, mask in slice_masks(ok):
            point = weighted_ap(evaluation, mask.astype(np.float64))[0]
            weights = np.zeros((bootstrap.resamples, len(ids)), dtype=np.int64)
            weights[:, mask] = bootstrap.weights(ok["part_id"].astype(str)[mask].tolist())
            resampled = weighted_ap(evaluation, weights)
            n_slice = int(mask.sum())
            with np.errstate(all="ignore"), _quiet():
                for name, value, res in (
                    ("map_50_95", np.nanmean(point), np.nanmean(resampled, axis=(1, 2))),
                    ("map_50", np.nanmean(point[0]), np.nanmean(resampled[:, 0, :], axis=1)),
                ):
                    sliced.append(
                        _entry(
                            name,
                            float(value),
                            unit="image",
                            slice_=slice_,
                            n=n_slice,
                            interval=bootstrap.interval(res),
                        )
                    )
                # per class on the slice: slice {"class": c, column: value}; null where the
                # slice's images have no ground truth of the class (pycocotools' -1)
                for k, cls in enumerate(classes):
                    for name, value, res in (
                        ("ap", np.nanmean(point[:, k]), np.nanmean(resampled[:, :, k], axis=1)),
                        ("ap_50", point[0, k], resampled[:, 0, k]),
                    ):
                        sliced.append(
                            _entry(
                                name,
                                float(value),
                                unit="image",
                                slice_={"class": str(cls), **slice_},
                                n=n_slice,
                                interval=bootstrap.interval(res) if np.isfinite(value) else None,
                            )
                        )
    out = [
        _entry(name, coco[name], unit="image", n=len(ids), interval=boot.get(name))
        for name in COCO_NAMES
    ]
    if bootstrap is not None:
        out.append(
            _entry("map_50_95", coco["map"], unit="image", n=len(ids), interval=boot.get("map"))
        )
        out += sliced
    for key, name in (("ap_per_class", "ap"), ("ap50_per_class", "ap_50")):
        for cls, value in coco[key].items():
            interval = boot.get(f"{name}/{cls}")
            out.append(_entry(name, value, unit="image", slice_={"class": cls}, interval=interval))
    decisions = detection_decisions(
        gt, detections, iou=match_iou, score_threshold=score_threshold, image_ids=ids
    )
    part_of = pd.Series(ok["part_id"].astype(str).to_numpy(), index=ids)
    parts = decisions_by_part(decisions, part_of)
    rates = inspection_rates(parts, level=level, method=method, sided=sided)
    settings = {"match_iou": match_iou, "score_threshold": score_threshold}
    for rate, name, unit in (
        ("escape_rate", "detection_escape_rate", "part"),
        ("overkill_rate", "detection_overkill_rate", "part"),
        ("box_miss_rate", "box_miss_rate", "box"),
    ):
        row = {str(k): v for k, v in rates.loc[rate].to_dict().items()}
        n = int(row["n"])
        out.append(
            _entry(
                name,
                row["value"],
                unit=unit,
                k=int(row["k"]),
                n=n,
                interval=_exact(int(row["k"]), n, level, method, sided),
                extra=settings,
            )
        )
    if bootstrap is None:
        return out
    # recall of ground-truth boxes at the operating threshold, at the match IoU and at 0.5
    for iou in dict.fromkeys((float(match_iou), 0.5)):
        at = decisions
        if iou != float(match_iou):
            at = detection_decisions(
                gt, detections, iou=iou, score_threshold=score_threshold, image_ids=ids
            )
        k, n = int(at["n_matched"].sum()), int(at["n_gt"].sum())
        out.append(
            _entry(
                "recall_at_iou",
                k / n if n else None,
                unit="box",
                k=k,
                n=n,
                interval=_exact(k, n, level, method, sided),
                extra={"iou": iou, "score_threshold": score_threshold},
            )
        )
    false_calls = (decisions["n_detections"] - decisions["n_matched"]).to_numpy(dtype=np.float64)
    calls: npt.NDArray[np.float64] | None = None
    if ids:
        calls_w = bootstrap.weights(parts_of_images)
        with np.errstate(all="ignore"):
            calls = (calls_w @ false_calls) / calls_w.sum(axis=1)
    out.append(
        _entry(
            "false_calls_per_image",
            float(false_calls.mean()) if ids else None,
            unit="image",
            n=len(ids),
            interval=bootstrap.interval(calls) if calls is not None else None,
            extra=settings,
        )
    )
    out += _detection_slices(ok, decisions, parts, level, method, sided, settings)
    return out


class _Subset(Sequence[Any]):
    """The items ``index`` of a (lazy) sequence, read when asked for."""

    def __init__(self, items: Sequence[Any], index: npt.NDArray[np.intp]) -> None:
        self._items, self._index = items, index

    def __len__(self) -> int:
        return int(self._index.size)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._items[int(j)] for j in self._index[i]]
        return self._items[int(self._index[i])]


def slice_masks(rows: pd.DataFrame) -> list[tuple[dict[str, str], npt.NDArray[np.bool_]]]:
    """``(slice, row mask)`` per value of every metadata column of ``rows`` (sorted; empty
    values are ``"(missing)"``), as :func:`auditkit.metrics.compute.compute_metrics` slices."""
    from auditkit.metrics.classification import metadata_columns, normalise_slice_values

    out = []
    for col in metadata_columns(rows):
        values = normalise_slice_values(rows[col].reset_index(drop=True)).to_numpy()
        for v in sorted(set(values.tolist())):
            out.append(({col: str(v)}, values == v))
    return out


class _quiet:
    """Silence numpy's "mean of empty slice" for resamples without ground truth (NaN)."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)


def _detection_slices(
    ok: pd.DataFrame,
    decisions: pd.DataFrame,
    parts: pd.DataFrame,
    level: float,
    method: str,
    sided: str,
    settings: dict[str, Any],
) -> list[dict[str, Any]]:
    """``detection_escape_rate`` / ``detection_overkill_rate`` per metadata value and
    ``detection_escape_rate`` per defect class (see :func:`detection_entries`)."""
    from auditkit.metrics.classification import metadata_columns, normalise_slice_values

    out: list[dict[str, Any]] = []
    img = ok.reset_index(drop=True).assign(part_id=lambda t: t["part_id"].astype(str))
    part_rows = parts.set_index(parts["part_id"].astype(str))

    def add(name: str, slice_: dict[str, str], unit: str, k: int, n: int) -> None:
        out.append(
            _entry(
                name,
                k / n if n else None,
                unit=unit,
                slice_=slice_,
                k=k,
                n=n,
                interval=_exact(k, n, level, method, sided),
                extra=settings,
            )
        )

    # defect class: the part's label (several labels joined with "+", as compute_metrics does)
    labels = img.groupby("part_id", sort=False)["label"].agg(
        lambda v: "+".join(sorted({str(x) for x in v}))
    )
    defective = part_rows[part_rows["is_defect"].to_numpy(dtype=bool)]
    cls = labels.reindex(defective.index)
    for c in sorted(set(cls.dropna())):
        rows = defective[cls.to_numpy() == c]
        add(
            "detection_escape_rate",
            {"defect_class": c},
            "part",
            int(rows["escaped"].sum()),
            len(rows),
        )
    for col in metadata_columns(ok):
        values = normalise_slice_values(img[col])
        per_part = values.groupby(img["part_id"]).nunique()
        if bool((per_part <= 1).all()):
            first = values.groupby(img["part_id"]).first().reindex(part_rows.index)
            table, unit = part_rows.assign(_v=first.to_numpy()), "part"
        else:
            table = decisions.assign(_v=values.to_numpy())
            unit = "image"
        for v in sorted(set(table["_v"].astype(str))):
            sub = table[table["_v"].astype(str) == v]
            d = sub["is_defect"].to_numpy(dtype=bool)
            add("detection_escape_rate", {col: v}, unit, int(sub["escaped"].sum()), int(d.sum()))
            add(
                "detection_overkill_rate",
                {col: v},
                unit,
                int(sub["overkill"].sum()),
                int((~d).sum()),
            )
    return out


def anomaly_entries(
    samples: pd.DataFrame, predictions: pd.DataFrame, bootstrap: Bootstrap | None = None
) -> list[dict[str, Any]]:
    """Image-level anomaly metrics of the scored images: ``image_auroc`` (rank AUROC of
    ``score`` against ``is_defect``; with ``bootstrap``, a cluster-bootstrap interval by part,
    :func:`auditkit.metrics.bootstrap.weighted_auroc`) and ``image_f1_max`` with its
    ``threshold`` (the highest score threshold reaching the maximum F1). Null when both classes
    are not present."""
    joined = samples[["sample_id", "part_id", "is_defect"]].merge(
        predictions[["sample_id", "score"]], on="sample_id"
    )
    labels = joined["is_defect"].to_numpy(dtype=bool)
    scores = joined["score"].to_numpy(dtype=np.float64)
    n = len(joined)
    both = 0 < labels.sum() < n
    auroc = image_auroc(labels, scores) if both else None
    interval = None
    if bootstrap is not None and both:
        from auditkit.metrics.bootstrap import weighted_auroc

        weights = bootstrap.weights(joined["part_id"].tolist())
        interval = bootstrap.interval(weighted_auroc(labels, scores, weights))
    sliced: list[dict[str, Any]] = []
    if bootstrap is not None:
        from auditkit.metrics.bootstrap import weighted_auroc

        meta = samples.drop(columns=["part_id", "is_defect"]).merge(
            joined[["sample_id"]], on="sample_id"
        )
        for slice_, mask in slice_masks(meta):
            d, sc = labels[mask], scores[mask]
            both_here = 0 < d.sum() < d.size
            slice_interval = None
            if both_here:
                slice_w = bootstrap.weights(joined["part_id"][mask].tolist())
                slice_interval = bootstrap.interval(weighted_auroc(d, sc, slice_w))
            sliced.append(
                _entry(
                    "image_auroc",
                    image_auroc(d, sc) if both_here else None,
                    unit="image",
                    slice_=slice_,
                    n=int(mask.sum()),
                    interval=slice_interval,
                )
            )
    f1, threshold = f1_max(labels, scores) if labels.any() else (None, None)
    return [
        _entry("image_auroc", auroc, unit="image", n=n, interval=interval),
        *sliced,
        _entry("image_f1_max", f1, unit="image", n=n, extra={"threshold": threshold}),
    ]


def segmentation_entries(
    masks: Sequence[npt.ArrayLike],
    maps: Sequence[npt.ArrayLike],
    pred_masks: Sequence[npt.ArrayLike],
    *,
    fpr_limit: float = 0.3,
    parts: Sequence[Any] | None = None,
    bootstrap: Bootstrap | None = None,
    slices: Sequence[tuple[dict[str, str], npt.NDArray[np.bool_]]] = (),
) -> list[dict[str, Any]]:
    """Pixel metrics over images with a known ground truth (a mask, or no defect):
    ``pixel_auroc``, ``aupro`` (to FPR ``fpr_limit``, normalised), and ``iou``/``dice`` of the
    predicted masks (slice ``{"class": "defect"}``, accumulated over all images). AUROC/AUPRO
    are null when the images have no defect pixel (or no normal pixel).

    With ``bootstrap`` and ``parts`` (the part of each image): cluster-bootstrap intervals by
    part for all four, from per-image histograms over
    :data:`auditkit.metrics.bootstrap.BOOTSTRAP_BINS` score bins
    (:func:`auditkit.metrics.bootstrap.pixel_image_stats`; the point values keep the finer
    binning of :mod:`auditkit.metrics.segmentation`). ``slices``: ``(slice, image mask)`` pairs;
    ``pixel_auroc`` and ``aupro`` are also given over the images of each (values by the
    functions of :mod:`auditkit.metrics.segmentation` on those images; intervals from
    resamples of the slice's parts), and ``iou`` / ``dice`` (slice ``{"class": "defect",
    column: value}``: the slice's images' intersection, true and predicted pixels summed;
    null when the slice has no true and no predicted defect pixel)."""
    n = len(masks)
    out: list[dict[str, Any]] = []
    boot: dict[str, dict[str, Any] | None] = {}
    sliced: list[dict[str, Any]] = []
    if bootstrap is not None and parts is not None and n:
        from auditkit.metrics import bootstrap as wb

        stats = wb.pixel_image_stats(masks, maps, pred_masks, score_range=map_score_range(maps))
        weights = bootstrap.weights(list(parts))
        iou, dice = wb.weighted_overlap(stats, weights)
        boot = {
            "pixel_auroc": bootstrap.interval(wb.weighted_pixel_auroc(stats, weights)),
            "aupro": bootstrap.interval(wb.weighted_aupro(stats, weights, fpr_limit)),
            "iou": bootstrap.interval(iou),
            "dice": bootstrap.interval(dice),
        }
        part_list = [str(p) for p in parts]
        for slice_, mask in slices:
            idx = np.flatnonzero(mask)
            slice_w = np.zeros((bootstrap.resamples, n), dtype=np.int64)
            slice_w[:, idx] = bootstrap.weights([part_list[i] for i in idx])
            for name, fn, resampled in (
                ("pixel_auroc", pixel_auroc, wb.weighted_pixel_auroc(stats, slice_w)),
                ("aupro", aupro, wb.weighted_aupro(stats, slice_w, fpr_limit)),
            ):
                try:
                    slice_value: float | None = fn(_Subset(masks, idx), _Subset(maps, idx))
                except ValueError:
                    slice_value = None
                sliced.append(
                    _entry(
                        name,
                        slice_value,
                        unit="pixel",
                        slice_=slice_,
                        n=int(idx.size),
                        interval=bootstrap.interval(resampled) if slice_value is not None else None,
                        extra={"fpr_limit": fpr_limit} if name == "aupro" else None,
                    )
                )
            # IoU / Dice of the slice's images from their exact pixel counts
            point_iou, point_dice = wb.weighted_overlap(stats, mask.astype(np.float64))
            res_iou, res_dice = wb.weighted_overlap(stats, slice_w)
            for name, point, res in (
                ("iou", point_iou[0], res_iou),
                ("dice", point_dice[0], res_dice),
            ):
                sliced.append(
                    _entry(
                        name,
                        float(point),
                        unit="pixel",
                        slice_={"class": "defect", **slice_},
                        n=int(idx.size),
                        interval=bootstrap.interval(res) if np.isfinite(point) else None,
                    )
                )
    for name, fn in (("pixel_auroc", pixel_auroc), ("aupro", aupro)):
        try:
            value: float | None = fn(masks, maps)
        except ValueError:
            value = None
        extra = {"fpr_limit": fpr_limit} if name == "aupro" else {}
        out.append(_entry(name, value, unit="pixel", n=n, extra=extra, interval=boot.get(name)))
    out += sliced
    table = iou_dice(pred_masks, masks)
    for name in ("iou", "dice"):
        out.append(
            _entry(
                name,
                float(table[name].iloc[0]),
                unit="pixel",
                slice_={"class": "defect"},
                n=n,
                interval=boot.get(name),
            )
        )
    return out


def class_overlap_entries(
    pred_labels: Sequence[npt.ArrayLike],
    true_labels: Sequence[npt.ArrayLike],
    classes: Mapping[str, int],
    *,
    parts: Sequence[Any] | None = None,
    bootstrap: Bootstrap | None = None,
    slices: Sequence[tuple[dict[str, str], npt.NDArray[np.bool_]]] = (),
) -> list[dict[str, Any]]:
    """``iou`` and ``dice`` per class (slice ``{"class": name}``) of class-index maps,
    accumulated over all images (:func:`auditkit.metrics.segmentation.iou_dice`). With
    ``bootstrap`` and ``parts`` (each image's part): cluster-bootstrap intervals from each
    image's intersection, true and predicted pixel counts per class, summed with the
    resample's weights; and per ``(slice, image mask)`` of ``slices``, slice ``{"class": name,
    column: value}``: those counts summed over the slice's images, the interval from
    resamples of the slice's parts (null where the class is in none of them)."""
    n = len(true_labels)
    table = iou_dice(pred_labels, true_labels, classes=classes)
    boot: dict[tuple[str, str], dict[str, Any] | None] = {}
    # per metadata slice, written before the overall entries (readers keyed on the class alone
    # see the overall value last)
    out: list[dict[str, Any]] = []
    if bootstrap is not None and parts is not None and n:
        per = [iou_dice([pred_labels[i]], [true_labels[i]], classes=classes) for i in range(n)]
        counts = tuple(
            np.array([t[col].to_numpy() for t in per], dtype=np.float64)
            for col in ("intersection", "n_true", "n_pred")
        )  # (n, K) each
        iou, dice = _overlap(counts, bootstrap.weights(list(parts)))  # (R, K)
        for k, cls in enumerate(table.index):
            boot[("iou", str(cls))] = bootstrap.interval(iou[:, k])
            boot[("dice", str(cls))] = bootstrap.interval(dice[:, k])
        part_list = [str(p) for p in parts]
        for slice_, mask in slices:
            idx = np.flatnonzero(mask)
            slice_w = np.zeros((bootstrap.resamples, n), dtype=np.int64)
            slice_w[:, idx] = bootstrap.weights([part_list[i] for i in idx])
            point = _overlap(counts, mask.astype(np.float64)[None, :])
            resampled = _overlap(counts, slice_w)
            for j, name in enumerate(("iou", "dice")):
                for k, cls in enumerate(table.index):
                    value = float(point[j][0, k])
                    out.append(
                        _entry(
                            name,
                            value,
                            unit="pixel",
                            slice_={"class": str(cls), **slice_},
                            n=int(idx.size),
                            interval=bootstrap.interval(resampled[j][:, k])
                            if np.isfinite(value)
                            else None,
                        )
                    )
    for name in ("iou", "dice"):
        for cls in table.index:
            value = float(table.loc[cls, name])
            out.append(
                _entry(
                    name,
                    value,
                    unit="pixel",
                    slice_={"class": str(cls)},
                    n=n,
                    interval=boot.get((name, str(cls))),
                )
            )
    return out


def _overlap(
    counts: tuple[npt.NDArray[np.float64], ...], weights: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(IoU, Dice), each (R, K), of per-image (intersection, true, predicted) pixel counts
    (n, K) summed with each row of ``weights`` (R, n): ``I / (T + P - I)`` and
    ``2 I / (T + P)``; NaN where ``T + P = 0`` (the class is in no image drawn)."""
    w = np.asarray(weights, dtype=np.float64)
    i_w, t_w, p_w = (w @ c for c in counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(t_w + p_w > 0, i_w / (t_w + p_w - i_w), np.nan)
        dice = np.where(t_w + p_w > 0, 2 * i_w / (t_w + p_w), np.nan)
    return iou, dice
