"""Accounts, API tokens and laboratory authorisations (``registry init|account|token|
authorise``), and who may submit for which organisation (docs/registry.md, "Accounts and
roles").

Who may submit (:func:`submission_refusal`, enforced by :func:`auditkit.registry.ingest.submit`
so the CLI, the API and the pages obey the same rule):

* ``regulator``: any report for any organisation — originals as well as countersigned copies.
  A regulator that receives a signed report by other means registers it; what the registry
  trusts is the signatures, checked against the trust roots, not the submitter.
* ``organisation``: only for its own organisation (the ``ORG`` of ``--deployment`` must be the
  account's organisation; new sites, stations and deployments are created under it).
* ``test_laboratory``: only for an organisation that has an active authorisation for the
  account's laboratory (``registry authorise LAB ORG``).
* a disabled account (or one that no longer exists): nothing.

Every change here is an event in the hash-chained log (``account_added``, ``account_disabled``,
``token_created``, ``token_revoked``, ``authorised``, ``authorisation_revoked``) naming who did
it; passwords and token secrets never appear in a payload (a token's shown prefix does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from auditkit.errors import InputError
from auditkit.registry import credentials
from auditkit.registry.models import (
    ROLES,
    Account,
    ApiToken,
    Authorisation,
    Base,
    Organisation,
)
from auditkit.registry.scope import LOCAL_OPERATOR, Principal

#: the shortest password accepted (NIST SP 800-63B asks for at least 8; we ask a little more)
MIN_PASSWORD = 10
#: the organisation kind an account's organisation is created with, by role
KIND_OF_ROLE = {
    "regulator": "regulator",
    "organisation": "enterprise",
    "test_laboratory": "test_laboratory",
}
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor(principal: Principal) -> dict[str, str]:
    """Who did it, as events record it: username and role."""
    return {"username": principal.username, "role": principal.role}


def _event(s: Session, kind: str, subject: str, payload: dict[str, Any]) -> None:
    from auditkit.registry.ingest import append_event

    append_event(s, kind, subject, payload)


# --------------------------------------------------------------------------- who may submit


def submission_refusal(s: Session, principal: Principal, organisation: str) -> str | None:
    """Why ``principal`` may not submit a report for the organisation named ``organisation``,
    or None when it may (rules: module doc)."""
    if principal.account_id is not None:
        account = s.get(Account, principal.account_id)
        if account is None or account.disabled:
            return f"account {principal.username!r} is disabled: it may not submit"
    if principal.role == "regulator":
        return None
    org = s.scalars(select(Organisation).filter_by(name=organisation)).first()
    if principal.role == "organisation":
        if principal.organisation_id is None:
            return f"account {principal.username!r} belongs to no organisation: it may not submit"
        if org is None or org.id != principal.organisation_id:
            own = s.get(Organisation, principal.organisation_id)
            return (
                f"account {principal.username!r} of organisation "
                f"{own.name if own else '?'!r} may submit only for its own organisation's "
                f"deployments, not for {organisation!r}"
            )
        return None
    if principal.role == "test_laboratory":
        lab = (
            s.get(Organisation, principal.organisation_id)
            if principal.organisation_id is not None
            else None
        )
        if lab is None:
            return f"account {principal.username!r} belongs to no laboratory: it may not submit"
        if org is None or not is_authorised(s, lab.id, org.id):
            return (
                f"laboratory {lab.name!r} is not authorised by organisation {organisation!r}: "
                f"the organisation's account or a regulator runs `auditkit registry authorise "
                f"{lab.name!r} {organisation!r}`"
            )
        return None
    return f"account {principal.username!r} has role {principal.role!r}: it may not submit"


def is_authorised(s: Session, laboratory_id: int, organisation_id: int) -> bool:
    """Whether the laboratory holds an authorisation of the organisation not revoked."""
    row = s.scalars(
        select(Authorisation).filter_by(
            laboratory_id=laboratory_id, organisation_id=organisation_id
        )
    ).first()
    return row is not None and row.revoked_at is None


# --------------------------------------------------------------------------- organisations


def organisation_for(s: Session, name: str, kind: str, created: list[Base]) -> Organisation:
    """The organisation called ``name``, created with ``kind`` (and appended to ``created``,
    for the event that vouches for it) when new."""
    org = s.scalars(select(Organisation).filter_by(name=name)).first()
    if org is None:
        org = Organisation(name=name, kind=kind)
        s.add(org)
        s.flush()
        created.append(org)
    return org


def _rows(s: Session, created: list[Base]) -> dict[str, str]:
    from auditkit.registry.ingest import digests_of

    return digests_of(s, created)


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class AccountRow:
    id: int
    username: str
    role: str
    organisation: str | None
    created_at: str
    disabled: bool
    has_password: bool


def check_password(password: str) -> None:
    """:class:`InputError` for a password shorter than :data:`MIN_PASSWORD` characters."""
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password must have at least {MIN_PASSWORD} characters")


def add_account(
    s: Session,
    username: str,
    role: str,
    *,
    organisation: str | None,
    password: str | None,
    by: Principal = LOCAL_OPERATOR,
) -> Account:
    """A new account (``password`` None: API tokens only). An organisation or laboratory
    account needs ``organisation`` (created, of the kind its role implies, when new); a
    regulator's may name one. Event ``account_added``."""
    if not _USERNAME.match(username):
        raise InputError(
            f"username {username!r}: 1 to 100 letters, digits or . _ @ -, starting with a "
            "letter or digit"
        )
    if role not in ROLES:
        raise InputError(f"--role {role!r}: one of {', '.join(ROLES)}")
    if role != "regulator" and not organisation:
        raise InputError(f"an account of role {role} needs --organisation ORG")
    if s.scalars(select(Account).filter_by(username=username)).first() is not None:
        raise InputError(f"an account {username!r} already exists")
    if password is not None:
        check_password(password)
    created: list[Base] = []
    org = organisation_for(s, organisation, KIND_OF_ROLE[role], created) if organisation else None
    if org is not None and role == "test_laboratory" and org.kind != "test_laboratory":
        raise InputError(f"organisation {org.name!r} is of kind {org.kind}, not a test laboratory")
    account = Account(
        username=username,
        password_hash=credentials.hash_password(password) if password is not None else None,
        role=role,
        organisation_id=org.id if org is not None else None,
        created_at=_now(),
        disabled=False,
    )
    s.add(account)
    s.flush()
    payload: dict[str, Any] = {
        "account": username,
        "role": role,
        "organisation": org.name if org is not None else None,
        "password": password is not None,
        "by": actor(by),
    }
    if created:
        payload["rows"] = _rows(s, created)
    _event(s, "account_added", username, payload)
    return account


def account_named(s: Session, username: str) -> Account:
    account = s.scalars(select(Account).filter_by(username=username)).first()
    if account is None:
        raise InputError(f"no account {username!r} in the registry")
    return account


def disable_account(s: Session, username: str, *, by: Principal = LOCAL_OPERATOR) -> Account:
    """Disable an account: it can no longer log in, use its tokens or submit. Its browser
    sessions are ended. Event ``account_disabled``."""
    from auditkit.registry.models import WebSession

    account = account_named(s, username)
    if account.disabled:
        raise InputError(f"account {username!r} is already disabled")
    account.disabled = True
    for web in s.scalars(select(WebSession).filter_by(account_id=account.id)):
        s.delete(web)
    _event(s, "account_disabled", username, {"account": username, "by": actor(by)})
    return account


def list_accounts(s: Session) -> list[AccountRow]:
    names = {o.id: o.name for o in s.scalars(select(Organisation))}
    return [
        AccountRow(
            a.id,
            a.username,
            a.role,
            names.get(a.organisation_id) if a.organisation_id is not None else None,
            a.created_at,
            bool(a.disabled),
            a.password_hash is not None,
        )
        for a in s.scalars(select(Account).order_by(Account.username))
    ]


def principal_of(s: Session, account: Account) -> Principal:
    """The :class:`Principal` an account acts as, with its read scope (scope module doc)."""
    from auditkit.registry.scope import EVERYTHING, Scope

    if account.role == "regulator":
        scope = EVERYTHING
    else:
        own = {account.organisation_id} if account.organisation_id is not None else set()
        if account.role == "test_laboratory" and account.organisation_id is not None:
            own |= {
                a.organisation_id
                for a in s.scalars(
                    select(Authorisation).filter_by(
                        laboratory_id=account.organisation_id, revoked_at=None
                    )
                )
            }
        scope = Scope(frozenset(own))
    return Principal(account.id, account.username, account.role, account.organisation_id, scope)


# --------------------------------------------------------------------------- logging in

#: a hash to verify against when the username is unknown, so a wrong name takes as long as a
#: wrong password (no username enumeration by timing); made on first use
_DUMMY_HASH: list[str] = []


def authenticate_password(s: Session, username: str, password: str) -> Principal | None:
    """The principal of ``username`` when ``password`` is its password and the account is
    active; None otherwise (unknown, disabled, token-only or wrong password — one answer, so
    a caller cannot tell them apart)."""
    account = s.scalars(select(Account).filter_by(username=username)).first()
    if account is None or account.password_hash is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(credentials.hash_password(credentials.new_secret()))
        credentials.verify_password(_DUMMY_HASH[0], password)
        return None
    if not credentials.verify_password(account.password_hash, password) or account.disabled:
        return None
    return principal_of(s, account)


def authenticate_token(s: Session, secret: str, *, now: datetime | None = None) -> Principal | None:
    """The principal of the API token ``secret`` (looked up by its SHA-256) when it is not
    revoked, not expired (``expires_at`` after ``now``, default the current time) and its
    account is active; None otherwise. ``last_used_at`` is the caller's to update."""
    token = s.scalars(
        select(ApiToken).filter_by(token_sha256=credentials.secret_digest(secret))
    ).first()
    if token is None or token.revoked_at is not None:
        return None
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if token.expires_at is not None and token.expires_at <= at:
        return None
    account = s.get(Account, token.account_id)
    if account is None or account.disabled:
        return None
    return principal_of(s, account)


# --------------------------------------------------------------------------- API tokens


@dataclass(frozen=True)
class TokenRow:
    id: int
    username: str
    name: str
    prefix: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


def create_token(
    s: Session,
    username: str,
    name: str,
    *,
    days: int | None = None,
    by: Principal = LOCAL_OPERATOR,
) -> tuple[ApiToken, str]:
    """A new API token for ``username``, valid ``days`` days (None: until revoked). Returns
    the row and the secret — the only time it exists outside the caller: the database keeps
    its SHA-256 and its shown prefix. Event ``token_created`` (prefix, not secret)."""
    account = account_named(s, username)
    if account.disabled:
        raise InputError(f"account {username!r} is disabled")
    if not name.strip() or len(name) > 100:
        raise InputError("--name: 1 to 100 characters, what the token is for")
    if days is not None and days < 1:
        raise InputError(f"--days {days}: at least 1")
    secret = credentials.new_token()
    now = datetime.now(UTC)
    token = ApiToken(
        account_id=account.id,
        name=name,
        prefix=credentials.shown_prefix(secret),
        token_sha256=credentials.secret_digest(secret),
        created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        expires_at=(now + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if days is not None
        else None,
    )
    s.add(token)
    s.flush()
    _event(
        s,
        "token_created",
        username,
        {
            "account": username,
            "token": token.id,
            "name": name,
            "prefix": token.prefix,
            "expires_at": token.expires_at,
            "by": actor(by),
        },
    )
    return token, secret


def list_tokens(s: Session, username: str | None = None) -> list[TokenRow]:
    users = {a.id: a.username for a in s.scalars(select(Account))}
    query = select(ApiToken).order_by(ApiToken.id)
    if username is not None:
        query = query.where(ApiToken.account_id == account_named(s, username).id)
    return [
        TokenRow(
            t.id,
            users.get(t.account_id, "?"),
            t.name,
            t.prefix,
            t.created_at,
            t.expires_at,
            t.revoked_at,
            t.last_used_at,
        )
        for t in s.scalars(query)
    ]


def revoke_token(s: Session, token_id: int, *, by: Principal = LOCAL_OPERATOR) -> ApiToken:
    """Revoke token ``token_id`` (from ``token list``). Event ``token_revoked``."""
    token = s.get(ApiToken, token_id)
    if token is None:
        raise InputError(f"no API token {token_id} (see `auditkit registry token list`)")
    if token.revoked_at is not None:
        raise InputError(f"API token {token_id} was already revoked at {token.revoked_at}")
    token.revoked_at = _now()
    account = s.get(Account, token.account_id)
    username = account.username if account is not None else "?"
    _event(
        s,
        "token_revoked",
        username,
        {"account": username, "token": token.id, "prefix": token.prefix, "by": actor(by)},
    )
    return token


# --------------------------------------------------------------------------- authorisations


@dataclass(frozen=True)
class AuthorisationRow:
    laboratory: str
    organisation: str
    created_at: str
    revoked_at: str | None


def authorise(
    s: Session,
    laboratory: str,
    organisation: str,
    *,
    revoke: bool = False,
    by: Principal = LOCAL_OPERATOR,
) -> Authorisation:
    """Let the test laboratory ``laboratory`` submit for (and read) ``organisation``'s audits,
    or with ``revoke`` end that. Both are created where new (a laboratory of kind
    test_laboratory, an enterprise) — but a revocation needs an existing authorisation.
    Events ``authorised`` / ``authorisation_revoked``; a renewed authorisation after a
    revocation reuses its row (created_at renewed, revoked_at cleared)."""
    if laboratory == organisation:
        raise InputError("a laboratory cannot authorise itself")
    created: list[Base] = []
    if revoke:
        lab = s.scalars(select(Organisation).filter_by(name=laboratory)).first()
        org = s.scalars(select(Organisation).filter_by(name=organisation)).first()
        row = (
            s.scalars(
                select(Authorisation).filter_by(laboratory_id=lab.id, organisation_id=org.id)
            ).first()
            if lab is not None and org is not None
            else None
        )
        if row is None or row.revoked_at is not None:
            raise InputError(
                f"laboratory {laboratory!r} holds no active authorisation of {organisation!r}"
            )
        row.revoked_at = _now()
        kind = "authorisation_revoked"
    else:
        lab = organisation_for(s, laboratory, "test_laboratory", created)
        if lab.kind != "test_laboratory":
            raise InputError(
                f"organisation {laboratory!r} is of kind {lab.kind}, not a test laboratory"
            )
        org = organisation_for(s, organisation, "enterprise", created)
        row = s.scalars(
            select(Authorisation).filter_by(laboratory_id=lab.id, organisation_id=org.id)
        ).first()
        if row is not None and row.revoked_at is None:
            raise InputError(f"laboratory {laboratory!r} is already authorised by {organisation!r}")
        if row is None:
            row = Authorisation(laboratory_id=lab.id, organisation_id=org.id, created_at=_now())
            s.add(row)
        else:
            row.created_at, row.revoked_at = _now(), None
        s.flush()
        kind = "authorised"
    payload: dict[str, Any] = {
        "laboratory": laboratory,
        "organisation": organisation,
        "by": actor(by),
    }
    if created:
        payload["rows"] = _rows(s, created)
    _event(s, kind, f"{laboratory} -> {organisation}"[:200], payload)
    return row


def list_authorisations(s: Session, *, include_revoked: bool = False) -> list[AuthorisationRow]:
    names = {o.id: o.name for o in s.scalars(select(Organisation))}
    rows = [
        AuthorisationRow(
            names.get(a.laboratory_id, "?"),
            names.get(a.organisation_id, "?"),
            a.created_at,
            a.revoked_at,
        )
        for a in s.scalars(select(Authorisation).order_by(Authorisation.id))
        if include_revoked or a.revoked_at is None
    ]
    return rows
