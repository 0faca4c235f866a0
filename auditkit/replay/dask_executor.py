"""The Dask executor: the offline replay spread over the workers of a Dask cluster.

``--executor dask`` starts a local cluster (worker processes, one thread each, no dashboard);
``--executor dask --scheduler tcp://HOST:8786`` attaches to a running one. The rows to replay are
cut into the same batches as the local executor, a few batches per task; each worker process
keeps one inference session (cached by model SHA-256 and session settings) and decodes and scores
its batches with the functions the local pipeline uses, so the scores are bit-identical. Results
stream back as tasks complete and are handed to the pipeline in row order, which writes them
through the same checkpoint shards (so ``--resume`` works: committed rows are not resubmitted).

Workers must reach the model file and the images at the same paths as the driver (a shared
filesystem); single-stream latency is always measured locally. Dask is an optional extra
(``pip install auditkit[dask]``) and is imported only here, only when asked for.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from auditkit.errors import InputError
from auditkit.models.card import ModelCard
from auditkit.models.onnx_model import DeployedModel, SessionSettings
from auditkit.replay.decoding import ImagePaths
from auditkit.replay.scoring import BatchResult, offline_timing

if TYPE_CHECKING:
    from auditkit.replay.pipeline import ReplaySettings

MISSING = "the dask executor needs `pip install auditkit[dask]`"
#: images per task (whole batches): enough to amortise Dask's per-task cost (about 1 ms)
TASK_IMAGES = 256


def require_dask() -> None:
    """Raise the one-line InputError (exit 5) when ``dask.distributed`` is not installed."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise InputError(MISSING) from None


@dataclass(frozen=True)
class _ModelSpec:
    """What a worker needs to open the same session: the path, card and settings (picklable)."""

    path: str
    card: dict[str, Any]
    settings: SessionSettings
    sha256: str


#: one session per worker process, keyed by model SHA-256 and session settings
_SESSIONS: dict[tuple[str, SessionSettings], DeployedModel] = {}


def _worker_model(spec: _ModelSpec) -> DeployedModel:
    key = (spec.sha256, spec.settings)
    model = _SESSIONS.get(key)
    if model is None:
        card = ModelCard.model_validate(spec.card)
        model = DeployedModel.load(Path(spec.path), card, spec.settings)
        if model.sha256 != spec.sha256:
            raise InputError(
                f"the model file {spec.path} on a Dask worker differs from the driver's "
                f"(sha256 {model.sha256[:12]}, expected {spec.sha256[:12]}): workers must "
                "read the same file"
            )
        _SESSIONS.clear()  # one session per worker: a new model replaces the old one
        _SESSIONS[key] = model
    return model


def _run_task(spec: _ModelSpec, batches: list[tuple[np.ndarray, list[str]]]) -> list[Any]:
    """On a worker: decode and score whole batches, as the local executor does; per batch
    ``(rows, status, error, scores, decode seconds, inference seconds, extras)``, the extras
    being the detections and maps of detection, anomaly and segmentation models."""
    from auditkit.data.images import strict_decoding
    from auditkit.replay.decoding import decode_batch
    from auditkit.replay.scoring import score_task_batch

    model = _worker_model(spec)
    n_classes = len(model.score_columns)
    out = []
    with strict_decoding():
        for rows, paths in batches:
            batch = decode_batch(paths, model.card.input)
            status, error, scores, infer_s, extras = score_task_batch(model, rows, batch, n_classes)
            out.append((rows, status, error, scores, batch.seconds, infer_s, extras))
    return out


def _warm_worker(spec: _ModelSpec, batch_size: int, runs: int) -> None:
    """On each worker, before timing starts: open the session and run the batch shape, as the
    local executor's warm-up does."""
    model = _worker_model(spec)
    shape = model.card.input
    sample = (
        (shape.channels, shape.height, shape.width)
        if shape.layout == "NCHW"
        else (shape.height, shape.width, shape.channels)
    )
    zeros = np.zeros((batch_size, *sample), dtype=np.float32)
    for _ in range(runs):
        model.predict(zeros)


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A ``distributed.Client``: on ``scheduler`` if given, else on a local cluster of
    ``workers`` processes; both are closed on exit, errors included."""
    require_dask()
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


class DaskBatches:
    """The offline batches of ``todo[start:]``, scored on a Dask cluster and yielded in row
    order (the checkpoint needs an unbroken prefix). ``info`` describes the cluster used.

    :meth:`start_cluster` connects (or starts the local cluster) and warms every worker's
    session, so that neither is timed; iterating starts it if needed; :meth:`close`
    (idempotent, also run when iteration ends) closes the client and the local cluster."""

    def __init__(
        self,
        todo: np.ndarray,
        start: int,
        paths: ImagePaths,
        model: DeployedModel,
        settings: ReplaySettings,
        first_batch: int,
    ) -> None:
        self.todo = todo
        self.start = start
        self.paths = paths
        self.settings = settings
        self.first_batch = first_batch
        self.spec = _ModelSpec(
            path=str(Path(model.path).resolve()),
            card=model.card.model_dump(mode="json", by_alias=True),
            settings=model.settings,
            sha256=model.sha256,
        )
        self.info: dict[str, Any] = {
            "executor": "dask",
            "scheduler": settings.scheduler,
            "workers": None,
            "task_images": None,
        }
        self._stack = contextlib.ExitStack()
        self._client: Any = None

    def start_cluster(self) -> None:
        if self._client is not None or self.start >= len(self.todo):
            return
        try:
            client = self._stack.enter_context(
                dask_client(self.settings.scheduler, self.settings.workers)
            )
            self.info.update(
                scheduler=str(client.scheduler.address),
                workers=len(client.scheduler_info().get("workers", {})),
                task_images=max(1, TASK_IMAGES // self.settings.batch_size)
                * self.settings.batch_size,
            )
            client.run(
                _warm_worker, self.spec, self.settings.batch_size, self.settings.warmup_batches
            )
        except BaseException:
            self.close()
            raise
        self._client = client

    def close(self) -> None:
        self._client = None
        self._stack.close()

    def _tasks(self) -> Iterator[list[tuple[np.ndarray, list[str]]]]:
        size = self.settings.batch_size
        per_task = max(1, TASK_IMAGES // size)
        task: list[tuple[np.ndarray, list[str]]] = []
        for begin in range(self.start, len(self.todo), size):
            rows = self.todo[begin : begin + size]
            task.append((rows, self.paths.files(rows)))
            if len(task) == per_task:
                yield task
                task = []
        if task:
            yield task

    def __iter__(self) -> Iterator[BatchResult]:
        if self.start >= len(self.todo):
            return
        self.start_cluster()
        try:
            from distributed import as_completed

            client = self._client
            n_workers = int(self.info["workers"] or 1)
            tasks = enumerate(self._tasks())
            in_flight = 2 * max(1, n_workers) + 1  # bounded: memory stays flat
            stream = as_completed()
            keys: dict[str, int] = {}

            def submit_next() -> None:
                item = next(tasks, None)
                if item is not None:
                    index, batches = item
                    future = client.submit(_run_task, self.spec, batches, pure=False)
                    keys[future.key] = index
                    stream.add(future)

            for _ in range(in_flight):
                submit_next()
            ready: dict[int, list[Any]] = {}
            expected = 0
            batch_index = self.first_batch
            try:
                for future in stream:
                    ready[keys.pop(future.key)] = future.result()
                    future.release()
                    submit_next()
                    while expected in ready:
                        for rows, status, error, scores, decode_s, infer_s, extras in ready.pop(
                            expected
                        ):
                            timing = offline_timing(batch_index, len(rows), decode_s, infer_s)
                            yield BatchResult(rows, status, error, scores, timing, extras)
                            batch_index += 1
                        expected += 1
            finally:
                stream.clear()
        finally:
            self.close()
