from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from auditkit.data.manifest import manifest_digest
from auditkit.data.manifest_format import load_manifest
from auditkit.errors import DataError
from tests.conftest import write_dataset


def test_loads_rows_hashes_and_metadata(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path, n=6)
    ds = load_manifest(manifest)
    assert len(ds.samples) == 6
    assert ds.metadata_columns == ["line", "lighting"]
    first = ds.samples.iloc[0]
    expected = hashlib.sha256((tmp_path / "images/img000.png").read_bytes()).hexdigest()
    assert first["sha256"] == expected
    assert first["status"] == "ok"
    assert list(ds.samples["is_defect"]) == [label != "good" for label in ds.samples["label"]]


def test_missing_file_becomes_unreadable_row(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path, n=6, missing=2)
    ds = load_manifest(manifest)
    assert list(ds.samples["status"]) == ["unreadable"] * 2 + ["ok"] * 4
    assert ds.samples["error"].iloc[0] == "file not found"
    assert len(ds.samples) == 6  # nothing dropped


@pytest.mark.parametrize("bad_path", ["../outside.png", "/etc/passwd", "images/../../x.png"])
def test_path_escaping_the_data_root_is_refused(tmp_path: Path, bad_path: str) -> None:
    (tmp_path / "outside.png").write_bytes(b"x")
    root = tmp_path / "data"
    root.mkdir()
    (root / "manifest.csv").write_text(f"path,label\n{bad_path},good\n")
    with pytest.raises(DataError, match=r"escapes the data root|is absolute"):
        load_manifest(root / "manifest.csv")


def test_missing_columns_and_duplicates_are_named(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("file,label\na.png,good\n")
    with pytest.raises(DataError, match=r"lacks column.*path"):
        load_manifest(tmp_path / "m.csv")
    (tmp_path / "d.csv").write_text("sample_id,path,label\na,a.png,good\na,b.png,good\n")
    with pytest.raises(DataError, match="duplicate sample_id 'a'"):
        load_manifest(tmp_path / "d.csv")


def test_parquet_manifest_equals_csv(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path, n=6)
    pd.read_csv(manifest, dtype=str).to_parquet(tmp_path / "manifest.parquet")
    a = load_manifest(manifest)
    b = load_manifest(tmp_path / "manifest.parquet")
    pd.testing.assert_frame_equal(a.samples, b.samples)
    assert a.manifest_sha256 == b.manifest_sha256


def test_manifest_digest_ignores_order_but_not_labels(tmp_path: Path) -> None:
    ds = load_manifest(write_dataset(tmp_path, n=6))
    shuffled = ds.samples.sample(frac=1.0, random_state=3)
    assert manifest_digest(shuffled) == ds.manifest_sha256
    relabelled = ds.samples.copy()
    relabelled.loc[0, "label"] = "pit"
    assert manifest_digest(relabelled) != ds.manifest_sha256
    # hand-computed definition (docs/run-format.md)
    lines = sorted(
        f"{r.sample_id}\t{r.path}\t{r.sha256}\t{r.label}" for r in ds.samples.itertuples()
    )
    assert ds.manifest_sha256 == hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_symbolic_link_out_of_the_root_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for the report")
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "images" / "link.png").symlink_to(secret)
    (root / "manifest.csv").write_text("path,label\nimages/link.png,good\n")
    with pytest.raises(DataError, match="through a symbolic link"):
        load_manifest(root / "manifest.csv")


def test_paths_are_normalised_lexically(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path, n=3)
    text = manifest.read_text().replace("images/img001.png", "./images/../images/img001.png")
    manifest.write_text(text)
    ds = load_manifest(manifest)
    assert list(ds.samples["path"]) == [f"images/img{i:03d}.png" for i in range(3)]
    assert ds.samples["status"].tolist() == ["ok"] * 3


def _reference_digest(samples: pd.DataFrame, boxes: pd.DataFrame | None = None) -> str:
    """The digest's definition (docs/run-format.md), every line held and sorted in Python."""
    lines = sorted(f"{r.sample_id}\t{r.path}\t{r.sha256}\t{r.label}" for r in samples.itertuples())
    if boxes is not None:
        lines += sorted(
            "\t".join(["box", r.sample_id, r[1], *(repr(float(v)) for v in r[2:])])
            for r in boxes.itertuples(index=False)
        )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.mark.parametrize(
    "ids",
    [
        ["a", "a\x01", "a b", "b"],  # a control character after a shorter id's prefix
        ["x", "x\ty", "xy", "w"],  # a tab inside an id
        ["s10", "s9", "s1", "é", "z", "Z", "s1"],  # code point order, a repeated id
    ],
)
@pytest.mark.parametrize("rows", [2, 1 << 14])
def test_chunked_digest_equals_the_definition(
    ids: list[str], rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Arrow-sorted digest, hashed ``rows`` lines at a time, equals the definition on ids
    that sort differently alone than as the first field of a tab-joined line."""
    import auditkit.data.manifest as manifest

    monkeypatch.setattr(manifest, "ROWS", rows)
    samples = pd.DataFrame(
        {
            "sample_id": ids,
            "path": [f"p{i}.png" for i in range(len(ids))][::-1],
            "sha256": ["ab" * 32] * len(ids),
            "label": ["good", "pit"] * (len(ids) // 2) + ["good"] * (len(ids) % 2),
        }
    )
    boxes = pd.DataFrame(
        {
            "sample_id": [ids[1], ids[0]],
            "class": ["pit", "pit"],
            "x1": [1.0, 0.5],
            "y1": [2.0, 0.0],
            "x2": [3.25, 4.0],
            "y2": [4.0, 8.0],
        }
    )
    assert manifest_digest(samples) == _reference_digest(samples)
    assert manifest_digest(samples, boxes) == _reference_digest(samples, boxes)
