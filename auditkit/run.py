"""The run directory (contract ``auditkit.run/1``, see docs/run-format.md)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from auditkit.errors import InputError, OutputError, RunDirError, first_line

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


# --------------------------------------------------------------------------- safe files

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def refuse_symlink(target: Path) -> None:
    """Refuse to write ``target`` when it is a symbolic link: the write would land wherever the
    link points (a signed report written over the signer's key, say). One line, exit 5."""
    if Path(target).is_symlink():
        raise InputError(
            f"{target} is a symbolic link; auditkit does not write through links "
            "(remove it or choose another path)"
        )


def _write_failed(target: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or first_line(exc)
    if exc.errno in _NO_SPACE:
        reason = "no space left on the device"
    return OutputError(f"cannot write {target}: {reason}; the previous file is unchanged")


@contextlib.contextmanager
def atomic_file(target: Path, *, private: bool = False) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``target`` only when the block ends without an error.

    The bytes go to a new temporary file in the same folder (created exclusively, never through
    a link; mode 0600 from creation when ``private``), are fsynced, and the file is renamed over
    ``target``, then the folder is fsynced: a reader sees the old file or the new one, never
    half of one, and a full disk leaves the old file intact (:class:`OutputError`, exit 74).
    A ``target`` that is a symbolic link is refused (exit 5).
    """
    target = Path(target)
    refuse_symlink(target)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o600 if private else 0o666)  # 0o666: the umask applies
    except OSError as exc:
        raise _write_failed(target, exc) from None
    try:
        if private:
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise _write_failed(target, exc) from None
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (a crash right after it must not lose the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - Windows, or a folder that cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder: the rename is still atomic
        pass
    finally:
        os.close(fd)


def write_atomic(target: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``target`` through :func:`atomic_file` (see there)."""
    with atomic_file(target, private=private) as handle:
        view = memoryview(data)
        while view:  # os.write: a short write is retried, a full disk raises
            view = view[os.write(handle.fileno(), view) :]


def write_table_atomic(target: Path, table: pd.DataFrame) -> None:
    """``table`` as Parquet at ``target``, through :func:`atomic_file`."""
    with atomic_file(target) as handle:
        table.to_parquet(handle, index=False)


#: what auditkit writes into a run folder (docs/run-format.md)
WRITTEN_NAMES: tuple[str, ...] = (
    "run.json",
    "samples.parquet",
    "predictions.parquet",
    "timings.parquet",
    "power.parquet",
    "detections.parquet",
    "boxes.parquet",
    "maps.parquet",
    "masks.parquet",
    "maps",
    "masks",
    "shards",
    "metrics.json",
    "verdicts.json",
    "rubric.yaml",
    "report.pdf",
    "report.stale.pdf",
    "dev-keys",
)

# locks this process holds: {run folder: (lock file descriptor, depth)}; ``writing`` nests
_HELD: dict[str, tuple[int, int]] = {}
_HELD_GUARD = threading.Lock()


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

    def refuse_links(self) -> None:
        """Refuse (exit 5) a run folder where a file or folder auditkit writes is a symbolic
        link: checked before a stage starts, and again by every write (:func:`atomic_file`)."""
        for name in WRITTEN_NAMES:
            refuse_symlink(self.path / name)

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the directory for one writer: every stage that writes into it (replay,
        evaluate, report) holds it, so a second command on the same folder is refused at once
        (exit 5) instead of leaving a mix of two runs. An advisory lock on ``.lock`` (POSIX
        ``flock``; released by the system if the process dies), opened without following a
        link. Re-entrant within a process: ``auditkit audit`` holds it across its stages and
        each stage takes it again. Where there is no ``fcntl`` (Windows) nothing is locked."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        if not self.path.is_dir():
            raise RunDirError(f"run directory not found: {self.path}")
        key = os.path.realpath(self.path)
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                _HELD[key] = (held[0], held[1] + 1)
        if held is None:
            fd = self._acquire(fcntl)
            with _HELD_GUARD:
                _HELD[key] = (fd, 1)
        try:
            yield
        finally:
            with _HELD_GUARD:
                fd, depth = _HELD[key]
                if depth > 1:
                    _HELD[key] = (fd, depth - 1)
                else:
                    del _HELD[key]
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)

    def _acquire(self, fcntl: Any) -> int:
        lock = self.path / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        except OSError as exc:
            if lock.is_symlink():
                raise InputError(f"{lock} is a symbolic link; remove it") from None
            raise RunDirError(f"cannot lock run directory {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(
                f"run directory {self.path} is in use by another auditkit command (replay, "
                "evaluate or report); wait for it to finish or use another folder"
            ) from None
        return fd

    def write_json(self, target: Path, document: Any) -> bytes:
        data = dumps(document)
        write_atomic(target, data)
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
        write_table_atomic(target, table)

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
