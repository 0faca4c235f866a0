"""Who is asking (issue 15, access control): API tokens, browser sessions, login.

* A bearer token (``Authorization: Bearer akt_…``) is looked up by the SHA-256 of its secret
  (:func:`auditkit.registry.credentials.secret_digest`): it must be neither revoked nor expired
  and its account not disabled.
* A session cookie is looked up the same way in ``web_session``; it must not have expired and
  its account must not be disabled. Sessions live in the database so that several server
  processes share them and a logout ends a session everywhere.
* Login verifies the password with Argon2id. An unknown username (or an account without a
  password) is verified against a dummy hash, so the answer takes as long as for a known one
  and does not tell which usernames exist. Failures are rows of ``login_failure``, counted per
  username and client address over a window, so the limit holds across server processes.

The :class:`Principal`'s scope: a regulator reads everything; an organisation account its own
organisation; a test laboratory its own and every organisation with an active (not revoked)
authorisation for it. A disabled account, or an organisation account without an
organisation, reads nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from auditkit.registry import credentials
from auditkit.registry.models import (
    Account,
    ApiToken,
    Authorisation,
    LoginFailure,
    WebSession,
)
from auditkit.registry.scope import EVERYTHING, Principal, Scope
from auditkit.registry.web.settings import ServerSettings

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def stamp(when: datetime) -> str:
    """``when`` as the registry writes times (ISO 8601 UTC, seconds)."""
    return when.astimezone(UTC).strftime(_STAMP)


def parse_stamp(text: str) -> datetime:
    """A stored time back as an aware datetime (a time without a zone is UTC)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def scope_of(s: Session, account: Account) -> Scope:
    """What ``account`` may read (module doc)."""
    if account.role == "regulator":
        return EVERYTHING
    if account.organisation_id is None:
        return Scope(frozenset())
    own = {account.organisation_id}
    if account.role == "test_laboratory":
        granted = s.scalars(
            select(Authorisation.organisation_id).where(
                Authorisation.laboratory_id == account.organisation_id,
                Authorisation.revoked_at.is_(None),
            )
        )
        own.update(granted)
    return Scope(frozenset(own))


def principal_of(s: Session, account: Account) -> Principal:
    return Principal(
        account.id, account.username, account.role, account.organisation_id, scope_of(s, account)
    )


def from_token(s: Session, token: str, now: datetime) -> Principal | None:
    """The principal of a bearer token; None when unknown, revoked, expired or its account
    disabled. Records when the token was last used."""
    row = s.scalars(
        select(ApiToken).where(ApiToken.token_sha256 == credentials.secret_digest(token))
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and parse_stamp(row.expires_at) <= now:
        return None
    account = s.get(Account, row.account_id)
    if account is None or account.disabled:
        return None
    # to the minute: a script calling the API in a loop does not write a row per request
    if row.last_used_at is None or parse_stamp(row.last_used_at) < now - timedelta(minutes=1):
        row.last_used_at = stamp(now)
    return principal_of(s, account)


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
    return SessionUser(principal_of(s, account), row.csrf_token)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    """Whether a form's CSRF token is the expected one (constant time; both must be present)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # verified against when the username is unknown, so that costs one Argon2id run too
    return credentials.hash_password(credentials.new_secret())


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
    account = s.scalars(select(Account).where(Account.username == username)).first()
    stored = account.password_hash if account is not None else None
    matches = credentials.verify_password(stored or _dummy_hash(), password)
    if account is None or stored is None or account.disabled or not matches:
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
            account_id=account.id,
            csrf_token=csrf,
            created_at=stamp(now),
            expires_at=stamp(now + timedelta(seconds=settings.session_seconds)),
        )
    )
    return NewSession(secret, csrf, principal_of(s, account))


def logout(s: Session, cookie: str) -> None:
    """End the session of a cookie's secret (everywhere: the row is deleted)."""
    s.execute(delete(WebSession).where(WebSession.id_sha256 == credentials.secret_digest(cookie)))
