"""Inputs that must never fool the replay (issue 14, part 6), each tried as a tester would: one
line, the documented exit code, nothing lost, no process left behind.

Every bad file is built here, in ``tmp_path``: a decompression bomb (a PNG header claiming
30000 x 30000 pixels), a truncated PNG, 32-bit pixels, a 16-bit greyscale PNG, a FIFO and a
folder listed in a manifest, a Latin-1 manifest, a card whose class order is not the model's.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from PIL import Image

from auditkit.audit import run_replay
from auditkit.data.check import check_data
from auditkit.models.card import InputSpec
from auditkit.models.preprocess import decode_file
from auditkit.replay.checkpoint import ReplayInterrupted
from tests.conftest import CLASSES, SIZE, card_dict, write_dataset, write_tiny_model
from tests.onnx_builders import constant_model
from tests.test_replay_resume import SETTINGS, assert_same_run

ENV = {**os.environ, "PYTHONPATH": os.getcwd()}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,  # a hang is a failure, not a stuck test run
        env=ENV,
    )


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single stderr line of a command that exited ``code``."""
    assert result.returncode == code, result.stderr + result.stdout
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb(path: Path, side: int = 30000) -> Path:
    """A valid PNG header for a side x side greyscale image (900 megapixels) followed by the
    first rows of zeros: a few kB on disk, 900 MB once decoded."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (side + 1) * 16, 9)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows)
    path.write_bytes(png + _chunk(b"IEND", b""))
    return path


def write_truncated(path: Path) -> Path:
    noise = np.random.default_rng(3).integers(0, 256, size=(64, 64), dtype=np.uint8)
    Image.fromarray(noise, "L").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_int32(path: Path) -> Path:
    """A 32-bit integer greyscale TIFF (Pillow mode I): its range is unknown."""
    pixels = np.arange(16 * 16, dtype=np.int32).reshape(16, 16) * 1000
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode == "I"
    return path


@pytest.fixture()
def bad_images(tmp_path: Path) -> Path:
    """A 24-image manifest (batches of 4) whose images 13, 17 and 21 are a bomb, a truncated
    PNG and a 32-bit TIFF: after the first two batches, so an interrupted replay decodes them
    on --resume."""
    manifest = write_dataset(tmp_path / "data", n=24)
    images = tmp_path / "data" / "images"
    write_bomb(images / "img013.png")
    write_truncated(images / "img017.png")
    write_int32(images / "img021.tif")
    manifest.write_text(manifest.read_text().replace("img021.png", "img021.tif"))
    return manifest


REASONS = {
    13: "cannot decode image: too large: Image size (900000000 pixels) exceeds limit",
    17: "cannot decode image: image file is truncated",
    21: "unsupported pixels: 32-bit integer pixels (Pillow mode I) have no known range",
}


def test_decoder_errors_are_unreadable_rows_in_replay_and_on_resume(
    tmp_path: Path, tiny_model: Path, bad_images: Path
) -> None:
    whole = run_replay(bad_images, tiny_model, tmp_path / "whole", settings=SETTINGS)
    assert (whole.n_images, whole.n_unreadable, whole.n_scored) == (24, 3, 21)
    samples = pd.read_parquet(tmp_path / "whole" / "samples.parquet")
    for row, reason in REASONS.items():
        assert samples["status"][row] == "unreadable"
        assert samples["error"][row].startswith(reason), samples["error"][row]
    assert (samples["status"] == "ok").sum() == 21  # nothing else lost

    # data check gives the same reasons for the same files
    problems = check_data(bad_images)["problems"]
    assert {p["path"]: p["detail"] for p in problems} == {
        samples["path"][row]: samples["error"][row] for row in REASONS
    }

    # interrupted after two batches (before any bad image), then resumed: the same run
    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= 8:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(ReplayInterrupted):
        run_replay(bad_images, tiny_model, out, settings=SETTINGS, progress=stop_after_two_batches)
    assert not (out / "samples.parquet").exists()
    resumed = run_replay(bad_images, tiny_model, out, settings=SETTINGS, resume=True)
    assert resumed.resumed and resumed.n_unreadable == 3
    assert_same_run(tmp_path / "whole", out)


def test_cli_replay_of_a_decompression_bomb_is_not_an_internal_error(
    tmp_path: Path, tiny_model: Path, bad_images: Path
) -> None:
    for processes in ("0", "2"):  # decoded in this process, and in worker processes
        out = tmp_path / f"run{processes}"
        result = run_cli(
            "replay",
            str(bad_images),
            "-m",
            str(tiny_model),
            "-o",
            str(out),
            "--decode-processes",
            processes,
            "--batch-size",
            "4",
            "--single-stream",
            "3",
            "--no-progress",
        )
        assert result.returncode == 0, result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
        samples = pd.read_parquet(out / "samples.parquet")
        assert samples["status"].value_counts().to_dict() == {"ok": 21, "unreadable": 3}
        assert samples["error"][13].startswith(REASONS[13])


# --------------------------------------------------------------------------- bit depth


def test_sixteen_bit_greyscale_is_scaled_not_saturated(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    v16 = rng.integers(0, 65536, size=(SIZE, SIZE), dtype=np.uint16)
    Image.fromarray(v16).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode == "I;16"
    spec = InputSpec(name="x", height=SIZE, width=SIZE, mean=[0.5], std=[0.25])
    # at the input size (no resize): exactly (v / 65535 - mean) / std, the NumPy reference
    tensor = decode_file(tmp_path / "sixteen.png", spec)
    reference = (v16.astype(np.float64) / 65535.0 - 0.5) / 0.25
    np.testing.assert_allclose(tensor[0], reference, rtol=0, atol=1e-5)
    assert tensor.max() < (1 - 0.5) / 0.25 + 1e-6  # not all white

    # resized, for an RGB card: the 8-bit image of the same content gives the same tensor
    # within 1/255 (8-bit content v8 stored as 16-bit v8 * 257)
    v8 = rng.integers(0, 256, size=(24, 32), dtype=np.uint8)
    Image.fromarray(v8, "L").save(tmp_path / "eight.png")
    Image.fromarray(v8.astype(np.uint16) * 257).save(tmp_path / "sixteen-big.png")
    for color in ("L", "RGB"):
        for mode in ("stretch", "letterbox"):
            spec = InputSpec(
                name="x", color=color, height=SIZE, width=SIZE, resize_mode=mode, std=[1.0]
            )
            eight = decode_file(tmp_path / "eight.png", spec)
            sixteen = decode_file(tmp_path / "sixteen-big.png", spec)
            assert sixteen.shape == eight.shape == (spec.channels, SIZE, SIZE)
            assert np.abs(sixteen - eight).max() <= 1 / 255 + 1e-6, (color, mode)


def test_sixteen_bit_rgb_keeps_the_high_byte_not_white(tmp_path: Path) -> None:
    """A 48-bit RGB PNG (written by hand: Pillow cannot write one): Pillow keeps each channel's
    high byte, so the tensor is within 1/255 of v / 65535, never saturated."""
    v = np.random.default_rng(5).integers(0, 65536, size=(SIZE, SIZE, 3)).astype(">u2")
    rows = b"".join(b"\0" + v[i].tobytes() for i in range(SIZE))
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows))
    (tmp_path / "rgb48.png").write_bytes(png + _chunk(b"IEND", b""))
    spec = InputSpec(name="x", color="RGB", height=SIZE, width=SIZE, mean=[0.0], std=[1.0])
    tensor = decode_file(tmp_path / "rgb48.png", spec)
    reference = np.transpose(v.astype(np.float64) / 65535.0, (2, 0, 1))
    assert np.abs(tensor - reference).max() <= 1 / 255


def test_data_check_accepts_sixteen_bit_and_refuses_unknown_ranges(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(root / "sixteen.png")
    write_int32(root / "int32.tif")
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(root / "float.tif")
    (root / "manifest.csv").write_text(
        "path,label\nsixteen.png,good\nint32.tif,good\nfloat.tif,scratch\n"
    )
    report = check_data(root / "manifest.csv")
    assert report["image_modes"] == {"I;16": 1}
    assert [(p["path"], p["detail"]) for p in report["problems"]] == [
        (
            "float.tif",
            "unsupported pixels: floating-point pixels (Pillow mode F) have no known "
            "range; save the image with 8 or 16 bits per channel",
        ),
        (
            "int32.tif",
            "unsupported pixels: 32-bit integer pixels (Pillow mode I) have no known "
            "range; save the image with 8 or 16 bits per channel",
        ),
    ]


# --------------------------------------------------------------------------- card vs model


def _classifier_with_metadata(tmp_path: Path, metadata: dict[str, str]) -> Path:
    """The tiny classifier of conftest with ``metadata_props``."""
    import onnx

    path = write_tiny_model(tmp_path / "meta.onnx")
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"classes": json.dumps(["good", "pit", "scratch"])},
            "metadata_props class names ['good', 'pit', 'scratch'] differ from the card's "
            "['good', 'scratch', 'pit']",
        ),
        (
            {"names": "{0: 'good', 1: 'scratch'}"},
            "metadata_props name 2 classes (good, scratch), the card 3 (good, scratch, pit)",
        ),
        (
            {"preprocessing": json.dumps({"mean": [0.45], "filter": "bicubic"})},
            "metadata_props preprocessing filter is 'bicubic', the card declares 'bilinear'",
        ),
    ],
)
def test_replay_and_audit_refuse_a_card_that_disagrees_with_metadata_props(
    tmp_path: Path, metadata: dict[str, str], expected: str
) -> None:
    model = _classifier_with_metadata(tmp_path, metadata)
    card = tmp_path / "meta.card.yaml"
    card.write_text(yaml.safe_dump(card_dict()))  # classes good, scratch, pit
    manifest = write_dataset(tmp_path / "data", n=8)
    replayed = run_cli("replay", str(manifest), "-m", str(model), "-o", str(tmp_path / "run"))
    line = one_line(replayed, 5)
    assert line.startswith("error: meta.onnx and its card disagree: ") and expected in line
    assert not (tmp_path / "run" / "run.json").exists()
    audited = run_cli(
        "audit",
        str(manifest),
        "-m",
        str(model),
        "--rubric",
        "industrial-aoi-acceptance",
        "-o",
        str(tmp_path / "a"),
    )
    assert expected in one_line(audited, 5)
    inspected = run_cli("model", "inspect", str(model), "--card", str(card))
    assert inspected.returncode == 5 and expected in inspected.stdout  # the same check


def test_the_bundled_models_agree_with_their_metadata_props() -> None:
    from auditkit.models.card import load_card
    from auditkit.models.inspect import inspect_model

    models = Path(__file__).parent.parent / "sample_data" / "models"
    for onnx_file in sorted(models.glob("*.onnx")):
        card = load_card(models / f"{onnx_file.stem}.card.yaml")
        report = inspect_model(onnx_file, card)
        assert report["disagreements"] == [], onnx_file.name


# --------------------------------------------------------------------------- probabilities


def _sigmoid_classifier(path: Path) -> Path:
    """The tiny classifier with a sigmoid where its softmax was: every value in [0, 1], rows
    summing to anything in (0, 3)."""
    import onnx

    write_tiny_model(path)
    model = onnx.load(str(path))
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    softmax.op_type = "Sigmoid"
    del softmax.attribute[:]
    onnx.save(model, str(path))
    return path


def test_logits_declared_as_probabilities_are_one_model_error(tmp_path: Path) -> None:
    model = _sigmoid_classifier(tmp_path / "sig.onnx")
    (tmp_path / "sig.card.yaml").write_text(yaml.safe_dump(card_dict()))
    manifest = write_dataset(tmp_path / "data", n=12)
    # what the model outputs for these images, computed here: in [0, 1], sums far from 1
    from auditkit.models.card import load_card

    spec = load_card(tmp_path / "sig.card.yaml").input
    weights = np.random.default_rng(0).normal(size=(SIZE * SIZE, len(CLASSES)))
    images = sorted((tmp_path / "data" / "images").glob("*.png"))
    flat = np.stack([decode_file(p, spec).reshape(-1) for p in images])
    outputs = 1 / (1 + np.exp(-(flat @ weights)))
    assert outputs.min() >= 0 and outputs.max() <= 1
    assert np.abs(outputs.sum(axis=1) - 1).max() > 0.1
    result = run_cli("replay", str(manifest), "-m", str(model), "-o", str(tmp_path / "run"))
    line = one_line(result, 5)
    assert "output 'probs' is declared as probabilities" in line and "row sums" in line
    assert "declare output.kind: logits" in line
    assert not (tmp_path / "run" / "run.json").exists()


def test_rows_summing_to_a_quarter_or_two_are_caught_and_softmax_rows_are_not(
    tmp_path: Path,
) -> None:
    from auditkit.models.onnx_model import SUM_TOLERANCE, NotProbabilities, check_probabilities

    for row in ([0.1, 0.15, 0.0], [1.0, 0.55, 0.5], [0.7, 0.2, 0.1005 + SUM_TOLERANCE]):
        with pytest.raises(NotProbabilities, match=r"1 of 2 rows of a batch are not"):
            check_probabilities(np.array([[0.2, 0.3, 0.5], row]), "m.onnx", "probs")
    logits = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    check_probabilities(softmax, "m.onnx", "probs")  # float32 rounding is within tolerance
    check_probabilities(np.array([[np.nan, 0.5, 0.5]]), "m.onnx", "probs")  # a row error
    # a constant model: the warm-up already sees it (no image is replayed)
    c = card_dict(input={"name": "images", "height": 8, "width": 8}, output={"name": "p"})
    model = constant_model(tmp_path / "c.onnx", {"p": np.array([[0.1, 0.1, 0.05]], np.float32)})
    (tmp_path / "c.card.yaml").write_text(yaml.safe_dump(c))
    manifest = write_dataset(tmp_path / "data", n=4)
    result = run_cli("replay", str(manifest), "-m", str(model), "-o", str(tmp_path / "run"))
    assert "row sums 0.25 to 0.25" in one_line(result, 5)


# --------------------------------------------------------------------------- non-regular files


def test_a_fifo_or_folder_in_a_manifest_is_refused_before_reading(
    tmp_path: Path, tiny_model: Path
) -> None:
    manifest = write_dataset(tmp_path / "data", n=8)
    images = tmp_path / "data" / "images"
    (images / "img002.png").unlink()
    os.mkfifo(images / "img002.png")  # opening it for reading would wait for a writer
    (images / "img005.png").unlink()
    (images / "img005.png").mkdir()
    started = time.monotonic()
    checked = run_cli("data", "check", str(manifest), "--json", timeout=60)
    assert checked.returncode == 5
    problems = json.loads(checked.stdout)["problems"]
    assert [(p["path"], p["detail"]) for p in problems] == [
        ("images/img002.png", "not a regular file: a FIFO (named pipe)"),
        ("images/img005.png", "not a regular file: a folder"),
    ]
    for processes in ("0", "2"):
        out = tmp_path / f"run{processes}"
        replayed = run_cli(
            "replay", str(manifest), "-m", str(tiny_model), "-o", str(out),
            "--decode-processes", processes, "--no-progress", timeout=60,
        )  # fmt: skip
        assert replayed.returncode == 0, replayed.stderr
        samples = pd.read_parquet(out / "samples.parquet")
        assert samples["error"][2] == "not a regular file: a FIFO (named pipe)"
        assert samples["error"][5] == "not a regular file: a folder"
        assert samples["status"].tolist().count("ok") == 6
    assert time.monotonic() - started < 60


# --------------------------------------------------------------------------- worker processes


def test_decode_workers_die_with_a_killed_replay(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=16)
    # 40,000 rows over the 16 files: a replay of about 20 s that is killed after a second or two
    rows = manifest.read_text().splitlines()
    long = [rows[0]] + [f"r{i}," + rows[1 + i % 16].split(",", 1)[1] for i in range(40000)]
    manifest.write_text("\n".join(long) + "\n")
    command = [
        sys.executable, "-m", "auditkit", "replay", str(manifest), "-m", str(tiny_model),
        "-o", str(tmp_path / "run"), "--decode-processes", "2", "--batch-size", "1",
        "--scenario", "offline", "--no-progress",
    ]  # fmt: skip
    replay = subprocess.Popen(command, env=ENV, stderr=subprocess.DEVNULL)
    parent = psutil.Process(replay.pid)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and replay.poll() is None:
            children = parent.children(recursive=True)
            workers = [c for c in children if c.ppid() != replay.pid]  # forked by the forkserver
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        assert replay.poll() is None, "the replay ended before it could be killed"
        assert len(children) >= 3, children  # the forkserver and two workers at least
        os.kill(replay.pid, signal.SIGKILL)
        replay.wait(10)
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == [], f"still running after the replay was killed: {alive}"
    finally:
        for child in children:
            if child.is_running():
                child.kill()
        if replay.poll() is None:
            replay.kill()


# --------------------------------------------------------------------------- data check


def test_data_check_with_a_detector_card_knows_its_good_class(tmp_path: Path) -> None:
    card = Path(__file__).parent.parent / "sample_data" / "models" / "steel-det.card.yaml"
    root = tmp_path / "det"
    (root / "images").mkdir(parents=True)
    for i, name in enumerate(("g1", "g2", "s1", "d1")):  # distinct files: no duplicates
        pixels = np.full((16, 16), 10 * i, np.uint8)
        Image.fromarray(pixels, "L").save(root / "images" / f"{name}.png")
    (root / "manifest.csv").write_text(
        "path,label,x1,y1,x2,y2\n"
        "images/g1.png,good,,,,\n"
        "images/g2.png,good,,,,\n"
        "images/s1.png,scratch,1,1,5,5\n"
        "images/d1.png,dent,2,2,6,6\n"
    )
    result = run_cli("data", "check", str(root / "manifest.csv"), "--card", str(card), "--json")
    assert result.returncode == 5
    problems = json.loads(result.stdout)["problems"]
    assert [(p["kind"], p["path"], p["detail"]) for p in problems] == [
        ("unknown_class", "images/d1.png", "box class 'dent' not expected"),
        ("unknown_class", "images/d1.png", "label 'dent' not in the expected classes"),
    ]
    clean = root / "clean.csv"
    clean.write_text("\n".join((root / "manifest.csv").read_text().splitlines()[:4]) + "\n")
    assert run_cli("data", "check", str(clean), "--card", str(card)).returncode == 0


def test_long_problem_lists_are_summarised_and_name_no_python_object(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(root / "one.png")
    (root / "not-an-image.png").write_bytes(b"hello")
    n = 3000
    labels = ["good" if i % 3 else "scratch" for i in range(n)]
    rows = [f"s{i},one.png,{label}" for i, label in enumerate(labels)]
    rows += [f"b{i},not-an-image.png,good" for i in range(40)]
    (root / "manifest.csv").write_text("sample_id,path,label\n" + "\n".join(rows) + "\n")
    result = run_cli("data", "check", str(root / "manifest.csv"))
    assert result.returncode == 5
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) < 500
    assert "problems: 41 (unreadable_image 40, conflicting_duplicate 1)" in lines
    assert "  ... 20 more unreadable_image (--json lists them all)" in lines
    assert sum("unreadable_image" in line for line in lines) == 1 + 20 + 1
    report = json.loads(run_cli("data", "check", str(root / "manifest.csv"), "--json").stdout)
    duplicate = next(p for p in report["problems"] if p["kind"] == "conflicting_duplicate")
    n_scratch = labels.count("scratch")
    assert f"{n} files (good {n - n_scratch}, scratch {n_scratch}), first: " in duplicate["detail"]
    assert duplicate["detail"].endswith(f"and {n - 10} more") and len(duplicate["detail"]) < 500
    unreadable = next(p for p in report["problems"] if p["kind"] == "unreadable_image")
    assert unreadable["detail"] == "cannot decode image: not an image format Pillow can identify"
    assert "object at 0x" not in result.stdout + json.dumps(report) and "<_io" not in result.stdout


def test_a_latin1_manifest_names_the_byte_offset_and_line(tmp_path: Path) -> None:
    text = "path,label\nimages/a.png,good\nimages/b.png,good\nimages/caf\u00e9.png,scratch\n"
    data = text.encode("latin-1")
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(data)
    offset = data.index(b"\xe9")  # where the file stops being UTF-8, counted here
    line_start = data.rindex(b"\n", 0, offset) + 1
    line = data[:offset].count(b"\n") + 1
    assert line == 4 and offset - line_start == len("images/caf")  # by hand: "café" on line 4
    expected = (
        f"error: manifest {manifest} is not UTF-8: byte 0xe9 at offset {offset} "
        f"(line {line}, column {offset - line_start + 1}); save it as UTF-8"
    )
    assert expected == one_line(run_cli("data", "check", str(manifest)), 5)


def _place(data: bytes, byte: bytes) -> str:
    """Where ``byte`` first occurs in ``data``, counted here: offset, line, column."""
    offset = data.index(byte)
    line = data[:offset].count(b"\n") + 1
    column = offset - (data.rindex(b"\n", 0, offset) + 1 if line > 1 else 0) + 1
    return f"byte 0x{byte[0]:02x} at offset {offset} (line {line}, column {column})"


def test_other_text_files_that_are_not_utf8_name_the_place(tmp_path: Path) -> None:
    from tests import data_layouts as layouts

    e_circumflex, e_grave, e_acute = b"\xea", b"\xe8", b"\xe9"  # Latin-1 bytes
    root = layouts.yolo(tmp_path / "yolo")
    label = root / "labels" / "train" / "a.txt"
    label.write_bytes(b"1 0.5 0.5 0.5 0.5\n0 0.1 0.2 0.2 0.4 # fen" + e_circumflex + b"tre\n")
    problems = check_data(root)["problems"]
    assert [(p["kind"], p["path"]) for p in problems] == [("malformed_label", "labels/train/a.txt")]
    place = _place(label.read_bytes(), e_circumflex)
    assert place.endswith("(line 2, column 24)")  # by hand: "0 0.1 0.2 0.2 0.4 # fen" is 23
    assert problems[0]["detail"].endswith(f"is not UTF-8: {place}; save it as UTF-8")

    data_yaml = root / "data.yaml"
    data_yaml.write_bytes(data_yaml.read_bytes().replace(b"pit", b"pi" + e_grave + b"ce"))
    line = one_line(run_cli("data", "check", str(root)), 5)
    place = _place(data_yaml.read_bytes(), e_grave)
    assert line == f"error: YOLO data file {data_yaml} is not UTF-8: {place}; save it as UTF-8"

    card = tmp_path / "latin.card.yaml"
    text = yaml.safe_dump(card_dict(description="caf\u00e9"), allow_unicode=True)
    card.write_bytes(text.encode("latin-1"))
    manifest = write_dataset(tmp_path / "data", n=4)
    model = write_tiny_model(tmp_path / "m.onnx")
    out = str(tmp_path / "r")
    result = run_cli("replay", str(manifest), "-m", str(model), "--card", str(card), "-o", out)
    place = _place(card.read_bytes(), e_acute)
    assert one_line(result, 5) == (
        f"error: model card {card} is not UTF-8: {place}; save it as UTF-8"
    )

    shipped = Path(__file__).parent.parent / "rubrics" / "industrial-aoi-acceptance.yaml"
    rubric = tmp_path / "latin-rubric.yaml"
    rubric.write_bytes(
        shipped.read_bytes().replace(b"\ntitle: ", b"\ntitle: Pr" + b"\xfc" + b"fung ", 1)
    )
    place = _place(rubric.read_bytes(), b"\xfc")
    line = one_line(run_cli("rubric", "show", str(rubric)), 5)
    assert line == f"error: {rubric} is not UTF-8: {place}; save it as UTF-8"


def test_a_manifest_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "manifest.csv")
    result = run_cli(
        "data", "check", str(tmp_path / "manifest.csv"), "--format", "manifest", timeout=60
    )
    assert (
        one_line(result, 5) == f"error: manifest {tmp_path / 'manifest.csv'} is not a regular file"
    )


def test_data_check_finds_a_truncated_image_after_weasyprint_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WeasyPrint sets ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` on import (a library using
    auditkit may have imported it): ``data check`` still reports the truncated file, as the
    replay does, and leaves the process-wide setting as it found it."""
    from PIL import ImageFile

    manifest = write_dataset(tmp_path / "data", n=4)
    write_truncated(tmp_path / "data" / "images" / "img002.png")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    problems = check_data(manifest)["problems"]
    assert [(Path(p["path"]).name, p["detail"]) for p in problems] == [("img002.png", REASONS[17])]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
