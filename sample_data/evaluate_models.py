"""Quick check of the bundled example models on the bundled sample (onnxruntime, no torch).

    .venv/bin/python sample_data/evaluate_models.py [--data sample_data/steel] [--models ...]

Per model: image accuracy (arg-max class), and at the decision unit "part" (rejected when any of
its images has defect score = 1 - p(good) >= the card's operating threshold) the escape rate
(missed defective parts / defective parts) overall and per lighting / shift, and the overkill
rate (rejected good parts / good parts). A part's lighting and shift are the same for all its
views. This is a sanity check of the sample data, not the audit: use ``auditkit`` for that.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml
from PIL import Image

HERE = Path(__file__).resolve().parent
_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def load_inputs(rows: list[dict[str, str]], root: Path, card: dict) -> np.ndarray:
    spec = card["input"]
    size = (int(spec["width"]), int(spec["height"]))
    mean = np.float32(spec["mean"][0])
    std = np.float32(spec["std"][0])
    x = np.empty((len(rows), 1, size[1], size[0]), dtype=np.float32)
    for i, row in enumerate(rows):
        with Image.open(root / row["path"]) as image:
            small = image.convert(spec["color"]).resize(size, _FILTERS[spec["resize"]])
        x[i, 0] = (np.asarray(small, dtype=np.float32) / np.float32(255.0) - mean) / std
    return x


def rate(k: int, n: int) -> str:
    return f"{k / n:7.2%} ({k:4d}/{n:4d})" if n else "      - (   0/   0)"


def evaluate(model_path: Path, rows: list[dict[str, str]], root: Path) -> list[str]:
    card = yaml.safe_load(model_path.with_name(f"{model_path.stem}.card.yaml").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    x = load_inputs(rows, root, card)
    probs = np.concatenate(
        [
            session.run([card["output"]["name"]], {card["input"]["name"]: x[i : i + 256]})[0]
            for i in range(0, len(x), 256)
        ]
    )
    classes = card["classes"]
    good = classes.index(card["good_class"])
    threshold = float(card["operating_threshold"])
    labels = np.array([classes.index(r["label"]) for r in rows])
    correct = int((probs.argmax(1) == labels).sum())
    score = 1.0 - probs[:, good]

    parts: dict[str, dict[str, object]] = {}
    for row, s in zip(rows, score, strict=True):
        part = parts.setdefault(row["part_id"], {"row": row, "reject": False})
        part["reject"] = bool(part["reject"]) or bool(s >= threshold)

    def part_rate(defective: bool, key: str | None = None, value: str | None = None) -> str:
        n = k = 0
        for part in parts.values():
            row = part["row"]
            assert isinstance(row, dict)
            if (row["label"] != "good") != defective:
                continue
            if key is not None and row[key] != value:
                continue
            n += 1
            k += int(part["reject"] != defective)
        return rate(k, n)

    declared = card.get("declared", {})
    return [
        f"{card['name']} {card['version']}  (threshold {threshold}; declared "
        + json.dumps(declared)
        + ")",
        f"  image accuracy          {rate(correct, len(rows))}",
        f"  escape rate (parts)     {part_rate(True)}",
        f"    lighting = nominal    {part_rate(True, 'lighting', 'nominal')}",
        f"    lighting = dim        {part_rate(True, 'lighting', 'dim')}",
        f"    shift = day           {part_rate(True, 'shift', 'day')}",
        f"    shift = night         {part_rate(True, 'shift', 'night')}",
        f"  overkill rate (parts)   {part_rate(False)}",
        f"    lighting = nominal    {part_rate(False, 'lighting', 'nominal')}",
        f"    lighting = dim        {part_rate(False, 'lighting', 'dim')}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "steel")
    parser.add_argument(
        "--models",
        type=Path,
        nargs="+",
        default=[HERE / "models" / "steel-v1.onnx", HERE / "models" / "steel-v2.onnx"],
    )
    args = parser.parse_args()
    with (args.data / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    n_parts = len({r["part_id"] for r in rows})
    n_bad = len({r["part_id"] for r in rows if r["label"] != "good"})
    print(f"data: {args.data.name}: {len(rows)} images, {n_parts} parts ({n_bad} defective)")
    for model_path in args.models:
        print()
        print("\n".join(evaluate(model_path, rows, args.data)))


if __name__ == "__main__":
    main()
