"""Replay labelled images through the deployed model.

Scenarios (MLPerf LoadGen), chosen with ``ReplaySettings.scenario``:

* **offline**: every readable image, batched; decoding runs in a thread pool a bounded number of
  batches ahead of inference (onnxruntime releases the GIL), so memory stays flat. Gives the
  predictions and the throughput (images / wall time to the last result).
* **single-stream**: images replayed one at a time, decode to prediction, giving per-image
  latency (end to end and inference alone), with p50/p90/p99 and MLPerf's early-stopping
  estimate. Alone, it replays every image this way and its predictions are the run's.
* **both** (default): offline for every image, then single-stream on a fixed, seeded subset whose
  predictions must equal the offline ones; the check is recorded.

Results are checkpointed in Parquet shards (:mod:`auditkit.replay.checkpoint`) as batches
complete; ``resume=True`` continues an interrupted replay and gives the same tables, row for row,
as an uninterrupted one. An image that cannot be read or decoded becomes a row with status
``unreadable`` and its reason; a batch whose inference fails or yields NaN marks its rows
``error``. The replay goes on, unless ``max_errors`` is exceeded.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import platform
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import PIL

import auditkit
from auditkit.data.images import strict_decoding
from auditkit.data.manifest import Dataset
from auditkit.energy.model import add_worker_cpu
from auditkit.errors import InputError
from auditkit.memory import release_memory, system_allocator
from auditkit.models.onnx_model import DeployedModel
from auditkit.models.preprocess import decode_file
from auditkit.replay.checkpoint import (
    Checkpoint,
    ErrorLimit,
    ReplayInterrupted,
    Shard,
    TooManyErrors,
)
from auditkit.replay.decoding import (
    DecodedBatch,
    ImagePaths,
    decode_batch,
    decode_one,
    decode_pool,
    start_decode_processes,
)
from auditkit.replay.scoring import BatchResult, Scored, offline_timing, score_task_batch
from auditkit.replay.tables import (
    RowStates,
    count_distinct,
    scan_shards,
    value_counts,
    write_predictions,
    write_samples,
)
from auditkit.replay.task_outputs import (
    TaskExtras,
    remove_outputs,
    task_predictions_table,
    write_run_outputs,
    write_shard_extras,
)
from auditkit.run import RUN_FORMAT, RunDir

if TYPE_CHECKING:
    from auditkit.energy.protocol import EnergyRun

SCENARIOS = ("offline", "single-stream", "both")
EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class ReplaySettings:
    batch_size: int = 32
    decode_threads: int = 1
    #: decode in this many worker processes instead of threads (0: threads); see decoding.py
    decode_processes: int = 0
    #: batches run through the model at once, each on its own thread
    inference_streams: int = 1
    warmup_batches: int = 2
    single_stream_samples: int = 700
    seed: int = 0
    scenario: str = "both"
    #: a shard is written when it holds this many images ...
    checkpoint_images: int = 4096
    #: ... or when this many seconds passed since the last one (whichever comes first)
    checkpoint_seconds: float = 30.0
    #: batches decoded ahead of inference; 0 means decoders + inference streams + 1
    prefetch_batches: int = 0
    #: ``local`` (this process) or ``dask`` (offline batches on a Dask cluster; see docs/scale.md)
    executor: str = "local"
    #: with ``dask``: a running scheduler's address (``tcp://HOST:8786``); None: a local cluster
    scheduler: str | None = None
    #: with ``dask`` and no scheduler: worker processes of the local cluster
    workers: int = 2

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise InputError(
                f"unknown scenario {self.scenario!r}: expected one of {', '.join(SCENARIOS)}"
            )
        if self.executor not in EXECUTORS:
            raise InputError(
                f"unknown executor {self.executor!r}: expected one of {', '.join(EXECUTORS)}"
            )
        if self.scheduler and self.executor != "dask":
            raise InputError("--scheduler needs --executor dask")
        if self.workers < 1:
            raise InputError("--workers must be >= 1")
        if self.batch_size < 1 or self.decode_threads < 1 or self.checkpoint_images < 1:
            raise InputError("batch size, decode threads and checkpoint size must be >= 1")
        if self.decode_processes < 0:
            raise InputError("--decode-processes must be >= 0")
        if self.inference_streams < 1:
            raise InputError("--inference-streams must be >= 1")
        if self.decode_processes and self.decode_threads > 1:
            raise InputError("choose --decode-threads or --decode-processes, not both")
        cpus = os.cpu_count() or 1
        if self.decode_processes > 4 * cpus:  # a typo must not start hundreds of processes
            raise InputError(
                f"--decode-processes {self.decode_processes} is more than 4 x this machine's "
                f"{cpus} logical CPUs"
            )

    def identity(self) -> dict[str, Any]:
        """The settings that shape the results (run id, resume check); not the speed knobs."""
        return {
            "batch_size": self.batch_size,
            "single_stream_samples": self.single_stream_samples,
            "seed": self.seed,
            "scenario": self.scenario,
        }


@dataclass(frozen=True)
class ReplayResult:
    run: RunDir
    n_images: int
    n_scored: int
    n_unreadable: int
    n_error: int
    throughput_ips: float | None
    scenario: str = "both"
    resumed: bool = False
    latency: dict[str, Any] | None = field(default=None)


Progress = Callable[[int, int], None]


def _batches(indices: np.ndarray, size: int, start: int = 0) -> Iterator[np.ndarray]:
    for begin in range(start, len(indices), size):
        yield indices[begin : begin + size]


def _warm_up(model: DeployedModel, settings: ReplaySettings) -> list[dict[str, Any]]:
    """Run each input shape used later (batch size and 1) before timing; return their timings."""
    spec = model.card.input
    sample_shape = (
        (spec.channels, spec.height, spec.width)
        if spec.layout == "NCHW"
        else (spec.height, spec.width, spec.channels)
    )
    sizes = {1} if settings.scenario == "single-stream" else {settings.batch_size}
    if settings.scenario == "both":
        sizes.add(1)
    records = []
    for size in sorted(sizes, reverse=True):
        zeros = np.zeros((size, *sample_shape), dtype=np.float32)
        for i in range(settings.warmup_batches):
            started = time.perf_counter()
            model.predict(zeros)
            records.append({"batch_size": size, "run": i, "seconds": time.perf_counter() - started})
    return records


def _offline_batches(
    todo: np.ndarray,
    start: int,
    paths: ImagePaths,
    model: DeployedModel,
    settings: ReplaySettings,
    first_batch: int,
) -> Iterator[BatchResult]:
    """Batches from ``todo[start:]``, in order: decoded in a pool of threads or processes a
    bounded number of batches ahead, then scored here (one inference stream) or on
    ``inference_streams`` threads at once, so memory holds at most ``prefetch`` decoded and
    ``inference_streams`` scored batches whatever the data size."""
    n_classes = len(model.score_columns)
    streams = settings.inference_streams
    decoders = settings.decode_processes or settings.decode_threads
    prefetch = settings.prefetch_batches or decoders + streams + 1
    pool = decode_pool(settings.decode_threads, settings.decode_processes)
    # onnxruntime runs one session from several threads at once, each run on its caller's
    # thread when the session has one intra-op thread: that is how inference uses many cores
    scorers = ThreadPoolExecutor(max_workers=streams) if streams > 1 else None
    decoding: deque[tuple[np.ndarray, Future[DecodedBatch]]] = deque()
    scoring: deque[tuple[np.ndarray, float, Future[Scored]]] = deque()
    batches = _batches(todo, settings.batch_size, start)

    def decode_next() -> None:
        rows = next(batches, None)
        if rows is not None:
            files = paths.files(rows)
            decoding.append((rows, pool.submit(decode_batch, files, model.card.input)))

    def score_next() -> None:
        rows, decoded = decoding.popleft()
        decode_next()
        try:
            batch = decoded.result()
        except BrokenProcessPool:
            raise ReplayInterrupted("a decode worker process died (killed?)") from None
        if settings.decode_processes:  # threads' CPU time is this process's already
            add_worker_cpu(batch.cpu_seconds)
        if scorers is None:
            scored: Future[Scored] = Future()
            scored.set_result(score_task_batch(model, rows, batch, n_classes))
        else:
            scored = scorers.submit(score_task_batch, model, rows, batch, n_classes)
        scoring.append((rows, batch.seconds, scored))

    try:
        for _ in range(prefetch):
            decode_next()
        batch_index = first_batch
        while decoding or scoring:
            while decoding and len(scoring) < streams:
                score_next()
            rows, decode_s, scored = scoring.popleft()
            status, error, scores, infer_s, extras = scored.result()
            timing = offline_timing(batch_index, len(rows), decode_s, infer_s)
            yield BatchResult(rows, status, error, scores, timing, extras)
            batch_index += 1
    finally:
        if scorers is not None:
            scorers.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)


def _single_stream_batches(
    todo: np.ndarray, start: int, paths: ImagePaths, model: DeployedModel
) -> Iterator[BatchResult]:
    """Every image one at a time, decode to prediction (closed loop: the next image is issued
    when the previous one completes)."""
    n_classes = len(model.score_columns)
    for index in range(start, len(todo)):
        row = todo[index : index + 1]
        started = time.perf_counter()
        tensor, reason, size = decode_one(paths[int(row[0])], model.card.input)
        decoded = time.perf_counter()
        batch = DecodedBatch.of([tensor], [reason], decoded - started, [size])
        status, error, scores, infer_s, extras = score_task_batch(model, row, batch, n_classes)
        finished = time.perf_counter()
        if status[0] != "ok":
            yield BatchResult(row, status, error, scores, None)
            continue
        timing = {
            "scenario": "single-stream",
            "batch": index,
            "n": 1,
            "decode_s": decoded - started,
            "infer_s": infer_s,
            "e2e_s": finished - started,
        }
        yield BatchResult(row, status, error, scores, timing, extras)


def _single_stream_rows(scored: np.ndarray, settings: ReplaySettings) -> np.ndarray:
    """The seeded subset of scored rows replayed one at a time after the offline pass."""
    n = min(settings.single_stream_samples, len(scored))
    rng = np.random.default_rng(settings.seed)
    return np.sort(rng.choice(scored, size=n, replace=False)) if n else scored[:0]


def _single_stream_subset(
    dataset: Dataset,
    model: DeployedModel,
    chosen: np.ndarray,
    offline_scores: dict[int, np.ndarray],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    n = len(chosen)
    timings: list[dict[str, Any]] = []
    max_diff = 0.0
    disagreements = 0
    for i, row in enumerate(chosen):
        path = dataset.root / str(dataset.samples["path"].iat[row])
        started = time.perf_counter()
        tensor = decode_file(path, model.card.input)
        decoded = time.perf_counter()
        out = model.predict(tensor[None])
        finished = time.perf_counter()
        offline = offline_scores[int(row)]
        diff = float(np.max(np.abs(out[0] - offline)))
        max_diff = max(max_diff, diff)
        disagreements += int(np.argmax(out[0]) != np.argmax(offline))
        timings.append(
            {
                "scenario": "single-stream",
                "batch": i,
                "n": 1,
                "decode_s": decoded - started,
                "infer_s": finished - decoded,
                "e2e_s": finished - started,
            }
        )
    parity = {
        "samples": int(n),
        "max_abs_score_difference": max_diff,
        "top1_disagreements": disagreements,
        "agree": bool(max_diff <= 1e-4 and disagreements == 0),
    }
    return timings, parity


def latency_report(timings: pd.DataFrame, confidence: float = 0.99) -> dict[str, Any] | None:
    """Single-stream latency in ms: p50/p90/p99 (plain) and MLPerf's early-stopping estimates,
    end to end (decode to prediction) and inference alone. None without single-stream rows."""
    rows = timings[timings["scenario"] == "single-stream"] if len(timings) else timings
    if rows.empty:
        return None
    # auditkit.metrics imports scipy.stats (~1 s): only when there is latency to summarise
    from auditkit.metrics.efficiency import LATENCY_QUANTILES, early_stopping_percentile

    report: dict[str, Any] = {"n": len(rows), "confidence": confidence}
    for name, column in (("e2e", "e2e_s"), ("inference", "infer_s")):
        ms = rows[column].to_numpy(dtype=np.float64) * 1000.0
        part: dict[str, Any] = {"mean_ms": float(ms.mean()), "max_ms": float(ms.max())}
        for q in LATENCY_QUANTILES:
            part[f"p{q}_ms"] = float(np.percentile(ms, q))
            estimate = early_stopping_percentile(ms, q, confidence)
            part[f"p{q}_early_stopping_ms"] = estimate.value
            if estimate.value is None:
                part[f"p{q}_early_stopping_reason"] = estimate.reason
            else:
                part[f"p{q}_early_stopping_rank_from_top"] = estimate.rank
        report[name] = part
    return report


class _ShardWriter:
    """Collects batch results and commits them as shards (by size or by time)."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        settings: ReplaySettings,
        classes: list[str],
        next_index: int,
        session: str,
    ) -> None:
        self.checkpoint = checkpoint
        self.settings = settings
        self.classes = classes
        self.index = next_index
        self.session = session
        self.buffer: list[BatchResult] = []
        #: detection, anomaly and segmentation replays write detections and maps per shard
        self.side_files = False
        self.images = 0
        self.last = time.perf_counter()

    def add(self, result: BatchResult) -> None:
        self.buffer.append(result)
        self.images += len(result.rows)
        due = time.perf_counter() - self.last >= self.settings.checkpoint_seconds
        if self.images >= self.settings.checkpoint_images or due:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        batches, self.buffer = self.buffer, []
        now = time.perf_counter()
        if self.side_files:  # side files first (replacing stale ones): then the shard commits
            extras = TaskExtras.concat([b.extras for b in batches])
            write_shard_extras(self.checkpoint.path, self.index, extras)
        shard = Shard(
            index=self.index,
            rows=np.concatenate([b.rows for b in batches]).astype(np.int64),
            status=np.concatenate([b.status for b in batches]),
            error=np.concatenate([b.error for b in batches]),
            scores=np.concatenate([b.scores for b in batches]),
            timings=[b.timing for b in batches if b.timing is not None],
            wall_s=now - self.last,
            session=self.session,
        )
        self.checkpoint.write(shard, self.classes)
        del batches, shard
        release_memory()  # each shard's buffers, so memory does not creep up with the replay
        self.index += 1
        self.images = 0
        self.last = now


def _identity(model: DeployedModel, dataset: Dataset, settings: ReplaySettings) -> dict[str, Any]:
    return {
        "model_sha256": model.sha256,
        "manifest_sha256": dataset.manifest_sha256,
        "settings": settings.identity(),
        "session": {
            "providers": list(model.settings.providers),
            "graph_optimization": model.settings.graph_optimization,
            "intra_op_threads": model.settings.intra_op_threads,
        },
    }


def _environment() -> tuple[dict[str, str], dict[str, Any]]:
    tool = {
        "auditkit": auditkit.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
    }
    host = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }
    return tool, host


_SESSION_NUMBERS = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def predictions_table(
    samples: pd.DataFrame, scores: np.ndarray, model: DeployedModel
) -> pd.DataFrame:
    """The predictions table for rows that were scored (see docs/run-format.md)."""
    card = model.card
    if card.task != "classification" or card.output.kind in ("sigmoid", "sigmoid_logits"):
        return task_predictions_table(samples, scores, card, model.score_columns)
    ok = np.flatnonzero(samples["status"].to_numpy() == "ok")
    probs = scores[ok]
    positive = [card.classes.index(c) for c in card.positive_classes]
    defect_score = probs[:, positive].sum(axis=1)
    table = pd.DataFrame(
        {
            "sample_id": samples["sample_id"].to_numpy()[ok],
            "score": defect_score,
            "pred_label": np.asarray(card.classes, dtype=object)[probs.argmax(axis=1)]
            if len(ok)
            else np.asarray([], dtype=object),
            "is_reject": defect_score >= card.operating_threshold,
        }
    )
    for j, name in enumerate(card.classes):
        table[f"score__{name}"] = probs[:, j]
    return table


def _stale_outputs(run: RunDir) -> None:
    """A fresh replay removes the previous run's tables first: a directory that holds shards
    but no run.json is visibly unfinished (``evaluate`` refuses it)."""
    for target in (run.run_json, run.samples, run.predictions, run.timings, run.power):
        target.unlink(missing_ok=True)
    remove_outputs(run.path)


def replay(
    dataset: Dataset,
    model: DeployedModel,
    out: Path,
    settings: ReplaySettings | None = None,
    *,
    card_path: Path | None = None,
    card_sha256: str | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    max_errors: ErrorLimit | None = None,
    energy: EnergyRun | None = None,
) -> ReplayResult:
    """Replay ``dataset`` through ``model`` and write the run directory ``out``.

    ``energy``: the energy protocol (docs/energy.md); its window wraps the scenario that gives
    the predictions (after the warm-up), extended by extra passes when too short.

    With ``resume``, continue the interrupted replay in ``out`` (refused if it was made with
    another model, data set or settings). Raises :class:`ReplayInterrupted` on Ctrl-C and
    :class:`TooManyErrors` past ``max_errors``, in both cases after committing the completed
    batches, so the run can be resumed.
    """
    settings = settings or ReplaySettings()
    _check_executor(settings)  # before touching the run directory
    with strict_decoding(), system_allocator(), RunDir(out).create().writing():
        try:
            return _replay(
                dataset,
                model,
                out,
                settings,
                card_path=card_path,
                card_sha256=card_sha256,
                progress=progress,
                resume=resume,
                max_errors=max_errors,
                energy=energy,
            )
        except KeyboardInterrupt:  # outside the batch loop (warm-up, merge, single-stream)
            raise ReplayInterrupted() from None


def _check_executor(settings: ReplaySettings) -> None:
    if settings.executor == "dask":
        from auditkit.replay.dask_executor import require_dask

        require_dask()


def _replay(
    dataset: Dataset,
    model: DeployedModel,
    out: Path,
    settings: ReplaySettings,
    *,
    card_path: Path | None,
    card_sha256: str | None,
    progress: Progress | None,
    resume: bool,
    max_errors: ErrorLimit | None,
    energy: EnergyRun | None = None,
) -> ReplayResult:
    if model.fixed_batch == 1 and settings.batch_size != 1:
        # an export with a static batch of 1 (Ultralytics' default) takes one image per run
        settings = replace(settings, batch_size=1)
    run = RunDir(out).create()
    checkpoint = Checkpoint(run.path)
    identity = _identity(model, dataset, settings)
    classes = list(model.score_columns)
    samples = dataset.samples.copy()
    states = RowStates.of(samples)  # a byte per image, errors only where there are
    # counted now, in Arrow: counting distinct parts builds a hash table of every id (about
    # 85 bytes per image), which at the end, on top of the tables, set the run's peak memory
    n_parts, labels = count_distinct(samples["part_id"]), value_counts(samples["label"])
    todo = states.rows("ok")
    paths = ImagePaths(dataset.root, samples["path"])
    release_memory()  # what loading and hashing the manifest freed

    resumed = False
    if resume and checkpoint.exists():
        checkpoint.check(identity, run.path)
        resumed = True
    elif resume and run.run_json.exists():
        raise InputError(f"nothing to resume in {run.path}: its replay is complete")
    if not resumed:
        _stale_outputs(run)
        checkpoint.start(identity)
    started_at = _now()
    done_scan = scan_shards(checkpoint, classes, todo, run.path)
    n_shards_sessions = len(done_scan.sessions)
    start = done_scan.images
    step = 1 if settings.scenario == "single-stream" else settings.batch_size
    if start % step and start != len(todo):
        raise InputError(
            f"cannot resume {run.path}: its shards end inside a batch; "
            "replay again without --resume"
        )
    n_failed = len(samples) - len(todo) + done_scan.failed
    limit = max_errors.limit(len(samples)) if max_errors else None
    limit_text = max_errors.text if max_errors else ""
    next_shard = len(checkpoint.shards())
    del done_scan

    # a session is one replay call: two in the same second of one process (a resume right after
    # a stop) are still two sessions
    session = f"{started_at}/{os.getpid()}/{next(_SESSION_NUMBERS)}"
    writer = _ShardWriter(checkpoint, settings, classes, next_shard, session)
    writer.side_files = model.card.task != "classification"
    distributed: dict[str, Any] | None = None
    dask_batches: Any = None
    results: Iterator[BatchResult]
    if settings.scenario == "single-stream":  # latency is one machine's: always local
        results = _single_stream_batches(todo, start, paths, model)
    elif settings.executor == "dask":
        from auditkit.replay.dask_executor import DaskBatches

        dask_batches = DaskBatches(todo, start, paths, model, settings, start // step)
        distributed = dask_batches.info
        results = iter(dask_batches)
    else:
        results = _offline_batches(todo, start, paths, model, settings, start // step)
    done = start
    if progress:
        progress(done, len(todo))
    try:
        if limit is not None and n_failed > limit:
            raise TooManyErrors(f"{n_failed} images failed, more than --max-errors {limit_text}")
        warmup = _warm_up(model, settings)
        if settings.executor == "local" and settings.scenario != "single-stream":
            start_decode_processes(settings.decode_processes)  # not timed, like the warm-up
        if dask_batches is not None:  # start the cluster and warm its workers: not timed
            dask_batches.start_cluster()
        if energy is not None:  # idle baseline, then the energy window opens
            energy.begin()
        writer.last = time.perf_counter()  # the first shard's wall time starts after warm-up
        scored = 0  # images of this session scored: the energy per image's denominator
        for result in results:
            writer.add(result)
            done += len(result.rows)
            scored += int((result.status == "ok").sum())
            n_failed += int((result.status != "ok").sum())
            if progress:
                progress(done, len(todo))
            if limit is not None and n_failed > limit:
                raise TooManyErrors(
                    f"{n_failed} images failed, more than --max-errors {limit_text}"
                )
        writer.flush()
    except KeyboardInterrupt:
        writer.flush()
        raise ReplayInterrupted() from None
    except ReplayInterrupted as exc:
        writer.flush()
        raise ReplayInterrupted(
            f"replay stopped: {exc}; the {done} images replayed are kept in {run.path} "
            "(resume with --resume)"
        ) from None
    except TooManyErrors as exc:
        writer.flush()
        raise TooManyErrors(
            f"replay stopped: {exc}; the {done} images replayed are kept in {run.path} "
            "(resume with --resume)"
        ) from None
    finally:
        if hasattr(results, "close"):
            results.close()
        if dask_batches is not None:  # the cluster is closed, errors included
            dask_batches.close()
    if energy is not None:
        energy.end(
            done - start,
            _extra_pass(todo, paths, model, settings) if settings.executor == "local" else None,
            first_pass_scored=scored,
            resumed=resumed,
            executor=settings.executor,
            scheduler=settings.scheduler,
        )

    scan = scan_shards(checkpoint, classes, todo, run.path, states)
    if scan.images != len(todo):
        raise InputError(f"replay of {run.path} is incomplete: replay again with --resume")
    wall, n_sessions = scan.wall_s, len(scan.sessions)
    samples["status"], samples["error"] = states.columns(samples.index)
    chosen = np.zeros(0, dtype=np.int64)
    if settings.scenario == "both":
        chosen = _single_stream_rows(states.rows("ok"), settings)
    # predictions streamed from the shards: never every score in memory at once
    offline_scores = write_predictions(
        checkpoint,
        classes,
        samples["sample_id"],
        run.predictions,
        lambda part, part_scores: predictions_table(part, part_scores, model),
        chosen,
    )
    release_memory()

    parity: dict[str, Any] | None = None
    single_timings: list[dict[str, Any]] = []
    if settings.scenario == "both":
        single_timings, parity = _single_stream_subset(dataset, model, chosen, offline_scores)
    timing_table = scan.timing_table(single_timings)
    latency = latency_report(timing_table)

    task_files = None
    if model.card.task != "classification" or dataset.boxes is not None or "mask" in samples:
        task_files = write_run_outputs(
            run.path,
            checkpoint.path,
            len(checkpoint.shards()),
            samples,
            model.card.classes,
            task=model.card.task,
            root=dataset.root,
            manifest=dataset.manifest,
            boxes=dataset.boxes,
        )
        # the mask paths live in masks.parquet: not a metadata column to slice by
        samples = samples.drop(columns=["mask"], errors="ignore")
    write_samples(run.samples, samples)
    run.write_table(run.timings, timing_table)
    release_memory()

    n_ok = states.count("ok")
    throughput = n_ok / wall if settings.scenario != "single-stream" and wall > 0 and n_ok else None
    tool, host = _environment()
    document = {
        "format": RUN_FORMAT,
        "run_id": run_id(model.sha256, dataset.manifest_sha256, settings),
        "started_at": started_at,
        "finished_at": _now(),
        "tool": tool,
        "host": host,
        "model": {
            **model.description(),
            "card_path": str(card_path) if card_path else None,
            "card_sha256": card_sha256,
            "card": model.card.model_dump(mode="json", by_alias=True),
        },
        "dataset": {
            "root": str(dataset.root),
            "manifest": str(dataset.manifest),
            "format": dataset.format,
            "manifest_sha256": dataset.manifest_sha256,
            "n_images": len(samples),
            "n_parts": n_parts,
            "n_unreadable": states.count("unreadable"),
            "n_error": states.count("error"),
            "labels": labels,
            "metadata_columns": [c for c in dataset.metadata_columns if c != "mask"],
            "task_files": task_files,
        },
        "replay": {
            **asdict(settings),
            "providers": list(model.settings.providers),
            "intra_op_threads": model.settings.intra_op_threads,
            "graph_optimization": model.settings.graph_optimization,
            "allow_spinning": model.settings.allow_spinning,
            "precision": "float32",
            "warmup": warmup,
            "offline_wall_s": wall if settings.scenario != "single-stream" else None,
            "offline_throughput_ips": throughput,
            "single_stream_parity": parity,
            "distributed": distributed,
            "latency": latency,
            "max_errors": max_errors.text if max_errors else None,
            "checkpoint": {
                "shards": len(checkpoint.shards()),
                "sessions": max(n_sessions, n_shards_sessions),
                "resumed": resumed,
            },
        },
        "energy": energy.block() if energy is not None else {"method": "off"},
    }
    if energy is not None:
        energy.write_power(run.power)
    run.write_json(run.run_json, document)
    checkpoint.remove()
    return ReplayResult(
        run=run,
        n_images=len(samples),
        n_scored=n_ok,
        n_unreadable=states.count("unreadable"),
        n_error=states.count("error"),
        throughput_ips=throughput,
        scenario=settings.scenario,
        resumed=resumed,
        latency=latency,
    )


def _extra_pass(
    todo: np.ndarray, paths: ImagePaths, model: DeployedModel, settings: ReplaySettings
) -> Callable[[], tuple[int, int]]:
    """One more pass over the images, the scenario's way, results discarded (the energy window
    must last long enough; only the first pass's predictions are kept). Returns the images
    processed and those scored."""

    def run_pass() -> tuple[int, int]:
        if settings.scenario == "single-stream":
            results = _single_stream_batches(todo, 0, paths, model)
        else:
            results = _offline_batches(todo, 0, paths, model, settings, 0)
        processed = scored = 0
        for result in results:
            processed += len(result.rows)
            scored += int((result.status == "ok").sum())
        return processed, scored

    return run_pass


def run_id(model_sha256: str, manifest_sha256: str, settings: ReplaySettings) -> str:
    """Deterministic: the same model, data and result-shaping settings give the same run id."""
    key = f"{model_sha256}\n{manifest_sha256}\n{sorted(settings.identity().items())}"
    return "run-" + hashlib.sha256(key.encode()).hexdigest()[:12]
