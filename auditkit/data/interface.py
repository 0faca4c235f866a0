"""What every data-set loader takes and gives back (docs/data-formats.md).

A loader is one module per layout with two functions:

* ``detect(path) -> str | None``: a short reason when ``path`` looks like this layout (used by
  auto-detection and in its messages), else ``None``;
* ``load(path, options) -> Loaded``: the :class:`~auditkit.data.manifest.Dataset` plus the
  problems found while reading the layout (label files with no image, malformed lines, ...).

Loaders never raise for a problem that concerns one image: it becomes a :class:`Problem`, and
``auditkit data check`` lists them. They raise :class:`~auditkit.errors.DataError` when the data
set as a whole cannot be read (no images, an unreadable annotation file, a path leaving the root).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from auditkit.data.manifest import Dataset

#: image file suffixes the folder layouts pick up (case-insensitive)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

FORMATS = ("manifest", "imagefolder", "mvtec", "coco", "yolo", "voc")
SPLITS = ("train", "val", "test", "all")

#: problem kinds, in the order ``data check`` explains them (docs/data-formats.md)
PROBLEM_KINDS = (
    "unreadable_image",
    "size_mismatch",
    "missing_mask",
    "unreadable_mask",
    "mask_size_mismatch",
    "orphan_label",
    "unlabelled_image",
    "malformed_label",
    "unknown_class",
    "box_outside_image",
    "box_zero_area",
    "conflicting_duplicate",
    "metadata_unmatched",
    "metadata_missing",
)


@dataclass(frozen=True)
class LoadOptions:
    """How to read a data set.

    ``format``: one of :data:`FORMATS`, or ``None`` to detect it. ``images``: the folder COCO
    ``file_name`` entries are relative to. ``metadata``: a side table joined on the image path or
    file name. ``metadata_from_path``: a regular expression with named groups searched in each
    image's path. ``good_label``: the label of an image with no defect (the card's good class).
    ``split``: which split of a layout that has them (MVTec: ``test`` by default; YOLO: every
    split by default); ``all`` for every split, with a ``split`` metadata column.
    ``probe``: also decode every image for its size and mode (``data check``).
    """

    format: str | None = None
    images: Path | None = None
    metadata: Path | None = None
    metadata_from_path: str | None = None
    good_label: str = "good"
    split: str | None = None
    probe: bool = False
    #: class names the labels and boxes must be among (``data check --classes``); None: no check
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data: ``kind`` (:data:`PROBLEM_KINDS`), the file concerned
    (relative to the data root) and a human-readable detail."""

    kind: str
    path: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "detail": self.detail}


@dataclass(frozen=True)
class Loaded:
    """A loaded data set, the problems seen while loading it, and (when probed) one row per
    image with ``width``, ``height``, ``mode`` (empty for an image that could not be decoded)."""

    dataset: Dataset
    problems: tuple[Problem, ...] = ()
    images: pd.DataFrame | None = None
    #: sizes the annotations declare (COCO ``width``/``height``, VOC ``<size>``), by sample_id
    declared_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


#: ``detect(path)``: a short reason when ``path`` looks like the layout, else None
Detect = Callable[[Path], str | None]
#: ``load(path, options)``: the loaded data set
Load = Callable[[Path, LoadOptions], Loaded]
