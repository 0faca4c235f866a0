"""Registry parts that need no database: the event hash written out by hand, where a registry
lives, the one-line refusals before a registry is opened, and lazy imports."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from auditkit.errors import ExitCode, InputError
from auditkit.registry.chain import GENESIS, event_content, event_hash, row_digest
from auditkit.registry.location import resolve


def test_event_hash_is_sha256_of_prev_and_canonical_content() -> None:
    content = event_content(1, "2026-01-01T00:00:00Z", "refused", None, {"b": [1, 2.5], "a": "é"})
    by_hand = (
        b'{"at":"2026-01-01T00:00:00Z","kind":"refused","payload":{"a":"\xc3\xa9","b":[1,2.5]},'
        b'"seq":1,"subject":null}'
    )
    assert event_hash(GENESIS, content) == hashlib.sha256(b"0" * 64 + by_hand).hexdigest()
    nxt = event_hash("ab" * 32, content)
    assert nxt == hashlib.sha256(b"ab" * 32 + by_hand).hexdigest() != event_hash(GENESIS, content)
    assert row_digest({"k": 3, "id": 1}) == hashlib.sha256(b'{"id":1,"k":3}').hexdigest()


def test_row_digest_refuses_nan() -> None:
    with pytest.raises(ValueError):
        row_digest({"value": float("nan")})


def test_default_registry_is_in_the_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    where = resolve(None)
    assert where.url == f"sqlite:///{tmp_path}/data/auditkit/registry.sqlite"
    assert where.blobs == tmp_path / "data" / "auditkit" / "registry.sqlite.blobs"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve(None).display == str(tmp_path / "home/.local/share/auditkit/registry.sqlite")


def test_server_url_needs_blobs_and_hides_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://auditor:s3cret@db.example:5432/registry"
    with pytest.raises(InputError, match="--blobs"):
        resolve(url)
    where = resolve(url, tmp_path)
    assert where.url == url and where.blobs == tmp_path
    assert "s3cret" not in where.display and "auditor@db.example:5432" in where.display
    with pytest.raises(InputError, match="only SQLite files and postgresql"):
        resolve("mysql://x@y/z")
    with pytest.raises(InputError, match="is a folder"):
        resolve(str(tmp_path))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        env=env,
    )


def test_refusals_before_a_registry_is_opened_are_one_line(tmp_path: Path) -> None:
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(b"%PDF-1.7\n")
    from auditkit.report.keys import create_keys

    ca = create_keys(tmp_path / "keys").ca
    reg = ["--registry", str(tmp_path / "none.sqlite"), "--trust", str(ca)]
    bad = run("registry", "submit", str(pdf), "--deployment", "Acme/Linz", *reg)
    assert bad.returncode == ExitCode.INPUT
    assert bad.stderr.strip() == (
        "error: --deployment 'Acme/Linz': write ORGANISATION/SITE/STATION/MODEL "
        "(four non-empty names separated by /)"
    )
    missing = run("registry", "submit", str(pdf), "--deployment", "a/b/c/d", *reg)
    assert missing.returncode == ExitCode.INPUT
    assert missing.stderr.startswith(f"error: registry {tmp_path}/none.sqlite does not exist")
    assert len(missing.stderr.strip().splitlines()) == 1
    listing = run("registry", "list", "--registry", str(tmp_path / "none.sqlite"))
    assert listing.returncode == ExitCode.INPUT and "registry init" in listing.stderr
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n")
    for command in ("list", "check", "init"):
        opened = run("registry", command, "--registry", str(junk))
        assert opened.returncode == ExitCode.INPUT, opened.stderr
        assert opened.stderr == f"error: registry {junk} cannot be opened: file is not a database\n"
    trust = run("registry", "submit", str(pdf), "--deployment", "a/b/c/d", "--trust", str(pdf))
    assert trust.returncode == ExitCode.INPUT
    assert trust.stderr == f"error: trust certificate file {pdf} is not a PEM certificate\n"


def test_other_commands_do_not_import_sqlalchemy() -> None:
    code = (
        "import sys; import auditkit.cli, auditkit.audit, auditkit.replay; "
        "from typer.testing import CliRunner; "
        "r = CliRunner().invoke(auditkit.cli.app, ['--help']); "
        "assert 'registry' in r.output, r.output; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_postgres_binaries_are_found_off_path_where_debian_puts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.registry_fixtures import pg_binary

    monkeypatch.setenv("PATH", "/nonexistent")
    found = Path(pg_binary("pg_ctl"))
    assert found.parent.parent.parent == Path("/usr/lib/postgresql") and found.is_file()
