"""Decoding a batch of images for the replay, in threads of this process or in worker processes.

Decode threads share one interpreter lock. Pillow releases it while it inflates pixels, but
opening the file, the NumPy steps of preprocessing and the per-image bookkeeping hold it, so
past a few threads they stop adding throughput (on a 16-core machine, 8 decode threads gave no
more than 1; benchmarks/README.md). With ``--decode-processes N`` each batch is decoded in one
of N worker processes and its tensors come back pickled (a batch of 32 grey 64×64 inputs is
0.5 MB), so decoding scales with the cores.

Workers come from a ``forkserver`` where there is one (Linux): forked from a clean server
process, not from this one, whose onnxruntime threads a plain ``fork`` would copy mid-state;
elsewhere they are spawned. Workers ignore Ctrl-C: the replay's process handles it, flushes
what was done and stops the pool. Workers end with the replay's process, even when it is
killed (:func:`_die_with`); the forkserver then ends too.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import pyarrow as pa
from PIL import Image, ImageFile

from auditkit.data.images import unreadable_reason
from auditkit.errors import InputError
from auditkit.models.card import InputSpec
from auditkit.models.preprocess import decode_file_sized


@dataclass(frozen=True)
class DecodedBatch:
    """A batch of images decoded: ``pixels`` stacks the tensors of the images whose ``errors``
    entry is empty, in order (None when none could be decoded); ``sizes`` holds each image's
    original (width, height), (0, 0) where unreadable. One array, not one per image: a worker
    process sends it back in one piece and the inference needs it stacked anyway."""

    pixels: np.ndarray | None
    errors: list[str]
    seconds: float
    sizes: list[tuple[int, int]]
    #: CPU seconds of the thread that decoded the batch (what a worker process spent on it)
    cpu_seconds: float = 0.0

    @classmethod
    def of(
        cls,
        tensors: Sequence[np.ndarray | None],
        errors: list[str],
        seconds: float,
        sizes: list[tuple[int, int]],
        cpu_seconds: float = 0.0,
    ) -> DecodedBatch:
        good = [t for t in tensors if t is not None]
        return cls(np.stack(good) if good else None, errors, seconds, sizes, cpu_seconds)


def decode_one(path: str | Path, spec: InputSpec) -> tuple[np.ndarray | None, str, tuple[int, int]]:
    """The tensor (None when unreadable), the reason, and the original (width, height).

    Every failure to open or decode (a missing file, a FIFO, a decompression bomb, a truncated
    file, an unsupported mode) is a reason, the one ``data check`` gives
    (:func:`auditkit.data.images.unreadable_reason`), never an exception that ends the replay."""
    try:
        tensor, size = decode_file_sized(path, spec)
        return tensor, "", size
    except Exception as exc:  # Pillow raises many types for a damaged file: all are unreadable
        return None, unreadable_reason(exc), (0, 0)


def decode_batch(paths: Sequence[str | Path], spec: InputSpec) -> DecodedBatch:
    """:func:`decode_one` for each path, timed (wall and this thread's CPU seconds)."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    tensors: list[np.ndarray | None] = []
    errors: list[str] = []
    sizes: list[tuple[int, int]] = []
    for path in paths:
        tensor, reason, size = decode_one(path, spec)
        tensors.append(tensor)
        errors.append(reason)
        sizes.append(size)
    seconds, cpu_seconds = time.perf_counter() - started, time.thread_time() - cpu_started
    return DecodedBatch.of(tensors, errors, seconds, sizes, cpu_seconds)


def _start_worker(max_image_pixels: int | None, replay_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(replay_pid)
    # the replay's own decoding rules (data.images.strict_decoding), whatever the worker imported
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    Image.MAX_IMAGE_PIXELS = max_image_pixels


def _die_with(replay_pid: int) -> None:
    """End this worker when the replay's process ends, however it ends (``kill -9`` included).

    A worker waits for batches on a queue it also holds the writing end of, and the
    forkserver lives while any worker does, so without this they outlive a killed replay
    (about 200 MB). A daemon thread waits on a pidfd of the replay's process (Linux 5.3+;
    elsewhere it polls every half second) and exits the worker when it ends. On Linux the
    worker also asks the kernel (``PR_SET_PDEATHSIG``) for SIGKILL when its own parent, the
    forkserver, dies.
    """
    if os.getppid() != replay_pid:  # forked by the forkserver
        _kill_on_parent_death()
    threading.Thread(
        target=_watch, args=(replay_pid,), name="auditkit-replay-watch", daemon=True
    ).start()


def _kill_on_parent_death() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the watch thread still ends the worker
        pass


_PR_SET_PDEATHSIG = 1
_POLL_S = 0.5


def _watch(pid: int) -> None:
    """Return never; ``os._exit`` once process ``pid`` has ended."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # not Linux, or an old kernel: poll
        while _alive(pid):
            time.sleep(_POLL_S)
        os._exit(1)
    select.select([fd], [], [])  # readable when the process has ended
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def decode_pool(threads: int, processes: int) -> Executor:
    """``processes`` worker processes when it is at least 1, else ``threads`` threads."""
    if processes < 1:
        return ThreadPoolExecutor(max_workers=threads)
    context: Any
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # imported once, in the server, before it forks: a worker starts in milliseconds
        # (``__main__`` too, as by default, or each worker would import it again)
        context.set_forkserver_preload(["__main__", __name__])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=context,
        initializer=_start_worker,
        initargs=(Image.MAX_IMAGE_PIXELS, os.getpid()),
    )


def start_decode_processes(processes: int) -> None:
    """With worker processes, start what forks them now, before anything is timed: the first
    start imports Pillow, NumPy and auditkit's card (about a second); later pools fork from it."""
    if processes >= 1:
        with decode_pool(1, 1) as pool:
            try:
                pool.submit(os.getpid).result()
            except BrokenProcessPool:
                raise InputError(
                    "cannot start decode worker processes (is the main script importable? "
                    "`python -` is not); use --decode-threads instead"
                ) from None


class ImagePaths(Sequence[Path]):
    """Absolute image paths, made when asked for: a list of 200,000 ``Path`` objects would
    cost about 80 MB for the whole replay, and even the relative paths as Python strings 15 MB;
    they stay in the samples table's Arrow array."""

    def __init__(self, root: Path, relative: Iterable[str]) -> None:
        self._root = root
        values: Any = getattr(relative, "array", None)  # a pandas column: its Arrow array
        self._relative: pa.ChunkedArray = (
            values.__arrow_array__()
            if hasattr(values, "__arrow_array__")
            else pa.chunked_array([pa.array(list(relative), type=pa.large_string())])
        )

    def files(self, rows: np.ndarray) -> list[str]:
        """The paths of ``rows`` as text, for a batch (cheaper to make and to send to a
        worker process than ``Path`` objects)."""
        prefix = os.path.join(self._root, "")
        first = int(rows[0]) if len(rows) else 0
        if np.array_equal(rows, np.arange(first, first + len(rows))):
            part = self._relative.slice(first, len(rows))  # a batch of consecutive rows: no copy
        else:
            part = self._relative.take(pa.array(rows))
        return [prefix + r for r in part.to_pylist()]

    def __len__(self) -> int:
        return len(self._relative)

    @overload
    def __getitem__(self, index: int) -> Path: ...
    @overload
    def __getitem__(self, index: slice) -> list[Path]: ...
    def __getitem__(self, index: int | slice) -> Path | list[Path]:
        if isinstance(index, slice):
            return [self._root / str(r) for r in self._relative[index].to_pylist()]
        return self._root / str(self._relative[int(index)].as_py())
