"""Peak memory of ``auditkit replay`` as the data grows (issue 4: 200k images <= 1.2x 20k).

For each size it generates that many sample images (``auditkit.sample.generator.generate``,
cached under ``--cache``), then runs, in a fresh child process,

    auditkit replay MANIFEST --model MODEL --out TMP --scenario offline --no-progress

and measures the child's peak resident set size (``ru_maxrss`` of ``RUSAGE_CHILDREN``, read in a
fresh wrapper process that runs only that one child, so it is that child's peak) and its wall
time (start-up, hashing, replay, merge and tables: all of it). Prints size, peak RSS (MB),
wall (s), images/s end to end, the offline throughput from ``run.json``, and peak(largest) /
peak(smallest) against the goal <= 1.2. Asserts nothing. With ``--phases`` it then replays each
size once more, in-process with its phases marked, and prints the resident set and the peak so far
at the end of each phase (manifest loading and hashing, the replay loop, the final merge of the
shards, the Parquet tables), to show which phase grows with N. Usage:

    .venv/bin/python benchmarks/replay_memory.py [--sizes 20000 200000] [--seed 2026]
        [--model sample_data/models/steel-v1.onnx] [--cache /tmp/auditkit-bench]
        [--jobs 2] [--check-generator] [--generate-only] [--phases]

The images for size N and seed S go to ``CACHE/N-S`` and are reused when its ``manifest.csv``
exists. Generation takes a few ms per image on one core; ``--jobs J`` renders disjoint ranges
of parts in J processes. The generator draws every part from its own stream (``(seed, part
index)``), so the files and the manifest are byte-identical to ``generate(n, seed, dir)``
(``--check-generator`` compares the two on a few hundred images first).
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from auditkit.sample import generator
from auditkit.sample.generator import COLUMNS, encode_png, generate, render_part

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.2

# Runs one command and prints its own peak RSS (ru_maxrss of its only child: KiB on Linux) and
# wall time as JSON. A fresh interpreter, so no earlier child is counted in RUSAGE_CHILDREN.
PEAK_RSS_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": code, "wall_s": wall, "peak_kib": peak_kib}))
"""

# Runs ``auditkit replay`` in-process (the CLI's own entry point) with its phases marked by
# wrapping a few functions at run time (auditkit's code is not changed). A thread samples the
# resident set every 20 ms, and ``ru_maxrss`` is read at each phase boundary, so the phase that
# raised the high-water mark is known exactly. Prints the phases as one JSON list.
_PHASES = """
import json, resource, sys, threading, time
import auditkit.audit as audit
import auditkit.replay.pipeline as pipeline
from auditkit.run import RunDir
from auditkit.cli import main

state = {"phase": "start-up (imports, card)", "max": 0, "t": time.perf_counter()}
log = []

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def enter(name):
    now, t = rss(), time.perf_counter()
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    log.append({"phase": state["phase"], "end_rss": now, "max_sampled": max(state["max"], now),
                "hwm": hwm, "s": t - state["t"]})
    state.update(phase=name, max=now, t=t)

def sample():
    while True:
        state["max"] = max(state["max"], rss())
        time.sleep(0.02)

def mark(owner, attr, name, after):
    inner = getattr(owner, attr)
    def wrapped(*args, **kwargs):
        enter(name)
        try:
            return inner(*args, **kwargs)
        finally:
            enter(after)
    setattr(owner, attr, wrapped)

mark(audit, "load_dataset", "load data set + hash files", "load model, set up run")
mark(pipeline, "scan_shards", "scan shards", "after scan")
mark(pipeline, "_warm_up", "warm-up", "replay loop (decode, infer, write shards)")
mark(pipeline, "write_predictions", "stream predictions.parquet", "after predictions")
mark(pipeline, "write_samples", "write samples.parquet", "after samples")
mark(RunDir, "write_table", "write Parquet table", "after table")
mark(RunDir, "write_json", "write json", "after json")
threading.Thread(target=sample, daemon=True).start()
sys.argv = ["auditkit", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    if exc.code:
        raise
enter("end")
print(json.dumps(log))
"""


# --------------------------------------------------------------------------- generation


def _plan(n: int, seed: int) -> list[tuple[int, int, int]]:
    """(part index, views to write, first sample number) for the parts that make ``n`` images.

    Draws only each part's metadata (cheap): the same draws ``render_part`` starts with.
    """
    plan = []
    made = 0
    index = 0
    while made < n:
        meta = generator._draw_meta(generator._part_rng(seed, index), index)
        views = min(len(meta.cameras), n - made)
        plan.append((index, views, made))
        made += views
        index += 1
    return plan


def _render_range(
    seed: int, out_dir: str, plan: list[tuple[int, int, int]]
) -> list[dict[str, str]]:
    """Render the parts in ``plan``, write their images, return their manifest rows."""
    rows = []
    for index, views, first in plan:
        meta, pixels = render_part(seed, index)
        for k in range(views):
            sample_id = f"s{first + k:06d}"
            rel = f"images/{sample_id}.png"
            (Path(out_dir) / rel).write_bytes(encode_png(pixels[k]))
            rows.append(
                {
                    "sample_id": sample_id,
                    "part_id": meta.part_id,
                    "path": rel,
                    "label": meta.label,
                    "line": meta.line,
                    "shift": meta.shift,
                    "camera": meta.cameras[k],
                    "lighting": meta.lighting,
                    "supplier": meta.supplier,
                }
            )
    return rows


def generate_parallel(n: int, seed: int, out_dir: Path, jobs: int) -> Path:
    """What ``generate(n, seed, out_dir)`` writes, rendered in ``jobs`` processes."""
    if jobs <= 1:
        return generate(n, seed, out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    plan = _plan(n, seed)
    chunk = max(1, -(-len(plan) // (jobs * 8)))  # a few chunks per process, for balance
    pieces = [plan[i : i + chunk] for i in range(0, len(plan), chunk)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        parts = pool.map(_render_range, [seed] * len(pieces), [str(out_dir)] * len(pieces), pieces)
        rows = [row for part in parts for row in part]
    manifest = out_dir / "manifest.csv"
    tmp = manifest.with_suffix(".csv.tmp")  # the manifest last: its presence means "complete"
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(manifest)
    return manifest


def check_generator(seed: int, jobs: int, n: int = 300) -> None:
    """Fail unless the parallel rendering equals ``generate`` byte for byte on ``n`` images."""
    with tempfile.TemporaryDirectory(prefix="auditkit-gencheck-") as tmp:
        ref = generate(n, seed, Path(tmp) / "ref")
        par = generate_parallel(n, seed, Path(tmp) / "par", max(jobs, 2))
        names = ["manifest.csv"] + [f"images/s{i:06d}.png" for i in range(n)]
        _, mismatch, errors = filecmp.cmpfiles(ref.parent, par.parent, names, shallow=False)
        if mismatch or errors:
            raise SystemExit(f"parallel generation differs from generate(): {mismatch + errors}")
    print(f"parallel generation == generate() on {n} images (seed {seed})")


def dataset(n: int, seed: int, cache: Path, jobs: int) -> Path:
    out_dir = cache / f"{n}-{seed}"
    manifest = out_dir / "manifest.csv"
    if manifest.exists():
        print(f"reusing {manifest}")
        return manifest
    started = time.perf_counter()
    generate_parallel(n, seed, out_dir, jobs)
    print(f"generated {n} images in {time.perf_counter() - started:.0f} s ({jobs} processes)")
    return manifest


# --------------------------------------------------------------------------- measurement


def peak_rss(command: list[str]) -> dict[str, float]:
    """Run ``command`` in a fresh wrapper process: its peak RSS (MB) and wall time (s)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_WRAPPER, *command],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"exit code {result['rc']}: {' '.join(command)}")
    return {"peak_mb": result["peak_kib"] / 1024, "wall_s": result["wall_s"]}


def measure(manifest: Path, model: Path, work: Path, extra: list[str]) -> dict[str, float]:
    """Peak RSS (MB) and wall time (s) of one ``auditkit replay`` in a fresh process."""
    out = work / f"run-{manifest.parent.name}"
    command = [
        sys.executable,
        "-m",
        "auditkit",
        "replay",
        str(manifest),
        "--model",
        str(model),
        "--out",
        str(out),
        "--scenario",
        "offline",
        "--no-progress",
        *extra,
    ]
    result = peak_rss(command)
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {
        "peak_mb": result["peak_mb"],
        "wall_s": result["wall_s"],
        "offline_ips": info["replay"]["offline_throughput_ips"] or float("nan"),
    }


def phases(manifest: Path, model: Path, work: Path, extra: list[str]) -> list[dict[str, float]]:
    """The same replay with its phases marked (``_PHASES``): one record per phase, in order."""
    out = work / f"phases-{manifest.parent.name}"
    command = [sys.executable, "-c", _PHASES, "replay", str(manifest), "--model", str(model)]
    command += ["--out", str(out), "--scenario", "offline", "--no-progress", *extra]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    records: list[dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return records


def print_phases(n: int, records: list[dict[str, float]]) -> None:
    print(f"\nphases of a replay of {n} images (MB; 'peak so far' is ru_maxrss at the phase end)")
    print(f"{'phase':<42} {'s':>7} {'max RSS':>8} {'RSS at end':>10} {'peak so far':>11}")
    mb = 1024 * 1024
    start = 0.0
    for r in records:
        start, grew = r["end_rss"], r["max_sampled"] - start
        if r["s"] < 0.05 and grew < mb:
            continue  # a short gap between two marked calls
        print(
            f"{r['phase']:<42} {r['s']:>7.2f} {r['max_sampled'] / mb:>8.0f} "
            f"{r['end_rss'] / mb:>10.0f} {r['hwm'] / mb:>11.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--seed", type=int, default=2026, help="generator seed")
    parser.add_argument("--model", type=Path, default=ROOT / "sample_data/models/steel-v1.onnx")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/auditkit-bench"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="generators")
    parser.add_argument("--check-generator", action="store_true")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument(
        "--phases", action="store_true", help="also replay each size once with its phases marked"
    )
    parser.add_argument(
        "--replay-arg", action="append", default=[], help="extra argument for auditkit replay"
    )
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))

    if args.check_generator:
        check_generator(args.seed, args.jobs)
    manifests = {n: dataset(n, args.seed, args.cache, args.jobs) for n in sizes}
    if args.generate_only:
        return

    results = {}
    marked: dict[int, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="auditkit-replay-mem-") as tmp:
        for n in sizes:
            results[n] = measure(manifests[n], args.model, Path(tmp), args.replay_arg)
            r = results[n]
            print(f"  {n}: peak {r['peak_mb']:.0f} MB, {r['wall_s']:.1f} s", flush=True)
        if args.phases:
            marked = {
                n: phases(manifests[n], args.model, Path(tmp), args.replay_arg) for n in sizes
            }

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {when}")
    print(f"model {args.model.name}, seed {args.seed}, scenario offline")
    print(f"{'images':>8} {'peak RSS MB':>12} {'wall s':>8} {'images/s':>9} {'offline ips':>12}")
    for n in sizes:
        r = results[n]
        print(
            f"{n:>8} {r['peak_mb']:>12.0f} {r['wall_s']:>8.1f} {n / r['wall_s']:>9.0f} "
            f"{r['offline_ips']:>12.0f}"
        )
    small, large = sizes[0], sizes[-1]
    if large != small:
        ratio = results[large]["peak_mb"] / results[small]["peak_mb"]
        verdict = "meets" if ratio <= GOAL else "misses"
        print(f"peak({large}) / peak({small}) = {ratio:.2f}: {verdict} the goal <= {GOAL}")
    for n, records in marked.items():
        print_phases(n, records)


if __name__ == "__main__":
    main()
