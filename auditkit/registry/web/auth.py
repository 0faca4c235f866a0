"""Who is asking (issue 15, access control): API tokens, browser sessions, login.

The checks of a token and a password, and the scope of an account, are the accounts module's
(:func:`auditkit.registry.accounts.authenticate_token`, ``authenticate_password``,
``principal_of``); this module adds what only the server needs:

* a bearer token (``Authorization: Bearer akt_…``) is looked up by the SHA-256 of its secret
  and must be neither revoked nor expired, its account not disabled; its last use is recorded;
* a session cookie is looked up the same way in ``web_session``; it must not have expired and
  its account must not be disabled. Sessions live in the database so that several server
  processes share them and a logout ends a session everywhere;
* login costs one Argon2id verification whether or not the username exists (a dummy hash for
  an unknown one), so the answer's timing does not tell which usernames exist. Failures are
  rows of ``login_failure``, counted per username and client address over a window, so the
  limit holds across server processes; a successful login clears them.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from auditkit.registry import accounts, credentials
from auditkit.registry.models import Account, ApiToken, LoginFailure, WebSession
from auditkit.registry.scope import Principal
from auditkit.registry.web.settings import ServerSettings

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def stamp(when: datetime) -> str:
    """``when`` as the registry writes times (ISO 8601 UTC, seconds)."""
    return when.astimezone(UTC).strftime(_STAMP)


def parse_stamp(text: str) -> datetime:
    """A stored time back as an aware datetime (a time without a zone is UTC)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def from_token(s: Session, token: str, now: datetime) -> Principal | None:
    """The principal of a bearer token (:func:`auditkit.registry.accounts.authenticate_token`:
    None when unknown, revoked, expired or its account disabled); records when it was last
    used, to the minute, so a script calling the API in a loop does not write every time."""
    principal = accounts.authenticate_token(s, token, now=now)
    if principal is not None:
        s.execute(
            update(ApiToken)
            .where(
                ApiToken.token_sha256 == credentials.secret_digest(token),
                or_(
                    ApiToken.last_used_at.is_(None),
                    ApiToken.last_used_at < stamp(now - timedelta(minutes=1)),
                ),
            )
            .values(last_used_at=stamp(now))
        )
    return principal


@dataclass(frozen=True)
class SessionUser:
    """A logged-in browser: who, and the CSRF token its forms must carry."""

    principal: Principal
    csrf_token: str


def from_session(s: Session, cookie: str, now: datetime) -> SessionUser | None:
    """The session of a cookie's secret; None when unknown, expired or its account disabled."""
    row = s.scalars(
        select(WebSession).where(WebSession.id_sha256 == credentials.secret_digest(cookie))
    ).first()
    if row is None or parse_stamp(row.expires_at) <= now:
        return None
    account = s.get(Account, row.account_id)
    if account is None or account.disabled:
        return None
    return SessionUser(accounts.principal_of(s, account), row.csrf_token)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    """Whether a form's CSRF token is the expected one (constant time; both must be present)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def rate_limited(
    s: Session, username: str, client: str, now: datetime, settings: ServerSettings
) -> bool:
    """Whether ``username`` from ``client`` has used up its failed logins in the window."""
    since = stamp(now - timedelta(seconds=settings.login_window_seconds))
    failures = s.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(
            LoginFailure.username == username,
            LoginFailure.client == client,
            LoginFailure.at > since,
        )
    )
    return int(failures or 0) >= settings.login_failures


@dataclass(frozen=True)
class NewSession:
    """A session just created: the cookie's secret (never stored) and the CSRF token."""

    secret: str
    csrf_token: str
    principal: Principal


def login(
    s: Session,
    username: str,
    password: str,
    client: str,
    now: datetime,
    settings: ServerSettings,
) -> NewSession | None:
    """Check the password and open a session; None (and a ``login_failure`` row) when the
    username is unknown, the account disabled or without a password, or the password wrong.
    The caller checks :func:`rate_limited` first."""
    username = username[:100]
    # one Argon2id verification whether or not the account exists (accounts module)
    principal = accounts.authenticate_password(s, username, password)
    if principal is None or principal.account_id is None:
        s.add(LoginFailure(username=username, client=client[:100], at=stamp(now)))
        # keep the table small: failures older than the window no longer count
        old = stamp(now - timedelta(seconds=settings.login_window_seconds))
        s.execute(delete(LoginFailure).where(LoginFailure.at <= old))
        return None
    s.execute(
        delete(LoginFailure).where(
            LoginFailure.username == username, LoginFailure.client == client[:100]
        )
    )
    s.execute(delete(WebSession).where(WebSession.expires_at <= stamp(now)))  # expired ones
    secret, csrf = credentials.new_secret(), credentials.new_secret()
    s.add(
        WebSession(
            id_sha256=credentials.secret_digest(secret),
            account_id=principal.account_id,
            csrf_token=csrf,
            created_at=stamp(now),
            expires_at=stamp(now + timedelta(seconds=settings.session_seconds)),
        )
    )
    return NewSession(secret, csrf, principal)


def logout(s: Session, cookie: str) -> None:
    """End the session of a cookie's secret (everywhere: the row is deleted)."""
    s.execute(delete(WebSession).where(WebSession.id_sha256 == credentials.secret_digest(cookie)))
