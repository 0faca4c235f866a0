"""Scoring one decoded batch: shared by the local executor (:mod:`auditkit.replay.pipeline`)
and the Dask executor (:mod:`auditkit.replay.dask_executor`), so both mark rows, scores and
timings the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.errors import first_line
from auditkit.models.adapters import Decoded
from auditkit.models.onnx_model import DeployedModel, NotProbabilities
from auditkit.replay.decoding import DecodedBatch
from auditkit.replay.task_outputs import TaskExtras


def infer(
    model: DeployedModel, batch: np.ndarray, sizes: list[tuple[int, int]] | None = None
) -> tuple[Decoded | None, str, float]:
    """Decode one batch's outputs; a failing batch is ``(None, reason, seconds)``, not an error
    (its rows are marked), except a model whose outputs are not probabilities."""
    started = time.perf_counter()
    try:
        decoded = model.run(batch, sizes)
    except NotProbabilities:  # the model's fault, not the batch's: one error, exit 5
        raise
    except Exception as exc:  # a failing batch must not end the replay; its rows are marked
        return None, f"inference failed: {first_line(exc, 200)}", time.perf_counter() - started
    return decoded, "", time.perf_counter() - started


@dataclass
class BatchResult:
    """One scored batch as the checkpoint writer takes it, from either executor."""

    rows: np.ndarray
    status: np.ndarray
    error: np.ndarray
    scores: np.ndarray
    timing: dict[str, Any] | None  # None: nothing to time (an image that failed, single-stream)
    extras: TaskExtras | None = None  # detections and maps (detection, anomaly, segmentation)


#: a scored batch: status, error, summary scores, inference seconds, task extras
Scored = tuple[np.ndarray, np.ndarray, np.ndarray, float, TaskExtras | None]


def score_task_batch(
    model: DeployedModel,
    rows: np.ndarray,
    batch: DecodedBatch,
    n_classes: int,
    *,
    with_extras: bool = True,
) -> Scored:
    """Status, error, summary scores, inference seconds and (for tasks with detections or
    maps, ``with_extras``) the extras of one batch."""
    extras: TaskExtras | None = None
    errors = np.asarray(batch.errors, dtype=object)
    unreadable = errors != ""
    status = np.where(unreadable, "unreadable", "ok").astype(object)
    error = errors.copy()
    scores = np.full((len(rows), n_classes), np.nan)
    good = np.flatnonzero(~unreadable)
    infer_s = 0.0
    if batch.pixels is not None:
        good_sizes = [batch.sizes[i] for i in good] if with_extras else None
        decoded, failure, infer_s = infer(model, batch.pixels, good_sizes)
        if decoded is None:
            status[good] = "error"
            error[good] = failure
        else:
            out = decoded.scores
            reasons = np.asarray(decoded.errors, dtype=object)
            nonfinite = ~np.isfinite(out).all(axis=1)
            reasons[nonfinite & (reasons == "")] = "model output contains NaN or infinity"
            bad = reasons != ""
            status[good[bad]] = "error"
            error[good[bad]] = reasons[bad]
            scores[good[~bad]] = out[~bad]
            if with_extras and model.card.task != "classification":
                extras = TaskExtras.from_decoded(decoded, rows[good], ~bad)
    return status, error, scores, infer_s, extras


def offline_timing(batch: int, n: int, decode_s: float, infer_s: float) -> dict[str, Any]:
    """One offline row of ``timings.parquet``: a batch's decode and inference seconds."""
    return {
        "scenario": "offline",
        "batch": batch,
        "n": n,
        "decode_s": decode_s,
        "infer_s": infer_s,
        "e2e_s": infer_s,
    }
