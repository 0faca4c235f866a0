"""Every option of `audit` and `report` is checked before the work it would otherwise follow.

A bad signing, rendering or replay option must fail at once: exit 5, one line naming the
problem, and no replay (no run file written), instead of failing after the whole replay.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditkit.report.keys import create_keys
from tests.conftest import copy_small_run, write_dataset

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,  # no terminal: no passphrase prompt
        env={**clean, **(env or {})},
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 5, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    plain = create_keys(root / "plain", common_name="Plain Signer")
    locked = create_keys(root / "locked", common_name="Locked Signer", passphrase="s3cret")
    return {
        "key": plain.key,
        "cert": plain.cert,
        "locked_key": locked.key,
        "locked_cert": locked.cert,
        "other_cert": locked.cert,
    }


BAD_AUDIT_OPTIONS = [
    # (options, words the one line must contain)
    (["--sign-key", "{tmp}/missing.key"], "missing.key does not exist"),
    (["--sign-key", "{tmp}/missing.key", "--sign-cert", "{cert}"], "missing.key does not exist"),
    (["--sign-key", "{key}"], "give its certificate with --sign-cert"),
    (["--sign-cert", "{cert}"], "--sign-cert needs --sign-key"),
    (["--sign-key", "{key}", "--sign-cert", "{tmp}/nocert.pem"], "nocert.pem does not exist"),
    (["--sign-key", "{key}", "--sign-cert", "{other_cert}"], "does not match certificate"),
    (["--sign-key", "{locked_key}", "--sign-cert", "{locked_cert}"], "no passphrase was given"),
    (
        [
            "--sign-key",
            "{locked_key}",
            "--sign-cert",
            "{locked_cert}",
            "--passphrase-file",
            "{tmp}/nopass.txt",
        ],
        "passphrase file",
    ),
    (
        [
            "--sign-key",
            "{locked_key}",
            "--sign-cert",
            "{locked_cert}",
            "--passphrase-file",
            "{wrong}",
        ],
        "wrong passphrase",
    ),
    (["--tsa", "ftp://tsa.example"], "--tsa 'ftp://tsa.example'"),
    (["--tsa", "http://"], "--tsa 'http://'"),
    (["--tsa", "https://tsa example.org/"], "--tsa"),
    (["--lang", "fr"], "'fr'"),
    (["--max-errors", "abc"], "--max-errors 'abc'"),
    (["--rubric", "no-such-rubric"], "no-such-rubric"),
    (["--param", "budget"], "--param 'budget'"),
    (["--fail-on", "never"], "--fail-on 'never'"),
    (["--scenario", "sometimes"], "sometimes"),
    (["--country", "XX"], "'XX'"),
    (["--energy", "powerlog", "--power-log", "{tmp}/nolog.csv"], "nolog.csv"),
]


@pytest.mark.parametrize(("options", "words"), BAD_AUDIT_OPTIONS)
def test_bad_audit_option_fails_before_the_replay(
    tmp_path: Path, tiny_model: Path, keys: dict[str, Path], options: list[str], words: str
) -> None:
    manifest = write_dataset(tmp_path / "data", n=6)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    values = {**{k: str(v) for k, v in keys.items()}, "tmp": str(tmp_path), "wrong": str(wrong)}
    out = tmp_path / "run"
    result = run_cli(
        "audit",
        str(manifest),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--no-progress",
        *[o.format(**values) for o in options],
    )
    line = one_line(result)
    assert words in line, line
    assert not out.exists(), sorted(p.name for p in out.iterdir())  # nothing was replayed


def test_encrypted_key_with_its_passphrase_passes_the_checks(
    tmp_path: Path, tiny_model: Path, keys: dict[str, Path]
) -> None:
    """The control of the table above: the same options, made right, replay and sign."""
    manifest = write_dataset(tmp_path / "data", n=6)
    secret = tmp_path / "pass.txt"
    secret.write_text("s3cret\n")
    out = tmp_path / "run"
    result = run_cli(
        "audit",
        str(manifest),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--no-progress",
        "--single-stream",
        "2",
        "--sign-key",
        str(keys["locked_key"]),
        "--sign-cert",
        str(keys["locked_cert"]),
        "--passphrase-file",
        str(secret),
        "--no-verify",
    )
    assert result.returncode in (0, 1, 3, 4), result.stderr
    assert (out / "report.pdf").is_file() and (out / "run.json").is_file()


def test_existing_run_folder_is_untouched_by_a_refused_audit(
    tmp_path: Path, tiny_model: Path
) -> None:
    manifest = write_dataset(tmp_path / "data", n=6)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli(
        "audit", str(manifest), "--model", str(tiny_model), "--out", str(out), "--lang", "fr"
    )
    one_line(result)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def _run_copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    return copy_small_run(run)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--lang", "fr"], "'fr'"),
        (["--template", "{tmp}/no-such-folder"], "does not exist"),
        (["--template", "{tmp}/empty"], "has no report.html.j2"),
        (["--template", "{tmp}/broken"], "report.html.j2"),
        (["--tsa", "tsa.example.org"], "--tsa"),
        (["--sign-key", "{tmp}/missing.p12"], "missing.p12 does not exist"),
    ],
)
def test_bad_report_option_fails_before_rendering(
    tmp_path: Path, options: list[str], words: str
) -> None:
    run = _run_copy(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "report.html.j2").write_text("<p>{% if %}</p>")
    result = run_cli("report", str(run), *[o.format(tmp=tmp_path) for o in options])
    line = one_line(result)
    assert words in line, line
    assert not (run / "report.pdf").exists()
    assert not (run / "dev-keys").exists()  # not even the development keys were made


def test_signing_warns_on_a_key_readable_by_others(tmp_path: Path) -> None:
    run = _run_copy(tmp_path)
    files = create_keys(tmp_path / "k", common_name="Loose Signer")
    files.key.chmod(0o644)
    result = run_cli(
        "report", str(run), "--sign-key", str(files.key), "--sign-cert", str(files.cert)
    )
    assert result.returncode == 0, result.stderr
    assert f"warning: key file {files.key} can be read by other users (mode 0644)" in result.stderr
    files.key.chmod(0o600)
    quiet = run_cli(
        "report", str(run), "--sign-key", str(files.key), "--sign-cert", str(files.cert)
    )
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
