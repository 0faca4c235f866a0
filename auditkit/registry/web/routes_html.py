"""The supervisor's pages (server-rendered by :mod:`auditkit.registry.pages`) and login.

A page needs a browser session (cookie) — or a bearer token, for scripts fetching exports;
without either the browser is sent to ``/login`` (303). Every form that changes something
(login, logout) carries a CSRF token: the session's, or before login the one of a short-lived
cookie (double submit); a missing or wrong one is 403. ``?format=csv`` / ``?format=json``
export the page's view; ``?lang=zh`` (remembered in a cookie) shows it in Chinese.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from auditkit.registry import credentials
from auditkit.registry.db import session
from auditkit.registry.web import auth, files
from auditkit.registry.web.common import (
    Context,
    LoginNeeded,
    bearer,
    client_address,
    context,
    now,
    page_lang,
    today,
)
from auditkit.registry.web.security import BodyTooLarge, limited
from auditkit.registry.web.settings import ServerSettings

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "auditkit_login_csrf"
_LOGIN_CSRF_SECONDS = 3600


def session_cookie(settings: ServerSettings) -> str:
    """The session cookie's name: ``__Host-`` prefixed when Secure (browsers then refuse it
    unless it is Secure, for this host only, on path /)."""
    return "__Host-auditkit_session" if settings.secure_cookies else "auditkit_session"


def _set_cookie(
    response: Response, settings: ServerSettings, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )


def _user(request: Request) -> auth.SessionUser:
    """The session (or bearer token) behind a page request; :class:`LoginNeeded` without."""
    ctx = context(request)
    token = bearer(request)
    with session(ctx.engine) as s:
        if token is not None:
            principal = auth.from_token(s, token, now())
            if principal is None:
                raise HTTPException(401, "invalid API token")
            return auth.SessionUser(principal, "")
        cookie = request.cookies.get(session_cookie(ctx.settings))
        found = auth.from_session(s, cookie, now()) if cookie else None
    if found is None:
        raise LoginNeeded
    return found


def _chrome(user: auth.SessionUser, lang: str) -> Any:
    from auditkit.registry.pages import Chrome

    return Chrome(
        username=user.principal.username,
        role=user.principal.role,
        csrf_token=user.csrf_token,
        lang=lang,
    )


def _csv_cell(value: str) -> str:
    # a cell a spreadsheet would run as a formula is prefixed (OWASP CSV injection)
    return "'" + value if value[:1] in ("=", "+", "@", "\t", "\r") else value


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_csv_cell(str(c)) for c in header])
    writer.writerows([[_csv_cell(str(c)) for c in row] for row in rows])
    return out.getvalue()


def _page(
    request: Request,
    user: auth.SessionUser,
    view: Any,
    render: Callable[[Any, Any], str],
    name: str,
    fmt: str | None,
) -> Response:
    """The view as HTML, or exported as CSV or JSON (``fmt``)."""
    from auditkit.registry import views

    lang = page_lang(request)
    if fmt in (None, "", "html"):
        response: Response = HTMLResponse(render(view, _chrome(user, lang)))
        if request.query_params.get("lang") in ("en", "zh"):
            _set_cookie(response, context(request).settings, "lang", lang, 365 * 86400)
        return response
    attachment = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    if fmt == "csv":
        header, rows = views.as_rows(view)
        return Response(_csv(header, rows), media_type="text/csv", headers=attachment)
    if fmt == "json":
        body = json.dumps(views.as_json(view), indent=2, sort_keys=True, ensure_ascii=False)
        return Response(body, media_type="application/json", headers=attachment)
    raise HTTPException(400, f"format {fmt!r}: one of html, csv, json")


# ---- login and logout -------------------------------------------------------------------

#: a login or logout form is a few hundred bytes; anything near this is not one
_FORM_LIMIT = 64 * 1024


async def _small_form(request: Request) -> Any:
    """The request's urlencoded form, refused (413) past :data:`_FORM_LIMIT` bytes."""
    bounded = Request(request.scope, limited(request.receive, _FORM_LIMIT))
    try:
        return await bounded.form(max_files=0, max_fields=5)
    except BodyTooLarge:
        raise HTTPException(413, f"the form is larger than {_FORM_LIMIT} bytes") from None


def _login_form(request: Request, *, error: str | None = None, status: int = 200) -> HTMLResponse:
    from auditkit.registry.pages import render_login

    settings = context(request).settings
    token = credentials.new_secret()
    page = render_login(None, error=error, lang=page_lang(request), csrf_token=token)
    response = HTMLResponse(page, status_code=status)
    _set_cookie(response, settings, LOGIN_CSRF_COOKIE, token, _LOGIN_CSRF_SECONDS)
    return response


@router.get("/login")
def login_page(request: Request) -> Response:
    return _login_form(request)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    ctx = context(request)
    form = await _small_form(request)
    given = form.get("csrf_token")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not auth.csrf_matches(expected, given if isinstance(given, str) else None):
        return _login_form(request, error="csrf", status=403)
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return _login_form(request, error="give a username and a password", status=400)
    client = client_address(request, ctx.settings)
    opened = await run_in_threadpool(_login, ctx, username, password, client)
    if opened == "limited":
        return _login_form(request, error="rate_limited", status=429)
    if not isinstance(opened, auth.NewSession):
        return _login_form(request, error="invalid", status=401)
    response = Response(status_code=303, headers={"Location": "/"})
    _set_cookie(
        response,
        ctx.settings,
        session_cookie(ctx.settings),
        opened.secret,
        ctx.settings.session_seconds,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


def _login(ctx: Context, username: str, password: str, client: str) -> auth.NewSession | str | None:
    when = now()
    with session(ctx.engine) as s:
        if auth.rate_limited(s, username[:100], client[:100], when, ctx.settings):
            return "limited"
    with session(ctx.engine) as s:
        return auth.login(s, username, password, client, when, ctx.settings)


@router.post("/logout")
async def logout(request: Request) -> Response:
    ctx = context(request)
    user = await run_in_threadpool(_user, request)
    form = await _small_form(request)
    given = form.get("csrf_token")
    if not auth.csrf_matches(user.csrf_token, given if isinstance(given, str) else None):
        raise HTTPException(403, "the form is stale or forged (CSRF token): reload the page")
    cookie = request.cookies.get(session_cookie(ctx.settings))
    if cookie:
        with session(ctx.engine) as s:
            auth.logout(s, cookie)
    response = Response(status_code=303, headers={"Location": "/login"})
    response.delete_cookie(session_cookie(ctx.settings), path="/")
    return response


# ---- the supervisor's pages -------------------------------------------------------------


@router.get("/")
def fleet_page(
    request: Request,
    organisation: str | None = None,
    site: str | None = None,
    task: str | None = None,
    verdict: str | None = None,
    rubric: str | None = None,
    q: str | None = None,
    page: int = 1,
    format: str | None = None,
) -> Response:
    user = _user(request)  # before importing the pages: a visitor is sent to log in first
    from auditkit.registry import pages, views

    filters = views.FleetFilters(
        organisation=organisation or None,
        site=site or None,
        task=task or None,
        verdict=verdict or None,
        rubric=rubric or None,
        q=q or None,
        page=max(1, page),
    )
    with session(context(request).engine) as s:
        view = views.fleet(s, user.principal.scope, filters, today=today())
    return _page(request, user, view, pages.render_fleet, "fleet", format)


@router.get("/deployments/{deployment_id}")
def deployment_page(request: Request, deployment_id: int, format: str | None = None) -> Response:
    user = _user(request)  # before importing the pages: a visitor is sent to log in first
    from auditkit.registry import pages, views

    with session(context(request).engine) as s:
        view = views.deployment(s, user.principal.scope, deployment_id, today=today())
    if view is None:
        raise HTTPException(404, f"no deployment {deployment_id}")
    return _page(
        request, user, view, pages.render_deployment, f"deployment-{deployment_id}", format
    )


@router.get("/audits/{audit_id}")
def audit_page(request: Request, audit_id: int, format: str | None = None) -> Response:
    user = _user(request)  # before importing the pages: a visitor is sent to log in first
    from auditkit.registry import pages, views

    with session(context(request).engine) as s:
        view = views.audit(s, user.principal.scope, audit_id)
    if view is None:
        raise HTTPException(404, f"no audit {audit_id}")
    return _page(request, user, view, pages.render_audit, f"audit-{audit_id}", format)


@router.get("/audits/{audit_id}/report.pdf")
def report_pdf(request: Request, audit_id: int) -> Response:
    user = _user(request)
    return files.report_response(context(request), user.principal.scope, audit_id)


@router.get("/audits/{audit_id}/evidence/{name}")
def evidence(request: Request, audit_id: int, name: str) -> Response:
    user = _user(request)
    return files.evidence_response(context(request), user.principal.scope, audit_id, name)
