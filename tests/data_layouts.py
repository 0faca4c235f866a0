"""Small data sets in each published layout, written with Pillow into a temporary folder.

Each builder follows the layout as its publisher documents it (MVTec AD's download, the COCO
format page, Ultralytics' dataset guide, the Pascal VOC devkit, NEU-DET's archive), not a
variant of our own. Images are tiny, random and distinct, so no two files share a hash unless a
test makes them.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

_counter = itertools.count()


def write_image(path: Path, size: tuple[int, int] = (16, 12), mode: str = "L") -> Path:
    """A distinct random image of ``size`` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(next(_counter))
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(path)
    return path


def write_mask(path: Path, size: tuple[int, int], on: int, *, foreground: int = 255) -> Path:
    """A mask whose first ``on`` pixels (row-major) have the value ``foreground``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.zeros(size[0] * size[1], dtype=np.uint8)
    values[:on] = foreground
    Image.fromarray(values.reshape(size[1], size[0]), "L").save(path)
    return path


def image_folder(root: Path) -> Path:
    """good: 3, scratch: 2, pit: 1 (in a sub-folder, as torchvision allows)."""
    for i in range(3):
        write_image(root / "good" / f"g{i}.png")
    for i in range(2):
        write_image(root / "scratch" / f"s{i}.jpg", mode="RGB")
    write_image(root / "pit" / "day" / "p0.bmp")
    return root


def mvtec_category(root: Path, name: str = "bottle", size: tuple[int, int] = (16, 16)) -> Path:
    """MVTec AD category: train/good 2, test/good 2, test/broken_large 2, test/contamination 1,
    ground-truth masks with 10, 20 (0/255) and 7 (0/1) foreground pixels."""
    category = root / name
    for i in range(2):
        write_image(category / "train" / "good" / f"{i:03d}.png", size)
        write_image(category / "test" / "good" / f"{i:03d}.png", size)
    for i, on in enumerate((10, 20)):
        write_image(category / "test" / "broken_large" / f"{i:03d}.png", size)
        write_mask(category / "ground_truth" / "broken_large" / f"{i:03d}_mask.png", size, on)
    write_image(category / "test" / "contamination" / "000.png", size)
    write_mask(category / "ground_truth" / "contamination" / "000_mask.png", size, 7, foreground=1)
    return category


def _polygon(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def coco(root: Path) -> Path:
    """COCO file with images in images/ beside it: a polygon, a compressed RLE, an
    uncompressed RLE, an image with two boxes of two classes and a good image."""
    from pycocotools import mask as coco_mask

    size = (20, 10)  # width, height
    names = ["poly.png", "rle.png", "rle_raw.png", "two.png", "good.png"]
    for name in names:
        write_image(root / "images" / name, size)
    block = np.zeros((size[1], size[0]), dtype=np.uint8, order="F")
    block[2:6, 3:9] = 1  # 24 pixels
    compressed = coco_mask.encode(block)
    compressed["counts"] = compressed["counts"].decode("ascii")
    # uncompressed RLE: column-major run lengths, starting with background
    flat = np.asfortranarray(block).reshape(-1, order="F")
    runs, current, count = [], 0, 0
    for value in flat:
        if value == current:
            count += 1
        else:
            runs.append(count)
            current, count = value, 1
    runs.append(count)
    annotations: list[dict[str, Any]] = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 1, 10, 5],
         "segmentation": _polygon(2, 1, 10, 5), "area": 50, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [3, 2, 6, 4],
         "segmentation": compressed, "area": 24, "iscrowd": 1},
        {"id": 3, "image_id": 3, "category_id": 2, "bbox": [3, 2, 6, 4],
         "segmentation": {"size": [size[1], size[0]], "counts": runs}, "area": 24, "iscrowd": 1},
        {"id": 4, "image_id": 4, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0},
        {"id": 5, "image_id": 4, "category_id": 2, "bbox": [5, 5, 4, 3], "area": 12, "iscrowd": 0},
    ]  # fmt: skip
    document = {
        "images": [
            {"id": i + 1, "file_name": n, "width": size[0], "height": size[1]}
            for i, n in enumerate(names)
        ],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "scratch"}, {"id": 2, "name": "pit"}],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(document))
    return path


def yolo(root: Path) -> Path:
    """Ultralytics layout: data.yaml, images/{train,val}, labels/{train,val}."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: scratch\n  1: pit\n"
    )
    write_image(root / "images" / "train" / "a.png", (40, 20))
    write_image(root / "images" / "train" / "b.png", (40, 20))
    write_image(root / "images" / "val" / "c.jpg", (30, 30), mode="RGB")
    labels = root / "labels"
    (labels / "train").mkdir(parents=True)
    (labels / "val").mkdir(parents=True)
    (labels / "train" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n0 0.1 0.2 0.2 0.4\n")
    (labels / "train" / "b.txt").write_text("")  # a good image
    (labels / "val" / "c.txt").write_text("0 0.5 0.5 1.0 1.0\n")
    return root


VOC_XML = """<annotation>
  <folder>{folder}</folder><filename>{filename}</filename>
  <size><width>{width}</width><height>{height}</height><depth>1</depth></size>
  {objects}
</annotation>"""
VOC_OBJECT = """<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>
  <difficult>0</difficult><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>
  <xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"""


def voc_xml(filename: str, size: tuple[int, int], objects: list[tuple[str, tuple]]) -> str:
    body = "\n".join(VOC_OBJECT.format(name=n, box=b) for n, b in objects)
    return VOC_XML.format(
        folder="VOC", filename=filename, width=size[0], height=size[1], objects=body
    )


def voc(root: Path, *, images: str = "JPEGImages", annotations: str = "Annotations") -> Path:
    """VOC: 000001 with two objects of two classes, 000002 with none (good), 000003 with one."""
    size = (32, 24)
    objects = {
        "000001": [("crack", (1, 1, 10, 8)), ("pit", (5, 5, 30, 24))],
        "000002": [],
        "000003": [("crack", (3, 4, 12, 20))],
    }
    for stem, objs in objects.items():
        write_image(root / images / f"{stem}.jpg", size, mode="RGB")
        xml = root / annotations / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml(f"{stem}.jpg", size, objs))
    return root


def neu_det(root: Path) -> Path:
    """NEU-DET: IMAGES/ and ANNOTATIONS/, 200x200, the file named after one class while a box
    has another (as in the published archive)."""
    size = (200, 200)
    files = {
        "crazing_1": [("crazing", (1, 1, 200, 200))],
        "patches_7": [("patches", (10, 20, 60, 90)), ("scratches", (100, 5, 120, 190))],
        "inclusion_3": [("inclusion", (50, 60, 80, 70))],
    }
    for stem, objs in files.items():
        write_image(root / "IMAGES" / f"{stem}.jpg", size)
        xml = root / "ANNOTATIONS" / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml(f"{stem}.jpg", size, objs))
    return root
