"""Where the shipped rubrics and report templates live.

In a wheel they are copied into ``auditkit/_shipped/`` (see ``pyproject.toml``); in a source
checkout (editable install, tests) they are the top-level ``rubrics/`` and ``reports/templates/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def rubrics_dir() -> Path:
    return _first_existing(_PACKAGE / "_shipped" / "rubrics", _CHECKOUT / "rubrics")


def templates_dir() -> Path:
    return _first_existing(_PACKAGE / "_shipped" / "templates", _CHECKOUT / "reports" / "templates")
