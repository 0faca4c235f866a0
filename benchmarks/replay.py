"""Offline replay throughput against a naive loop and its two ceilings, measured in one run.

On the same images and model, in interleaved rounds (the order shuffled in each round):

* **naive loop**: PIL decode + preprocess one image, one ``session.run``, next (what a script
  would do; the peer baseline);
* **auditkit replay**: ``auditkit.replay.pipeline.replay``, ``--scenario offline``, checkpoints
  and run files included; its throughput is MLPerf's offline metric (images / wall time to the
  last result, from ``run.json``), the end-to-end call time is printed too;
* **decode-only ceiling**: the same decoder (``decode_file``) on all cores (a process pool),
  no inference;
* **inference-only ceiling**: batched ``session.run`` on pre-decoded tensors, onnxruntime with
  as many intra-op threads as cores.

Goals (issue 4): auditkit >= 1.5x the naive loop; auditkit >= 0.75x min(decode-only,
inference-only). Prints images/s (median, min-max) and the ratios; asserts nothing.

It also measures, in the same rounds, the CPU work per image of each stage alone on one core
(``decode_file`` in a plain loop; batched ``session.run`` with one intra-op thread on the
pre-decoded tensors) and prints the **work bound**: a pipeline that must do both stages for
every image on C cores cannot exceed C / (decode seconds + inference seconds per image), even
with perfect overlap and scaling; that bound over min(ceilings) is the best ratio any pipeline
could reach here. Usage:

    python benchmarks/replay.py [--n 20000] [--manifest M.csv] [--rounds 3] [--decode-threads 1]
        [--decode-processes 0] [--streams 1] [--variant T,DT,DP[,S] ...]

``--variant`` times more auditkit configurations in the same rounds (intra-op threads, decode
threads, decode processes, inference streams), each against the same ceilings.

Without ``--manifest`` it generates ``--n`` images with ``auditkit sample make`` in a temporary
folder (about 8 ms per image on one core).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from auditkit.data.manifest_format import load_manifest
from auditkit.models.card import InputSpec, card_beside, load_card
from auditkit.models.onnx_model import DeployedModel, SessionSettings
from auditkit.models.preprocess import decode_file
from auditkit.replay.pipeline import ReplaySettings, replay
from auditkit.run import RunDir

ROOT = Path(__file__).resolve().parents[1]
_SPEC: InputSpec | None = None


def _init_worker(spec: InputSpec) -> None:
    global _SPEC
    _SPEC = spec


def _decode_chunk(paths: list[Path]) -> int:
    assert _SPEC is not None
    for path in paths:
        decode_file(path, _SPEC)
    return len(paths)


def _parse_variant(text: str) -> tuple[int, int, int, int]:
    """``T,DT,DP[,S]`` → (threads, decode threads, decode processes, streams (default 1))."""
    numbers = [int(x) for x in text.split(",")]
    if len(numbers) == 3:
        numbers.append(1)
    threads, decode_threads, processes, streams = numbers
    return threads, decode_threads, processes, streams


def _variant_name(threads: int, decode_threads: int, processes: int, streams: int) -> str:
    return f"auditkit replay {threads}/{decode_threads}/{processes}/{streams}"


def _chunks(items: list[Path], size: int) -> list[list[Path]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000, help="images to generate")
    parser.add_argument("--manifest", type=Path, default=None, help="use these images instead")
    parser.add_argument("--model", type=Path, default=ROOT / "sample_data/models/steel-v1.onnx")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="auditkit's intra-op threads")
    parser.add_argument("--decode-threads", type=int, default=1, help="auditkit's decoders")
    parser.add_argument(
        "--decode-processes", type=int, default=0, help="auditkit's decode processes (0: threads)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="T,DT,DP[,S]",
        help="also time auditkit with T intra-op threads, DT decode threads, DP decode "
        "processes and S inference streams (default 1; repeatable), in the same rounds",
    )
    parser.add_argument("--streams", type=int, default=1, help="auditkit's inference streams")
    parser.add_argument("--prefetch", type=int, default=0, help="auditkit's prefetch batches")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the naive loop")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="auditkit-bench-") as tmp:
        manifest = args.manifest
        if manifest is None:
            started = time.perf_counter()
            command = [sys.executable, "-m", "auditkit", "sample", "make", "--n", str(args.n)]
            subprocess.run(
                [*command, "--out", str(Path(tmp) / "data")],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            manifest = Path(tmp) / "data/manifest.csv"
            print(f"generated {args.n} images in {time.perf_counter() - started:.0f} s")
        run(args, manifest, Path(tmp))


def run(args: argparse.Namespace, manifest: Path, tmp: Path) -> None:
    cores = os.cpu_count() or 1
    card = load_card(card_beside(args.model))
    dataset = load_manifest(manifest, good_label=card.good_class)
    paths = [dataset.root / p for p in dataset.samples["path"]]
    n = len(paths)
    variants = [(args.threads, args.decode_threads, args.decode_processes, args.streams)]
    variants += [_parse_variant(v) for v in args.variant]
    # the session settings auditkit replay uses (spinning off), one per intra-op thread count
    sessions = {
        t: DeployedModel.load(args.model, card, SessionSettings(intra_op_threads=t))
        for t in sorted({v[0] for v in variants})
    }
    naive = DeployedModel.load(args.model, card, SessionSettings(intra_op_threads=1))
    one_thread = DeployedModel.load(args.model, card, SessionSettings(intra_op_threads=1))
    ceiling = DeployedModel.load(
        args.model, card, SessionSettings(intra_op_threads=cores, allow_spinning=True)
    )
    assert naive.session is not None and ceiling.session is not None
    assert one_thread.session is not None
    in_name, out_name = card.input.name, card.output.name

    def replay_settings(decode_threads: int, decode_processes: int, streams: int) -> ReplaySettings:
        return ReplaySettings(
            batch_size=args.batch_size,
            decode_threads=decode_threads,
            decode_processes=decode_processes,
            inference_streams=streams,
            prefetch_batches=args.prefetch,
            single_stream_samples=0,
            scenario="offline",
        )

    print("pre-decoding the images for the inference-only ceiling ...")
    tensors = np.stack([decode_file(p, card.input) for p in paths])
    for size in (1, args.batch_size):  # warm up every session and shape outside the rounds
        naive.session.run([out_name], {in_name: tensors[:size]})
        ceiling.session.run([out_name], {in_name: tensors[:size]})
        one_thread.session.run([out_name], {in_name: tensors[:size]})
    pool = ProcessPoolExecutor(max_workers=cores, initializer=_init_worker, initargs=(card.input,))
    list(pool.map(_decode_chunk, _chunks(paths[: cores * 4], 4)))  # start the workers

    def naive_loop() -> float:
        assert naive.session is not None
        started = time.perf_counter()
        for path in paths:
            naive.session.run([out_name], {in_name: decode_file(path, card.input)[None]})
        return n / (time.perf_counter() - started)

    end_to_end: dict[str, list[float]] = {}

    def auditkit_replay(
        threads: int, decode_threads: int, processes: int, streams: int
    ) -> Callable[[], float]:
        settings = replay_settings(decode_threads, processes, streams)
        name = _variant_name(threads, decode_threads, processes, streams)

        def timed() -> float:
            runs = end_to_end.setdefault(name, [])
            out = tmp / f"run-{threads}-{decode_threads}-{processes}-{streams}-{len(runs)}"
            started = time.perf_counter()
            result = replay(dataset, sessions[threads], out, settings)
            runs.append(n / (time.perf_counter() - started))
            info = RunDir(out).read_json(RunDir(out).run_json)
            assert result.n_scored == n, "every image should be scored"
            return float(info["replay"]["offline_throughput_ips"])

        return timed

    def decode_only() -> float:
        started = time.perf_counter()
        done = sum(pool.map(_decode_chunk, _chunks(paths, 64)))
        assert done == n
        return n / (time.perf_counter() - started)

    def batched_inference(model: DeployedModel) -> Callable[[], float]:
        def timed() -> float:
            assert model.session is not None
            started = time.perf_counter()
            for i in range(0, n, args.batch_size):
                model.session.run([out_name], {in_name: tensors[i : i + args.batch_size]})
            return n / (time.perf_counter() - started)

        return timed

    def decode_one_core() -> float:
        started = time.perf_counter()
        for path in paths:
            decode_file(path, card.input)
        return n / (time.perf_counter() - started)

    configs: dict[str, Callable[[], float]] = {
        _variant_name(*v): auditkit_replay(*v) for v in variants
    }
    configs |= {
        "decode-only ceiling": decode_only,
        "inference-only ceiling": batched_inference(ceiling),
        "decode, 1 core": decode_one_core,
        "inference, 1 thread": batched_inference(one_thread),
    }
    if not args.skip_naive:
        configs["naive loop"] = naive_loop
    results: dict[str, list[float]] = {name: [] for name in configs}
    order = list(configs)
    rng = random.Random(0)
    for r in range(args.rounds):
        rng.shuffle(order)
        for name in order:
            results[name].append(configs[name]())
        print(f"round {r + 1}/{args.rounds} done")
    pool.shutdown()

    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(
        f"{n} images ({card.input.width}x{card.input.height} {card.input.color} input), "
        f"{args.model.name}, batch {args.batch_size}, {args.rounds} interleaved rounds; "
        f"{platform.machine()}, {cores} cores, onnxruntime {ort.__version__}"
    )
    print(
        "auditkit T/DT/DP/S: T intra-op threads, DT decode threads, DP decode processes "
        f"(0: threads), S inference streams; prefetch {args.prefetch or 'DT or DP + S + 1'}"
    )
    print("images/s, median (min-max):")
    for name, values in results.items():
        print(f"  {name:<30} {med[name]:8.0f}  ({min(values):.0f}-{max(values):.0f})")
    for name, values in end_to_end.items():
        print(
            f"  {name + ', end to end':<30} {statistics.median(values):8.0f}  "
            "(whole replay() call, files included)"
        )
    bound = min(med["decode-only ceiling"], med["inference-only ceiling"])
    for v in variants:
        name = _variant_name(*v)
        ours_ips = med[name]
        if "naive loop" in med:
            ratio = ours_ips / med["naive loop"]
            verdict = "meets" if ratio >= 1.5 else "below"
            print(f"{name} / naive loop = {ratio:.2f}x  (goal >= 1.5x: {verdict})")
        ratio = ours_ips / bound
        verdict = "meets" if ratio >= 0.75 else "below"
        print(f"{name} / min(decode, inference) = {ratio:.2f}   (goal >= 0.75: {verdict})")
    ours_ips = max(med[_variant_name(*v)] for v in variants)
    decode_us = 1e6 / med["decode, 1 core"]
    infer_us = 1e6 / med["inference, 1 thread"]
    work_bound = cores * 1e6 / (decode_us + infer_us)
    print(
        f"CPU work per image: decode {decode_us:.0f} us + inference {infer_us:.0f} us; "
        f"work bound on {cores} cores = {work_bound:.0f} images/s"
    )
    print(
        f"work bound / min(decode, inference) = {work_bound / bound:.2f}  (the best ratio any "
        f"pipeline could reach here); best auditkit / work bound = {ours_ips / work_bound:.2f}"
    )


if __name__ == "__main__":
    main()
