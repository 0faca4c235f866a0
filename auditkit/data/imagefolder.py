"""The image-folder layout: ``root/<class>/<image>`` (torchvision's ImageFolder).

The label of an image is the name of the top-level folder it is in (sub-folders below it are
searched too); an image is a defect unless its class is the good class. An image directly in
``root`` has no class: an ``unlabelled_image`` problem, not loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from auditkit.data.build import finish
from auditkit.data.interface import IMAGE_SUFFIXES, Loaded, LoadOptions, Problem
from auditkit.errors import DataError


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def walk_images(folder: Path, relative_to: Path) -> Iterator[str]:
    """Image files under ``folder`` as sorted ``/``-paths relative to ``relative_to``.

    Symbolic links to folders are not followed: a link out of the data root is never walked.
    """
    for here, dirs, files in os.walk(folder):
        dirs.sort()
        base = Path(here).relative_to(relative_to).as_posix()
        prefix = "" if base == "." else base + "/"
        for name in sorted(files):
            if is_image(name) and not name.startswith("."):
                yield prefix + name


def _class_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def detect(path: Path) -> str | None:
    if not path.is_dir():
        return None
    for folder in _class_folders(path):
        if next(walk_images(folder, path), None) is not None:
            return f"{folder.name}/ holds images"
    return None


def load(path: Path, options: LoadOptions) -> Loaded:
    if not path.is_dir():
        raise DataError(f"an image folder must be a folder: {path}")
    root = path.resolve()
    paths, labels = [], []
    for folder in _class_folders(root):
        for relative in walk_images(folder, root):
            paths.append(relative)
            labels.append(folder.name)
    problems = [
        Problem("unlabelled_image", p.name, "image outside a class folder: not loaded")
        for p in sorted(root.iterdir())
        if p.is_file() and is_image(p.name)
    ]
    table = pd.DataFrame({"path": paths, "label": labels})
    table["is_defect"] = table["label"] != options.good_label
    return finish(root, root, "imagefolder", table, options, problems=problems)
