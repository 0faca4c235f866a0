"""The synthetic steel-image generator behind the bundled sample data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from auditkit.sample.generator import CLASSES, COLUMNS, SIZE, encode_png, generate, render_part

N = 60


def _read(manifest: Path) -> tuple[list[str], list[dict[str, str]]]:
    with manifest.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.*"))}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("steel")
    generate(N, 11, out)
    return out


@pytest.fixture(scope="module")
def rows(sample: Path) -> list[dict[str, str]]:
    return _read(sample / "manifest.csv")[1]


def test_same_seed_gives_identical_bytes(sample: Path, tmp_path: Path) -> None:
    manifest = generate(N, 11, tmp_path)
    assert manifest == tmp_path / "manifest.csv"
    assert _files(tmp_path) == _files(sample)


def test_different_seed_differs(sample: Path, tmp_path: Path) -> None:
    generate(N, 12, tmp_path)
    first = _files(sample)
    other = _files(tmp_path)
    assert first.keys() == other.keys()
    assert first["images/s000000.png"] != other["images/s000000.png"]
    assert first["manifest.csv"] != other["manifest.csv"]


def test_parts_do_not_depend_on_n(sample: Path, tmp_path: Path) -> None:
    generate(20, 11, tmp_path)
    small = _read(tmp_path / "manifest.csv")[1]
    full = _read(sample / "manifest.csv")[1]
    # Every part but the last (which may be cut to one view) is identical, bytes included.
    complete = [r for r in small if r["part_id"] != small[-1]["part_id"]]
    assert len(complete) >= 15
    for row in complete:
        assert row == full[int(row["sample_id"][1:])]
        assert (tmp_path / row["path"]).read_bytes() == (sample / row["path"]).read_bytes()


def test_manifest_columns_and_values(sample: Path, rows: list[dict[str, str]]) -> None:
    header, _ = _read(sample / "manifest.csv")
    assert tuple(header) == COLUMNS
    assert len(rows) == N
    assert len({r["sample_id"] for r in rows}) == N
    for row in rows:
        assert row["path"] == f"images/{row['sample_id']}.png"
        assert (sample / row["path"]).is_file()
        assert row["part_id"].startswith("p") and len(row["part_id"]) == 7
        assert row["label"] in CLASSES
        assert row["line"] in {"L1", "L2", "L3"}
        assert row["shift"] in {"day", "night"}
        assert row["camera"] in {"cam-A", "cam-B"}
        assert row["lighting"] in {"nominal", "dim"}
        assert row["supplier"] in {"S1", "S2", "S3"}
    assert len(list((sample / "images").iterdir())) == N


def test_every_class_present(rows: list[dict[str, str]]) -> None:
    assert {r["label"] for r in rows} == set(CLASSES)
    assert {r["lighting"] for r in rows} == {"nominal", "dim"}


def test_two_view_parts_share_label_and_metadata(rows: list[dict[str, str]]) -> None:
    by_part: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_part.setdefault(row["part_id"], []).append(row)
    pairs = [views for views in by_part.values() if len(views) == 2]
    assert pairs, "expected some two-view parts"
    assert all(len(views) <= 2 for views in by_part.values())
    shared = ("label", "line", "shift", "lighting", "supplier")
    for a, b in pairs:
        assert {a["camera"], b["camera"]} == {"cam-A", "cam-B"}
        assert all(a[key] == b[key] for key in shared)


def test_images_are_8bit_grayscale(sample: Path, rows: list[dict[str, str]]) -> None:
    for row in rows[:10]:
        with Image.open(sample / row["path"]) as image:
            assert image.format == "PNG"
            assert image.mode == "L"
            assert image.size == (SIZE, SIZE)


def test_png_round_trip() -> None:
    _, views = render_part(3, 0)
    pixels = views[0]
    assert pixels.dtype == np.uint8 and pixels.shape == (SIZE, SIZE)
    from io import BytesIO

    with Image.open(BytesIO(encode_png(pixels))) as image:
        assert np.array_equal(np.asarray(image), pixels)


def test_dim_lighting_is_darker() -> None:
    means: dict[str, list[float]] = {"nominal": [], "dim": []}
    for index in range(40):
        meta, views = render_part(5, index)
        means[meta.lighting].append(float(np.mean(views[0])))
    assert np.mean(means["dim"]) < 0.8 * np.mean(means["nominal"])


def test_rejects_bad_n(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(0, 1, tmp_path)
