"""Where a registry lives: a SQLite file (default) or a database URL, and its blob folder.

Pure and free of SQLAlchemy, so the CLI can parse ``--registry`` without loading it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from auditkit.errors import InputError

#: file name of the default registry inside the user's data folder
DEFAULT_FILE = "registry.sqlite"
_URL_SCHEMES = ("sqlite", "postgresql")


def data_home() -> Path:
    """The user's data folder for auditkit: ``$XDG_DATA_HOME/auditkit`` when that variable is
    set, else platformdirs' user data folder (``~/.local/share/auditkit`` on Linux)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "auditkit"
    from platformdirs import user_data_dir

    return Path(user_data_dir("auditkit", appauthor=False))


@dataclass(frozen=True)
class Location:
    """A registry: the SQLAlchemy ``url`` and the folder its PDFs are stored in (``blobs``).

    For a SQLite file ``F`` the blob folder defaults to ``F`` with ``.blobs`` appended, next
    to it; a server database needs one given (``--blobs``)."""

    url: str
    blobs: Path
    display: str  # what messages call it (the path, or the URL without its password)


def _is_url(text: str) -> bool:
    scheme = text.split(":", 1)[0].split("+", 1)[0]
    return "://" in text and scheme in _URL_SCHEMES


def _without_password(url: str) -> str:
    head, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, at, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{head}{sep}{user}{at}{host}"


def resolve(registry: str | None, blobs: Path | None = None) -> Location:
    """The registry named by ``--registry`` (a path, a URL, or None for the default file under
    :func:`data_home`) with its blob folder. Raises :class:`InputError` for a URL of another
    database, and for a server URL without ``blobs``."""
    text = registry or str(data_home() / DEFAULT_FILE)
    if "://" in text and not _is_url(text):
        raise InputError(
            f"--registry {text.split('://', 1)[0]}://…: only SQLite files and "
            "postgresql+psycopg:// URLs are supported"
        )
    if _is_url(text) and not text.startswith("sqlite"):
        if blobs is None:
            raise InputError(
                "--registry names a database server: give --blobs DIR, the folder that stores "
                "the submitted PDFs (or set AUDITKIT_REGISTRY_BLOBS)"
            )
        return Location(url=text, blobs=Path(blobs), display=_without_password(text))
    if _is_url(text):  # sqlite:///path
        path = Path(text.split(":///", 1)[1]) if ":///" in text else None
        if path is None:
            raise InputError(f"--registry {text}: write sqlite:///PATH, or just the file's path")
    else:
        path = Path(text).expanduser()
    if path.exists() and path.is_dir():
        raise InputError(f"--registry {path} is a folder; give the registry's file")
    return Location(
        url=f"sqlite:///{path.absolute()}",
        blobs=Path(blobs) if blobs is not None else path.parent / (path.name + ".blobs"),
        display=str(path),
    )
