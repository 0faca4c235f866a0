"""The synthetic steel sample written in public dataset layouts, with box and mask ground truth.

Images come from :mod:`auditkit.sample.generator` (same ``(n, seed)`` -> same images as
``generate``); every defect has a mask (its drawn extent, :data:`generator.MASK_DEPTH`) and one
box, the mask's extent (:func:`generator.mask_box`). Box classes are the defect classes
``scratch, pit, inclusion, crack`` (in that order: YOLO class ids 0-3, COCO category ids 1-4).

* :func:`write_mvtec` -- MVTec AD: ``<category>/train/good/NNN.png`` (good images only),
  ``<category>/test/<good|defect>/NNN.png``, ``<category>/ground_truth/<defect>/NNN_mask.png``
  (0/255), numbered from 000 in each folder;
* :func:`write_coco` -- COCO: ``images/<sample_id>.png`` and ``annotations.json`` (``images``,
  ``annotations`` with ``bbox`` ``[x, y, w, h]``, ``area``, ``iscrowd`` 0 and the mask as
  uncompressed RLE ``{"size": [h, w], "counts": [...]}`` in column-major order, ``categories``);
* :func:`write_yolo` -- YOLO: ``images/<sample_id>.png``, ``labels/<sample_id>.txt`` (one line
  ``cls cx cy w h`` per box, normalised to [0, 1], 6 decimals; empty for good images) and
  ``data.yaml`` (``path``, ``train``, ``val``, ``names``).

Each layout also gets ``metadata.csv`` beside it: the side table for ``--metadata``, with
``path`` as the layout's loader names the image (relative to its data root: the category folder
for MVTec AD, whose table covers the audited ``test`` split; ``images/`` for COCO; the set's
folder for YOLO), ``part_id`` and ``line, shift, camera, lighting, supplier``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from auditkit.sample.generator import encode_png, mask_box, render_part_truth

if TYPE_CHECKING:
    from auditkit.data.manifest import Dataset

DEFECTS = ("scratch", "pit", "inclusion", "crack")
META = ("line", "shift", "camera", "lighting", "supplier")


@dataclass(frozen=True)
class Record:
    sample_id: str
    part_id: str
    label: str
    meta: dict[str, str]
    pixels: np.ndarray
    mask: np.ndarray  # bool

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        return mask_box(self.mask) if self.label != "good" else None


def records(n: int, seed: int) -> Iterator[Record]:
    """The first ``n`` images of ``generate(n, seed)``, with their masks."""
    made = index = 0
    while made < n:
        meta, views, masks = render_part_truth(seed, index)
        for camera, pixels, mask in zip(meta.cameras, views, masks, strict=True):
            if made >= n:
                break
            info = {
                "line": meta.line,
                "shift": meta.shift,
                "camera": camera,
                "lighting": meta.lighting,
                "supplier": meta.supplier,
            }
            yield Record(f"s{made:06d}", meta.part_id, meta.label, info, pixels, mask)
            made += 1
        index += 1


def _png_mask(mask: np.ndarray) -> bytes:
    return encode_png(np.where(mask, 255, 0).astype(np.uint8))


def _write_metadata(path: Path, rows: list[tuple[str, Record]]) -> None:
    """The side table for ``--metadata``: ``path`` as the layout's loader names the image (relative
    to its data root), the part, and the metadata columns; the label comes from the layout."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "part_id", *META])
        for rel, r in rows:
            writer.writerow([rel, r.part_id, *(r.meta[k] for k in META)])


def write_mvtec(out: Path, n: int, seed: int, category: str = "steel") -> Path:
    """MVTec AD layout under ``out/<category>``; every other good image goes to ``train/good``
    (the first, third, ...), the rest to ``test/good``. Returns the category folder."""
    root = out / category
    counters: dict[str, int] = {}
    rows: list[tuple[str, Record]] = []
    goods = 0
    for r in records(n, seed):
        if r.label == "good":
            split = "train" if goods % 2 == 0 else "test"
            goods += 1
        else:
            split = "test"
        key = f"{split}/{r.label}"
        number = counters.get(key, 0)
        counters[key] = number + 1
        rel = f"{key}/{number:03d}.png"
        (root / key).mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(encode_png(r.pixels))
        if r.label != "good":
            gt = root / "ground_truth" / r.label
            gt.mkdir(parents=True, exist_ok=True)
            (gt / f"{number:03d}_mask.png").write_bytes(_png_mask(r.mask))
        if split == "test":  # the split an audit reads (docs/data-formats.md)
            rows.append((rel, r))
    _write_metadata(out / "metadata.csv", rows)
    return root


def _rle(mask: np.ndarray) -> dict[str, object]:
    """Uncompressed COCO RLE: run lengths of the column-major flattening, starting with 0s."""
    flat = mask.astype(np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def write_coco(out: Path, n: int, seed: int) -> Path:
    """COCO layout; returns ``annotations.json``."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    rows: list[tuple[str, Record]] = []
    for i, r in enumerate(records(n, seed), start=1):
        rel = f"images/{r.sample_id}.png"
        (out / rel).write_bytes(encode_png(r.pixels))
        h, w = r.pixels.shape
        images.append({"id": i, "file_name": f"{r.sample_id}.png", "width": w, "height": h})
        rows.append((f"{r.sample_id}.png", r))
        box = r.box
        if box is not None:
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": DEFECTS.index(r.label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(r.mask.sum()),
                    "iscrowd": 0,
                    "segmentation": _rle(r.mask),
                }
            )
    document = {
        "info": {"description": "auditkit synthetic steel sample (Apache-2.0)", "version": "1"},
        "licenses": [{"id": 1, "name": "Apache-2.0"}],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": k + 1, "name": name, "supercategory": "defect"} for k, name in enumerate(DEFECTS)
        ],
    }
    target = out / "annotations.json"
    target.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    _write_metadata(out / "metadata.csv", rows)
    return target


def write_yolo(out: Path, n: int, seed: int) -> Path:
    """YOLO layout; returns ``data.yaml``."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, Record]] = []
    for r in records(n, seed):
        rel = f"images/{r.sample_id}.png"
        (out / rel).write_bytes(encode_png(r.pixels))
        h, w = r.pixels.shape
        lines = []
        box = r.box
        if box is not None:
            x1, y1, x2, y2 = box
            cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
            lines.append(f"{DEFECTS.index(r.label)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        (out / "labels" / f"{r.sample_id}.txt").write_text(
            "".join(line + "\n" for line in lines), encoding="utf-8"
        )
        rows.append((rel, r))
    names = "\n".join(f"  {k}: {name}" for k, name in enumerate(DEFECTS))
    target = out / "data.yaml"
    target.write_text(f"path: .\ntrain: images\nval: images\nnames:\n{names}\n", encoding="utf-8")
    _write_metadata(out / "metadata.csv", rows)
    return target


def write_dataset(out: Path, n: int, seed: int) -> Dataset:
    """The sample as a :class:`~auditkit.data.manifest.Dataset` with box and mask ground truth
    (``images/<sample_id>.png``, ``masks/<sample_id>.png`` for defects), built without a
    loader: for tests and the sanity check of the bundled task models."""
    import pandas as pd  # not at module level: the training scripts run without pandas

    from auditkit.data.manifest import Dataset, manifest_digest, sha256_file

    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    boxes: list[tuple[object, ...]] = []
    for r in records(n, seed):
        rel = f"images/{r.sample_id}.png"
        (out / rel).write_bytes(encode_png(r.pixels))
        mask_rel = ""
        box = r.box
        if box is not None:
            mask_rel = f"masks/{r.sample_id}.png"
            (out / mask_rel).write_bytes(_png_mask(r.mask))
            boxes.append((r.sample_id, r.label, *box))
        rows.append(
            {
                "sample_id": r.sample_id,
                "part_id": r.part_id,
                "path": rel,
                "sha256": sha256_file(out / rel),
                "label": r.label,
                "is_defect": r.label != "good",
                "status": "ok",
                "error": "",
                **r.meta,
                "mask": mask_rel,
            }
        )
    samples = pd.DataFrame(rows)
    table = pd.DataFrame(boxes, columns=["sample_id", "class", "x1", "y1", "x2", "y2"])
    return Dataset(out, out, "sample", samples, manifest_digest(samples), table)
