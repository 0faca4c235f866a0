"""``auditkit data check``: what a data set holds and what is wrong with it.

The data set is loaded once with every image decoded from the bytes read for its hash
(:func:`auditkit.data.build.scan_files`), so each file is read once and only a few are open at a
time. The summary is a plain dictionary (the ``--json`` object); problems are listed by kind in
the order of :data:`auditkit.data.interface.PROBLEM_KINDS` (docs/data-formats.md explains each).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.data.build import scan_files
from auditkit.data.images import strict_decoding
from auditkit.data.interface import PROBLEM_KINDS, Loaded, LoadOptions, Problem
from auditkit.data.loaders import load
from auditkit.data.masks import COCO_PREFIX

#: a box may overhang the image by this many pixels (rounding of normalised coordinates)
TOLERANCE_PX = 1e-3
MISSING = "(missing)"


def _counts(values: pd.Series) -> dict[str, int]:
    counted = values.replace("", MISSING).value_counts()
    return {str(k): int(v) for k, v in sorted(counted.items())}


def _size_problems(loaded: Loaded, images: pd.DataFrame) -> list[Problem]:
    problems = []
    for sample_id, width, height in images[["sample_id", "width", "height"]].itertuples(
        index=False
    ):
        declared = loaded.declared_sizes.get(sample_id)
        if declared and width and declared != (width, height):
            problems.append(
                Problem(
                    "size_mismatch",
                    sample_id,
                    f"annotation says {declared[0]}x{declared[1]}, image is {width}x{height}",
                )
            )
    return problems


def _box_problems(boxes: pd.DataFrame, images: pd.DataFrame, paths: pd.Series) -> list[Problem]:
    if boxes.empty:
        return []
    sized = images.set_index("sample_id")
    width = boxes["sample_id"].map(sized["width"]).to_numpy(dtype=float)
    height = boxes["sample_id"].map(sized["height"]).to_numpy(dtype=float)
    x1, y1, x2, y2 = (boxes[c].to_numpy(dtype=float) for c in ("x1", "y1", "x2", "y2"))
    known = width > 0
    outside = known & (
        (x1 < -TOLERANCE_PX)
        | (y1 < -TOLERANCE_PX)
        | (x2 > width + TOLERANCE_PX)
        | (y2 > height + TOLERANCE_PX)
    )
    zero = (x2 <= x1) | (y2 <= y1)
    path_of = dict(zip(sized.index, paths, strict=True))
    problems = []
    for i in (int(j) for j in np.flatnonzero(outside | zero)):
        where = path_of[boxes["sample_id"].iat[i]]
        box = f"{boxes['class'].iat[i]} ({x1[i]:g}, {y1[i]:g}, {x2[i]:g}, {y2[i]:g})"
        if zero[i]:
            problems.append(Problem("box_zero_area", where, f"box {box} has no area"))
        if outside[i]:
            size = f"{int(width[i])}x{int(height[i])}"
            problems.append(
                Problem("box_outside_image", where, f"box {box} leaves the {size} image")
            )
    return problems


def _mask_problems(loaded: Loaded, images: pd.DataFrame) -> list[Problem]:
    samples = loaded.dataset.samples
    if "mask" not in samples.columns:
        return []
    files = samples[(samples["mask"] != "") & ~samples["mask"].str.startswith(COCO_PREFIX)]
    size_of = {
        str(s): (int(w), int(h))
        for s, w, h in images[["sample_id", "width", "height"]].itertuples(index=False)
    }
    problems = []
    for sample_id, mask, scanned in zip(
        files["sample_id"].astype(str),
        files["mask"].astype(str),
        scan_files(loaded.dataset.root, files["mask"].tolist(), probe=True),
        strict=True,
    ):
        _, status, error, width, height, _ = scanned
        image_w, image_h = size_of[sample_id]
        if error == "file not found":
            problems.append(Problem("missing_mask", mask, f"mask of {sample_id} not found"))
        elif status != "ok":
            problems.append(Problem("unreadable_mask", mask, error))
        elif image_w and (width, height) != (image_w, image_h):
            detail = f"mask is {width}x{height}, image {sample_id} is {image_w}x{image_h}"
            problems.append(Problem("mask_size_mismatch", mask, detail))
    return problems


def _duplicate_problems(samples: pd.DataFrame) -> list[Problem]:
    hashed = samples[samples["sha256"] != ""]
    labels_per_hash = hashed.groupby("sha256")["label"].nunique()
    problems = []
    for digest in labels_per_hash[labels_per_hash > 1].index:
        group = hashed[hashed["sha256"] == digest].sort_values("path")
        problems.append(
            Problem(
                "conflicting_duplicate",
                str(group["path"].iat[0]),
                f"identical files (SHA-256 {digest[:12]}...) with different labels: "
                + _listing(group["path"].astype(str), group["label"].astype(str)),
            )
        )
    return problems


#: files named in one problem's detail; the others are counted
MAX_EXAMPLES = 10


def _listing(paths: pd.Series, labels: pd.Series) -> str:
    """``a.png (good), b.png (scratch)``; past :data:`MAX_EXAMPLES` files, the count per label
    and the first examples (100,000 rows of one file must not make a 2 MB line)."""
    head = zip(paths.iloc[:MAX_EXAMPLES], labels.iloc[:MAX_EXAMPLES], strict=True)
    pairs = [f"{p} ({label})" for p, label in head]
    if len(paths) <= MAX_EXAMPLES:
        return ", ".join(pairs)
    counts = ", ".join(f"{label} {n}" for label, n in sorted(labels.value_counts().items()))
    more = len(paths) - MAX_EXAMPLES
    return f"{len(paths)} files ({counts}), first: {', '.join(pairs)} and {more} more"


def _class_problems(
    samples: pd.DataFrame, boxes: pd.DataFrame | None, classes: tuple[str, ...], good: str
) -> list[Problem]:
    """Labels and box classes outside ``classes``. An image may also be labelled ``good``
    (the good class): a detector's classes are its box classes, and its good images have none."""
    known = set(classes)
    labels = known | {good}
    problems = [
        Problem("unknown_class", path, f"label {label!r} not in the expected classes")
        for path, label in zip(samples["path"], samples["label"], strict=True)
        if label not in labels
    ]
    if boxes is not None and not boxes.empty:
        path_of = dict(zip(samples["sample_id"], samples["path"], strict=True))
        for sample_id, cls in boxes[["sample_id", "class"]].itertuples(index=False):
            if cls not in known:
                problems.append(
                    Problem("unknown_class", path_of[sample_id], f"box class {cls!r} not expected")
                )
    return problems


def check_data(data: Path, options: LoadOptions | None = None) -> dict[str, Any]:
    """Load ``data`` and describe it: the ``data check --json`` object (docs/data-formats.md)."""
    options = replace(options or LoadOptions(), probe=True)
    with strict_decoding():  # a truncated image is a problem, whatever was imported before
        loaded = load(data, options)
    dataset = loaded.dataset
    samples = dataset.samples
    images = loaded.images if loaded.images is not None else pd.DataFrame()
    boxes = dataset.boxes
    problems = list(loaded.problems)
    problems += _size_problems(loaded, images)
    problems += _mask_problems(loaded, images)
    if boxes is not None:
        problems += _box_problems(boxes, images, samples["path"])
    problems += _duplicate_problems(samples)
    if options.classes is not None:
        problems += _class_problems(samples, boxes, options.classes, options.good_label)
    order = {kind: i for i, kind in enumerate(PROBLEM_KINDS)}
    problems.sort(key=lambda p: (order.get(p.kind, len(order)), p.path, p.detail))

    decoded = images[images["width"] > 0]
    sizes = (decoded["width"].astype(str) + "x" + decoded["height"].astype(str)).value_counts()
    per_image = (
        boxes["sample_id"].value_counts().reindex(samples["sample_id"], fill_value=0)
        if boxes is not None
        else None
    )
    masks = samples["mask"] if "mask" in samples.columns else pd.Series([], dtype=str)
    return {
        "format": dataset.format,
        "data": str(data),
        "root": str(dataset.root),
        "n_images": len(samples),
        "n_parts": int(samples["part_id"].nunique()),
        "n_unreadable": int((samples["status"] != "ok").sum()),
        "n_defect": int(samples["is_defect"].sum()),
        "classes": _counts(samples["label"]),
        "metadata": {c: _counts(samples[c]) for c in dataset.metadata_columns},
        "image_sizes": {str(k): int(v) for k, v in sorted(sizes.items())},
        "image_modes": _counts(decoded["mode"]) if len(decoded) else {},
        "n_boxes": 0 if boxes is None else len(boxes),
        "box_classes": {} if boxes is None else _counts(boxes["class"]),
        "boxes_per_image": None
        if per_image is None
        else {
            "min": int(per_image.min()),
            "mean": float(per_image.mean()),
            "max": int(per_image.max()),
            "images_without_boxes": int((per_image == 0).sum()),
        },
        "n_masks": int((masks != "").sum()),
        "manifest_sha256": dataset.manifest_sha256,
        "problems": [p.as_dict() for p in problems],
    }
