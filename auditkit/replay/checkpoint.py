"""Checkpoints of a replay: Parquet shards in ``RUN/shards/``, written as batches complete.

Each shard holds, for a contiguous range of the images to replay (whole batches, in order), the
row index into the samples table, the status, the error and the raw class scores; its batch
timings ride in the file's schema metadata, so one atomic rename commits a shard. A crash loses
at most the shard being filled. ``checkpoint.json`` names the model, the data and the settings
that produced the shards; ``--resume`` refuses a run directory written with anything else.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from auditkit.errors import AuditkitError, InputError
from auditkit.run import atomic_file, dumps, refuse_symlink, write_atomic

CHECKPOINT_FORMAT = "auditkit.checkpoint/1"
SHARD_DIR = "shards"
_SHARD = re.compile(r"^shard-(\d{6})\.parquet$")


class ReplayInterrupted(AuditkitError):
    """Ctrl-C during a replay: what was done is on disk; exit 130."""

    exit_code = 130

    def __init__(self, message: str = "interrupted: resume with --resume") -> None:
        super().__init__(message)


class TooManyErrors(InputError):
    """More rows failed than ``--max-errors`` allows: exit 5, the run stays resumable."""


@dataclass(frozen=True)
class ErrorLimit:
    """``--max-errors``: an absolute count (``N``) or a share of the images (``P%``)."""

    text: str
    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> ErrorLimit | None:
        if text is None or text.strip() == "":
            return None
        raw = text.strip()
        try:
            if raw.endswith("%"):
                percent = float(raw[:-1])
                if not 0 <= percent <= 100:
                    raise ValueError
                return cls(text=raw, percent=percent)
            count = int(raw)
            if count < 0:
                raise ValueError
            return cls(text=raw, count=count)
        except ValueError:
            raise InputError(
                f"--max-errors {text!r}: expected a count N >= 0 or a percentage P% (0-100)"
            ) from None

    def limit(self, n_images: int) -> float:
        if self.count is not None:
            return float(self.count)
        assert self.percent is not None
        return self.percent / 100.0 * n_images


@dataclass
class Shard:
    index: int
    rows: np.ndarray  # int64 indices into the samples table
    status: np.ndarray  # object
    error: np.ndarray  # object
    scores: np.ndarray  # float64 (rows, classes)
    timings: list[dict[str, Any]]
    wall_s: float
    session: str


class Checkpoint:
    """The ``shards/`` folder of a run directory."""

    def __init__(self, run_path: Path) -> None:
        self.path = run_path / SHARD_DIR
        self.state = self.path / "checkpoint.json"

    def exists(self) -> bool:
        return self.state.exists()

    def start(self, identity: dict[str, Any]) -> None:
        """A fresh replay: drop any earlier shards, record what this replay is."""
        refuse_symlink(self.path)  # rmtree and the shards must stay inside the run folder
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        document = {"format": CHECKPOINT_FORMAT, **identity}
        write_atomic(self.state, dumps(document))

    def check(self, identity: dict[str, Any], run_path: Path) -> None:
        """Refuse to resume shards made by another model, data set or settings (one line)."""
        try:
            found = json.loads(self.state.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot resume {run_path}: unreadable checkpoint ({exc})") from None
        if found.get("format") != CHECKPOINT_FORMAT:
            raise InputError(
                f"cannot resume {run_path}: checkpoint format {found.get('format')!r}, "
                f"expected {CHECKPOINT_FORMAT!r}"
            )
        names = {
            "model_sha256": "a different model",
            "manifest_sha256": "a different data set",
        }
        for key, what in names.items():
            if found.get(key) != identity[key]:
                raise InputError(
                    f"cannot resume {run_path}: it was replayed with {what} "
                    f"(sha256 {str(found.get(key))[:12]}, now {identity[key][:12]}); "
                    "use another --out or drop --resume"
                )
        for group in ("settings", "session"):
            old, new = found.get(group, {}), identity[group]
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if changed:
                detail = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
                raise InputError(
                    f"cannot resume {run_path}: it was replayed with different settings "
                    f"({detail}); use the same options or drop --resume"
                )

    def write(self, shard: Shard, classes: list[str]) -> Path:
        columns: dict[str, Any] = {
            "row": pa.array(shard.rows, type=pa.int64()),
            "status": pa.array(shard.status.tolist(), type=pa.string()),
            "error": pa.array(shard.error.tolist(), type=pa.string()),
        }
        for j, name in enumerate(classes):
            columns[f"score__{name}"] = pa.array(shard.scores[:, j], type=pa.float64())
        meta = {
            "timings": shard.timings,
            "wall_s": shard.wall_s,
            "session": shard.session,
        }
        table = pa.table(columns).replace_schema_metadata(
            {b"auditkit.shard": json.dumps(meta).encode("utf-8")}
        )
        target = self.path / f"shard-{shard.index:06d}.parquet"
        with atomic_file(target) as handle:
            pq.write_table(table, handle)
        return target

    def shards(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        found = sorted(p for p in self.path.iterdir() if _SHARD.match(p.name))
        # shards are written in order; keep the unbroken run from 0 (a gap means a lost shard)
        kept = []
        for expected, path in enumerate(found):
            match = _SHARD.match(path.name)
            assert match is not None
            if int(match.group(1)) != expected:
                break
            kept.append(path)
        return kept

    def read(self, path: Path, classes: list[str]) -> Shard:
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"auditkit.shard", b"{}")
        meta = json.loads(raw.decode("utf-8"))
        match = _SHARD.match(path.name)
        assert match is not None
        scores = (
            np.column_stack(
                [table.column(f"score__{c}").to_numpy(zero_copy_only=False) for c in classes]
            )
            if classes
            else np.zeros((table.num_rows, 0))
        )
        return Shard(
            index=int(match.group(1)),
            rows=table.column("row").to_numpy().astype(np.int64),
            status=np.asarray(table.column("status").to_pylist(), dtype=object),
            error=np.asarray(table.column("error").to_pylist(), dtype=object),
            scores=np.asarray(scores, dtype=np.float64).reshape(table.num_rows, len(classes)),
            timings=list(meta.get("timings", [])),
            wall_s=float(meta.get("wall_s", 0.0)),
            session=str(meta.get("session", "")),
        )

    def remove(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)
