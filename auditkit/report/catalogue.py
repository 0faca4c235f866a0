"""Which files make a report's pages, and the report's fixed text in each language.

The template folder holds ``report.html.j2``, ``report.css`` and ``strings*.yaml`` catalogues
(one table per language). :mod:`auditkit.report.render` renders from them and
:mod:`auditkit.report.presentation` records which of them made the pages; both read them
through this module, so they cannot disagree on which file is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from auditkit.errors import InputError
from auditkit.resources import templates_dir

__all__ = [
    "DEFAULT_LANG",
    "LANGUAGES",
    "STRINGS",
    "STRINGS_GLOB",
    "STYLESHEET",
    "TEMPLATE",
    "confined",
    "load_strings",
    "merge",
]

TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"
STRINGS = "strings.yaml"
STRINGS_GLOB = "strings*.yaml"
LANGUAGES = ("en", "zh")
DEFAULT_LANG = "en"


def load_strings(lang: str, folder: Path | None = None) -> dict[str, Any]:
    """The report's fixed text in ``lang``: every ``strings*.yaml`` catalogue of the shipped
    templates (then of ``folder``, a custom template folder, which may override any key),
    with English filling keys a language lacks."""
    table: dict[str, dict[str, Any]] = {}
    folders = [templates_dir()] + ([folder] if folder is not None else [])
    for where in folders:
        for path in sorted(where.glob(STRINGS_GLOB)):
            if where is folder:  # a custom folder; the shipped one is ours (and may be linked)
                confined(path, where)
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise InputError(f"cannot read report text {path}: {exc}".splitlines()[0]) from None
            if not isinstance(loaded, dict):
                raise InputError(f"report text {path} must map a language to its strings")
            for language, strings in loaded.items():
                merge(table.setdefault(str(language), {}), strings or {})
    if lang not in table:
        raise InputError(f"no report text for language {lang!r} (available: {', '.join(table)})")
    merged: dict[str, Any] = {}
    merge(merged, table[DEFAULT_LANG])
    if lang != DEFAULT_LANG:
        merge(merged, table[lang])
    return merged


def merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def confined(path: Path, folder: Path) -> Path:
    """``path`` with every link resolved, when it lies inside the template ``folder``; else a
    one-line :class:`InputError` (exit 5). A template folder is someone else's files: a link
    in it to the signing key, ``/etc/passwd`` or the run's evidence must never reach a page."""
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(folder))
    if real != root and root not in real.parents:
        shown = path.relative_to(folder) if path.is_relative_to(folder) else path
        raise InputError(
            f"template folder {folder}: {shown} resolves outside the folder (a link?); refused"
        )
    return real
