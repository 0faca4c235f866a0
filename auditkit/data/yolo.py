"""The YOLO layout (Ultralytics, Roboflow exports).

::

    data.yaml                     names: [crack, pit]   (or {0: crack, 1: pit})
    images/<split>/0001.png       or <split>/images/0001.png
    labels/<split>/0001.txt       one line per box: class cx cy w h, normalised to 0..1

``DATA`` is the folder or its ``data.yaml``. Images are every image file under a folder named
``images``; each one's label file is found by Ultralytics' own rule: the last ``/images/`` of the
path replaced by ``/labels/`` and the suffix by ``.txt``. Class names come from ``data.yaml``
(``names``, a list or an index → name mapping), else from ``classes.txt`` (one per line); with
neither, boxes are named by their class index. A line with more than 5 values is a polygon
(Ultralytics segmentation labels: ``class x y x y ...``), whose box is its extent.

Boxes in pixels: ``x1 = (cx - w/2) * W``, ``x2 = (cx + w/2) * W``, ``y1 = (cy - h/2) * H``,
``y2 = (cy + h/2) * H`` with W, H the image's width and height. An empty label file means a good
image; an image with no label file is loaded as good too (as Ultralytics treats it) but is an
``unlabelled_image`` problem; a label file with no image is an ``orphan_label``. The image-level
label follows the box rule (:func:`auditkit.data.build.labels_from_boxes`).

Splits: when images sit in split folders (``images/train``, ``valid/images``, ...) a ``split``
metadata column names the split (``valid`` read as ``val``); every split is loaded unless
``--split train|val|test`` picks one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from PIL import Image

from auditkit.data.build import boxes_table, finish, labels_from_boxes
from auditkit.data.imagefolder import walk_images
from auditkit.data.images import open_regular
from auditkit.data.interface import Loaded, LoadOptions, Problem
from auditkit.data.manifest import inside_root, not_utf8
from auditkit.errors import DataError

YAML_NAMES = ("data.yaml", "dataset.yaml")
_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "test": "test"}


def _yaml_file(path: Path) -> Path | None:
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return path
    for name in YAML_NAMES:
        if path.is_dir() and (path / name).is_file():
            return path / name
    return None


def _image_folders(root: Path) -> list[Path]:
    """Folders named ``images`` with a sibling ``labels`` (at most two levels down)."""
    found = []
    for pattern in ("images", "*/images"):
        for folder in sorted(root.glob(pattern)):
            if folder.is_dir() and (folder.parent / "labels").is_dir():
                found.append(folder)
    return found


def detect(path: Path) -> str | None:
    found = _yaml_file(path)
    if found is not None:
        return f"it has {found.name}"
    if path.is_dir() and _image_folders(path):
        return "it holds images/ and labels/"
    return None


def label_path(image: str) -> str:
    """Ultralytics' ``img2label_paths``: last ``/images/`` → ``/labels/``, suffix → ``.txt``."""
    text = "/" + image
    head, sep, tail = text.rpartition("/images/")
    swapped = head + "/labels/" + tail if sep else text
    return swapped[1:].rsplit(".", 1)[0] + ".txt"


def _names(yaml_path: Path | None, root: Path) -> dict[int, str] | None:
    if yaml_path is not None:
        try:
            document: Any = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise not_utf8(yaml_path, "YOLO data file") from None
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"cannot read {yaml_path}: {exc}") from None
        names = document.get("names") if isinstance(document, dict) else None
        if isinstance(names, list):
            return {i: str(n) for i, n in enumerate(names)}
        if isinstance(names, dict):
            try:
                return {int(k): str(v) for k, v in names.items()}
            except ValueError:
                raise DataError(f"{yaml_path.name}: names keys must be class indices") from None
        if names is not None:
            raise DataError(f"{yaml_path.name}: names must be a list or a mapping")
    for classes in (root / "classes.txt", root / "labels" / "classes.txt"):
        if classes.is_file():
            try:
                lines = classes.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise not_utf8(classes, "YOLO class list") from None
            return {i: line.strip() for i, line in enumerate(lines) if line.strip()}
    return None


def _split_of(relative: str, folder: str = "images") -> str:
    """The split named next to the last ``folder`` component: ``images/<split>/`` first, else
    ``<split>/images/``; ``""`` when neither is a split name."""
    parts = relative.split("/")
    where = len(parts) - 1 - parts[::-1].index(folder)
    for candidate in (parts[where + 1] if where + 2 < len(parts) else "", *parts[:where][-1:]):
        if candidate.lower() in _SPLIT_NAMES:
            return _SPLIT_NAMES[candidate.lower()]
    return ""


def _parse(
    text: str, label: str, names: dict[int, str] | None
) -> tuple[list[tuple[str, float, float, float, float]], list[Problem]]:
    """Normalised ``(class, x1, y1, x2, y2)`` boxes of one label file, and its problems."""
    boxes, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            index_value = float(fields[0])
            values = [float(v) for v in fields[1:]]
            if not index_value.is_integer() or len(values) < 4 or len(values) % 2:
                raise ValueError
        except (ValueError, IndexError):
            problems.append(
                Problem("malformed_label", label, f"line {number}: expected 'class cx cy w h'")
            )
            continue
        index = int(index_value)
        if names is not None and index not in names:
            problems.append(
                Problem("unknown_class", label, f"line {number}: class {index} not in names")
            )
            continue
        if len(values) == 4:
            cx, cy, w, h = values
            corners = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        else:
            xs, ys = values[0::2], values[1::2]
            corners = (min(xs), min(ys), max(xs), max(ys))
        boxes.append((names[index] if names is not None else str(index), *corners))
    return boxes, problems


def load(path: Path, options: LoadOptions) -> Loaded:
    yaml_path = _yaml_file(path)
    root = (yaml_path.parent if yaml_path is not None else path).resolve()
    if not root.is_dir():
        raise DataError(f"a YOLO data set must be a folder or its data.yaml: {path}")
    names = _names(yaml_path, root)
    if options.split not in (None, "all", "train", "val", "test"):
        raise DataError(f"YOLO splits are train, val and test, not {options.split!r}")
    real_root = os.path.realpath(root)

    paths: list[str] = []
    splits: list[str] = []
    rows: list[tuple[str, str, float, float, float, float]] = []
    unplaced: list[tuple[str, str, float, float, float, float]] = []
    problems: list[Problem] = []
    expected_labels: set[str] = set()
    for folder in _image_folders(root):
        for relative in walk_images(folder, root):
            split = _split_of(relative)
            if options.split not in (None, "all") and split != options.split:
                continue
            paths.append(relative)
            splits.append(split)
            label = label_path(relative)
            expected_labels.add(label)
            try:
                text = Path(inside_root(real_root, label)).read_text(encoding="utf-8")
            except FileNotFoundError:
                problems.append(Problem("unlabelled_image", relative, f"no label file {label}"))
                continue
            except UnicodeDecodeError:
                detail = str(not_utf8(Path(inside_root(real_root, label)), "label file"))
                problems.append(Problem("malformed_label", label, detail))
                continue
            except OSError as exc:
                problems.append(Problem("malformed_label", label, f"cannot read: {exc}"))
                continue
            found, bad = _parse(text, label, names)
            problems += bad
            if not found:
                continue
            try:
                real = inside_root(real_root, relative)
                with open_regular(real) as handle, Image.open(handle) as image:
                    width, height = image.size
            except Exception:  # Pillow raises many types (a decompression bomb, ...)
                # an unreadable image (reported as such): its boxes cannot be placed, but its
                # label can, since scaling every box of an image alike keeps the largest class
                unplaced += [(relative, *box) for box in found]
                continue
            for cls, x1, y1, x2, y2 in found:
                rows.append((relative, cls, x1 * width, y1 * height, x2 * width, y2 * height))
    for folder in _image_folders(root):
        labels_folder = folder.parent / "labels"
        for here, dirs, files in os.walk(labels_folder):
            dirs.sort()
            base = Path(here).relative_to(root).as_posix()
            for name in sorted(files):
                relative = f"{base}/{name}"
                if (
                    name.endswith(".txt")
                    and name != "classes.txt"
                    and relative not in expected_labels
                    and options.split in (None, "all", _split_of(relative, "labels"))
                ):
                    problems.append(Problem("orphan_label", relative, "label file with no image"))

    boxes = boxes_table(rows)
    table = pd.DataFrame({"path": paths})
    labelled = boxes_table(rows + unplaced)
    table["label"], table["is_defect"] = labels_from_boxes(paths, labelled, options.good_label)
    if any(splits):
        table["split"] = splits
    return finish(root, yaml_path or root, "yolo", table, options, boxes=boxes, problems=problems)
