"""Box and mask ground truth of the generator, and the MVTec AD / COCO / YOLO writers (checked
against the public layouts; COCO RLE decoded with pycocotools)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from auditkit.sample.generator import mask_box, render_part, render_part_truth
from auditkit.sample.layouts import DEFECTS, records, write_coco, write_mvtec, write_yolo

N = 40


def test_mask_box_is_the_drawn_extent() -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:3, 2:5] = True
    mask[4, 6] = True
    # pixels x 2..6, y 1..4 -> corners (2, 1) and (7, 5)
    assert mask_box(mask) == (2.0, 1.0, 7.0, 5.0)
    assert mask_box(np.zeros((3, 3), dtype=bool)) is None


def test_masks_leave_the_images_unchanged_and_cover_the_defect() -> None:
    contrasts = []
    for index in range(24):
        meta, views, masks = render_part_truth(2026, index)
        _, plain = render_part(2026, index)
        assert all(np.array_equal(a, b) for a, b in zip(views, plain, strict=True))
        for view, mask in zip(views, masks, strict=True):
            assert mask.shape == view.shape
            if meta.label == "good":
                assert not mask.any()
                continue
            assert 0 < mask.mean() < 0.5
            # defects change the surface where the mask is (faint ones only a little)
            contrasts.append(abs(view[mask].mean() - view[~mask].mean()))
    assert np.median(contrasts) > 5.0


def test_mvtec_layout(tmp_path: Path) -> None:
    root = write_mvtec(tmp_path, N, 2026)
    recs = list(records(N, 2026))
    goods = [r for r in recs if r.label == "good"]
    assert len(list((root / "train/good").glob("*.png"))) == (len(goods) + 1) // 2
    assert len(list((root / "test/good").glob("*.png"))) == len(goods) // 2
    assert not [p for p in (root / "train").iterdir() if p.name != "good"]
    for defect in {r.label for r in recs} - {"good"}:
        images = sorted((root / "test" / defect).glob("*.png"))
        masks = sorted((root / "ground_truth" / defect).glob("*_mask.png"))
        assert [p.stem + "_mask" for p in images] == [m.stem for m in masks]
        assert images[0].name == "000.png"
    first = next(r for r in recs if r.label != "good")
    saved = np.asarray(Image.open(root / "ground_truth" / first.label / "000_mask.png"))
    assert set(np.unique(saved)) <= {0, 255}
    np.testing.assert_array_equal(saved == 255, first.mask)


def test_coco_layout_decodes_with_pycocotools(tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    doc = json.loads(write_coco(tmp_path, N, 2026).read_text())
    recs = list(records(N, 2026))
    assert len(doc["images"]) == N
    assert [c["name"] for c in doc["categories"]] == list(DEFECTS)
    defects = [r for r in recs if r.label != "good"]
    assert len(doc["annotations"]) == len(defects)
    for ann in doc["annotations"]:
        r = recs[ann["image_id"] - 1]
        assert doc["images"][ann["image_id"] - 1]["file_name"] == f"{r.sample_id}.png"
        assert (tmp_path / "images" / f"{r.sample_id}.png").exists()
        assert DEFECTS[ann["category_id"] - 1] == r.label
        h, w = ann["segmentation"]["size"]
        decoded = mask_utils.decode(mask_utils.frPyObjects(ann["segmentation"], h, w))
        np.testing.assert_array_equal(decoded.astype(bool), r.mask)
        x, y, bw, bh = ann["bbox"]
        assert (x, y, x + bw, y + bh) == mask_box(r.mask)
        assert ann["area"] == r.mask.sum()


def test_yolo_layout(tmp_path: Path) -> None:
    data = yaml.safe_load(write_yolo(tmp_path, N, 2026).read_text())
    assert data["names"] == dict(enumerate(DEFECTS))
    for r in records(N, 2026):
        lines = (tmp_path / "labels" / f"{r.sample_id}.txt").read_text().splitlines()
        assert (tmp_path / "images" / f"{r.sample_id}.png").exists()
        if r.label == "good":
            assert lines == []
            continue
        cls, cx, cy, w, h = lines[0].split()
        x1, y1, x2, y2 = mask_box(r.mask)
        size = r.pixels.shape[1]
        assert DEFECTS[int(cls)] == r.label
        np.testing.assert_allclose(
            [float(cx), float(cy), float(w), float(h)],
            [(x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size],
            atol=5e-7,
        )


REPO = Path(__file__).resolve().parent.parent


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_bundled_sample_sets_are_reproducible(tmp_path: Path) -> None:
    write_mvtec(tmp_path / "steel-mvtec", 240, 2026)
    write_coco(tmp_path / "steel-coco", 200, 2026)
    write_yolo(tmp_path / "steel-yolo", 200, 2026)
    for name in ("steel-mvtec", "steel-coco", "steel-yolo"):
        assert _files(tmp_path / name) == _files(REPO / "sample_data" / name), name


def test_bundled_sets_load_with_their_metadata_tables() -> None:
    """Each set's metadata.csv joins through `--metadata` as a user would pass it: every audited
    image gets its line, shift, camera, lighting and supplier, and the table's part."""
    from auditkit.data.interface import LoadOptions
    from auditkit.data.loaders import load_dataset

    cases = {
        "steel-mvtec/steel": ("mvtec", 183),  # the test split: 240 - 57 train/good
        "steel-coco/annotations.json": ("coco", 200),
        "steel-yolo": ("yolo", 200),
    }
    for data, (layout, n) in cases.items():
        folder = REPO / "sample_data" / data.split("/")[0]
        options = LoadOptions(metadata=folder / "metadata.csv")
        dataset = load_dataset(REPO / "sample_data" / data, options)
        samples = dataset.samples
        assert dataset.format == layout and len(samples) == n, data
        for column in ("line", "shift", "camera", "lighting", "supplier"):
            assert (samples[column] != "").all(), (data, column)
        assert samples["part_id"].str.startswith("p").all(), data
