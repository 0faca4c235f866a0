"""``auditkit data check`` on a large image folder against the minimum work, in one run.

Writes N small distinct PNGs (default 20,000, 32 x 32, in 4 class folders), then times:

  * auditkit: ``auditkit.data.check.check_data`` (load, hash, decode, every check, the summary);
  * ceiling: one plain loop that reads each file once, hashes it with SHA-256 and decodes it with
    Pillow (the least any check that hashes and decodes must do), single-threaded;
  * two passes: hash every file, then open and decode every file again (what a check that
    hashes at load time and decodes later would do).

Prints the three times and the ratios, and the most file descriptors this process held open at
once during the auditkit run (sampled; goal: a handful, not N). Usage:

    python benchmarks/data_check.py [--images 20000] [--folder DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from auditkit.data.check import check_data


def write_images(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / ("good", "scratch", "pit", "dent")[i % 4]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"{i:06d}.png")


def ceiling(paths: list[Path]) -> None:
    for path in paths:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as image:
            image.load()


def two_passes(paths: list[Path]) -> None:
    for path in paths:
        hashlib.sha256(path.read_bytes()).hexdigest()
    for path in paths:
        with Image.open(path) as image:
            image.load()


def open_files_peak(stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")))
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp) / "data"
        if not root.exists():
            write_images(root, args.images)
        paths = sorted(root.rglob("*.png"))
        print(f"{len(paths)} images in {root}")

        baseline = len(os.listdir("/proc/self/fd"))
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=open_files_peak, args=(stop, peak), daemon=True)
        sampler.start()
        started = time.perf_counter()
        report = check_data(root)
        ours = time.perf_counter() - started
        stop.set()
        sampler.join()
        assert report["n_images"] == len(paths) and not report["problems"]

        started = time.perf_counter()
        ceiling(paths)
        floor = time.perf_counter() - started
        started = time.perf_counter()
        two_passes(paths)
        twice = time.perf_counter() - started

    print(f"auditkit data check: {ours:.2f} s ({len(paths) / ours:,.0f} images/s)")
    print(f"ceiling (read once, hash, decode; 1 thread): {floor:.2f} s")
    print(f"two passes (hash, then decode): {twice:.2f} s")
    print(f"ratio auditkit / ceiling: {ours / floor:.2f}x")
    print(f"ratio two passes / ceiling: {twice / floor:.2f}x")
    print(
        f"file descriptors open at once during the check: at most {peak[0] - baseline} above "
        f"the {baseline} held before"
    )


if __name__ == "__main__":
    main()
