"""What the app's routes share: the context (registry, engine, settings), the clock, who is
asking through a bearer token, the page language, and how a refused submission is answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from fastapi import HTTPException, Request
from sqlalchemy import Engine

from auditkit.registry.db import session
from auditkit.registry.location import Location
from auditkit.registry.scope import Principal
from auditkit.registry.web import auth
from auditkit.registry.web.settings import ServerSettings

API = "/api/v1"


@dataclass(frozen=True)
class Context:
    """What every route needs: the registry, its engine and the settings."""

    location: Location
    engine: Engine
    settings: ServerSettings


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def now() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return now().date()


def client_address(request: Request, settings: ServerSettings) -> str:
    """The client's address: the socket's peer, or behind a trusted proxy the last
    ``X-Forwarded-For`` entry (the one the proxy itself added)."""
    if settings.trusted_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last
    return request.client.host if request.client else "unknown"


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def api_principal(request: Request) -> Principal:
    """The principal of the request's bearer token; 401 without a valid one."""
    token = bearer(request)
    if token is not None:
        ctx = context(request)
        with session(ctx.engine) as s:
            principal = auth.from_token(s, token, now())
        if principal is not None:
            return principal
    raise HTTPException(
        401,
        "a valid API token is needed: Authorization: Bearer akt_…",
        headers={"WWW-Authenticate": "Bearer"},
    )


def status_for(error: Exception) -> int:
    """The HTTP status of a refused submission (see the module doc)."""
    from auditkit.errors import OutputError, PermissionDenied, VerificationError

    if isinstance(error, PermissionDenied):
        return 403
    if isinstance(error, VerificationError):
        return 422
    if isinstance(error, OutputError):
        return 503
    if str(error).startswith("duplicate"):
        return 409
    return 422


def page_lang(request: Request) -> str:
    """``?lang=zh`` or the ``lang`` cookie; English otherwise."""
    for candidate in (request.query_params.get("lang"), request.cookies.get("lang")):
        if candidate in ("en", "zh"):
            return candidate
    return "en"


class LoginNeeded(Exception):
    """A page was asked for without a valid session: the browser goes to the login form."""


class Refusal(HTTPException):
    """A refused submission: its HTTP status, reason and the CLI's exit code for it."""

    def __init__(self, status: int, detail: str, exit_code: int) -> None:
        super().__init__(status, detail)
        self.exit_code = exit_code
