"""The submitted PDFs, stored by content: ``BLOBS/ab/abcdef….pdf`` where ``abcdef…`` is the
file's SHA-256 (two-letter fan-out keeps folders small). Written atomically
(:func:`auditkit.run.write_atomic`); a file already there with the right hash is kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

from auditkit.run import write_atomic


def blob_path(blobs: Path, sha256: str) -> Path:
    return Path(blobs) / sha256[:2] / f"{sha256}.pdf"


def file_sha256(path: Path) -> str | None:
    """SHA-256 of the file's bytes, None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def store(blobs: Path, data: bytes) -> tuple[str, Path]:
    """Store ``data`` under its SHA-256; returns (SHA-256, path)."""
    sha = hashlib.sha256(data).hexdigest()
    target = blob_path(blobs, sha)
    if file_sha256(target) != sha:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    return sha, target
