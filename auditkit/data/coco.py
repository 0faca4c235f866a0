"""The COCO layout: one JSON file (``images``, ``annotations``, ``categories``).

``DATA`` is the JSON file. Images are found by their ``file_name`` under ``--images DIR`` when
given, else in the JSON's folder, else in an ``images/`` folder beside it (the first of the two
holding any of the listed files); that folder is the data root. Boxes are the annotations'
``bbox`` ``[x, y, width, height]`` in pixels, turned into corners ``x1 = x``, ``x2 = x + width``.
An annotation with a ``segmentation`` and no ``bbox`` gets its segmentation's extent as box.
Masks are the annotations' ``segmentation`` (polygons, uncompressed or compressed RLE): an image
with any segmentation gets the mask ``coco:<image id>``, the union of its annotations'
segmentations (:mod:`auditkit.data.masks`). The image-level label follows the box rule
(:func:`auditkit.data.build.labels_from_boxes`); an image with no annotation is good.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from auditkit.data.build import boxes_table, finish, labels_from_boxes
from auditkit.data.interface import Loaded, LoadOptions, Problem
from auditkit.data.manifest import not_utf8, safe_relative_path
from auditkit.data.masks import COCO_PREFIX, coco_segmentation_bbox
from auditkit.errors import DataError


def detect(path: Path) -> str | None:
    if path.is_file() and path.suffix.lower() == ".json":
        return f"{path.name} is a JSON file"
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"COCO file not found: {path}") from None
    except UnicodeDecodeError:
        raise not_utf8(path, "COCO file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read COCO file {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise DataError(f"{path.name} is not a COCO file: it has no 'images' list")
    return document


def _segmentation_fault(segmentation: Any) -> str | None:
    """What is wrong with a COCO segmentation's shape, or None (polygons: lists of at least
    three x, y points; RLE: ``size`` [height, width] and ``counts``)."""
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if (
                not isinstance(polygon, list)
                or len(polygon) < 6
                or len(polygon) % 2
                or not all(isinstance(v, int | float) for v in polygon)
            ):
                return "a segmentation polygon needs at least 3 x, y points"
        return None
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if isinstance(size, list) and len(size) == 2 and isinstance(counts, list | str):
            return None
        return "an RLE segmentation needs size [height, width] and counts"
    return "segmentation is neither polygons nor RLE"


def _image_root(json_path: Path, names: list[str], images: Path | None) -> Path:
    if images is not None:
        if not images.is_dir():
            raise DataError(f"--images folder not found: {images}")
        return images.resolve()
    for candidate in (json_path.parent, json_path.parent / "images"):
        if candidate.is_dir() and any((candidate / n).is_file() for n in names[:1000]):
            return candidate
    return json_path.parent


def load(path: Path, options: LoadOptions) -> Loaded:
    json_path = path.resolve()
    document = _read(json_path)
    try:
        images = {int(im["id"]): im for im in document["images"]}
        categories = {int(c["id"]): str(c["name"]) for c in document.get("categories", [])}
        names = [str(im["file_name"]) for im in images.values()]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{json_path.name}: malformed images or categories entry ({exc})") from None
    root = _image_root(json_path, names, options.images)
    path_of = {i: safe_relative_path(root, str(im["file_name"])) for i, im in images.items()}

    rows, problems, segmented = [], [], set()
    for number, annotation in enumerate(document.get("annotations", [])):
        where = f"{json_path.name} annotation {annotation.get('id', number)}"
        image_id = annotation.get("image_id")
        if image_id not in path_of:
            problems.append(Problem("orphan_label", where, f"image_id {image_id} not in images"))
            continue
        image_path = path_of[image_id]
        category = annotation.get("category_id")
        if category not in categories:
            problems.append(
                Problem("unknown_class", image_path, f"{where}: category_id {category} unknown")
            )
            continue
        segmentation = annotation.get("segmentation")
        wrong = _segmentation_fault(segmentation) if segmentation else None
        if wrong:
            problems.append(Problem("malformed_label", image_path, f"{where}: {wrong}"))
            annotation = {k: v for k, v in annotation.items() if k != "segmentation"}
        elif segmentation:
            segmented.add(image_id)
        bbox = annotation.get("bbox")
        if not bbox and annotation.get("segmentation"):  # a mask-only annotation: its extent
            image = images[image_id]
            try:
                bbox = coco_segmentation_bbox(
                    annotation["segmentation"], int(image["height"]), int(image["width"])
                )
            except Exception as exc:  # the RLE code raises several types on bad input
                detail = f"{where}: segmentation unreadable ({exc})"
                problems.append(Problem("malformed_label", image_path, detail))
                continue
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            problems.append(Problem("malformed_label", image_path, f"{where}: bbox {bbox!r}"))
            continue
        rows.append((image_path, categories[category], x, y, x + w, y + h))
    boxes = boxes_table(rows)

    ids = list(images)
    table = pd.DataFrame({"path": [path_of[i] for i in ids]})
    labels, defect = labels_from_boxes(table["path"].tolist(), boxes, options.good_label)
    table["label"] = labels
    table["is_defect"] = defect
    if segmented:
        table["mask"] = [f"{COCO_PREFIX}{i}" if i in segmented else "" for i in ids]
    declared = {
        path_of[i]: (int(im["width"]), int(im["height"]))
        for i, im in images.items()
        if "width" in im and "height" in im
    }
    return finish(
        root,
        json_path,
        "coco",
        table,
        options,
        boxes=boxes,
        problems=problems,
        declared_sizes=declared,
    )
