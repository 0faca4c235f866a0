"""The event log's hashes and the digests of recorded rows (pure functions).

* ``canonical(x)``: JSON with sorted keys, no spaces, UTF-8, NaN refused — one byte string per
  value, whatever database it came back from.
* ``event_hash(prev, content)`` = SHA-256(``prev`` as 64 ASCII hex digits ‖ ``canonical(content)``),
  where ``content`` = ``{seq, at, kind, subject, payload}``. The first event's ``prev`` is
  :data:`GENESIS` (64 zeros). Changing, removing or reordering an event breaks every later hash;
  removing the *last* events is only seen against a head hash kept elsewhere
  (``registry check`` prints the head).
* ``row_digest(values)`` = SHA-256(``canonical(values)``) of a row's columns (an audit's
  digest also covers its criteria rows, in order). The event that created a row carries its
  digest, so an edited row no longer matches and a deleted one is missing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def canonical(value: Any) -> bytes:
    """The one serialisation that is hashed (see module doc)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def event_content(seq: int, at: str, kind: str, subject: str | None, payload: Any) -> dict:
    return {"seq": seq, "at": at, "kind": kind, "subject": subject, "payload": payload}


def event_hash(prev: str, content: dict[str, Any]) -> str:
    """SHA-256 of the previous event's hash followed by this event's canonical content."""
    return sha256_hex(prev.encode("ascii") + canonical(content))


def row_digest(values: dict[str, Any]) -> str:
    """SHA-256 of a row's canonical column values."""
    return sha256_hex(canonical(values))
