"""The registry's server (auditkit.registry.web) against SQLite and a real PostgreSQL server:
who may read and submit what through every route, sessions, CSRF, cookies, headers, upload
limits, the login rate limit, and `auditkit serve` with the CLI's remote submit.

Expected values come from the test's own records (the accounts and tokens it inserted, the
organisations' ids read back with SQL), from the PDFs and run folders (hashlib, json), never
from the server's own answers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from auditkit.registry import credentials
from auditkit.registry.location import Location
from tests.registry_fixtures import (  # noqa: F401  (fixtures; F811: pyproject)
    Reports,
    postgres_server,
    reports,
)
from tests.test_registry import cli

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://testserver"  # Secure cookies are sent over https only
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def _stamp(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).strftime(STAMP)


def sql(location: Location, query: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_engine(location.url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(query), params)
            return [dict(r._mapping) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def org_id(location: Location, name: str) -> int:
    return int(sql(location, "SELECT id FROM organisation WHERE name = :n", n=name)[0]["id"])


def add_organisation(location: Location, name: str, kind: str) -> int:
    sql(location, "INSERT INTO organisation (name, kind) VALUES (:n, :k)", n=name, k=kind)
    return org_id(location, name)


def add_account(
    location: Location,
    username: str,
    role: str,
    organisation: int | None,
    *,
    password: str | None = None,
    disabled: bool = False,
    token_expires: str | None = None,
    token_revoked: str | None = None,
) -> str:
    """An account (Argon2id password when given) with one API token; returns the token."""
    from auditkit.registry.models import Account, ApiToken

    token = credentials.new_token()
    engine = create_engine(location.url)
    try:
        with Session(engine) as s, s.begin():
            account = Account(
                username=username,
                password_hash=credentials.hash_password(password) if password else None,
                role=role,
                organisation_id=organisation,
                created_at=_stamp(),
                disabled=disabled,
            )
            s.add(account)
            s.flush()
            s.add(
                ApiToken(
                    account_id=account.id,
                    name="test",
                    prefix=credentials.shown_prefix(token),
                    token_sha256=credentials.secret_digest(token),
                    created_at=_stamp(),
                    expires_at=token_expires,
                    revoked_at=token_revoked,
                )
            )
    finally:
        engine.dispose()
    return token


def add_trust_root(location: Location, ca: Path, organisation: int | None) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = ca.read_text()
    cert = x509.load_pem_x509_certificate(pem.encode())
    sql(
        location,
        "INSERT INTO trust_root (organisation_id, sha256, subject, pem, added_at) "
        "VALUES (:o, :s, :subj, :pem, :at)",
        o=organisation,
        s=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        subj=cert.subject.rfc4514_string(),
        pem=pem,
        at=_stamp(),
    )


@dataclass(frozen=True)
class World:
    """Two enterprises (A: the signed report, B: the later one), a laboratory authorised by A,
    and accounts: a regulator, one account per enterprise, the laboratory, and more."""

    location: Location
    reports: Reports
    dep_a: str
    dep_b: str
    org_a: int
    org_b: int
    audit_a: int
    audit_b: int
    deployment_a: int
    deployment_b: int
    report_a: str
    report_b: str
    evidence_a: str
    tokens: dict[str, str]
    passwords: dict[str, str]


def _make_location(kind: str, folder: Path, server: Any) -> Location:
    from auditkit.registry.db import upgrade
    from auditkit.registry.location import resolve

    if kind == "sqlite":
        where = resolve(str(folder / "registry.sqlite"))
    else:
        where = resolve(server.create_database(f"server_{folder.name}"), folder / "blobs")
    upgrade(where)
    return where


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, reports: Reports
) -> World:
    from auditkit.registry.ingest import submit

    folder = tmp_path_factory.mktemp(f"server{request.param}")
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    where = _make_location(request.param, folder, server)
    model = reports.model
    dep_a, dep_b = f"Org A/Site 1/Line 1/{model}", f"Org B/Site 2/Line 2/{model}"
    a = submit(where, reports.signed, dep_a, trust=[reports.lab_ca])
    b = submit(where, reports.later, dep_b, trust=[reports.lab_ca])
    org_a, org_b = org_id(where, "Org A"), org_id(where, "Org B")
    for org in (org_a, org_b):
        add_trust_root(where, reports.lab_ca, org)
    add_trust_root(where, reports.regulator_ca, None)
    lab = add_organisation(where, "Lab L", "test_laboratory")
    sql(
        where,
        "INSERT INTO authorisation (laboratory_id, organisation_id, created_at) "
        "VALUES (:l, :o, :at)",
        l=lab,
        o=org_a,
        at=_stamp(),
    )
    regulator_org = add_organisation(where, "Supervisor", "regulator")
    passwords = {
        name: f"pw-{name}-{credentials.new_secret()[:8]}" for name in ("alice", "reg", "carol")
    }
    tokens = {
        "reg": add_account(where, "reg", "regulator", regulator_org, password=passwords["reg"]),
        "alice": add_account(where, "alice", "organisation", org_a, password=passwords["alice"]),
        "bob": add_account(where, "bob", "organisation", org_b),
        "lab": add_account(where, "lab", "test_laboratory", lab),
        "carol": add_account(where, "carol", "organisation", org_a, password=passwords["carol"]),
        "disabled": add_account(where, "dora", "regulator", None, disabled=True),
        "expired": add_account(
            where, "eve", "regulator", None, token_expires=_stamp(-timedelta(minutes=1))
        ),
        "revoked": add_account(
            where, "rex", "regulator", None, token_revoked=_stamp(-timedelta(minutes=1))
        ),
    }
    audits = {
        r["report_id"]: r
        for r in sql(where, "SELECT id, report_id, deployment_id, evidence FROM audit")
    }
    evidence = audits[a.report_id]["evidence"]
    evidence = json.loads(evidence) if isinstance(evidence, str) else evidence
    return World(
        location=where,
        reports=reports,
        dep_a=dep_a,
        dep_b=dep_b,
        org_a=org_a,
        org_b=org_b,
        audit_a=a.audit_id,
        audit_b=b.audit_id,
        deployment_a=int(audits[a.report_id]["deployment_id"]),
        deployment_b=int(audits[b.report_id]["deployment_id"]),
        report_a=a.report_id,
        report_b=b.report_id,
        evidence_a=sorted(evidence)[0],
        tokens=tokens,
        passwords=passwords,
    )


@contextlib.contextmanager
def client_for(world: World, **settings: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from auditkit.registry.web.app import create_app
    from auditkit.registry.web.settings import ServerSettings

    app = create_app(world.location, replace(ServerSettings(), **settings))
    try:
        with TestClient(app, base_url=BASE) as client:
            yield client
    finally:
        app.state.ctx.engine.dispose()


@pytest.fixture
def client(world: World) -> Iterator[Any]:
    with client_for(world) as c:
        yield c


def auth(world: World, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[who]}"}


def login(client: Any, username: str, password: str) -> Any:
    from auditkit.registry.web.routes_html import LOGIN_CSRF_COOKIE

    client.get("/login")
    csrf = client.cookies.get(LOGIN_CSRF_COOKIE)
    assert csrf
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf},
        follow_redirects=False,
    )


def counts(location: Location) -> dict[str, int]:
    """Rows of every recorded table, events by kind, and files in the blob folder."""
    found = {
        table: int(sql(location, f"SELECT count(*) AS n FROM {table}")[0]["n"])
        for table in ("audit", "report_file", "signature", "criterion", "deployment")
    }
    for row in sql(location, "SELECT kind, count(*) AS n FROM event GROUP BY kind"):
        found["event:" + row["kind"]] = int(row["n"])
    found["blobs"] = sum(1 for p in Path(location.blobs).rglob("*") if p.is_file())
    return found


def upload(client: Any, world: World, who: str, pdf: Path | bytes, deployment: str) -> Any:
    data = pdf if isinstance(pdf, bytes) else pdf.read_bytes()
    return client.post(
        "/api/v1/audits",
        headers=auth(world, who),
        files={"file": ("report.pdf", data, "application/pdf")},
        data={"deployment": deployment},
    )


# ---- every route, every principal -------------------------------------------------------


def routes(client: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves (OpenAPI's and the pages')."""
    from auditkit.registry.web.app import route_table

    return route_table(client.app)


#: routes that read no registry data (anyone may call them)
PUBLIC = {
    ("GET", "/api/openapi.json"),
    ("GET", "/api/v1/health"),
    ("GET", "/login"),
    ("POST", "/login"),
}
#: routes that change something, or say who is asking: tested by their own tests
WRITES = {
    ("POST", "/api/v1/audits"),
    ("POST", "/logout"),
    ("GET", "/api/v1/whoami"),
    ("GET", "/api/v1/organisations"),
}


def fill(path: str, world: World, side: str) -> str:
    """``path`` with its parameters naming organisation ``side``'s deployment and audit."""
    dep = world.deployment_a if side == "a" else world.deployment_b
    audit = world.audit_a if side == "a" else world.audit_b
    return (
        path.replace("{deployment_id}", str(dep))
        .replace("{audit_id}", str(audit))
        .replace("{name}", world.evidence_a)
    )


def test_every_route_needs_credentials(client: Any, world: World) -> None:
    """No token → 401 on every API route; every page sends an anonymous browser to /login;
    an invalid, expired or revoked token, or one of a disabled account, is 401 too."""
    seen = 0
    for method, path in routes(client):
        if (method, path) in PUBLIC:
            continue
        url = fill(path, world, "a")
        answer = client.request(method, url, follow_redirects=False)
        if path.startswith("/api/"):
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            for bad in ("akt_" + "x" * 43, world.tokens["expired"], world.tokens["revoked"]):
                wrong = client.request(method, url, headers={"Authorization": f"Bearer {bad}"})
                assert wrong.status_code == 401, (method, path, bad[:8])
            off = client.request(method, url, headers=auth(world, "disabled"))
            assert off.status_code == 401, (method, path)
        else:
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"] == "/login"
        seen += 1
    assert seen >= 12  # the API's reads and submit, the pages, downloads and logout


def test_no_route_shows_another_organisations_audits(client: Any, world: World) -> None:
    """alice (Org A) and the laboratory A authorised get 404 for Org B's deployment, audit,
    PDF and evidence on every route with a parameter — in every format, API and pages — while
    the same routes answer for Org A's; lists never name Org B. The regulator reads both."""
    assert login(client, "alice", world.passwords["alice"]).status_code == 303
    checked: set[tuple[str, str]] = set()
    for method, path in routes(client):
        if (method, path) in PUBLIC | WRITES:
            continue
        assert method == "GET", f"new route {method} {path}: add it to this test"
        formats = (
            [""]
            if path.startswith("/api/") or path.endswith(("pdf", "{name}"))
            else [
                "",
                "?format=csv",
                "?format=json",
            ]
        )
        who = ["alice", "lab"]
        for fmt in formats:
            for person in who:
                headers = auth(world, person) if path.startswith("/api/") or person == "lab" else {}
                if "{" in path:
                    theirs = client.get(fill(path, world, "b") + fmt, headers=headers)
                    assert theirs.status_code == 404, (person, path, fmt, theirs.status_code)
                    assert world.report_b not in theirs.text
                    ours = client.get(fill(path, world, "a") + fmt, headers=headers)
                    assert ours.status_code == 200, (person, path, fmt, ours.text[:300])
                else:
                    listing = client.get(path + fmt, headers=headers)
                    assert listing.status_code == 200, (person, path, fmt)
                    assert "Org B" not in listing.text and world.report_b not in listing.text
                    assert "Org A" in listing.text
            checked.add((method, path))
        if "{" not in path:
            everything = client.get(path + formats[-1], headers=auth(world, "reg"))
            assert everything.status_code == 200
            assert "Org A" in everything.text and "Org B" in everything.text, path
    expected = {
        "/api/v1/deployments/{deployment_id}",
        "/api/v1/audits/{audit_id}",
        "/api/v1/audits/{audit_id}/report.pdf",
        "/api/v1/audits/{audit_id}/evidence/{name}",
        "/deployments/{deployment_id}",
        "/audits/{audit_id}",
        "/audits/{audit_id}/report.pdf",
        "/audits/{audit_id}/evidence/{name}",
        "/",
        "/api/v1/deployments",
    }
    assert expected <= {p for _m, p in checked}


def test_scope_of_each_role(client: Any, world: World) -> None:
    """whoami: the organisations each token may read, from the rows this test inserted."""
    lab = org_id(world.location, "Lab L")
    expected = {
        "reg": None,
        "alice": [world.org_a],
        "bob": [world.org_b],
        "lab": sorted([lab, world.org_a]),
    }
    for who, orgs in expected.items():
        answer = client.get("/api/v1/whoami", headers=auth(world, who))
        assert answer.status_code == 200
        assert answer.json()["organisations"] == orgs, who


def test_wrong_role_is_403(client: Any, world: World) -> None:
    for who in ("alice", "lab", "bob"):
        answer = client.get("/api/v1/organisations", headers=auth(world, who))
        assert answer.status_code == 403, who
        assert "regulator" in answer.json()["detail"]
    names = {r["name"] for r in sql(world.location, "SELECT name FROM organisation")}
    answer = client.get("/api/v1/organisations", headers=auth(world, "reg"))
    assert answer.status_code == 200
    assert {o["name"] for o in answer.json()["organisations"]} == names


def test_downloads_are_the_signed_bytes(client: Any, world: World) -> None:
    """The PDF is the file submitted, byte for byte; an evidence file is the run folder's."""
    for prefix in ("/api/v1", ""):
        pdf = client.get(
            f"{prefix}/audits/{world.audit_a}/report.pdf", headers=auth(world, "alice")
        )
        assert pdf.status_code == 200
        assert pdf.headers["content-type"] == "application/pdf"
        assert (
            hashlib.sha256(pdf.content).digest()
            == hashlib.sha256(world.reports.signed.read_bytes()).digest()
        )
        assert pdf.headers["content-disposition"].startswith("attachment;")
        name = "verdicts.json"
        file = client.get(
            f"{prefix}/audits/{world.audit_a}/evidence/{name}", headers=auth(world, "alice")
        )
        assert file.status_code == 200
        assert file.content == (world.reports.run / name).read_bytes()
        missing = client.get(
            f"{prefix}/audits/{world.audit_a}/evidence/nope.json", headers=auth(world, "alice")
        )
        assert missing.status_code == 404


# ---- sessions, CSRF, cookies, headers ---------------------------------------------------


def test_login_sets_a_strict_secure_session_cookie(client: Any, world: World) -> None:
    answer = login(client, "alice", world.passwords["alice"])
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookies = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
    session = [c for c in cookies if c.startswith("__Host-auditkit_session=")]
    assert len(session) == 1
    flags = {part.strip().lower() for part in session[0].split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    secret = session[0].split(";")[0].split("=", 1)[1]
    stored = sql(
        world.location,
        "SELECT csrf_token FROM web_session WHERE id_sha256 = :d",
        d=hashlib.sha256(secret.encode()).hexdigest(),
    )
    assert len(stored) == 1  # the database holds the digest, never the secret
    assert client.get("/", follow_redirects=False).status_code == 200


def test_insecure_cookies_only_when_asked(world: World) -> None:
    with client_for(world, secure_cookies=False) as c:
        answer = login(c, "alice", world.passwords["alice"])
        cookie = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
        session = [x for x in cookie if x.startswith("auditkit_session=")]
        assert session and "secure" not in session[0].lower()
        assert "strict-transport-security" not in answer.headers


def test_wrong_password_and_unknown_user_are_401_and_both_verify(
    client: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both cost one Argon2id verification (no timing difference tells which users exist)."""
    calls: list[str] = []
    real = credentials.verify_password

    def counting(stored: str, password: str) -> bool:
        calls.append(stored[:9])
        return real(stored, password)

    monkeypatch.setattr(credentials, "verify_password", counting)
    for user in ("alice", "nobody-such"):
        answer = login(client, user, "wrong password")
        assert answer.status_code == 401
        assert "__Host-auditkit_session" not in answer.headers.get("set-cookie", "")
    assert calls == ["$argon2id", "$argon2id"]


def test_csrf_is_required_for_login_and_logout(client: Any, world: World) -> None:
    from auditkit.registry.web.routes_html import LOGIN_CSRF_COOKIE

    client.get("/login")
    form = {"username": "alice", "password": world.passwords["alice"]}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 403
    forged = {**form, "csrf_token": credentials.new_secret()}
    assert client.post("/login", data=forged, follow_redirects=False).status_code == 403
    client.cookies.delete(LOGIN_CSRF_COOKIE)
    with_cookie_gone = {**form, "csrf_token": "x"}
    assert client.post("/login", data=with_cookie_gone, follow_redirects=False).status_code == 403

    assert login(client, "alice", world.passwords["alice"]).status_code == 303
    before = int(sql(world.location, "SELECT count(*) AS n FROM web_session")[0]["n"])
    assert client.post("/logout", follow_redirects=False).status_code == 403
    bad = {"csrf_token": credentials.new_secret()}
    assert client.post("/logout", data=bad, follow_redirects=False).status_code == 403
    assert int(sql(world.location, "SELECT count(*) AS n FROM web_session")[0]["n"]) == before
    secret = client.cookies.get("__Host-auditkit_session")
    row = sql(
        world.location,
        "SELECT csrf_token FROM web_session WHERE id_sha256 = :d",
        d=hashlib.sha256(secret.encode()).hexdigest(),
    )[0]
    out = client.post("/logout", data={"csrf_token": row["csrf_token"]}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    gone = sql(
        world.location,
        "SELECT count(*) AS n FROM web_session WHERE id_sha256 = :d",
        d=hashlib.sha256(secret.encode()).hexdigest(),
    )
    assert int(gone[0]["n"]) == 0
    client.cookies.set("__Host-auditkit_session", secret)  # a copy of the old cookie is dead
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_rate_limit_holds_across_processes(world: World) -> None:
    """Five failures for carol from one address: the sixth attempt is 429 even with the right
    password, also on a second app on the same registry (another server process)."""
    with client_for(world) as first, client_for(world) as second:
        for _ in range(5):
            assert login(first, "carol", "wrong").status_code == 401
        assert login(second, "carol", world.passwords["carol"]).status_code == 429
        assert login(first, "carol", world.passwords["carol"]).status_code == 429
    stored = sql(world.location, "SELECT count(*) AS n FROM login_failure WHERE username = 'carol'")
    assert int(stored[0]["n"]) == 5
    with client_for(world, login_window_seconds=0) as later:  # the window has passed
        assert login(later, "carol", world.passwords["carol"]).status_code == 303


def test_security_headers_on_every_kind_of_response(client: Any, world: World) -> None:
    login(client, "alice", world.passwords["alice"])
    for url, headers in (
        ("/", {}),
        ("/login", {}),
        (f"/audits/{world.audit_b}", {}),  # a 404 page
        ("/api/v1/deployments", auth(world, "alice")),
        ("/api/v1/deployments", {}),  # a 401
    ):
        answer = client.get(url, headers=headers, follow_redirects=False)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    # no Swagger UI: it would load its script from a CDN, and a regulator's server may be
    # offline; the OpenAPI document opens in any viewer
    assert client.get("/api/docs").status_code == 404
    spec = client.get("/api/openapi.json").json()
    assert "/api/v1/audits" in spec["paths"]
    assert (
        "multipart/form-data" in spec["paths"]["/api/v1/audits"]["post"]["requestBody"]["content"]
    )


# ---- submission -------------------------------------------------------------------------


def test_oversized_upload_is_413_and_stores_nothing(world: World) -> None:
    from auditkit.registry.remote import multipart

    before = counts(world.location)
    data = world.reports.signed.read_bytes()
    limit = len(data) // 2
    with client_for(world, max_upload_bytes=limit) as c:
        answer = upload(c, world, "alice", world.reports.signed, world.dep_a)
        assert answer.status_code == 413
        assert str(limit) in answer.json()["detail"]
        body, kind = multipart({"deployment": world.dep_a}, "file", "r.pdf", data)

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]

        streamed = c.post(
            "/api/v1/audits",
            headers={**auth(world, "alice"), "Content-Type": kind},
            content=chunks(),
        )
        assert streamed.status_code == 413
    assert counts(world.location) == before


def test_malformed_pdf_is_422_logged_and_stores_nothing(client: Any, world: World) -> None:
    before = counts(world.location)
    answer = upload(client, world, "alice", b"this is no PDF at all", world.dep_a)
    assert answer.status_code == 422
    assert answer.json()["detail"] == "report.pdf is not a PDF"
    after = counts(world.location)
    assert after.pop("event:refused") == before.pop("event:refused", 0) + 1
    after.pop("event:refused", None)
    assert after == before


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("tampered", "failed verification"),
        ("forged", "failed verification"),
    ],
)
def test_refused_reports_are_422_and_logged(
    client: Any, world: World, which: str, reason: str
) -> None:
    pdf: Path = getattr(world.reports, which)
    before = counts(world.location)
    answer = upload(client, world, "alice", pdf, world.dep_a)
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"]
    assert answer.json()["exit_code"] == 1
    after = counts(world.location)
    assert after.pop("event:refused") == before.pop("event:refused", 0) + 1
    assert after == before
    last = sql(world.location, "SELECT kind, payload FROM event ORDER BY seq DESC LIMIT 1")[0]
    payload = last["payload"] if isinstance(last["payload"], dict) else json.loads(last["payload"])
    assert last["kind"] == "refused" and reason in payload["reason"]


def test_untrusted_signer_is_refused(client: Any, world: World, tmp_path: Path) -> None:
    """Org A's report countersigned by a key no trust root of Org A (nor the registry's)
    vouches for: refused, logged, nothing stored."""
    from auditkit.report.keys import create_keys
    from auditkit.report.sign import countersign_pdf

    stranger = create_keys(tmp_path / "keys", common_name="not a trusted signer")
    pdf = countersign_pdf(
        world.reports.signed.read_bytes(),
        key_path=stranger.key,
        cert_path=stranger.cert,
        reason="untrusted",
    )
    before = counts(world.location)
    answer = upload(client, world, "alice", pdf, world.dep_a)
    assert answer.status_code == 422, answer.text
    assert "failed verification" in answer.json()["detail"]
    after = counts(world.location)
    assert after.pop("event:refused") == before.pop("event:refused", 0) + 1
    assert after == before


def test_submission_and_duplicate_and_permission(client: Any, world: World) -> None:
    """bob (Org B) may not submit for Org A (403); the regulator's countersigned copy is
    recorded (201) with the file's SHA-256; the same file again is a duplicate (409)."""
    before = counts(world.location)
    denied = upload(client, world, "bob", world.reports.countersigned, world.dep_a)
    assert denied.status_code == 403, denied.text
    assert counts(world.location)["report_file"] == before["report_file"]
    accepted = upload(client, world, "alice", world.reports.countersigned, world.dep_a)
    assert accepted.status_code == 201, accepted.text
    answer = accepted.json()
    assert answer["kind"] == "countersigned"
    assert answer["audit_id"] == world.audit_a and answer["report_id"] == world.report_a
    expected = hashlib.sha256(world.reports.countersigned.read_bytes()).hexdigest()
    assert answer["pdf_sha256"] == expected
    assert counts(world.location)["report_file"] == before["report_file"] + 1
    again = upload(client, world, "alice", world.reports.countersigned, world.dep_a)
    assert again.status_code == 409
    assert again.json()["detail"].startswith("duplicate")


# ---- auditkit serve and the CLI's remote submit -----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_and_remote_submit(
    tmp_path: Path,
    reports: Reports,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real `auditkit serve` on 127.0.0.1; `registry submit --server` accepts the signed
    report (the summary a local submit prints), then reports a duplicate in one line, exit 5."""
    where = _make_location("sqlite", tmp_path, None)
    token = add_account(where, "ci", "regulator", None)
    add_trust_root(where, reports.lab_ca, None)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "auditkit",
            "serve",
            "--registry",
            where.display,
            "--port",
            str(port),
            "--insecure-cookies",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "server did not start in 60 s"
                time.sleep(0.2)
        server = f"http://127.0.0.1:{port}"
        dep = f"Org S/Site/Line/{reports.model}"
        monkeypatch.delenv("AUDITKIT_TOKEN", raising=False)
        code, _out, err = cli(
            capsys,
            "registry",
            "submit",
            str(reports.signed),
            "--deployment",
            dep,
            "--server",
            server,
        )
        assert code == 5 and "AUDITKIT_TOKEN" in err and len(err.strip().splitlines()) == 1
        code, _out, err = cli(
            capsys, "registry", "submit", str(reports.signed), "--deployment", dep,
            "--server", server, "--trust", str(reports.lab_ca),
        )  # fmt: skip
        assert code == 5 and "own trust roots" in err
        monkeypatch.setenv("AUDITKIT_TOKEN", token)
        code, out, err = cli(
            capsys,
            "registry",
            "submit",
            str(reports.signed),
            "--deployment",
            dep,
            "--server",
            server,
        )
        assert code == 0, err
        sha = hashlib.sha256(reports.signed.read_bytes()).hexdigest()
        row = sql(where, "SELECT report_id, verdict FROM audit")[0]
        seq = sql(where, "SELECT max(seq) AS s FROM event")[0]["s"]
        assert out.strip() == (
            f"accepted: report {row['report_id']} ({row['verdict']}) for {dep}; "
            f"PDF sha256 {sha}; event {seq}"
        )
        code, out, err = cli(
            capsys,
            "registry",
            "submit",
            str(reports.signed),
            "--deployment",
            dep,
            "--server",
            server,
        )
        assert code == 5 and out == ""
        assert len(err.strip().splitlines()) == 1 and "(HTTP 409): duplicate" in err
        monkeypatch.setenv("AUDITKIT_TOKEN", "akt_" + "y" * 43)
        code, _out, err = cli(
            capsys,
            "registry",
            "submit",
            str(reports.signed),
            "--deployment",
            dep,
            "--server",
            server,
        )
        assert code == 77 and "(HTTP 401)" in err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        if proc.stdout:
            proc.stdout.close()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of the server's process group is left


def test_serve_without_the_extra_says_how_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "fastapi" else real(name, *a),
    )
    code, out, err = cli(capsys, "serve")
    assert code == 5 and out == ""
    assert err.strip().splitlines() == [err.strip()] and "install auditkit[serve]" in err


def test_remote_unreachable_server_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    reports: Reports,
) -> None:
    monkeypatch.setenv("AUDITKIT_TOKEN", "akt_" + "z" * 43)
    code, _out, err = cli(
        capsys,
        "registry",
        "submit",
        str(reports.signed),
        "--deployment",
        "A/B/C/D",
        "--server",
        f"http://127.0.0.1:{_free_port()}",
    )
    assert code == 74 and "cannot be reached" in err and len(err.strip().splitlines()) == 1


def test_expired_session_and_oversized_form(client: Any, world: World) -> None:
    """A session past its expiry sends the browser to log in; a login form of 100 kB is 413."""
    from auditkit.registry.models import WebSession

    secret = credentials.new_secret()
    account = sql(world.location, "SELECT id FROM account WHERE username = 'alice'")[0]["id"]
    engine = create_engine(world.location.url)
    try:
        with Session(engine) as s, s.begin():
            s.add(
                WebSession(
                    id_sha256=credentials.secret_digest(secret),
                    account_id=account,
                    csrf_token=credentials.new_secret(),
                    created_at=_stamp(-timedelta(hours=9)),
                    expires_at=_stamp(-timedelta(hours=1)),
                )
            )
    finally:
        engine.dispose()
    client.cookies.set("__Host-auditkit_session", secret)
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    big = {"username": "alice", "password": "x" * 100_000, "csrf_token": "x"}
    assert client.post("/login", data=big, follow_redirects=False).status_code == 413


def test_language_is_kept_in_a_cookie(client: Any, world: World) -> None:
    login(client, "alice", world.passwords["alice"])
    first = client.get("/?lang=zh")
    assert first.status_code == 200 and 'lang="zh' in first.text
    assert client.cookies.get("lang") == "zh"
    assert 'lang="zh' in client.get("/").text
    assert 'lang="en"' in client.get("/?lang=en").text


def test_laboratory_submits_only_for_organisations_that_authorised_it(
    client: Any, world: World
) -> None:
    """Lab L is authorised by Org A, not by Org B: 403 before the file is even looked at."""
    before = counts(world.location)
    answer = upload(client, world, "lab", world.reports.later, world.dep_b)
    assert answer.status_code == 403
    assert "not authorised" in answer.json()["detail"]
    after = counts(world.location)
    after.pop("event:refused", None)
    before.pop("event:refused", None)
    assert after == before


def test_openapi_lists_every_api_route(client: Any) -> None:
    spec = client.get("/api/openapi.json").json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    served = {(m, p) for m, p in routes(client) if p.startswith("/api/v1/")}
    assert served and served <= documented


def test_pages_need_nothing_the_policy_forbids(client: Any, world: World) -> None:
    """Every page the server renders works under its CSP: no inline script, no style element
    or attribute, no event handler attribute, nothing loaded from elsewhere."""
    forbidden = re.compile(
        r"<script|<style|\sstyle=|\son[a-z]+=|(?:src|href)=\"(?:https?:)?//", re.I
    )
    pages = [client.get("/login").text]
    login(client, "alice", world.passwords["alice"])
    for url in (
        "/",
        "/?lang=zh",
        f"/deployments/{world.deployment_a}",
        f"/audits/{world.audit_a}",
        f"/audits/{world.audit_b}",  # the 404 page
    ):
        pages.append(client.get(url).text)
    for page in pages:
        assert page.lstrip().startswith("<!DOCTYPE html>")
        found = forbidden.search(page)
        assert found is None, page[max(0, found.start() - 80) : found.end() + 80]


def test_forwarded_for_counts_only_behind_a_trusted_proxy(world: World) -> None:
    """Without --trusted-proxy a client cannot dodge the limit by inventing X-Forwarded-For;
    behind the proxy each forwarded address has its own count."""
    username = "fwd-" + credentials.new_secret()[:6]
    password = "right-" + credentials.new_secret()[:6]
    add_account(world.location, username, "organisation", world.org_a, password=password)

    def attempt(c: Any, address: str, pw: str) -> int:
        c.headers["X-Forwarded-For"] = address
        return int(login(c, username, pw).status_code)

    with client_for(world) as direct:
        for n in range(5):
            assert attempt(direct, f"10.0.0.{n}", "wrong") == 401
        assert attempt(direct, "10.9.9.9", password) == 429  # all were one client: testclient
    sql(world.location, "DELETE FROM login_failure WHERE username = :u", u=username)
    with client_for(world, trusted_proxy=True) as proxied:
        for _ in range(5):
            assert attempt(proxied, "192.0.2.1, 10.0.0.1", "wrong") == 401
        assert attempt(proxied, "192.0.2.1, 10.0.0.1", password) == 429
        assert attempt(proxied, "10.0.0.2", password) == 303
