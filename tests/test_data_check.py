"""``data check`` finds each kind of problem in a data set that has it; metadata joins."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from auditkit.data.check import check_data
from auditkit.data.interface import LoadOptions
from auditkit.data.loaders import load, load_dataset
from auditkit.errors import DataError
from tests import data_layouts as layouts
from tests.test_cli import run_cli


def kinds(report: dict) -> list[tuple[str, str]]:
    return [(p["kind"], p["path"]) for p in report["problems"]]


def test_clean_data_sets_have_no_problems(tmp_path: Path) -> None:
    for build in (layouts.image_folder, layouts.yolo, layouts.voc, layouts.neu_det):
        root = build(tmp_path / build.__name__)
        assert check_data(root)["problems"] == [], build.__name__
    assert check_data(layouts.coco(tmp_path / "coco"))["problems"] == []
    layouts.mvtec_category(tmp_path / "mvtec")
    assert check_data(tmp_path / "mvtec")["problems"] == []


def test_summary_counts(tmp_path: Path) -> None:
    report = check_data(layouts.yolo(tmp_path))
    assert report["format"] == "yolo"
    assert report["n_images"] == 3 and report["n_boxes"] == 3
    assert report["classes"] == {"good": 1, "pit": 1, "scratch": 1}
    assert report["box_classes"] == {"pit": 1, "scratch": 2}
    assert report["metadata"] == {"split": {"train": 2, "val": 1}}
    assert report["image_sizes"] == {"30x30": 1, "40x20": 2}
    assert report["image_modes"] == {"L": 2, "RGB": 1}
    assert report["boxes_per_image"] == {
        "min": 0,
        "mean": 1.0,
        "max": 2,
        "images_without_boxes": 1,
    }


def test_unreadable_images_missing_file_and_corrupt_file(tmp_path: Path) -> None:
    root = layouts.image_folder(tmp_path)
    (root / "good" / "g0.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    report = check_data(root)
    assert kinds(report) == [("unreadable_image", "good/g0.png")]
    assert "cannot decode image" in report["problems"][0]["detail"]
    assert report["n_unreadable"] == 1
    category = layouts.mvtec_category(tmp_path / "m")
    (category / "test" / "good" / "001.png").unlink()
    (category / "test" / "good" / "001.png").symlink_to(category / "nowhere.png")
    assert ("unreadable_image", "test/good/001.png") in kinds(check_data(category))


def test_missing_and_mismatched_masks_and_orphan_masks(tmp_path: Path) -> None:
    category = layouts.mvtec_category(tmp_path)
    (category / "ground_truth" / "broken_large" / "001_mask.png").unlink()
    layouts.write_mask(category / "ground_truth" / "contamination" / "000_mask.png", (8, 8), 3)
    layouts.write_mask(category / "ground_truth" / "broken_large" / "009_mask.png", (16, 16), 3)
    report = check_data(category)
    assert kinds(report) == [
        ("missing_mask", "ground_truth/broken_large/001_mask.png"),
        ("mask_size_mismatch", "ground_truth/contamination/000_mask.png"),
        ("orphan_label", "ground_truth/broken_large/009_mask.png"),
    ]


def test_yolo_orphan_labels_unlabelled_images_malformed_lines_unknown_classes(
    tmp_path: Path,
) -> None:
    root = layouts.yolo(tmp_path)
    (root / "labels" / "train" / "b.txt").unlink()
    (root / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "val" / "c.txt").write_text("0 0.5 0.5 1.0 1.0\n7 0.5 0.5 0.1 0.1\nx y\n")
    report = check_data(root)
    assert kinds(report) == [
        ("orphan_label", "labels/train/ghost.txt"),
        ("unlabelled_image", "images/train/b.png"),
        ("malformed_label", "labels/val/c.txt"),
        ("unknown_class", "labels/val/c.txt"),
    ]
    with pytest.raises(DataError, match="leave labels or metadata undefined"):
        load_dataset(root)


def test_voc_orphan_xml_and_image_without_xml(tmp_path: Path) -> None:
    root = layouts.voc(tmp_path)
    (root / "Annotations" / "000002.xml").unlink()
    shutil.copy(root / "Annotations" / "000001.xml", root / "Annotations" / "000099.xml")
    (root / "Annotations" / "000099.xml").write_text(
        layouts.voc_xml("000099.jpg", (32, 24), [("crack", (1, 1, 2, 2))])
    )
    (root / "Annotations" / "000003.xml").write_text("<annotation><object>")
    report = check_data(root)
    assert kinds(report) == [
        ("orphan_label", "Annotations/000099.xml"),
        ("unlabelled_image", "JPEGImages/000002.jpg"),
        ("malformed_label", "JPEGImages/000003.jpg"),
    ]


def test_boxes_outside_the_image_or_of_zero_area(tmp_path: Path) -> None:
    root = layouts.voc(tmp_path)
    (root / "Annotations" / "000003.xml").write_text(
        layouts.voc_xml(
            "000003.jpg",
            (32, 24),
            [("crack", (1, 1, 33, 10)), ("pit", (5, 5, 4, 9)), ("dent", (2, 2, 3, 3))],
        )
    )
    report = check_data(root)
    assert kinds(report) == [
        ("box_outside_image", "JPEGImages/000003.jpg"),
        ("box_zero_area", "JPEGImages/000003.jpg"),
    ]
    assert "crack (0, 0, 33, 10) leaves the 32x24 image" in report["problems"][0]["detail"]


def test_identical_files_with_conflicting_labels(tmp_path: Path) -> None:
    root = layouts.image_folder(tmp_path)
    shutil.copy(root / "good" / "g1.png", root / "scratch" / "copy.png")
    shutil.copy(root / "good" / "g2.png", root / "good" / "same-label-copy.png")  # not a conflict
    report = check_data(root)
    assert kinds(report) == [("conflicting_duplicate", "good/g1.png")]
    assert "good/g1.png (good), scratch/copy.png (scratch)" in report["problems"][0]["detail"]


def test_unknown_classes_against_the_expected_list(tmp_path: Path) -> None:
    root = layouts.voc(tmp_path)
    report = check_data(root, LoadOptions(classes=("good", "crack")))
    assert kinds(report) == [
        ("unknown_class", "JPEGImages/000001.jpg"),  # the label pit
        ("unknown_class", "JPEGImages/000001.jpg"),  # the pit box
    ]
    path = layouts.coco(tmp_path / "c")
    document = json.loads(path.read_text())
    document["annotations"][0]["category_id"] = 9
    path.write_text(json.dumps(document))
    assert ("unknown_class", "poly.png") in kinds(check_data(path))


def test_declared_size_mismatch(tmp_path: Path) -> None:
    path = layouts.coco(tmp_path)
    document = json.loads(path.read_text())
    document["images"][4]["width"] = 21
    path.write_text(json.dumps(document))
    report = check_data(path)
    assert kinds(report) == [("size_mismatch", "good.png")]
    assert report["problems"][0]["detail"] == "annotation says 21x10, image is 20x10"


# --------------------------------------------------------------------------- metadata


def test_metadata_from_path(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for line, shift in (("L1", "day"), ("L2", "night"), ("L1", "night")):
        layouts.write_image(root / "good" / line / shift / "a.png")
    layouts.write_image(root / "good" / "misc" / "b.png")
    options = LoadOptions(metadata_from_path=r"(?P<line>L\d)/(?P<shift>day|night)/")
    loaded = load(root, options)
    samples = loaded.dataset.samples.set_index("path")
    assert samples.at["good/L2/night/a.png", "line"] == "L2"
    assert samples.at["good/L1/day/a.png", "shift"] == "day"
    assert [(p.kind, p.path) for p in loaded.problems] == [
        ("metadata_unmatched", "good/misc/b.png")
    ]
    with pytest.raises(DataError, match=r"metadata_unmatched good/misc/b.png"):
        load_dataset(root, options)
    with pytest.raises(DataError, match="no named group"):
        load(root, LoadOptions(metadata_from_path=r"L\d"))
    with pytest.raises(DataError, match="not a valid regular expression"):
        load(root, LoadOptions(metadata_from_path=r"(?P<line>L\d"))
    with pytest.raises(DataError, match="'label' is reserved"):
        load(root, LoadOptions(metadata_from_path=r"(?P<label>L\d)"))


def test_part_id_from_the_path(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for part, view in (("P1", "top"), ("P1", "side"), ("P2", "top")):
        layouts.write_image(root / "good" / f"{part}_{view}.png")
    samples = load(root, LoadOptions(metadata_from_path=r"(?P<part_id>P\d)_")).dataset.samples
    assert samples["part_id"].tolist() == ["P1", "P1", "P2"]
    assert "part_id" not in load(root).dataset.metadata_columns


def test_metadata_side_table_by_path_and_by_file_name(tmp_path: Path) -> None:
    root = layouts.image_folder(tmp_path / "data")
    by_path = tmp_path / "meta.csv"
    paths = load(root).dataset.samples["path"].tolist()
    rows = [f"{p},L{i % 2 + 1}" for i, p in enumerate(paths)]
    by_path.write_text("path,line\n" + "\n".join(rows) + "\n")
    samples = load(root, LoadOptions(metadata=by_path)).dataset.samples
    assert samples["line"].tolist() == [f"L{i % 2 + 1}" for i in range(len(paths))]

    by_name = tmp_path / "meta.parquet"
    names = [p.rsplit("/", 1)[-1] for p in paths]
    pd.DataFrame({"file_name": names[:-1], "camera": ["c1"] * (len(names) - 1)}).to_parquet(by_name)
    loaded = load(root, LoadOptions(metadata=by_name))
    assert loaded.dataset.samples["camera"].tolist() == ["c1"] * (len(names) - 1) + [""]
    assert [(p.kind, p.path) for p in loaded.problems] == [("metadata_missing", paths[-1])]


def test_metadata_side_table_errors(tmp_path: Path) -> None:
    root = layouts.image_folder(tmp_path / "data")
    table = tmp_path / "meta.csv"
    table.write_text("file_name,line\ng0.png,L1\ng0.png,L2\n")
    with pytest.raises(DataError, match=r"file_name 'g0.png' appears twice"):
        load(root, LoadOptions(metadata=table))
    table.write_text("file_name,line\ng0.png,L1\nnope.png,L2\n")
    with pytest.raises(DataError, match=r"1 row.* match no image.*'nope.png'"):
        load(root, LoadOptions(metadata=table))
    table.write_text("image,line\ng0.png,L1\n")
    with pytest.raises(DataError, match="needs a column 'path' or 'file_name'"):
        load(root, LoadOptions(metadata=table))
    layouts.write_image(root / "scratch" / "g0.png")
    table.write_text("file_name,line\ng0.png,L1\n")
    with pytest.raises(DataError, match=r"'g0.png' names two images"):
        load(root, LoadOptions(metadata=table))
    with pytest.raises(DataError, match="metadata table not found"):
        load(root, LoadOptions(metadata=tmp_path / "absent.csv"))


# --------------------------------------------------------------------------- CLI


def check_cli(*args: str) -> Result:
    """``auditkit data check`` in this process (the exit codes come from typer.Exit)."""
    from auditkit.cli import app

    return CliRunner().invoke(app, ["data", "check", *args])


def test_cli_data_check_exit_codes_and_json(tmp_path: Path) -> None:
    root = layouts.yolo(tmp_path / "clean")
    clean = check_cli(str(root))
    assert clean.exit_code == 0, clean.output
    assert "format: yolo" in clean.stdout and "problems: none" in clean.stdout

    as_json = check_cli(str(root), "--json")
    assert as_json.exit_code == 0
    report = json.loads(as_json.stdout)
    assert report["format"] == "yolo" and report["n_images"] == 3 and report["n_boxes"] == 3
    assert report["classes"] == {"good": 1, "pit": 1, "scratch": 1} and report["problems"] == []

    (root / "labels" / "train" / "b.txt").unlink()
    dirty = check_cli(str(root))
    assert dirty.exit_code == 5
    assert "unlabelled_image" in dirty.stdout and "images/train/b.png" in dirty.stdout
    dirty_json = check_cli(str(root), "--json")
    assert dirty_json.exit_code == 5
    assert json.loads(dirty_json.stdout)["problems"] == [
        {
            "kind": "unlabelled_image",
            "path": "images/train/b.png",
            "detail": "no label file labels/train/b.txt",
        }
    ]
    forced = check_cli(str(root), "--format", "imagefolder", "--json")
    assert json.loads(forced.stdout)["format"] == "imagefolder"


def test_cli_data_check_bad_input_is_one_line(tmp_path: Path) -> None:
    result = run_cli("data", "check", str(tmp_path / "absent"))
    assert result.returncode == 5 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: data not found: {tmp_path / 'absent'}"


def test_cli_data_help() -> None:
    from auditkit.cli import app

    result = CliRunner().invoke(app, ["data", "check", "--help"])
    assert result.exit_code == 0
    for option in ("--format", "--images", "--metadata", "--metadata-from-path", "--json"):
        assert option in result.output


def test_malformed_coco_segmentations(tmp_path: Path) -> None:
    path = layouts.coco(tmp_path)
    document = json.loads(path.read_text())
    document["annotations"][0]["segmentation"] = [[1, 2, 3, 4]]  # two points
    document["annotations"][1]["segmentation"] = {"counts": "abc"}  # no size
    path.write_text(json.dumps(document))
    report = check_data(path)
    assert kinds(report) == [("malformed_label", "poly.png"), ("malformed_label", "rle.png")]
    assert report["n_masks"] == 1 and report["n_boxes"] == 5  # boxes kept, masks dropped


def test_cli_data_check_against_a_model_card(tmp_path: Path) -> None:
    import yaml

    from tests.conftest import card_dict

    category = layouts.mvtec_category(tmp_path / "mvtec")
    card = tmp_path / "m.card.yaml"
    card.write_text(yaml.safe_dump(card_dict(good_class="good")))  # good, scratch, pit
    result = check_cli(str(category), "--card", str(card), "--json")
    assert result.exit_code == 5
    problems = json.loads(result.output)["problems"]
    assert {(p["kind"], p["detail"]) for p in problems} == {
        ("unknown_class", "label 'broken_large' not in the expected classes"),
        ("unknown_class", "label 'contamination' not in the expected classes"),
    }
    assert len(problems) == 3  # two broken_large images, one contamination


def test_yolo_unreadable_image_keeps_its_label(tmp_path: Path) -> None:
    root = layouts.yolo(tmp_path)
    (root / "images" / "train" / "a.png").write_bytes(b"not an image")
    loaded = load(root)
    samples = loaded.dataset.samples.set_index("path")
    assert samples.at["images/train/a.png", "label"] == "pit"  # from its label file
    assert samples.at["images/train/a.png", "status"] == "ok"  # hashed; replay marks decoding
    assert loaded.problems == ()  # without decoding, the file reads fine
    assert kinds(check_data(root)) == [("unreadable_image", "images/train/a.png")]
    assert len(load_dataset(root).boxes) == 1  # only c.jpg's box is placed
