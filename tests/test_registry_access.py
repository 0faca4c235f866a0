"""Who may do what in the registry, against SQLite and a real PostgreSQL server (the
``registry`` fixture of tests/registry_fixtures.py): accounts and their passwords, API tokens
stored as hashes, laboratory authorisations, per-organisation trust roots, submitter
authorisation by role, supersession, re-audit policies — and ``registry check`` still intact
after all of it (every change is an event; no recorded row is edited).

Secrets are checked independently of auditkit: the stored token digest against ``hashlib``,
the stored password hash with argon2-cffi's low-level C binding; due dates are worked by hand."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from auditkit.registry.location import Location
from tests.registry_fixtures import (  # noqa: F401  (fixtures; F811: pyproject)
    Reports,
    postgres_server,
    registry,
    reports,
)
from tests.test_registry import cli, deployment_of, payload, rows, where

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def reissued(reports: Reports, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run of ``reports.signed`` judged again under a corrected edition of its rubric
    (version 1.0.1) and signed by the same laboratory: same run ID, new report ID."""
    from auditkit.audit import run_report
    from auditkit.report.recompute import recompute
    from auditkit.run import dumps
    from tests.conftest import copy_small_run

    base = tmp_path_factory.mktemp("reissued")
    run = copy_small_run(base / "run")
    rubric = (run / "rubric.yaml").read_text()
    assert "\nversion: 1.0.0\n" in rubric
    (run / "rubric.yaml").write_text(rubric.replace("\nversion: 1.0.0\n", "\nversion: 1.0.1\n"))
    names = ("metrics.json", "verdicts.json", "run.json", "rubric.yaml")
    document, _ = recompute({name: (run / name).read_bytes() for name in names})
    assert document is not None
    (run / "verdicts.json").write_bytes(dumps(document))
    out = base / "reissued.pdf"
    lab = reports.lab_ca.parent
    run_report(run, out=out, sign_key=lab / "signer.key", sign_cert=lab / "signer.pem", lang="en")
    return out


def run_cli(
    capsys: pytest.CaptureFixture[str], location: Location, *args: str
) -> tuple[int, str, str]:
    return cli(capsys, "registry", *args, *where(location))


def events(location: Location) -> list[dict[str, Any]]:
    return [
        {**e, "payload": payload(e)} for e in rows(location, "SELECT * FROM event ORDER BY seq")
    ]


def assert_intact(capsys: pytest.CaptureFixture[str], location: Location) -> None:
    code, out, err = run_cli(capsys, location, "check")
    assert code == 0 and out.startswith("registry check: intact"), out + err


def assert_one_line_error(code: int, err: str, expected: int, words: str) -> None:
    line = err.strip()
    assert code == expected, err
    assert "\n" not in line and line.startswith("error: ") and words in line, err
    assert "Traceback" not in err


def add_account(
    capsys: pytest.CaptureFixture[str],
    location: Location,
    monkeypatch: pytest.MonkeyPatch,
    username: str,
    role: str,
    organisation: str | None = None,
) -> None:
    monkeypatch.setenv("AK_TEST_PASSWORD", PASSWORD)
    args = ["account", "add", username, "--role", role, "--password-env", "AK_TEST_PASSWORD"]
    if organisation:
        args += ["--organisation", organisation]
    code, _, err = run_cli(capsys, location, *args)
    assert code == 0, err


def principal(location: Location, username: str) -> Any:
    from sqlalchemy import select

    from auditkit.registry.accounts import principal_of
    from auditkit.registry.db import open_registry, session
    from auditkit.registry.models import Account

    engine = open_registry(location)
    try:
        with session(engine) as s:
            account = s.scalars(select(Account).filter_by(username=username)).one()
            return principal_of(s, account)
    finally:
        engine.dispose()


def submit_as(location: Location, who: Any, pdf: Path, deployment: str, *trust: Path) -> Any:
    from auditkit.registry.ingest import submit

    return submit(location, pdf, deployment, trust=list(trust) or None, submitter=who)


# --------------------------------------------------------------------------- accounts


def test_init_creates_the_first_regulator_account_with_an_argon2id_password(
    capsys: pytest.CaptureFixture[str], registry: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argon2.low_level import Type, verify_secret

    monkeypatch.setenv("AK_FIRST", PASSWORD)
    code, out, err = run_cli(
        capsys, registry, "init", "--username", "ina", "--password-env", "AK_FIRST"
    )
    assert code == 0, err
    assert "auditkit serve --registry" in out and "http://127.0.0.1:8000/login" in out
    [account] = rows(registry, "SELECT * FROM account")
    assert (account["username"], account["role"], account["organisation_id"]) == (
        "ina",
        "regulator",
        None,
    )
    assert not account["disabled"]
    stored = account["password_hash"]
    assert stored.startswith("$argon2id$")
    assert verify_secret(stored.encode(), PASSWORD.encode(), Type.ID)
    from argon2.exceptions import VerifyMismatchError

    with pytest.raises(VerifyMismatchError):
        verify_secret(stored.encode(), b"correct horse batterY", Type.ID)
    [event] = events(registry)
    assert event["kind"] == "account_added" and event["payload"]["role"] == "regulator"
    assert PASSWORD not in json.dumps(event["payload"]) and stored not in json.dumps(event)
    # a password is never a plain argument
    code, _, err = run_cli(capsys, registry, "init", "--username", "ivo", "--password", "x" * 12)
    assert code == 2 and "No such option" in err
    monkeypatch.delenv("AK_FIRST")
    code, _, err = run_cli(
        capsys, registry, "init", "--username", "ivo", "--password-env", "AK_FIRST"
    )
    assert_one_line_error(code, err, 5, "--password-env AK_FIRST")
    monkeypatch.setenv("AK_SHORT", "short")
    code, _, err = run_cli(
        capsys, registry, "init", "--username", "ivo", "--password-env", "AK_SHORT"
    )
    assert_one_line_error(code, err, 5, "at least 10 characters")
    # the first account only: more are added with `account add`
    monkeypatch.setenv("AK_FIRST", PASSWORD)
    code, _, err = run_cli(
        capsys, registry, "init", "--username", "ivo", "--password-env", "AK_FIRST"
    )
    assert_one_line_error(code, err, 5, "has accounts already")
    assert len(rows(registry, "SELECT * FROM account")) == 1
    assert_intact(capsys, registry)


def test_logging_in_with_a_password_or_a_token(
    capsys: pytest.CaptureFixture[str], registry: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from auditkit.registry.accounts import authenticate_password, authenticate_token
    from auditkit.registry.db import open_registry, session

    add_account(capsys, registry, monkeypatch, "acme", "organisation", "Acme Castings")
    code, out, err = run_cli(
        capsys, registry, "token", "create", "acme", "--name", "ci", "--days", "2"
    )
    assert code == 0, err
    secret = out.strip()
    [org] = rows(registry, "SELECT id FROM organisation")

    def logins(now: datetime | None = None) -> tuple[Any, ...]:
        engine = open_registry(registry)
        try:
            with session(engine) as s:
                return (
                    authenticate_password(s, "acme", PASSWORD),
                    authenticate_password(s, "acme", PASSWORD + "!"),
                    authenticate_password(s, "ghost", PASSWORD),
                    authenticate_token(s, secret, now=now),
                    authenticate_token(s, secret[:-1] + ("A" if secret[-1] != "A" else "B")),
                )
        finally:
            engine.dispose()

    right, wrong, ghost, token, forged = logins()
    assert (wrong, ghost, forged) == (None, None, None)
    assert right is not None and token is not None
    assert (right.username, right.role, right.organisation_id) == (
        "acme",
        "organisation",
        org["id"],
    )
    assert right.scope.organisations == frozenset({org["id"]}) == token.scope.organisations
    # two days and a minute later the token has expired
    assert logins(datetime.now(UTC) + timedelta(days=2, minutes=1))[3] is None
    assert run_cli(capsys, registry, "account", "disable", "acme")[0] == 0
    assert logins() == (None, None, None, None, None)


def test_accounts_add_list_disable_and_their_organisations(
    capsys: pytest.CaptureFixture[str], registry: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_account(capsys, registry, monkeypatch, "acme", "organisation", "Acme Castings")
    add_account(capsys, registry, monkeypatch, "lab", "test_laboratory", "TÜV Lab")
    code, _, err = run_cli(
        capsys, registry, "account", "add", "nobody", "--role", "organisation", "--no-password"
    )
    assert_one_line_error(code, err, 5, "needs --organisation")
    code, _, err = run_cli(
        capsys, registry, "account", "add", "x", "--role", "janitor", "--no-password"
    )
    assert_one_line_error(code, err, 5, "--role 'janitor'")
    code, _, err = run_cli(
        capsys, registry, "account", "add", "acme", "--role", "regulator", "--no-password"
    )
    assert_one_line_error(code, err, 5, "already exists")
    orgs = {o["name"]: o["kind"] for o in rows(registry, "SELECT * FROM organisation")}
    assert orgs == {"Acme Castings": "enterprise", "TÜV Lab": "test_laboratory"}
    code, out, _ = run_cli(capsys, registry, "account", "list", "--json")
    listed = {a["username"]: a for a in json.loads(out)["accounts"]}
    assert listed["lab"]["organisation"] == "TÜV Lab" and listed["lab"]["role"] == "test_laboratory"
    assert "password_hash" not in json.dumps(listed) and "$argon2" not in out
    code, out, err = run_cli(capsys, registry, "account", "disable", "acme")
    assert code == 0, err
    [acme] = rows(registry, "SELECT disabled FROM account WHERE username = 'acme'")
    assert acme["disabled"]
    code, _, err = run_cli(capsys, registry, "account", "disable", "ghost")
    assert_one_line_error(code, err, 5, "no account 'ghost'")
    kinds = [e["kind"] for e in events(registry)]
    assert kinds == ["account_added", "account_added", "account_disabled"]
    # the organisations accounts created are vouched for by their events
    assert_intact(capsys, registry)


def test_token_is_printed_once_and_stored_as_its_sha256(
    capsys: pytest.CaptureFixture[str], registry: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_account(capsys, registry, monkeypatch, "ci", "organisation", "Acme Castings")
    code, out, err = run_cli(
        capsys, registry, "token", "create", "ci", "--name", "gate", "--days", "30"
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("akt_") and len(secret) == 47 and "\n" not in secret
    assert "not shown again" in err
    [token] = rows(registry, "SELECT * FROM api_token")
    assert token["token_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert token["prefix"] == secret[:10]
    assert token["expires_at"] > token["created_at"]
    # the secret is nowhere in the database
    for table in ("api_token", "account", "event"):
        assert secret not in json.dumps(rows(registry, f"SELECT * FROM {table}"), default=str)
    code, out, _ = run_cli(capsys, registry, "token", "list")
    assert secret[:10] in out and secret not in out
    code, _, err = run_cli(capsys, registry, "token", "revoke", str(token["id"]))
    assert code == 0, err
    [token] = rows(registry, "SELECT * FROM api_token")
    assert token["revoked_at"] is not None
    code, _, err = run_cli(capsys, registry, "token", "revoke", str(token["id"]))
    assert_one_line_error(code, err, 5, "already revoked")
    code, _, err = run_cli(capsys, registry, "token", "revoke", "999")
    assert_one_line_error(code, err, 5, "no API token 999")
    created = [e for e in events(registry) if e["kind"] in ("token_created", "token_revoked")]
    assert [e["payload"]["prefix"] for e in created] == [secret[:10]] * 2
    assert_intact(capsys, registry)


# --------------------------------------------------------------------------- who may submit


def test_organisation_account_submits_only_for_its_own_organisation(
    capsys: pytest.CaptureFixture[str],
    registry: Location,
    reports: Reports,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from auditkit.errors import ExitCode, InputError, PermissionDenied

    add_account(capsys, registry, monkeypatch, "acme", "organisation", "Acme Castings")
    add_account(capsys, registry, monkeypatch, "other", "organisation", "Other Works")
    acme = principal(registry, "acme")
    dep = deployment_of(reports)  # Acme Castings/…
    with pytest.raises(PermissionDenied, match="only for its own organisation") as info:
        submit_as(registry, principal(registry, "other"), reports.signed, dep, reports.lab_ca)
    assert info.value.exit_code == ExitCode.PERMISSION == 77
    [refused] = [e for e in events(registry) if e["kind"] == "refused"]
    assert refused["payload"]["submitter"] == {"username": "other", "role": "organisation"}
    assert "Other Works" in refused["payload"]["reason"] and refused["payload"]["exit_code"] == 77
    assert (
        refused["payload"]["pdf_sha256"] == hashlib.sha256(reports.signed.read_bytes()).hexdigest()
    )
    assert rows(registry, "SELECT * FROM audit") == [] and not list(registry.blobs.rglob("*.pdf"))
    # its own organisation, at a site new to the registry: created under it
    done = submit_as(
        registry, acme, reports.signed, dep.replace("Plant Linz", "Plant Graz"), reports.lab_ca
    )
    assert done.kind == "accepted"
    [org] = rows(registry, "SELECT id FROM organisation WHERE name = 'Acme Castings'")
    [deployment] = rows(registry, "SELECT * FROM deployment")
    assert deployment["organisation_id"] == org["id"]
    [accepted] = [e for e in events(registry) if e["kind"] == "accepted"]
    assert accepted["payload"]["submitter"] == {"username": "acme", "role": "organisation"}
    # another organisation learns nothing of Acme's report from a refusal
    other = principal(registry, "other")
    dep_other = dep.replace("Acme Castings", "Other Works")
    with pytest.raises(InputError, match=r"^duplicate: this PDF is already registered$"):
        submit_as(registry, other, reports.signed, dep_other, reports.lab_ca)
    with pytest.raises(PermissionDenied, match="another organisation") as info:
        trust = (reports.lab_ca, reports.regulator_ca)
        submit_as(registry, other, reports.countersigned, dep_other, *trust)
    assert "Acme" not in str(info.value) and "Graz" not in str(info.value)
    assert len(rows(registry, "SELECT * FROM signature")) == 1
    # a new organisation in --deployment is not its own either
    with pytest.raises(PermissionDenied):
        submit_as(
            registry, acme, reports.later, dep.replace("Acme Castings", "Acme Two"), reports.lab_ca
        )
    assert not rows(registry, "SELECT * FROM organisation WHERE name = 'Acme Two'")
    # a disabled account submits nothing
    assert run_cli(capsys, registry, "account", "disable", "acme")[0] == 0
    with pytest.raises(PermissionDenied, match="disabled"):
        submit_as(registry, acme, reports.later, dep, reports.lab_ca)
    assert len(rows(registry, "SELECT * FROM audit")) == 1
    assert_intact(capsys, registry)


def test_laboratory_submits_only_while_authorised(
    capsys: pytest.CaptureFixture[str],
    registry: Location,
    reports: Reports,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from auditkit.errors import PermissionDenied

    add_account(capsys, registry, monkeypatch, "acme", "organisation", "Acme Castings")
    add_account(capsys, registry, monkeypatch, "lab", "test_laboratory", "Test Lab")
    dep = deployment_of(reports)
    with pytest.raises(PermissionDenied, match="'Test Lab' is not authorised by organisation"):
        submit_as(registry, principal(registry, "lab"), reports.signed, dep, reports.lab_ca)
    code, _, err = run_cli(capsys, registry, "authorise", "Test Lab", "Acme Castings")
    assert code == 0, err
    [auth] = rows(registry, "SELECT * FROM authorisation")
    assert auth["revoked_at"] is None
    lab = principal(registry, "lab")
    [acme_org] = rows(registry, "SELECT id FROM organisation WHERE name = 'Acme Castings'")
    assert lab.scope.allows(acme_org["id"])
    assert submit_as(registry, lab, reports.signed, dep, reports.lab_ca).kind == "accepted"
    # authorised by Acme only: not for another organisation
    with pytest.raises(PermissionDenied):
        submit_as(
            registry, lab, reports.later, dep.replace("Acme Castings", "Beta"), reports.lab_ca
        )
    code, _, err = run_cli(capsys, registry, "authorise", "Test Lab", "Acme Castings")
    assert_one_line_error(code, err, 5, "already authorised")
    assert run_cli(capsys, registry, "authorise", "Test Lab", "Acme Castings", "--revoke")[0] == 0
    with pytest.raises(PermissionDenied):
        submit_as(registry, principal(registry, "lab"), reports.later, dep, reports.lab_ca)
    assert not principal(registry, "lab").scope.allows(acme_org["id"])
    code, _, err = run_cli(capsys, registry, "authorise", "Test Lab", "Acme Castings", "--revoke")
    assert_one_line_error(code, err, 5, "no active authorisation")
    # an enterprise is no laboratory
    code, _, err = run_cli(capsys, registry, "authorise", "Acme Castings", "Test Lab")
    assert_one_line_error(code, err, 5, "not a test laboratory")
    kinds = [e["kind"] for e in events(registry)]
    assert kinds.count("refused") == 3
    assert [k for k in kinds if "authoris" in k] == ["authorised", "authorisation_revoked"]
    assert_intact(capsys, registry)


def test_regulator_submits_originals_and_countersigned_copies(
    capsys: pytest.CaptureFixture[str],
    registry: Location,
    reports: Reports,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_account(capsys, registry, monkeypatch, "reg", "regulator")
    reg = principal(registry, "reg")
    dep = deployment_of(reports)
    trust = (reports.lab_ca, reports.regulator_ca)
    assert submit_as(registry, reg, reports.signed, dep, *trust).kind == "accepted"
    assert submit_as(registry, reg, reports.countersigned, dep, *trust).kind == "countersigned"
    [counter] = [e for e in events(registry) if e["kind"] == "countersigned"]
    assert counter["payload"]["submitter"] == {"username": "reg", "role": "regulator"}
    assert_intact(capsys, registry)


# --------------------------------------------------------------------------- trust roots


def test_trust_roots_per_organisation(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    dep_a = deployment_of(reports)  # Acme Castings
    dep_b = dep_a.replace("Acme Castings", "Beta Foundry")
    sha = hashlib.sha256(reports.signed.read_bytes()).hexdigest()
    # nothing configured and no --trust: refused, logged
    code, _, err = cli(
        capsys, "registry", "submit", str(reports.signed), "--deployment", dep_a, *where(registry)
    )
    assert_one_line_error(
        code, err, 5, "no trust roots configured for organisation 'Acme Castings'"
    )
    assert events(registry)[-1]["payload"]["pdf_sha256"] == sha
    # the laboratory's CA is Beta's root; Acme trusts only a stranger's CA
    for ca, org in ((reports.lab_ca, "Beta Foundry"), (reports.stranger_ca, "Acme Castings")):
        code, out, err = run_cli(capsys, registry, "trust", "add", str(ca), "--organisation", org)
        assert code == 0, err
    der = x509.load_pem_x509_certificate(reports.lab_ca.read_bytes()).public_bytes(Encoding.DER)
    [beta_root] = rows(
        registry,
        "SELECT t.* FROM trust_root t JOIN organisation o ON o.id = t.organisation_id "
        "WHERE o.name = 'Beta Foundry'",
    )
    assert beta_root["sha256"] == hashlib.sha256(der).hexdigest()
    code, _, err = run_cli(
        capsys, registry, "trust", "add", str(reports.lab_ca), "--organisation", "Beta Foundry"
    )
    assert_one_line_error(code, err, 5, "already trusted for organisation 'Beta Foundry'")
    # a report signed by Beta's CA is refused for Acme …
    code, _, err = cli(
        capsys, "registry", "submit", str(reports.signed), "--deployment", dep_a, *where(registry)
    )
    assert_one_line_error(code, err, 1, "does not chain to a trusted")
    # … and accepted for Beta
    code, out, err = cli(
        capsys, "registry", "submit", str(reports.signed), "--deployment", dep_b, *where(registry)
    )
    assert code == 0 and out.startswith("accepted:"), err
    # a registry-wide root (the regulator's CA) counts for every organisation's reports
    code, _, err = run_cli(capsys, registry, "trust", "add", str(reports.regulator_ca))
    assert code == 0, err
    code, out, err = cli(
        capsys,
        "registry",
        "submit",
        str(reports.countersigned),
        "--deployment",
        dep_b,
        *where(registry),
    )
    assert code == 0 and out.startswith("countersignature recorded"), err
    code, out, _ = run_cli(capsys, registry, "trust", "list", "--json")
    listed = json.loads(out)["trust_roots"]
    assert [r["organisation"] for r in listed] == [None, "Acme Castings", "Beta Foundry"]
    # removed: later submissions for Beta no longer chain to it
    code, _, err = run_cli(capsys, registry, "trust", "remove", str(beta_root["id"]))
    assert code == 0, err
    code, _, err = cli(
        capsys, "registry", "submit", str(reports.later), "--deployment", dep_b, *where(registry)
    )
    assert_one_line_error(code, err, 1, "does not chain to a trusted")
    [removed] = rows(registry, f"SELECT * FROM trust_root WHERE id = {beta_root['id']}")
    assert removed["removed_at"] is not None  # kept, marked
    code, out, _ = run_cli(capsys, registry, "trust", "list")
    assert beta_root["sha256"][:16] not in out
    code, out, _ = run_cli(capsys, registry, "trust", "list", "--all")
    assert beta_root["sha256"][:16] in out
    # an explicit --trust still works, in place of the registry's roots
    code, _, err = cli(
        capsys, "registry", "submit", str(reports.later), "--deployment", dep_a,
        "--trust", str(reports.lab_ca), *where(registry),
    )  # fmt: skip
    assert code == 0, err
    kinds = [e["kind"] for e in events(registry)]
    assert kinds.count("trust_added") == 3 and kinds.count("trust_removed") == 1
    assert_intact(capsys, registry)


# --------------------------------------------------------------------------- supersession


def test_reissued_and_later_audits_supersede_earlier_ones(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports, reissued: Path
) -> None:
    from auditkit.registry.db import open_registry, session
    from auditkit.registry.supersession import superseded

    dep = deployment_of(reports)
    for pdf in (reports.signed, reissued):
        code, _, err = cli(
            capsys,
            "registry",
            "submit",
            str(pdf),
            "--deployment",
            dep,
            "--trust",
            str(reports.lab_ca),
            *where(registry),
        )
        assert code == 0, err
    audits = {a["report_id"]: a for a in rows(registry, "SELECT * FROM audit")}
    run_id = json.loads((reports.run / "run.json").read_text())["run_id"]
    assert {a["run_id"] for a in audits.values()} == {run_id} and len(audits) == 2
    (first, again) = sorted(audits.values(), key=lambda a: a["signed_at"])
    assert first["pdf_sha256"] == hashlib.sha256(reports.signed.read_bytes()).hexdigest()
    [event] = [e for e in events(registry) if e["kind"] == "superseded"]
    assert (event["subject"], event["payload"]["superseded_by"]) == (
        first["report_id"],
        again["report_id"],
    )
    assert "re-issued" in event["payload"]["reason"]
    # an audit of another run of the same model version against the same rubric id
    code, _, err = cli(
        capsys,
        "registry",
        "submit",
        str(reports.later),
        "--deployment",
        dep,
        "--trust",
        str(reports.lab_ca),
        *where(registry),
    )
    assert code == 0, err
    [later] = rows(registry, "SELECT * FROM audit WHERE run_id LIKE '%-later'")
    engine = open_registry(registry)
    try:
        with session(engine) as s:
            marks = superseded(s, first["deployment_id"])
    finally:
        engine.dispose()
    # the fixture signed the later run's report before the re-issue: by signing time the
    # re-issue is the newest, so it supersedes that one too (same model version and rubric id)
    assert first["signed_at"] < later["signed_at"] < again["signed_at"]
    assert set(marks) == {first["id"], later["id"]} and again["id"] not in marks
    assert f"re-issued as report {again['report_id']}" in marks[first["id"]]
    assert f"superseded by report {again['report_id']}" in marks[later["id"]]
    pairs = [
        (e["subject"], e["payload"]["superseded_by"])
        for e in events(registry)
        if e["kind"] == "superseded"
    ]
    assert pairs == [
        (first["report_id"], again["report_id"]),
        (later["report_id"], again["report_id"]),
    ]
    assert_intact(capsys, registry)


def test_an_older_report_arrives_superseded(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    dep = deployment_of(reports)
    for pdf in (reports.later, reports.signed):  # the later audit first
        code, _, err = cli(
            capsys,
            "registry",
            "submit",
            str(pdf),
            "--deployment",
            dep,
            "--trust",
            str(reports.lab_ca),
            *where(registry),
        )
        assert code == 0, err
    [old] = rows(registry, "SELECT * FROM audit WHERE run_id NOT LIKE '%-later'")
    [new] = rows(registry, "SELECT * FROM audit WHERE run_id LIKE '%-later'")
    assert old["signed_at"] < new["signed_at"]  # the fixture signed it first
    [event] = [e for e in events(registry) if e["kind"] == "superseded"]
    assert (event["subject"], event["payload"]["superseded_by"]) == (
        old["report_id"],
        new["report_id"],
    )
    assert_intact(capsys, registry)


def test_supersession_rules_on_hand_made_audits() -> None:
    from auditkit.registry.supersession import AuditKey, supersessions

    def key(i: int, run: str, version: int, rubric: str | None, signed: str | None) -> AuditKey:
        return AuditKey(i, f"AR-{i}", run, version, rubric, signed, f"2027-01-0{i}T00:00:00Z")

    audits = [
        key(1, "r1", 1, "aoi", "2026-05-01T00:00:00Z"),
        key(2, "r2", 2, "aoi", "2026-06-01T00:00:00Z"),  # another model version: not rule 2
        key(3, "r3", 1, "other", "2026-07-01T00:00:00Z"),  # another rubric: not rule 2
        key(4, "r1", 9, "aoi", "2026-04-01T00:00:00Z"),  # same run, signed *before* 1
        key(5, "r5", 1, "aoi", None),  # unsigned: ordered by submission (2027-01-05)
    ]
    got = {k: v.by for k, v in supersessions(audits).items()}
    # 4 (oldest) is re-issued by 1; 1 is superseded by 5 (same version, rubric, later);
    # 2 and 3 have no later audit of their version and rubric; 5 is the newest
    assert got == {4: 1, 1: 5}


# --------------------------------------------------------------------------- policies


def test_due_dates_worked_by_hand() -> None:
    from auditkit.registry.policy import due_date

    assert due_date("2026-11-26T23:00:04Z", 365) == date(2027, 11, 26)
    # 23:30 at UTC-2 is 01:30 UTC the next day
    assert due_date("2026-11-26T23:30:00-02:00", 1) == date(2026, 11, 28)
    assert due_date("2028-02-28T12:00:00Z", 1) == date(2028, 2, 29)  # a leap year
    assert due_date(date(2026, 12, 31), 31) == date(2027, 1, 31)


def test_policies_rubric_then_default_then_365(
    capsys: pytest.CaptureFixture[str], registry: Location
) -> None:
    from auditkit.registry.db import open_registry, session
    from auditkit.registry.policy import reaudit_days_for

    def days(rubric: str | None) -> int:
        engine = open_registry(registry)
        try:
            with session(engine) as s:
                return reaudit_days_for(s, rubric)
        finally:
            engine.dispose()

    assert (days("industrial-aoi-acceptance"), days(None)) == (365, 365)
    assert run_cli(capsys, registry, "policy", "set", "--days", "180")[0] == 0
    assert days("industrial-aoi-acceptance") == 180
    assert (
        run_cli(
            capsys,
            registry,
            "policy",
            "set",
            "--rubric",
            "industrial-aoi-acceptance",
            "--days",
            "90",
        )[0]
        == 0
    )
    assert (days("industrial-aoi-acceptance"), days("other"), days(None)) == (90, 180, 180)
    assert run_cli(capsys, registry, "policy", "set", "--days", "200")[0] == 0  # replaces
    assert days("other") == 200
    code, _, err = run_cli(capsys, registry, "policy", "set", "--days", "0")
    assert_one_line_error(code, err, 5, "--days 0")
    code, out, _ = run_cli(capsys, registry, "policy", "list", "--json")
    assert json.loads(out)["policies"] == [
        {"rubric_id": None, "reaudit_days": 200},
        {"rubric_id": "industrial-aoi-acceptance", "reaudit_days": 90},
    ]
    sets = [e["payload"] for e in events(registry) if e["kind"] == "policy_set"]
    assert [(p["rubric_id"], p["before"], p["reaudit_days"]) for p in sets] == [
        (None, None, 180),
        ("industrial-aoi-acceptance", None, 90),
        (None, 180, 200),
    ]
    assert_intact(capsys, registry)


# --------------------------------------------------------------------------- docs


def test_permission_exit_code_is_documented() -> None:
    from auditkit.errors import ExitCode, PermissionDenied

    table = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    assert PermissionDenied.exit_code == ExitCode.PERMISSION
    assert f"| {ExitCode.PERMISSION} |" in table
