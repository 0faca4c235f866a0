"""The run directory (contract ``auditkit.run/1``, see docs/run-format.md)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from auditkit.errors import RunDirError, first_line

RUN_FORMAT = "auditkit.run/1"
METRICS_FORMAT = "auditkit.metrics/1"
VERDICTS_FORMAT = "auditkit.verdicts/1"
#: the paired comparison with a baseline run that ``evaluate --baseline`` judged (branch verify)
BASELINE_FORMAT = "auditkit.baseline/1"
BASELINE_FILE = "baseline.json"

#: Columns of ``samples.parquet`` that are not metadata, in table order (docs/run-format.md).
SAMPLE_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "part_id",
    "path",
    "sha256",
    "label",
    "is_defect",
    "status",
    "error",
)


def dumps(document: Any) -> bytes:
    """The one JSON serialisation of evidence files: stable key order, UTF-8, final newline.

    The bytes written are the bytes embedded in the report and hashed on its first page.
    """
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def samples(self) -> Path:
        return self.path / "samples.parquet"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.parquet"

    @property
    def timings(self) -> Path:
        return self.path / "timings.parquet"

    @property
    def power(self) -> Path:
        """Power samples of the energy window (docs/energy.md), when the meter has them."""
        return self.path / "power.parquet"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def verdicts(self) -> Path:
        return self.path / "verdicts.json"

    @property
    def report(self) -> Path:
        return self.path / "report.pdf"

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the directory for one writer: a second replay into it while this one runs is
        refused at once (two writers would interleave their shards). An advisory lock on
        ``.lock`` (POSIX ``flock``; released by the system if the process dies); where there
        is no ``fcntl`` (Windows) nothing is locked."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        with open(self.path / ".lock", "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(
                    f"run directory {self.path} is in use by another replay; wait for it to "
                    "finish or choose another --out"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def write_json(self, target: Path, document: Any) -> bytes:
        data = dumps(document)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        return data

    def read_json(self, target: Path, expected_format: str | None = None) -> dict[str, Any]:
        try:
            document = json.loads(target.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"{target.name} not found in run directory {self.path}") from None
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{target} is not valid JSON: {exc}") from None
        if expected_format and document.get("format") != expected_format:
            raise RunDirError(
                f"{target} has format {document.get('format')!r}, expected {expected_format!r}"
            )
        return dict(document)

    def write_table(self, target: Path, table: pd.DataFrame) -> None:
        tmp = target.with_suffix(target.suffix + ".tmp")
        table.to_parquet(tmp, index=False)
        tmp.replace(target)

    def read_table(self, target: Path) -> pd.DataFrame:
        try:
            return pd.read_parquet(target)
        except FileNotFoundError:
            raise RunDirError(f"{target.name} not found in run directory {self.path}") from None
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise RunDirError(f"cannot read {target}: {first_line(exc)}") from None

    def require_replay(self) -> None:
        if not self.path.is_dir():
            raise RunDirError(f"run directory not found: {self.path}")
        for target in (self.run_json, self.samples, self.predictions):
            if not target.exists():
                raise RunDirError(
                    f"{target.name} missing in {self.path}: run `auditkit replay` first"
                )
