"""Each published layout loads with the right images, classes, boxes and masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditkit.data.build import boxes_table, labels_from_boxes
from auditkit.data.interface import LoadOptions
from auditkit.data.loaders import detect_format, load, load_dataset
from auditkit.data.manifest_format import load_manifest
from auditkit.data.masks import binarise, read_mask
from auditkit.errors import DataError
from tests import data_layouts as layouts


def boxes_of(loaded, sample_id: str) -> list[tuple]:
    boxes = loaded.dataset.boxes
    rows = boxes[boxes["sample_id"] == sample_id].sort_values(["class", "x1"])
    return [tuple(r) for r in rows[["class", "x1", "y1", "x2", "y2"]].itertuples(index=False)]


def label_of(loaded, path: str) -> tuple[str, bool]:
    samples = loaded.dataset.samples.set_index("path")
    return samples.at[path, "label"], bool(samples.at[path, "is_defect"])


# --------------------------------------------------------------------------- image folder


def test_image_folder_labels_are_folder_names(tmp_path: Path) -> None:
    root = layouts.image_folder(tmp_path / "data")
    assert detect_format(root) == "imagefolder"
    loaded = load(root)
    samples = loaded.dataset.samples
    assert samples["label"].value_counts().to_dict() == {"good": 3, "scratch": 2, "pit": 1}
    assert label_of(loaded, "pit/day/p0.bmp") == ("pit", True)
    assert label_of(loaded, "good/g0.png") == ("good", False)
    assert loaded.dataset.boxes is None and "mask" not in samples.columns
    assert loaded.problems == ()


def test_image_outside_a_class_folder_is_a_problem_that_blocks_replay(tmp_path: Path) -> None:
    root = layouts.image_folder(tmp_path / "data")
    layouts.write_image(root / "stray.png")
    loaded = load(root)
    assert [(p.kind, p.path) for p in loaded.problems] == [("unlabelled_image", "stray.png")]
    assert len(loaded.dataset.samples) == 6
    with pytest.raises(DataError, match=r"1 problem.*unlabelled_image stray.png"):
        load_dataset(root)


# --------------------------------------------------------------------------- MVTec AD


def test_mvtec_category_audits_the_test_split_with_masks(tmp_path: Path) -> None:
    category = layouts.mvtec_category(tmp_path)
    assert detect_format(category) == "mvtec"
    loaded = load(category)
    samples = loaded.dataset.samples
    assert len(samples) == 5  # test/good 2, broken_large 2, contamination 1; not train
    assert samples["label"].value_counts().to_dict() == {
        "good": 2,
        "broken_large": 2,
        "contamination": 1,
    }
    assert samples["is_defect"].sum() == 3
    assert loaded.dataset.metadata_columns == []  # mask is ground truth, not metadata
    masks = samples.set_index("path")["mask"]
    assert masks["test/good/000.png"] == ""
    assert masks["test/broken_large/001.png"] == "ground_truth/broken_large/001_mask.png"
    # 0/255 masks: foreground > 127; the 0/1 mask: foreground == 1
    counts = [
        int(read_mask(loaded.dataset.root, loaded.dataset.manifest, m).sum())
        for m in samples["mask"]
        if m
    ]
    assert sorted(counts) == [7, 10, 20]


def test_mvtec_split_all_and_dataset_root(tmp_path: Path) -> None:
    layouts.mvtec_category(tmp_path, "bottle")
    layouts.mvtec_category(tmp_path, "screw")
    everything = load(tmp_path, LoadOptions(split="all"))
    samples = everything.dataset.samples
    assert len(samples) == 14
    assert samples.groupby(["category", "split"]).size().to_dict() == {
        ("bottle", "test"): 5,
        ("bottle", "train"): 2,
        ("screw", "test"): 5,
        ("screw", "train"): 2,
    }
    train = load(tmp_path / "screw", LoadOptions(split="train")).dataset.samples
    assert list(train["label"]) == ["good", "good"]
    with pytest.raises(DataError, match="splits train and test"):
        load(tmp_path, LoadOptions(split="val"))


def test_mvtec_good_images_take_the_cards_good_class(tmp_path: Path) -> None:
    category = layouts.mvtec_category(tmp_path)
    samples = load(category, LoadOptions(good_label="ok")).dataset.samples
    assert set(samples["label"]) == {"ok", "broken_large", "contamination"}


# --------------------------------------------------------------------------- COCO


def test_coco_counts_boxes_and_labels(tmp_path: Path) -> None:
    path = layouts.coco(tmp_path)
    assert detect_format(path) == "coco"
    loaded = load(path)
    assert loaded.dataset.root == tmp_path / "images"  # images/ beside the JSON
    assert len(loaded.dataset.samples) == 5
    assert len(loaded.dataset.boxes) == 5
    # bbox [x, y, w, h] -> corners
    assert boxes_of(loaded, "poly.png") == [("scratch", 2.0, 1.0, 12.0, 6.0)]
    # two classes: the one covering more area (pit 4x3 = 12 > scratch 2x2 = 4)
    assert label_of(loaded, "two.png") == ("pit", True)
    assert label_of(loaded, "good.png") == ("good", False)
    masks = loaded.dataset.samples.set_index("path")["mask"]
    assert (masks != "").sum() == 3 and masks["two.png"] == "" and masks["poly.png"] == "coco:1"


def test_coco_polygon_and_rle_masks_match_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    path = layouts.coco(tmp_path)
    dataset = load(path).dataset
    reference = COCO(str(path))
    for image_id, expected_pixels in ((1, None), (2, 24), (3, 24)):
        ours = read_mask(dataset.root, dataset.manifest, f"coco:{image_id}")
        assert ours is not None
        theirs = np.zeros_like(ours)
        for annotation in reference.loadAnns(reference.getAnnIds(imgIds=[image_id])):
            theirs |= reference.annToMask(annotation).astype(bool)
        np.testing.assert_array_equal(ours, theirs)
        if expected_pixels is not None:  # the RLEs encode a 4 x 6 block
            assert int(ours.sum()) == expected_pixels
    assert int(read_mask(dataset.root, dataset.manifest, "coco:1").sum()) > 0


def test_coco_images_folder_choice(tmp_path: Path) -> None:
    path = layouts.coco(tmp_path)
    elsewhere = tmp_path / "pictures"
    shutil.move(tmp_path / "images", elsewhere)
    missing = load(path)  # neither beside the JSON nor in images/: unreadable rows
    assert set(missing.dataset.samples["status"]) == {"unreadable"}
    given = load(path, LoadOptions(images=elsewhere))
    assert given.dataset.root == elsewhere.resolve()
    assert set(given.dataset.samples["status"]) == {"ok"}
    with pytest.raises(DataError, match="--images applies to COCO"):
        load(layouts.yolo(tmp_path / "y"), LoadOptions(images=elsewhere))


# --------------------------------------------------------------------------- YOLO


def test_yolo_normalised_boxes_become_pixel_corners(tmp_path: Path) -> None:
    root = layouts.yolo(tmp_path / "data")
    assert detect_format(root) == "yolo"
    assert detect_format(root / "data.yaml") == "yolo"
    loaded = load(root)
    # a.png is 40 x 20: "1 0.5 0.5 0.5 0.5" -> pit (0.25*40, 0.25*20, 0.75*40, 0.75*20)
    # "0 0.1 0.2 0.2 0.4" -> scratch ((0.1-0.1)*40, (0.2-0.2)*20, 0.2*40, 0.4*20)
    assert boxes_of(loaded, "images/train/a.png") == [
        ("pit", 10.0, 5.0, 30.0, 15.0),
        ("scratch", 0.0, 0.0, 8.0, 8.0),
    ]
    assert boxes_of(loaded, "images/val/c.jpg") == [("scratch", 0.0, 0.0, 30.0, 30.0)]
    assert label_of(loaded, "images/train/a.png") == ("pit", True)  # 200 px² > 64 px²
    assert label_of(loaded, "images/train/b.png") == ("good", False)  # empty label file
    assert loaded.dataset.samples["split"].tolist() == ["train", "train", "val"]
    val = load(root, LoadOptions(split="val")).dataset
    assert val.samples["path"].tolist() == ["images/val/c.jpg"] and len(val.boxes) == 1


def test_yolo_roboflow_layout_and_polygon_lines(tmp_path: Path) -> None:
    root = tmp_path / "export"
    layouts.write_image(root / "valid" / "images" / "x.png", (10, 10))
    (root / "valid" / "labels").mkdir(parents=True)
    (root / "valid" / "labels" / "x.txt").write_text("0 0.1 0.2 0.5 0.2 0.3 0.9\n")
    (root / "train").mkdir()
    (root / "test").mkdir()  # Roboflow has train/ and test/ too: still YOLO, not MVTec
    (root / "data.yaml").write_text("names: ['dent']\n")
    assert detect_format(root) == "yolo"
    loaded = load(root)
    assert boxes_of(loaded, "valid/images/x.png") == [("dent", 1.0, 2.0, 5.0, 9.0)]
    assert loaded.dataset.samples["split"].tolist() == ["val"]


# --------------------------------------------------------------------------- Pascal VOC


def test_voc_boxes_are_one_based_indices_turned_into_edges(tmp_path: Path) -> None:
    root = layouts.voc(tmp_path / "VOC2007")
    assert detect_format(root) == "voc"
    loaded = load(root)
    assert len(loaded.dataset.samples) == 3 and len(loaded.dataset.boxes) == 3
    assert boxes_of(loaded, "JPEGImages/000001.jpg") == [
        ("crack", 0.0, 0.0, 10.0, 8.0),
        ("pit", 4.0, 4.0, 30.0, 24.0),
    ]
    assert label_of(loaded, "JPEGImages/000002.jpg") == ("good", False)
    assert loaded.declared_sizes["JPEGImages/000001.jpg"] == (32, 24)


def test_neu_det_layout_with_box_classes_unlike_the_file_name(tmp_path: Path) -> None:
    root = layouts.neu_det(tmp_path / "NEU-DET")
    assert detect_format(root) == "voc"
    loaded = load(root)
    assert len(loaded.dataset.samples) == 3
    assert loaded.dataset.boxes["class"].value_counts().to_dict() == {
        "crazing": 1,
        "patches": 1,
        "scratches": 1,
        "inclusion": 1,
    }
    assert boxes_of(loaded, "IMAGES/crazing_1.jpg") == [("crazing", 0.0, 0.0, 200.0, 200.0)]
    # patches 51 x 71 = 3621 px², scratches 21 x 186 = 3906 px²: the larger area names it
    assert label_of(loaded, "IMAGES/patches_7.jpg") == ("scratches", True)


def test_voc_split_lists(tmp_path: Path) -> None:
    root = layouts.voc(tmp_path / "VOC2007")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "test.txt").write_text("000001\n000003\n")
    samples = load(root, LoadOptions(split="test")).dataset.samples
    assert samples["path"].tolist() == ["JPEGImages/000001.jpg", "JPEGImages/000003.jpg"]
    with pytest.raises(DataError, match=r"train.txt not found"):
        load(root, LoadOptions(split="train"))
    with pytest.raises(DataError, match="--split applies to mvtec, yolo, voc data, not coco"):
        load(layouts.coco(tmp_path / "c"), LoadOptions(split="test"))


# --------------------------------------------------------------------------- manifest


def test_manifest_with_one_row_per_box_and_masks(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        layouts.write_image(tmp_path / name, (20, 20))
    layouts.write_mask(tmp_path / "masks" / "a.png", (20, 20), 15)
    (tmp_path / "manifest.csv").write_text(
        "path,label,line,mask,x1,y1,x2,y2,box_class\n"
        "a.png,scratch,L1,masks/a.png,1,2,5,6,\n"
        "a.png,scratch,L1,masks/a.png,7,7,9,9,pit\n"
        "b.png,good,L2,,,,,,\n"
        "c.png,pit,L1,,0,0,20,20,pit\n"
    )
    dataset = load_manifest(tmp_path / "manifest.csv")
    assert len(dataset.samples) == 3
    assert dataset.metadata_columns == ["line"]
    assert dataset.boxes is not None
    assert dataset.boxes.values.tolist() == [
        ["a.png", "scratch", 1.0, 2.0, 5.0, 6.0],  # box_class defaults to the label
        ["a.png", "pit", 7.0, 7.0, 9.0, 9.0],
        ["c.png", "pit", 0.0, 0.0, 20.0, 20.0],
    ]
    assert int(read_mask(dataset.root, dataset.manifest, "masks/a.png").sum()) == 15
    # rows of one image must agree on its columns
    (tmp_path / "bad.csv").write_text(
        "path,label,x1,y1,x2,y2\na.png,scratch,1,1,2,2\na.png,pit,3,3,4,4\n"
    )
    with pytest.raises(DataError, match=r"rows of 'a.png' disagree on 'label'"):
        load_manifest(tmp_path / "bad.csv")
    (tmp_path / "half.csv").write_text("path,label,x1,y1\na.png,scratch,1,1\n")
    with pytest.raises(DataError, match="lacks"):
        load_manifest(tmp_path / "half.csv")


def test_box_digest_changes_when_a_box_moves(tmp_path: Path) -> None:
    layouts.write_image(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("path,label,x1,y1,x2,y2\na.png,pit,1,1,4,4\n")
    (tmp_path / "n.csv").write_text("path,label,x1,y1,x2,y2\na.png,pit,1,1,4,5\n")
    (tmp_path / "plain.csv").write_text("path,label\na.png,pit\n")
    moved = load_manifest(tmp_path / "n.csv").manifest_sha256
    assert load_manifest(tmp_path / "m.csv").manifest_sha256 != moved
    assert load_manifest(tmp_path / "plain.csv").manifest_sha256 not in (moved,)


def test_masks_in_a_folder_manifest_may_not_leave_the_root(tmp_path: Path) -> None:
    layouts.write_image(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("path,label,mask\na.png,pit,../m.png\n")
    with pytest.raises(DataError, match="escapes the data root"):
        load_manifest(tmp_path / "m.csv")


# --------------------------------------------------------------------------- rules


def test_label_rule_ties_go_to_the_alphabetically_first_class() -> None:
    boxes = boxes_table(
        [
            ("a", "scratch", 0, 0, 2, 2),  # 4 px²
            ("a", "dent", 0, 0, 1, 4),  # 4 px²: a tie
            ("b", "pit", 0, 0, 1, 1),
            ("b", "pit", 0, 0, 1, 1),  # pit 2 px² in all
            ("b", "dent", 0, 0, 1, 1.5),  # 1.5 px²
            ("c", "good", 0, 0, 3, 3),  # a box of the good class: not a defect
        ]
    )
    labels, defect = labels_from_boxes(["a", "b", "c", "d"], boxes, "good")
    assert labels == ["dent", "pit", "good", "good"]
    assert defect == [True, True, False, False]


def test_mask_threshold_rule() -> None:
    assert binarise(np.array([0, 1, 1])).tolist() == [False, True, True]
    assert binarise(np.array([0, 1, 127, 128, 255])).tolist() == [False, False, False, True, True]


def test_ambiguous_layout_names_every_candidate(tmp_path: Path) -> None:
    root = layouts.voc(tmp_path / "data")
    (root / "manifest.csv").write_text("path,label\nJPEGImages/000001.jpg,pit\n")
    with pytest.raises(DataError, match=r"could be manifest \(it holds manifest.csv\); voc"):
        detect_format(root)
    assert load(root, LoadOptions(format="voc")).dataset.format == "voc"
    assert load(root, LoadOptions(format="manifest")).dataset.format == "manifest"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the layout"):
        detect_format(tmp_path / "empty")
    with pytest.raises(DataError, match="unknown format 'kitti'"):
        load(root, LoadOptions(format="kitti"))


def test_coco_file_that_is_not_coco(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(DataError, match="not a COCO file"):
        load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read COCO file"):
        load(tmp_path / "y.json")


def test_samples_table_has_the_contract_columns(tmp_path: Path) -> None:
    samples = load(layouts.coco(tmp_path)).dataset.samples
    assert list(samples.columns) == [
        "sample_id",
        "part_id",
        "path",
        "sha256",
        "label",
        "is_defect",
        "status",
        "error",
        "mask",
    ]
    assert samples["is_defect"].dtype == bool
    assert isinstance(samples, pd.DataFrame)


def test_coco_mask_only_annotation_gets_its_extent_as_box(tmp_path: Path) -> None:
    from pycocotools import mask as coco_mask

    path = layouts.coco(tmp_path)
    document = json.loads(path.read_text())
    for annotation in document["annotations"][:3]:
        del annotation["bbox"]
    path.write_text(json.dumps(document))
    loaded = load(path)
    polygon, compressed, raw = (a["segmentation"] for a in document["annotations"][:3])
    compressed = {**compressed, "counts": compressed["counts"].encode("ascii")}
    references = {  # pycocotools' toBbox of the same segmentations (images are 20 x 10)
        "poly.png": ("scratch", coco_mask.merge(coco_mask.frPyObjects(polygon, 10, 20))),
        "rle.png": ("pit", compressed),
        "rle_raw.png": ("pit", coco_mask.frPyObjects(raw, 10, 20)),
    }
    for name, (cls, rle) in references.items():
        x, y, w, h = (float(v) for v in coco_mask.toBbox(rle))
        assert boxes_of(loaded, name) == [(cls, x, y, x + w, y + h)], name
    assert boxes_of(loaded, "rle.png") == [("pit", 3.0, 2.0, 9.0, 6.0)]  # the 4 x 6 block


def test_symbolic_links_out_of_a_folder_layout_are_refused(tmp_path: Path) -> None:
    root = layouts.image_folder(tmp_path / "data")
    secret = layouts.write_image(tmp_path / "secret.png")
    (root / "good" / "link.png").symlink_to(secret)
    with pytest.raises(DataError, match="through a symbolic link"):
        load(root)
    (root / "good" / "link.png").unlink()
    (root / "scratch" / "outside").symlink_to(tmp_path, target_is_directory=True)
    assert len(load(root).dataset.samples) == 6  # linked folders are not walked


def test_a_linked_folder_out_of_the_root_is_refused_in_a_manifest(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    layouts.write_image(outside / "secret.png")
    root = tmp_path / "data"
    root.mkdir()
    (root / "shelf").symlink_to(outside, target_is_directory=True)
    (root / "m.csv").write_text("path,label\nshelf/secret.png,good\n")
    with pytest.raises(DataError, match="through a symbolic link"):
        load_manifest(root / "m.csv")
    # a link that stays inside the root is followed
    layouts.write_image(root / "real" / "a.png")
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    (root / "n.csv").write_text("path,label\nalias/a.png,good\n")
    assert load_manifest(root / "n.csv").samples["status"].tolist() == ["ok"]


def test_a_folder_holding_one_data_set_is_not_read_as_an_image_folder(tmp_path: Path) -> None:
    layouts.voc(tmp_path / "VOCdevkit" / "VOC2007")
    with pytest.raises(DataError, match=r"its folder VOC2007 looks like voc .*give .*VOC2007"):
        detect_format(tmp_path / "VOCdevkit")
    forced = load(tmp_path / "VOCdevkit", LoadOptions(format="imagefolder")).dataset
    assert set(forced.samples["label"]) == {"VOC2007"}
