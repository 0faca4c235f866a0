"""The metrics engine against its peers, and on a million images, in one run (issue 5).

Three measurements, each printed with its ratio or figure and its goal; nothing is asserted:

1. **slices** (``metrics_slices.run``): escape, overkill and detection rate on 1M rows x 144
   slices, auditkit's counts-based slicing against Fairlearn's ``MetricFrame`` (by group,
   ``difference`` and ``ratio`` between groups). Goal: >= 50x faster, identical values.
2. **detection** (``metrics_detection.run``): COCO mAP on 2,000 images / 120,000 detections,
   ``auditkit.metrics.detection.coco_metrics`` against pycocotools' ``COCOeval``. Goal: >= 4x
   faster, identical values.
3. **evaluate**: a synthetic run directory of ``--samples`` images (1M by default: parts of 1-3
   views, 4 defect classes, 5 metadata columns, 0.1 % unreadable, 700 single-stream timings)
   is written with NumPy and pyarrow, then ``auditkit evaluate RUN`` (the full metric set, no
   rubric) runs in a fresh child whose peak resident set is read from ``ru_maxrss`` (as in
   ``replay_memory.py``). Goal: peak RSS <= 2 GB.

Usage:

    python benchmarks/metrics.py [--only slices detection evaluate] [--rows 1000000]
        [--images 2000] [--detections 120000] [--samples 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import metrics_detection
import metrics_slices
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from replay_memory import peak_rss

from auditkit.models.card import load_card
from auditkit.run import RUN_FORMAT, RunDir

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "sample_data/models/steel-v1.card.yaml"
MEMORY_GOAL_MB = 2048
METADATA = {
    "line": ["L1", "L2", "L3"],
    "shift": ["day", "night"],
    "lighting": ["nominal", "dim"],
    "supplier": ["S1", "S2", "S3"],
}
CAMERAS = ["cam-A", "cam-B", "cam-C", "cam-D"]


def _text(values: np.ndarray) -> pa.Array:
    """Fixed-width bytes (NumPy ``S``) → an Arrow string column, without Python strings."""
    return pa.array(values, type=pa.binary()).cast(pa.large_string())


def _large(text: str | pa.Array) -> pa.Array | pa.Scalar:
    return text if isinstance(text, pa.Array) else pa.scalar(text, pa.large_string())


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    digits = np.char.zfill(numbers.astype("S7"), 7)
    return _text(np.char.add(prefix.encode(), digits))


def make_run(out: Path, n: int, seed: int) -> None:
    """A replayed run directory of ``n`` images that ``auditkit evaluate`` accepts."""
    rng = np.random.default_rng(seed)
    card = load_card(CARD)
    classes = list(card.classes)
    views = rng.integers(1, 4, n)  # more parts than needed; cut at n images
    part = np.repeat(np.arange(n), views)[:n]
    n_parts = int(part[-1]) + 1
    defect = rng.random(n_parts) < 0.15
    part_class = np.where(defect, rng.integers(1, len(classes), n_parts), 0)
    label_code = part_class[part]
    label = np.asarray(classes, dtype="S")[label_code]
    unreadable = rng.random(n) < 0.001
    hex_digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    sha = np.empty((n, 64), dtype=np.uint8)
    sha[:, 0::2], sha[:, 1::2] = hex_digits[raw >> 4], hex_digits[raw & 15]
    ids = _ids("s", np.arange(n))
    columns: dict[str, pa.Array] = {
        "sample_id": ids,
        "part_id": _ids("p", part),
        "path": pc.binary_join_element_wise(*(_large(t) for t in ("images/", ids, ".png", ""))),
        "sha256": _text(sha.view("S64").ravel()),
        "label": _text(label),
        "is_defect": pa.array(label_code != 0),
        "status": _text(np.where(unreadable, b"unreadable", b"ok")),
        "error": _text(np.where(unreadable, b"file not found", b"")),
    }
    for name, values in METADATA.items():
        columns[name] = _text(
            np.asarray(values, dtype="S")[rng.integers(0, len(values), n_parts)][part]
        )
    columns["camera"] = _text(np.asarray(CAMERAS, dtype="S")[rng.integers(0, 4, n)])
    pq.write_table(pa.table(columns), out / "samples.parquet")

    ok = np.flatnonzero(~unreadable)
    logits = rng.normal(0.0, 1.0, (len(ok), len(classes)))
    logits[np.arange(len(ok)), label_code[ok]] += 3.0  # a good classifier, not a perfect one
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    positive = [classes.index(c) for c in card.positive_classes]
    score = probs[:, positive].sum(axis=1)
    predictions: dict[str, pa.Array] = {
        "sample_id": columns["sample_id"].take(pa.array(ok)),
        "score": pa.array(score),
        "pred_label": _text(np.asarray(classes, dtype="S")[probs.argmax(axis=1)]),
        "is_reject": pa.array(score >= card.operating_threshold),
    }
    for j, name in enumerate(classes):
        predictions[f"score__{name}"] = pa.array(probs[:, j])
    pq.write_table(pa.table(predictions), out / "predictions.parquet")

    single = 700
    timings = pd.DataFrame(
        {
            "scenario": ["single-stream"] * single,
            "batch": np.arange(single),
            "n": np.ones(single, dtype=np.int64),
            "decode_s": rng.gamma(4.0, 0.0001, single),
            "infer_s": rng.gamma(4.0, 0.0002, single),
        }
    )
    timings["e2e_s"] = timings["decode_s"] + timings["infer_s"]
    timings.to_parquet(out / "timings.parquet", index=False)
    RunDir(out).write_json(
        out / "run.json",
        {
            "format": RUN_FORMAT,
            "run_id": f"run-bench-{n}",
            "model": {"card": card.model_dump(mode="json", by_alias=True)},
            "replay": {"offline_throughput_ips": 2000.0},
        },
    )


def evaluate_memory(n: int, seed: int) -> dict[str, float]:
    """Peak RSS (MB) and wall time of ``auditkit evaluate`` on a synthetic run of ``n`` images."""
    with tempfile.TemporaryDirectory(prefix="auditkit-metrics-bench-") as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        started = time.perf_counter()
        make_run(run, n, seed)
        size = sum(f.stat().st_size for f in run.iterdir()) / 1e6
        print(
            f"wrote a run of {n:,} images ({size:.0f} MB) in {time.perf_counter() - started:.1f} s"
        )
        command = [sys.executable, "-m", "auditkit", "evaluate", str(run)]
        result = peak_rss(command)
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    peak = result["peak_mb"]
    verdict = "meets" if peak <= MEMORY_GOAL_MB else "misses"
    print(
        f"auditkit evaluate: {result['wall_s']:.1f} s, peak RSS {peak:.0f} MB, "
        f"{len(metrics['metrics'])} metrics ({verdict} the goal <= {MEMORY_GOAL_MB} MB)"
    )
    return {"wall_s": result["wall_s"], "peak_mb": peak, "metrics": len(metrics["metrics"])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parts = ("slices", "detection", "evaluate")
    parser.add_argument("--only", nargs="+", choices=parts, default=list(parts))
    parser.add_argument("--rows", type=int, default=1_000_000, help="slice benchmark rows")
    parser.add_argument("--images", type=int, default=2000, help="detection benchmark images")
    parser.add_argument("--detections", type=int, default=120_000)
    parser.add_argument("--samples", type=int, default=1_000_000, help="images of the run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {when}")
    summary: list[str] = []
    if "slices" in args.only:
        print("\n== slice metrics vs Fairlearn MetricFrame")
        r = metrics_slices.run(args.rows, args.seed)
        summary.append(
            f"slices vs Fairlearn:       {r['speedup']:7.1f}x (goal >= 50x), "
            f"max |diff| {r['max_abs']:.3g}"
        )
    if "detection" in args.only:
        print("\n== COCO mAP vs pycocotools")
        r = metrics_detection.run(args.images, args.detections, args.seed)
        summary.append(
            f"mAP vs pycocotools:        {r['speedup']:7.2f}x (goal >= 4x), "
            f"max |diff| {r['max_abs']:.3g}"
        )
    if "evaluate" in args.only:
        print(f"\n== auditkit evaluate on {args.samples:,} images")
        r = evaluate_memory(args.samples, args.seed)
        summary.append(
            f"evaluate {args.samples:,} images: peak RSS {r['peak_mb']:.0f} MB "
            f"(goal <= {MEMORY_GOAL_MB} MB), {r['wall_s']:.1f} s"
        )
    print("\n== summary")
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
