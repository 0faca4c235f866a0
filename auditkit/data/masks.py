"""Ground-truth defect masks: the one way to read the samples column ``mask``.

A ``mask`` value is one of

* ``""``: the image has no defect pixels;
* a path relative to the data root: a mask image (MVTec ``*_mask.png``, a manifest's ``mask``);
* ``coco:<image id>``: the union of the COCO annotations (polygons or RLE) of that image in the
  data set's COCO JSON (``Dataset.manifest``), rasterised with COCO's own mask code.

Mask images may be 0/1 or 0–255 grayscale: an image whose values are all 0 or 1 is read as 0/1
(foreground = 1); otherwise foreground is every value above 127. Colour masks are converted to
grayscale first (ITU-R 601 luma), palette masks are read by palette index.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from auditkit.data.images import open_regular
from auditkit.data.manifest import inside_root
from auditkit.errors import DataError

COCO_PREFIX = "coco:"


def binarise(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Foreground of a mask array: ``== 1`` when every value is 0 or 1, else ``> 127``."""
    if values.size and int(values.max()) <= 1:
        return values == 1
    return values > 127


def read_mask_file(path: Path) -> npt.NDArray[np.bool_]:
    """A mask image as a boolean array (height, width); raises OSError when unreadable (a
    FIFO or device too, before reading)."""
    with open_regular(path) as handle, Image.open(handle) as opened:
        image = opened if opened.mode in ("L", "P", "I;16", "I") else opened.convert("L")
        return binarise(np.asarray(image))


@lru_cache(maxsize=4)
def _coco_index(json_path: str, mtime: float) -> dict[int, tuple[int, int, list[Any]]]:
    """image id -> (height, width, segmentations) of a COCO file (cached per file version)."""
    with open(json_path, encoding="utf-8") as handle:
        document = json.load(handle)
    index: dict[int, tuple[int, int, list[Any]]] = {
        int(im["id"]): (int(im["height"]), int(im["width"]), []) for im in document["images"]
    }
    for annotation in document.get("annotations", []):
        segmentation = annotation.get("segmentation")
        if segmentation and int(annotation["image_id"]) in index:
            index[int(annotation["image_id"])][2].append(segmentation)
    return index


def _coco_rle(segmentation: Any, height: int, width: int) -> Any:
    """One COCO segmentation (polygon list, uncompressed or compressed RLE) as a compressed RLE."""
    from faster_coco_eval.core import mask as coco_mask

    if isinstance(segmentation, list):  # polygons: [[x, y, x, y, ...], ...]
        return coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    if isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        return coco_mask.frPyObjects(segmentation, height, width)
    rle = dict(segmentation)  # compressed RLE
    if isinstance(rle["counts"], str):
        rle["counts"] = rle["counts"].encode("ascii")
    return rle


def rasterise_coco(segmentations: list[Any], height: int, width: int) -> npt.NDArray[np.bool_]:
    """Union of COCO segmentations (polygon lists, uncompressed or compressed RLE) as a mask."""
    from faster_coco_eval.core import mask as coco_mask

    out = np.zeros((height, width), dtype=bool)
    for segmentation in segmentations:
        out |= coco_mask.decode(_coco_rle(segmentation, height, width)).astype(bool)
    return out


def coco_segmentation_bbox(segmentation: Any, height: int, width: int) -> list[float]:
    """``[x, y, w, h]`` of a COCO segmentation's extent (COCO's ``toBbox``)."""
    from faster_coco_eval.core import mask as coco_mask

    return [float(v) for v in coco_mask.toBbox(_coco_rle(segmentation, height, width))]


def read_mask(root: Path, source: Path, value: str) -> npt.NDArray[np.bool_] | None:
    """The ground-truth mask named by a ``mask`` value (see module doc); ``None`` for ``""``.

    ``root`` is the data root, ``source`` the data set's manifest (the COCO JSON for
    ``coco:`` values). Raises :class:`DataError` when the mask cannot be read.
    """
    if not value:
        return None
    if value.startswith(COCO_PREFIX):
        index = _coco_index(str(source), source.stat().st_mtime)
        image_id = int(value[len(COCO_PREFIX) :])
        if image_id not in index:
            raise DataError(f"COCO image id {image_id} not in {source}")
        height, width, segmentations = index[image_id]
        return rasterise_coco(segmentations, height, width)
    try:
        return read_mask_file(Path(inside_root(os.path.realpath(root), value)))
    except OSError as exc:
        raise DataError(f"cannot read mask {value}: {exc}") from None
