"""Offline replay throughput: the Dask executor (a local cluster) against the local executor.

On the same manifest and model, in interleaved rounds, ``run_replay(..., scenario="offline")``
with ``executor="local"`` and with ``executor="dask"`` (``--workers`` processes, one thread
each). Prints each one's offline throughput (images / wall time to the last result, from
``run.json``; the cluster's start and stop are not in it) and the end-to-end call time (which
includes them), medians over the rounds, and the dask/local ratios; asserts nothing. Usage:

    python benchmarks/replay_dask.py [--manifest sample_data/steel/manifest.csv]
        [--model sample_data/models/steel-v1.onnx] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from auditkit.audit import run_replay
from auditkit.replay.pipeline import ReplaySettings

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "sample_data/steel/manifest.csv")
    parser.add_argument("--model", type=Path, default=ROOT / "sample_data/models/steel-v1.onnx")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    settings = ReplaySettings(scenario="offline", batch_size=args.batch_size)
    throughput: dict[str, list[float]] = {"local": [], "dask": []}
    elapsed: dict[str, list[float]] = {"local": [], "dask": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for executor in ("local", "dask") if round_ % 2 == 0 else ("dask", "local"):
                out = Path(tmp) / f"{executor}-{round_}"
                started = time.perf_counter()
                result = run_replay(
                    args.manifest,
                    args.model,
                    out,
                    settings=settings,
                    executor=executor,
                    workers=args.workers,
                    progress=None,
                )
                elapsed[executor].append(time.perf_counter() - started)
                throughput[executor].append(result.throughput_ips or 0.0)
        same = pd.read_parquet(Path(tmp) / "local-0/predictions.parquet").equals(
            pd.read_parquet(Path(tmp) / "dask-0/predictions.parquet")
        )
    n = result.n_images
    print(f"{n} images, {os.cpu_count()} cores, {args.workers} dask workers, {args.rounds} rounds")
    for executor in ("local", "dask"):
        print(
            f"{executor:>5}: {statistics.median(throughput[executor]):8.0f} images/s offline, "
            f"{statistics.median(elapsed[executor]):6.2f} s end to end"
        )
    ratio = statistics.median(throughput["dask"]) / statistics.median(throughput["local"])
    e2e = statistics.median(elapsed["local"]) / statistics.median(elapsed["dask"])
    print(f"dask/local throughput ratio: {ratio:.2f}x (end to end, start-up included: {e2e:.2f}x)")
    print(f"predictions identical: {same}")


if __name__ == "__main__":
    main()
