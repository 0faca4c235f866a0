"""Replay labelled images through the deployed model.

Two scenarios, both in the same run so accuracy and performance come from one replay (MLPerf):

* **offline**: every readable image, batched; decoding runs in a thread pool a bounded number of
  batches ahead of inference (onnxruntime releases the GIL), so memory stays flat. Gives the
  predictions and the throughput (images / wall time to the last result).
* **single-stream**: a fixed, seeded subset replayed one image at a time, decode to prediction,
  giving per-image latency. Its predictions must equal the offline ones; the check is recorded.

An image that cannot be read or decoded becomes a row with status ``unreadable`` and its reason;
a batch whose inference fails or yields NaN marks its rows ``error``. The replay goes on.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import PIL

import auditkit
from auditkit.data.manifest import Dataset
from auditkit.models.onnx_model import DeployedModel, decode_file
from auditkit.run import RUN_FORMAT, RunDir


@dataclass(frozen=True)
class ReplaySettings:
    batch_size: int = 32
    decode_threads: int = 1
    warmup_batches: int = 2
    single_stream_samples: int = 700
    seed: int = 0


@dataclass(frozen=True)
class ReplayResult:
    run: RunDir
    n_images: int
    n_scored: int
    n_unreadable: int
    n_error: int
    throughput_ips: float | None


Progress = Callable[[int, int], None]


def _decode_batch(
    paths: list[Path], model: DeployedModel
) -> tuple[list[np.ndarray | None], list[str], float]:
    started = time.perf_counter()
    tensors: list[np.ndarray | None] = []
    errors: list[str] = []
    for path in paths:
        try:
            tensors.append(decode_file(path, model.card.input))
            errors.append("")
        except FileNotFoundError:
            tensors.append(None)
            errors.append("file not found")
        except (OSError, ValueError, SyntaxError) as exc:
            tensors.append(None)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            errors.append(f"cannot decode image: {reason}")
    return tensors, errors, time.perf_counter() - started


def _batches(indices: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def _infer(model: DeployedModel, batch: np.ndarray) -> tuple[np.ndarray | None, str, float]:
    started = time.perf_counter()
    try:
        scores = model.predict(batch)
    except Exception as exc:  # a failing batch must not end the replay; its rows are marked
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return None, f"inference failed: {first}", time.perf_counter() - started
    return scores, "", time.perf_counter() - started


def _warm_up(model: DeployedModel, settings: ReplaySettings) -> list[dict[str, Any]]:
    """Run each input shape used later (batch size and 1) before timing; return their timings."""
    spec = model.card.input
    sample_shape = (
        (spec.channels, spec.height, spec.width)
        if spec.layout == "NCHW"
        else (spec.height, spec.width, spec.channels)
    )
    records = []
    for size in sorted({settings.batch_size, 1}, reverse=True):
        zeros = np.zeros((size, *sample_shape), dtype=np.float32)
        for i in range(settings.warmup_batches):
            started = time.perf_counter()
            model.predict(zeros)
            records.append({"batch_size": size, "run": i, "seconds": time.perf_counter() - started})
    return records


def _offline(
    dataset: Dataset,
    model: DeployedModel,
    settings: ReplaySettings,
    status: np.ndarray,
    error: np.ndarray,
    progress: Progress | None,
) -> tuple[np.ndarray, list[dict[str, Any]], float]:
    n_classes = len(model.card.classes)
    scores = np.full((len(status), n_classes), np.nan)
    todo = np.flatnonzero(status == "ok")
    paths = [dataset.root / p for p in dataset.samples["path"]]
    timings: list[dict[str, Any]] = []
    done = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=settings.decode_threads) as pool:
        pending: deque[tuple[np.ndarray, Future[Any]]] = deque()
        batches = _batches(todo, settings.batch_size)
        prefetch = settings.decode_threads + 2

        def submit_next() -> None:
            rows = next(batches, None)
            if rows is not None:
                pending.append((rows, pool.submit(_decode_batch, [paths[i] for i in rows], model)))

        for _ in range(prefetch):
            submit_next()
        batch_index = 0
        while pending:
            rows, future = pending.popleft()
            submit_next()
            tensors, errors, decode_s = future.result()
            good = [i for i, t in enumerate(tensors) if t is not None]
            for i, reason in enumerate(errors):
                if reason:
                    status[rows[i]] = "unreadable"
                    error[rows[i]] = reason
            infer_s = 0.0
            if good:
                stack = np.stack([tensors[i] for i in good])
                out, failure, infer_s = _infer(model, stack)
                target = rows[good]
                if out is None:
                    status[target] = "error"
                    error[target] = failure
                else:
                    bad = ~np.isfinite(out).all(axis=1)
                    status[target[bad]] = "error"
                    error[target[bad]] = "model output contains NaN or infinity"
                    scores[target[~bad]] = out[~bad]
            timings.append(
                {
                    "scenario": "offline",
                    "batch": batch_index,
                    "n": len(rows),
                    "decode_s": decode_s,
                    "infer_s": infer_s,
                    "e2e_s": infer_s,
                }
            )
            batch_index += 1
            done += len(rows)
            if progress:
                progress(done, len(todo))
    wall = time.perf_counter() - started
    return scores, timings, wall


def _single_stream(
    dataset: Dataset,
    model: DeployedModel,
    settings: ReplaySettings,
    status: np.ndarray,
    offline_scores: np.ndarray,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    scored = np.flatnonzero(status == "ok")
    n = min(settings.single_stream_samples, len(scored))
    rng = np.random.default_rng(settings.seed)
    chosen = np.sort(rng.choice(scored, size=n, replace=False)) if n else scored[:0]
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
        diff = float(np.max(np.abs(out[0] - offline_scores[row])))
        max_diff = max(max_diff, diff)
        disagreements += int(np.argmax(out[0]) != np.argmax(offline_scores[row]))
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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def predictions_table(
    samples: pd.DataFrame, scores: np.ndarray, model: DeployedModel
) -> pd.DataFrame:
    """The predictions table for rows that were scored (see docs/run-format.md)."""
    card = model.card
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


def replay(
    dataset: Dataset,
    model: DeployedModel,
    out: Path,
    settings: ReplaySettings | None = None,
    *,
    card_path: Path | None = None,
    card_sha256: str | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay ``dataset`` through ``model`` and write the run directory ``out``."""
    settings = settings or ReplaySettings()
    run = RunDir(out).create()
    started_at = _now()
    samples = dataset.samples.copy()
    status = samples["status"].to_numpy(dtype=object).copy()
    error = samples["error"].to_numpy(dtype=object).copy()

    warmup = _warm_up(model, settings)
    scores, offline_timings, wall = _offline(dataset, model, settings, status, error, progress)
    samples["status"] = status
    samples["error"] = error
    single_timings, parity = _single_stream(dataset, model, settings, status, scores)

    predictions = predictions_table(samples, scores, model)
    run.write_table(run.samples, samples)
    run.write_table(run.predictions, predictions)
    run.write_table(run.timings, pd.DataFrame(offline_timings + single_timings))

    n_ok = int((status == "ok").sum())
    throughput = n_ok / wall if wall > 0 and n_ok else None
    tool, host = _environment()
    labels = samples["label"].value_counts().sort_index()
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
            "n_parts": int(samples["part_id"].nunique()),
            "n_unreadable": int((status == "unreadable").sum()),
            "n_error": int((status == "error").sum()),
            "labels": {str(k): int(v) for k, v in labels.items()},
            "metadata_columns": dataset.metadata_columns,
        },
        "replay": {
            **asdict(settings),
            "providers": list(model.settings.providers),
            "intra_op_threads": model.settings.intra_op_threads,
            "graph_optimization": model.settings.graph_optimization,
            "allow_spinning": model.settings.allow_spinning,
            "precision": "float32",
            "warmup": warmup,
            "offline_wall_s": wall,
            "offline_throughput_ips": throughput,
            "single_stream_parity": parity,
        },
        "energy": {
            "method": "off",
            "boundary": None,
            "joules": None,
            "note": "energy not measured in this version",
        },
    }
    run.write_json(run.run_json, document)
    return ReplayResult(
        run=run,
        n_images=len(samples),
        n_scored=n_ok,
        n_unreadable=int((status == "unreadable").sum()),
        n_error=int((status == "error").sum()),
        throughput_ips=throughput,
    )


def run_id(model_sha256: str, manifest_sha256: str, settings: ReplaySettings) -> str:
    """Deterministic: the same model, data and settings give the same run id."""
    key = f"{model_sha256}\n{manifest_sha256}\n{sorted(asdict(settings).items())}"
    return "run-" + hashlib.sha256(key.encode()).hexdigest()[:12]
