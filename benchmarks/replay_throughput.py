"""Replay throughput against its ceilings, measured in one run.

Ceilings on the same images and model, same process, interleaved rounds:
  * naive loop: decode one image, run it, next (the peer baseline: what a script would do);
  * pure inference on pre-decoded tensors (the model's ceiling: no decode at all).
Prints images/s for each and the ratios. Usage:

    python benchmarks/replay_throughput.py [--n 2000] [--rounds 3] [--model M.onnx]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from auditkit.data.manifest import load_manifest
from auditkit.models.card import card_beside, load_card
from auditkit.models.onnx_model import DeployedModel, decode_file
from auditkit.replay.pipeline import ReplaySettings, replay

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, default=ROOT / "sample_data/steel/manifest.csv")
    parser.add_argument("--model", type=Path, default=ROOT / "sample_data/models/steel-v1.onnx")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    card = load_card(card_beside(args.model))
    dataset = load_manifest(args.manifest)
    model = DeployedModel.load(args.model, card)
    paths = [dataset.root / p for p in dataset.samples["path"]]
    n = len(paths)
    settings = ReplaySettings(batch_size=args.batch_size, single_stream_samples=0)
    tensors = np.stack([decode_file(p, card.input) for p in paths])
    model.predict(tensors[: args.batch_size])

    results: dict[str, list[float]] = {
        "auditkit offline": [],
        "naive loop": [],
        "pure inference": [],
    }
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            replay(dataset, model, Path(tmp), settings)
            results["auditkit offline"].append(n / (time.perf_counter() - started))
        started = time.perf_counter()
        for p in paths:
            model.predict(decode_file(p, card.input)[None])
        results["naive loop"].append(n / (time.perf_counter() - started))
        started = time.perf_counter()
        for i in range(0, n, args.batch_size):
            model.predict(tensors[i : i + args.batch_size])
        results["pure inference"].append(n / (time.perf_counter() - started))

    medians = {k: statistics.median(v) for k, v in results.items()}
    print(f"{n} images, batch {args.batch_size}, {args.rounds} rounds (median, min-max images/s)")
    for name, values in results.items():
        print(f"  {name:<18} {medians[name]:8.0f}  ({min(values):.0f}-{max(values):.0f})")
    ours = medians["auditkit offline"]
    print(f"  auditkit / naive loop      = {ours / medians['naive loop']:.2f}x")
    print(f"  auditkit / pure inference  = {ours / medians['pure inference']:.2f}")
    print("  (auditkit = replay() end to end: warm-up, decode thread pool overlapped with")
    print(
        "   inference, writing the run files; single-stream off. Pure inference decodes nothing.)"
    )


if __name__ == "__main__":
    main()
