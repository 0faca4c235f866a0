"""The Pascal VOC layout: one XML file per image, several ``<object>`` boxes each.

::

    JPEGImages/000001.jpg         (NEU-DET: IMAGES/crazing_1.jpg)
    Annotations/000001.xml        (NEU-DET: ANNOTATIONS/crazing_1.xml)
    ImageSets/Main/test.txt       (optional: the image stems of each split)

Folder names are matched without regard to case, and images may sit in sub-folders. An XML
file belongs to the image with the same stem (else the one its ``<filename>`` names). Each
``<object>`` gives ``<name>`` (its class, which need not match the file name) and ``<bndbox>``
``xmin ymin xmax ymax``, VOC's 1-based inclusive pixel indices, turned into pixel-edge corners
``x1 = xmin - 1``, ``y1 = ymin - 1``, ``x2 = xmax``, ``y2 = ymax`` (so a box over the whole of a
200-pixel-wide image, ``xmin 1 xmax 200``, is 0..200). ``difficult`` and ``truncated`` flags are
not used. The image-level label follows the box rule
(:func:`auditkit.data.build.labels_from_boxes`).

Every image is loaded unless ``--split`` names a list in ``ImageSets/Main/``. An image with no
XML is loaded as good but is an ``unlabelled_image`` problem; an XML with no image is an
``orphan_label``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from auditkit.data.build import boxes_table, finish, labels_from_boxes
from auditkit.data.imagefolder import walk_images
from auditkit.data.interface import Loaded, LoadOptions, Problem
from auditkit.data.manifest import inside_root
from auditkit.errors import DataError

IMAGE_FOLDERS = ("jpegimages", "images")
ANNOTATION_FOLDERS = ("annotations",)


def _child(path: Path, names: tuple[str, ...]) -> Path | None:
    if not path.is_dir():
        return None
    for folder in sorted(path.iterdir()):
        if folder.is_dir() and folder.name.lower() in names:
            return folder
    return None


def detect(path: Path) -> str | None:
    annotations = _child(path, ANNOTATION_FOLDERS)
    if (
        annotations is not None
        and _child(path, IMAGE_FOLDERS) is not None
        and next(annotations.rglob("*.xml"), None) is not None
    ):
        return f"it holds {annotations.name}/*.xml"
    return None


def _parse(
    data: bytes, where: str
) -> tuple[str, tuple[int, int] | None, list[tuple[str, float, float, float, float]]]:
    """(``<filename>``, declared (width, height) or None, boxes) of one VOC XML document."""
    root = ET.fromstring(data)
    filename = (root.findtext("filename") or "").strip()
    size = None
    width, height = root.findtext("size/width"), root.findtext("size/height")
    if width and height:
        size = (int(float(width)), int(float(height)))
    boxes = []
    for number, obj in enumerate(root.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            raise ValueError(f"object {number} has no name or bndbox")
        try:
            xmin, ymin, xmax, ymax = (
                float(box.findtext(k) or "") for k in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError:
            raise ValueError(f"object {number}: bndbox corners are not numbers") from None
        boxes.append((name, xmin - 1, ymin - 1, xmax, ymax))
    return filename, size, boxes


def _split_stems(root: Path, split: str | None) -> set[str] | None:
    if split in (None, "all"):
        return None
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(f"--split {split}: {listing} not found")
    return {line.split()[0] for line in listing.read_text().splitlines() if line.strip()}


def load(path: Path, options: LoadOptions) -> Loaded:
    root = path.resolve()
    images_dir = _child(root, IMAGE_FOLDERS)
    annotations_dir = _child(root, ANNOTATION_FOLDERS)
    if images_dir is None or annotations_dir is None:
        raise DataError(
            f"a Pascal VOC folder needs JPEGImages/ (or IMAGES/) and Annotations/: {root}"
        )
    wanted = _split_stems(root, options.split)
    by_stem: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for relative in walk_images(images_dir, root):
        stem = Path(relative).stem
        if wanted is not None and stem not in wanted:
            continue
        if stem in by_stem:
            raise DataError(f"two images share the stem {stem!r}: {by_stem[stem]}, {relative}")
        by_stem[stem] = relative
        by_name[Path(relative).name] = relative

    real_root = os.path.realpath(root)
    rows, problems, labelled = [], [], set()
    declared: dict[str, tuple[int, int]] = {}
    for here, dirs, files in os.walk(annotations_dir):
        dirs.sort()
        for name in sorted(f for f in files if f.lower().endswith(".xml")):
            xml = (Path(here) / name).relative_to(root).as_posix()
            stem = Path(name).stem
            if wanted is not None and stem not in wanted:
                continue
            try:
                with open(inside_root(real_root, xml), "rb") as handle:
                    filename, size, boxes = _parse(handle.read(), xml)
            except (ET.ParseError, ValueError, OSError) as exc:
                image = by_stem.get(stem, xml)
                problems.append(Problem("malformed_label", image, f"{xml}: {exc}"))
                labelled.add(image)
                continue
            found = by_stem.get(stem) or by_name.get(filename)
            if found is None:
                problems.append(Problem("orphan_label", xml, "annotation with no image"))
                continue
            labelled.add(found)
            if size is not None:
                declared[found] = size
            rows += [(found, *box) for box in boxes]
    paths = sorted(by_stem.values())
    problems += [
        Problem("unlabelled_image", p, "no annotation XML") for p in paths if p not in labelled
    ]
    table_boxes = boxes_table(rows)
    table = pd.DataFrame({"path": paths})
    table["label"], table["is_defect"] = labels_from_boxes(paths, table_boxes, options.good_label)
    return finish(
        root,
        root,
        "voc",
        table,
        options,
        boxes=table_boxes,
        problems=problems,
        declared_sizes=declared,
    )
