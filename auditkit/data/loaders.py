"""Choose the loader for a data set: by ``--format``, or by looking at it.

Detection: a ``.csv``/``.parquet`` file is a manifest, a ``.json`` file COCO, a ``.yaml`` file
(or a folder holding ``data.yaml``, or ``images/`` beside ``labels/``) YOLO, a folder with
``Annotations/*.xml`` Pascal VOC, a folder with ``train/`` and ``test/`` (or folders of such)
MVTec AD, a folder holding ``manifest.csv`` a manifest. When none of these fits and the folder
has sub-folders of images, it is an image folder. When more than one fits, the data set is
ambiguous: the message names each candidate and why, and ``--format`` settles it.
"""

from __future__ import annotations

from pathlib import Path

from auditkit.data import coco, imagefolder, manifest_format, mvtec, voc, yolo
from auditkit.data.interface import FORMATS, SPLITS, Detect, Load, Loaded, LoadOptions
from auditkit.data.manifest import Dataset
from auditkit.errors import DataError
from auditkit.memory import release_memory, system_allocator

#: name -> (detect, load); the image folder is the fallback, tried last
LOADERS: dict[str, tuple[Detect, Load]] = {
    "manifest": (manifest_format.detect, manifest_format.load),
    "coco": (coco.detect, coco.load),
    "yolo": (yolo.detect, yolo.load),
    "voc": (voc.detect, voc.load),
    "mvtec": (mvtec.detect, mvtec.load),
    "imagefolder": (imagefolder.detect, imagefolder.load),
}
_FALLBACK = "imagefolder"
_SPLIT_FORMATS = ("mvtec", "yolo", "voc")
_WHAT = {".csv": "manifest", ".parquet": "manifest", ".json": "COCO file", ".yaml": "data.yaml"}

#: problems that leave the ground truth or the metadata of some image undefined: a replay
#: refuses the data set while any is present (``data check`` lists them)
BLOCKING_KINDS = (
    "malformed_label",
    "unknown_class",
    "unlabelled_image",
    "metadata_unmatched",
    "metadata_missing",
)


def detect_format(path: Path) -> str:
    """The layout of ``path`` (see module doc); :class:`DataError` when none or several fit."""
    if not path.exists():
        raise DataError(f"{_WHAT.get(path.suffix.lower(), 'data')} not found: {path}")
    candidates = {
        name: reason
        for name, (detect, _) in LOADERS.items()
        if name != _FALLBACK and (reason := detect(path)) is not None
    }
    if len(candidates) > 1:
        found = "; ".join(f"{name} ({reason})" for name, reason in candidates.items())
        raise DataError(
            f"cannot tell the layout of {path}: it could be {found}; choose one with --format"
        )
    if candidates:
        return next(iter(candidates))
    if LOADERS[_FALLBACK][0](path) is not None:
        _refuse_nested_layout(path)
        return _FALLBACK
    raise DataError(
        f"cannot tell the layout of {path}: expected a manifest (.csv/.parquet), a COCO .json, "
        "a YOLO data.yaml or images/+labels/, a VOC folder (Annotations/), an MVTec AD folder "
        "(train/, test/) or an image folder (<class>/*.png); see docs/data-formats.md"
    )


def _refuse_nested_layout(path: Path) -> None:
    """A folder that holds one data set (``VOCdevkit/VOC2007``, ``export/yolo``) would read as
    an image folder with one class per data set: refuse, and name the folder to give instead."""
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        for name, (detect, _) in LOADERS.items():
            reason = detect(folder) if name not in (_FALLBACK, "coco") else None
            if reason is not None:
                raise DataError(
                    f"cannot tell the layout of {path}: its folder {folder.name} looks like "
                    f"{name} ({reason}); give {folder} as DATA, or --format imagefolder"
                )


def load(data: Path, options: LoadOptions | None = None) -> Loaded:
    """Load ``data`` with every problem found (for ``data check``); see :func:`load_dataset`."""
    options = options or LoadOptions()
    if options.format is not None and options.format not in FORMATS:
        raise DataError(f"unknown format {options.format!r}: expected one of {', '.join(FORMATS)}")
    if options.split is not None and options.split not in SPLITS:
        raise DataError(f"unknown split {options.split!r}: expected one of {', '.join(SPLITS)}")
    if options.images is not None and (options.format or detect_format(data)) != "coco":
        raise DataError(
            "--images applies to COCO data only (where images live apart from the JSON)"
        )
    if not data.exists():
        raise DataError(f"{_WHAT.get(data.suffix.lower(), 'data')} not found: {data}")
    fmt = options.format or detect_format(data)
    if options.split is not None and fmt not in _SPLIT_FORMATS:
        raise DataError(f"--split applies to {', '.join(_SPLIT_FORMATS)} data, not {fmt} ({data})")
    with system_allocator():  # its Arrow text columns: no cached free pages left behind
        loaded = LOADERS[fmt][1](data, options)
    release_memory()
    return loaded


def load_dataset(data: Path, options: LoadOptions | None = None) -> Dataset:
    """Load ``data`` for a replay: refused (:class:`DataError`) while a problem of
    :data:`BLOCKING_KINDS` leaves an image's label or metadata undefined."""
    loaded = load(data, options)
    blocking = [p for p in loaded.problems if p.kind in BLOCKING_KINDS]
    if blocking:
        first = blocking[0]
        raise DataError(
            f"{len(blocking)} problem(s) in {data} leave labels or metadata undefined, first: "
            f"{first.kind} {first.path}: {first.detail} (see `auditkit data check`)"
        )
    return loaded.dataset
