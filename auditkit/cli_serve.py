"""``auditkit serve``: the registry's dashboard and API (registered in :mod:`auditkit.cli`).

FastAPI and uvicorn are the ``serve`` extra; without them the command says so in one line and
exits 5 (docs/cli.md). The options reach the worker processes through environment variables
(:func:`auditkit.registry.web.app.app_from_environment`), so ``--workers N`` starts N processes
that share the registry, its sessions and its login-failure counts.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Annotated

import typer

from auditkit.cli_registry import BlobsOpt, RegistryOpt
from auditkit.errors import InputError

_NEEDED = ("fastapi", "uvicorn", "multipart", "argon2")


def serve_cmd(
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each shares the registry).")
    ] = 1,
    insecure_cookies: Annotated[
        bool,
        typer.Option(
            "--insecure-cookies",
            help="Cookies without Secure, for plain http on localhost only; behind HTTPS "
            "never give it.",
        ),
    ] = False,
    trusted_proxy: Annotated[
        bool,
        typer.Option(
            "--trusted-proxy",
            help="Behind a reverse proxy: the client address (login rate limit) is the last "
            "X-Forwarded-For entry.",
        ),
    ] = False,
    max_upload_mb: Annotated[
        int, typer.Option(min=1, help="Largest report a submission may upload, in MiB.")
    ] = 50,
) -> None:
    """Serve the registry: the supervisor's pages (log in at /) and the JSON API (/api/v1,
    OpenAPI at /api/openapi.json). Needs `pip install auditkit[serve]`."""
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"auditkit serve needs {', '.join(missing)}: install auditkit[serve] "
            "(pip install 'auditkit[serve]')"
        )
    if insecure_cookies and host not in ("127.0.0.1", "localhost", "::1"):
        raise InputError(
            f"--insecure-cookies is for plain http on localhost only, not --host {host}: "
            "serve over HTTPS (a reverse proxy) with Secure cookies"
        )
    import uvicorn

    from auditkit.registry.db import open_registry
    from auditkit.registry.location import resolve
    from auditkit.registry.web import app as web

    where = resolve(registry, blobs)
    open_registry(where).dispose()  # a missing or old registry: one line now, not per worker
    os.environ[web.ENV_REGISTRY] = where.url
    os.environ[web.ENV_BLOBS] = str(Path(where.blobs).absolute())
    os.environ[web.ENV_INSECURE] = "1" if insecure_cookies else "0"
    os.environ[web.ENV_PROXY] = "1" if trusted_proxy else "0"
    os.environ[web.ENV_MAX_UPLOAD] = str(max_upload_mb * 1024 * 1024)
    how = (
        f"open http://{host}:{port}/login"
        if insecure_cookies
        else "cookies are Secure: reach it over HTTPS (a reverse proxy), or give "
        "--insecure-cookies for plain http on localhost"
    )
    typer.echo(
        f"serving registry {where.display} on {host}:{port} ({workers} process"
        f"{'es' if workers > 1 else ''}); {how}; API at /api/v1; Ctrl-C stops"
    )
    uvicorn.run(
        "auditkit.registry.web.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
    )
