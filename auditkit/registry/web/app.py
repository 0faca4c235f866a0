"""The FastAPI app of ``auditkit serve``: :func:`create_app` (docs/registry.md, "Server and API").

One app serves the supervisor's pages (:mod:`.routes_html`, session cookie) and the JSON API
under ``/api/v1`` (:mod:`.routes_api`, bearer token); OpenAPI at ``/api/openapi.json``.
Every request opens its own short transactions (never one held across a submission, which
opens its own: SQLite allows one writer at a time).

Status codes: 401 no or invalid credentials (pages redirect to ``/login`` instead), 403 wrong
role or bad CSRF token, 404 missing or outside the principal's scope (never 403: what others
registered is not disclosed), 409 duplicate, 413 upload too large, 422 malformed or refused
report (the reason in ``{"detail": ...}``), 429 too many failed logins.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from auditkit.registry.db import open_registry
from auditkit.registry.location import Location
from auditkit.registry.pages import render_error
from auditkit.registry.web import routes_api, routes_html
from auditkit.registry.web.common import Context, LoginNeeded, page_lang
from auditkit.registry.web.security import SecurityHeaders
from auditkit.registry.web.settings import ServerSettings


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers or {})
        if request.url.path.startswith("/api/"):
            body: dict[str, Any] = {"detail": detail}
            exit_code = getattr(exc, "exit_code", None)
            if exit_code is not None:
                body["exit_code"] = exit_code
            return JSONResponse(body, status_code=exc.status_code, headers=headers)
        return HTMLResponse(
            render_error(exc.status_code, detail, page_lang(request)),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, exc: LoginNeeded) -> Response:
        return Response(status_code=303, headers={"Location": "/login"})


def create_app(location: Location, settings: ServerSettings | None = None) -> FastAPI:
    """The app serving the registry at ``location`` (which must exist at the current schema:
    :class:`auditkit.errors.InputError` otherwise)."""
    settings = settings or ServerSettings()
    engine = open_registry(location)
    app = FastAPI(
        title="auditkit registry",
        summary="Signed audit reports of visual-inspection AI deployments: submit and query.",
        version=_version(),
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = Context(location, engine, settings)
    _install_errors(app)
    app.include_router(routes_api.router)
    app.include_router(routes_html.router)
    from fastapi.staticfiles import StaticFiles

    from auditkit.registry.pages import STATIC

    # the pages' stylesheet (no registry data: served to anyone, like the login page)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders, secure=settings.secure_cookies)
    return app


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD aside: its own and those of the
    routers it includes (which newer FastAPI keeps as included routers, older ones copy)."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(list(inner.routes))
                continue
            path = getattr(route, "path", None)
            for method in sorted(getattr(route, "methods", None) or []):
                if path is not None and method != "HEAD":
                    found.append((method, path))

    walk(list(app.routes))
    return found


def _version() -> str:
    import auditkit

    return str(getattr(auditkit, "__version__", "0"))


#: environment variables through which ``auditkit serve`` hands its options to the workers
ENV_REGISTRY = "AUDITKIT_SERVE_REGISTRY"
ENV_BLOBS = "AUDITKIT_SERVE_BLOBS"
ENV_INSECURE = "AUDITKIT_SERVE_INSECURE_COOKIES"
ENV_PROXY = "AUDITKIT_SERVE_TRUSTED_PROXY"
ENV_MAX_UPLOAD = "AUDITKIT_SERVE_MAX_UPLOAD_BYTES"


def app_from_environment() -> FastAPI:
    """The app for uvicorn's ``factory=True`` (each worker process builds its own)."""
    from pathlib import Path

    from auditkit.registry.location import resolve

    blobs = os.environ.get(ENV_BLOBS)
    location = resolve(os.environ[ENV_REGISTRY], Path(blobs) if blobs else None)
    settings = ServerSettings()
    settings = replace(
        settings,
        secure_cookies=os.environ.get(ENV_INSECURE) != "1",
        trusted_proxy=os.environ.get(ENV_PROXY) == "1",
        max_upload_bytes=int(os.environ.get(ENV_MAX_UPLOAD) or settings.max_upload_bytes),
    )
    return create_app(location, settings)
