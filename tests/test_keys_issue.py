"""`keys create` keeps the CA key (encrypted) and `keys issue` adds signers under the same CA.

Real keys (cryptography), a real sign + countersign + verify round trip: a report signed by the
first signer and countersigned by a second one issued later verifies with one trusted ca.pem.
"""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from auditkit.audit import run_report
from auditkit.errors import SigningKeyError
from auditkit.report import passphrase as passphrase_module
from auditkit.report.keys import create_keys, issue_signer, load_certificate
from auditkit.report.sign import countersign_pdf
from auditkit.report.verify import verify_pdf
from tests.conftest import copy_small_run

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


@pytest.fixture(scope="module")
def ca_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("org") / "keys"
    create_keys(
        folder,
        common_name="First Signer",
        organisation="Example Steel",
        passphrase="signer-pass",
        ca_passphrase="ca-pass",
        days=30,
        ca_days=400,
    )
    return folder


def test_ca_key_is_kept_encrypted_and_private(ca_folder: Path) -> None:
    ca_key = ca_folder / "ca.key"
    assert stat.S_IMODE(ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((ca_folder / "signer.key").stat().st_mode) == 0o600
    data = ca_key.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in data
    with pytest.raises(TypeError):  # no passphrase: cryptography refuses to decrypt
        serialization.load_pem_private_key(data, password=None)
    key = serialization.load_pem_private_key(data, password=b"ca-pass")
    ca = x509.load_pem_x509_certificate((ca_folder / "ca.pem").read_bytes())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert key.public_key().public_bytes(der, spki) == ca.public_key().public_bytes(der, spki)


def test_validity_periods_are_the_ones_asked_for(ca_folder: Path) -> None:
    signer = load_certificate(ca_folder / "signer.pem")
    ca = load_certificate(ca_folder / "ca.pem")
    five_minutes = dt.timedelta(minutes=5)  # not_before is backdated for clock skew
    assert (
        signer.not_valid_after_utc - signer.not_valid_before_utc == dt.timedelta(30) + five_minutes
    )
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == dt.timedelta(400) + five_minutes


def test_without_a_ca_passphrase_no_ca_key_is_written(tmp_path: Path) -> None:
    files = create_keys(tmp_path / "k")
    assert files.ca_key is None and not (tmp_path / "k" / "ca.key").exists()
    with pytest.raises(SigningKeyError, match="CA's key was not kept"):
        issue_signer(tmp_path / "k", tmp_path / "n", ca_passphrase="x", common_name="N")


def test_issue_refuses_a_wrong_ca_passphrase_and_a_too_long_validity(
    ca_folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        issue_signer(ca_folder, tmp_path / "a", ca_passphrase="nope", common_name="A")
    with pytest.raises(SigningKeyError, match="outlive the CA"):
        issue_signer(ca_folder, tmp_path / "b", ca_passphrase="ca-pass", common_name="B", days=500)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_second_signer_countersigns_and_both_verify_under_one_ca(
    ca_folder: Path, tmp_path: Path
) -> None:
    second = issue_signer(
        ca_folder, tmp_path / "second", ca_passphrase="ca-pass", common_name="Second Signer"
    )
    assert (tmp_path / "second" / "ca.pem").read_bytes() == (ca_folder / "ca.pem").read_bytes()
    cert = load_certificate(second.cert)
    assert cert.issuer == load_certificate(ca_folder / "ca.pem").subject
    run = tmp_path / "run"
    copy_small_run(run)
    report = run_report(
        run,
        sign_key=ca_folder / "signer.key",
        sign_cert=ca_folder / "signer.pem",
        passphrase="signer-pass",
    )
    signed = countersign_pdf(report.pdf.read_bytes(), key_path=second.key, cert_path=second.cert)
    (run / "countersigned.pdf").write_bytes(signed)
    result = verify_pdf(run / "countersigned.pdf", trust=[ca_folder / "ca.pem"])
    assert result.ok and result.trusted, result.problems
    names = {s.signer for s in result.signatures}
    assert names == {"First Signer", "Second Signer"}
    assert all(s.trusted and s.intact for s in result.signatures)
    # and a CA that did not issue them trusts neither
    other = create_keys(tmp_path / "other", common_name="Stranger")
    assert not verify_pdf(run / "countersigned.pdf", trust=[other.ca]).trusted


def test_a_typed_passphrase_is_asked_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["correct horse", "correct hors"])
    monkeypatch.setattr(passphrase_module.getpass, "getpass", lambda prompt: next(answers))
    monkeypatch.delenv(passphrase_module.ENV_VAR, raising=False)
    with pytest.raises(SigningKeyError, match="differ"):
        passphrase_module.new_passphrase(ask=True)
    answers = iter(["correct horse", "correct horse"])
    assert passphrase_module.new_passphrase(ask=True) == "correct horse"
    answers = iter([""])
    with pytest.raises(SigningKeyError, match="no passphrase typed"):
        passphrase_module.new_passphrase(ask=True)


def test_keys_create_and_issue_on_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    ca_pass = tmp_path / "ca-pass.txt"
    ca_pass.write_text("ca-pass\n")
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditkit",
            "keys",
            "create",
            "--out",
            str(tmp_path / "org"),
            "--ca-passphrase-file",
            str(ca_pass),
            "--common-name",
            "Lab Signer",
            "--days",
            "10",
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert made.returncode == 0, made.stderr
    assert f"CA key:             {tmp_path / 'org' / 'ca.key'}" in made.stdout
    issued = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditkit",
            "keys",
            "issue",
            "--ca",
            str(tmp_path / "org"),
            "--out",
            str(tmp_path / "two"),
            "--common-name",
            "Second",
            "--days",
            "5",
            "--ca-passphrase-file",
            str(ca_pass),
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert issued.returncode == 0, issued.stderr
    cert = load_certificate(tmp_path / "two" / "signer.pem")
    assert cert.issuer == load_certificate(tmp_path / "org" / "ca.pem").subject
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditkit",
            "keys",
            "issue",
            "--ca",
            str(tmp_path / "org"),
            "--out",
            str(tmp_path / "three"),
            "--common-name",
            "Third",
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode == 5 and "passphrase is required" in refused.stderr
