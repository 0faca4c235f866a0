"""The MVTec AD layout, as published (also VisA converted to it, and MVTec LOCO-style trees).

::

    <category>/train/good/000.png
    <category>/test/good/000.png
    <category>/test/<defect>/000.png
    <category>/ground_truth/<defect>/000_mask.png

``DATA`` is one category folder, or the dataset root (every category folder under it; a
``category`` metadata column says which). The **test split** is audited by default (the train
split holds only good images, seen by the model in training); ``--split train`` or ``--split all``
(with a ``split`` metadata column) choose otherwise. Labels: ``good`` images get the good class,
others the defect folder's name. Every defect image names its mask,
``ground_truth/<defect>/<stem>_mask.png``, whether or not the file exists (``data check`` reports
a missing one); good images have no mask. A mask file with no image is an ``orphan_label``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from auditkit.data.build import finish
from auditkit.data.imagefolder import walk_images
from auditkit.data.interface import Loaded, LoadOptions, Problem
from auditkit.errors import DataError

MASK_SUFFIX = "_mask"


def _is_category(path: Path) -> bool:
    # test/good or ground_truth/ as well: a Roboflow YOLO export also has train/ and test/
    return (path / "test").is_dir() and (
        (path / "test" / "good").is_dir()
        or (path / "train" / "good").is_dir()
        or (path / "ground_truth").is_dir()
    )


def _categories(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and _is_category(p))


def detect(path: Path) -> str | None:
    if not path.is_dir():
        return None
    if _is_category(path):
        return "it holds train/ and test/ (an MVTec AD category)"
    categories = _categories(path)
    if categories:
        return f"{categories[0].name}/ holds train/ and test/ (an MVTec AD root)"
    return None


def _splits(split: str | None) -> tuple[str, ...]:
    split = split or "test"
    if split == "all":
        return ("train", "test")
    if split not in ("train", "test"):
        raise DataError(f"MVTec AD has splits train and test, not {split!r} (or use all)")
    return (split,)


def _category_rows(
    root: Path, category: Path, splits: tuple[str, ...], good: str
) -> tuple[list[dict[str, str]], list[Problem]]:
    rows: list[dict[str, str]] = []
    expected_masks: set[str] = set()
    prefix = category.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    for split in splits:
        folder = category / split
        if not folder.is_dir():
            continue
        for defect in sorted(p for p in folder.iterdir() if p.is_dir()):
            for relative in walk_images(defect, root):
                row = {"path": relative, "split": split}
                if defect.name == "good":
                    row.update(label=good, mask="")
                else:
                    stem = Path(relative).stem
                    mask = f"{prefix}ground_truth/{defect.name}/{stem}{MASK_SUFFIX}.png"
                    expected_masks.add(mask)
                    row.update(label=defect.name, mask=mask)
                rows.append(row)
    problems = []
    truth = category / "ground_truth"
    if truth.is_dir() and "test" in splits:
        for relative in walk_images(truth, root):
            if relative not in expected_masks and Path(relative).stem.endswith(MASK_SUFFIX):
                problems.append(Problem("orphan_label", relative, "mask with no test image"))
    return rows, problems


def load(path: Path, options: LoadOptions) -> Loaded:
    if not path.is_dir():
        raise DataError(f"an MVTec AD data set must be a folder: {path}")
    root = path.resolve()
    splits = _splits(options.split)
    single = _is_category(root)
    categories = [root] if single else _categories(root)
    if not categories:
        raise DataError(f"{root} is neither an MVTec AD category nor a folder of categories")
    rows, problems = [], []
    for category in categories:
        found, missing = _category_rows(root, category, splits, options.good_label)
        if not single:
            for row in found:
                row["category"] = category.name
        rows += found
        problems += missing
    table = pd.DataFrame(rows)
    if table.empty:
        raise DataError(f"no images in the {'/'.join(splits)} split of {root}")
    if len(splits) == 1:
        table = table.drop(columns="split")
    table["is_defect"] = table["label"] != options.good_label
    # column order: metadata first, mask last (finish() keeps that order)
    first = ["path", "label", "is_defect"]
    table = table[first + [c for c in table.columns if c not in (*first, "mask")] + ["mask"]]
    return finish(root, root, "mvtec", table, options, problems=problems)
