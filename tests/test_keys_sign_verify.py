"""Keys, PAdES signing and offline verification of a PDF/A-3b report, including tampering.

The PDF is built here with WeasyPrint (two JSON attachments, their SHA-256 printed on page 1);
everything expensive is a module-scope fixture so the file stays fast.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auditkit.errors import InputError, SigningKeyError
from auditkit.report.keys import (
    DEVELOPMENT_OU,
    EKU_DOCUMENT_SIGNING,
    KeyFiles,
    create_keys,
    is_development_certificate,
    load_certificate,
)
from auditkit.report.sign import load_signer_identity, sign_pdf
from auditkit.report.verify import (
    NO_TRUST_PROBLEM,
    UNREAD_PAGE1_PROBLEM,
    VerifyResult,
    format_result,
    verify_pdf,
)

PASSPHRASE = "correct horse battery staple"

METRICS = json.dumps(
    {"format": "auditkit.metrics/1", "run_id": "run-0123456789ab", "unit": "part", "metrics": []},
    indent=2,
    sort_keys=True,
).encode()
VERDICTS = json.dumps(
    {"format": "auditkit.verdicts/1", "run_id": "run-0123456789ab", "verdict": "ACCEPT"},
    indent=2,
    sort_keys=True,
).encode()
FORGED_METRICS = json.dumps({"format": "auditkit.metrics/1", "forged": True}).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- helpers


def render_pdf(metrics: bytes, verdicts: bytes, *, printed: dict[str, str] | None = None) -> bytes:
    """A one-page PDF/A-3b with both JSON files attached and their SHA-256 printed."""
    import weasyprint

    printed = printed or {"metrics.json": sha256(metrics), "verdicts.json": sha256(verdicts)}
    rows = "".join(
        f"<tr><td>{name} SHA-256</td><td class='h'>{value}</td></tr>"
        for name, value in printed.items()
    )
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
    <title>auditkit test report</title>
    <style>@page {{ size: A4; margin: 2cm }} .h {{ font-family: monospace; font-size: 8pt }}</style>
    </head><body><h1>Audit report</h1><p>Escape rate: 0.8% (upper bound 1.5%)</p>
    <table>{rows}</table></body></html>"""
    return weasyprint.HTML(string=html, base_url=None).write_pdf(
        pdf_variant="pdf/a-3b",
        attachments=[
            weasyprint.Attachment(
                string=metrics.decode(), name="metrics.json", relationship="Data"
            ),
            weasyprint.Attachment(
                string=verdicts.decode(), name="verdicts.json", relationship="Data"
            ),
        ],
    )


def byte_range_end(pdf: bytes) -> int:
    """Offset where the first signature's second byte range starts (inside: /Contents)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    return int(sig.byte_range[1])


def tamper_one_byte(signed: bytes) -> bytes:
    """Change one hex digit of the first revision's trailer /ID (uncompressed, signed)."""
    pos = signed.index(b"/ID [") + 6
    assert pos < byte_range_end(signed), "the byte must lie inside the signed range"
    new = b"0" if signed[pos : pos + 1] != b"0" else b"1"
    return signed[:pos] + new + signed[pos + 1 :]


def tamper_page_incremental(signed: bytes) -> bytes:
    """Attacker's incremental update (pypdf): paint over page 1 with an extra content stream."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, DecodedStreamObject, NameObject

    writer = PdfWriter(PdfReader(io.BytesIO(signed)), incremental=True)
    page = writer.pages[0]
    overlay = DecodedStreamObject()
    overlay.set_data(b"q 1 1 1 rg 50 600 500 120 re f 0 0 0 rg 60 640 200 20 re f Q")
    overlay_ref = writer._add_object(overlay)  # pypdf has no public add_object
    contents = page["/Contents"]
    parts = contents.get_object()
    array = ArrayObject(parts) if isinstance(parts, ArrayObject) else ArrayObject([contents])
    array.append(overlay_ref)
    page[NameObject("/Contents")] = array
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def tamper_attachment_incremental(signed: bytes) -> bytes:
    """Attacker's incremental update (pypdf): repoint metrics.json's /EF to forged bytes."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import (
        ByteStringObject,
        DecodedStreamObject,
        DictionaryObject,
        NameObject,
        NumberObject,
    )

    writer = PdfWriter(PdfReader(io.BytesIO(signed)), incremental=True)
    root: Any = writer._root_object
    names = root["/Names"]["/EmbeddedFiles"]["/Names"]
    replaced = False
    for i in range(0, len(names), 2):
        if names[i] != "metrics.json":
            continue
        filespec = names[i + 1].get_object()
        old = filespec["/EF"]["/F"].get_object()
        forged = DecodedStreamObject()
        forged.set_data(FORGED_METRICS)
        forged[NameObject("/Type")] = NameObject("/EmbeddedFile")
        forged[NameObject("/Subtype")] = old["/Subtype"]
        forged[NameObject("/Params")] = DictionaryObject(
            {
                NameObject("/Size"): NumberObject(len(FORGED_METRICS)),
                NameObject("/CheckSum"): ByteStringObject(hashlib.md5(FORGED_METRICS).digest()),
            }
        )
        forged_ref = writer._add_object(forged)
        for key in ("/F", "/UF"):
            if key in filespec["/EF"]:
                filespec["/EF"][NameObject(key)] = forged_ref
        replaced = True
    assert replaced
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def countersign(signed: bytes, keys: KeyFiles) -> bytes:
    """A regulator's approval signature added later (allowed by DocMDP P=2)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    signer = signers.SimpleSigner.load(str(keys.key), str(keys.cert), ca_chain_files=[str(keys.ca)])
    assert signer is not None
    meta = signers.PdfSignatureMetadata(
        field_name="RegulatorReceipt",
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason="received",
    )
    out = io.BytesIO()
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    signers.PdfSigner(meta, signer).sign_pdf(writer, output=out)
    return out.getvalue()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signing")


@pytest.fixture(scope="module")
def unsigned_pdf() -> bytes:
    return render_pdf(METRICS, VERDICTS)


@pytest.fixture(scope="module")
def keys(work: Path) -> KeyFiles:
    return create_keys(work / "keys", passphrase=PASSPHRASE)


@pytest.fixture(scope="module")
def other_keys(work: Path) -> KeyFiles:
    return create_keys(work / "other", common_name="Regulator receipt desk", organisation="Reg")


@pytest.fixture(scope="module")
def signed_pdf(keys: KeyFiles, unsigned_pdf: bytes) -> bytes:
    return sign_pdf(
        unsigned_pdf,
        key_path=keys.key,
        cert_path=keys.cert,
        passphrase=PASSPHRASE,
        reason="auditkit report approved for submission",
        location="test bench",
    )


@pytest.fixture(scope="module")
def signed_path(work: Path, signed_pdf: bytes) -> Path:
    path = work / "report.pdf"
    path.write_bytes(signed_pdf)
    return path


def write(work: Path, name: str, data: bytes) -> Path:
    path = work / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- keys


def test_create_keys_writes_private_ca_and_signer(keys: KeyFiles) -> None:
    assert sorted(p.name for p in keys.key.parent.iterdir()) == [
        "ca.pem",
        "signer.key",
        "signer.pem",
    ]  # the CA's private key is never written
    assert stat.S_IMODE(os.stat(keys.key).st_mode) == 0o600
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in keys.key.read_bytes()

    ca = load_certificate(keys.ca)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ca_ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_ku.key_cert_sign and ca_ku.crl_sign

    cert = load_certificate(keys.cert)
    assert cert.issuer == ca.subject
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert EKU_DOCUMENT_SIGNING in eku and ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    assert [a.value for a in ou] == [DEVELOPMENT_OU]
    assert is_development_certificate(cert)
    assert load_signer_identity(keys.cert) == "auditkit development signer"


def test_named_signer_is_not_a_development_key(other_keys: KeyFiles) -> None:
    cert = load_certificate(other_keys.cert)
    assert not is_development_certificate(cert)
    assert load_signer_identity(other_keys.cert) == "Regulator receipt desk"
    assert b"-----BEGIN PRIVATE KEY-----" in other_keys.key.read_bytes()  # no passphrase


def test_create_keys_refuses_to_overwrite(tmp_path: Path) -> None:
    files = create_keys(tmp_path)
    with pytest.raises(SigningKeyError, match=r"signer\.key"):
        create_keys(tmp_path)
    os.chmod(files.key, 0o644)  # an old, too-open key file must not keep its mode
    again = create_keys(tmp_path, overwrite=True)
    assert stat.S_IMODE(os.stat(again.key).st_mode) == 0o600
    assert again.cert.read_bytes() != b""


# --------------------------------------------------------------------------- signing errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"passphrase": "wrong"}, "wrong passphrase"),
        ({"passphrase": None}, "encrypted and no passphrase was given"),
    ],
)
def test_sign_passphrase_errors(
    keys: KeyFiles, unsigned_pdf: bytes, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SigningKeyError, match=message) as info:
        sign_pdf(unsigned_pdf, key_path=keys.key, cert_path=keys.cert, reason="r", **kwargs)
    assert "\n" not in str(info.value)


def test_sign_key_and_certificate_errors(
    keys: KeyFiles, other_keys: KeyFiles, unsigned_pdf: bytes, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("this is not a PEM file\n")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"key_path": tmp_path / "missing.key", "cert_path": keys.cert}, "does not exist"),
        ({"key_path": keys.key, "cert_path": tmp_path / "missing.pem"}, "does not exist"),
        ({"key_path": junk, "cert_path": keys.cert}, "not a PEM private key"),
        ({"key_path": keys.key, "cert_path": junk}, "not a PEM certificate"),
        ({"key_path": other_keys.key, "cert_path": keys.cert, "passphrase": None}, "not match"),
    ]
    for kwargs, message in cases:
        kwargs.setdefault("passphrase", PASSPHRASE)
        with pytest.raises(SigningKeyError, match=message) as info:
            sign_pdf(unsigned_pdf, reason="r", **kwargs)
        assert "\n" not in str(info.value)


def test_sign_rejects_non_pdf_and_already_signed(keys: KeyFiles, signed_pdf: bytes) -> None:
    with pytest.raises(InputError, match="not a PDF"):
        sign_pdf(
            b"hello", key_path=keys.key, cert_path=keys.cert, passphrase=PASSPHRASE, reason="r"
        )
    with pytest.raises(InputError, match="cannot sign") as info:
        sign_pdf(
            signed_pdf, key_path=keys.key, cert_path=keys.cert, passphrase=PASSPHRASE, reason="r"
        )
    assert "\n" not in str(info.value)


def test_signing_is_an_incremental_update(unsigned_pdf: bytes, signed_pdf: bytes) -> None:
    assert signed_pdf.startswith(unsigned_pdf)
    assert b"/ETSI.CAdES.detached" in signed_pdf
    assert b"/DocMDP" in signed_pdf


# --------------------------------------------------------------------------- verification


def test_verify_ok_with_the_right_trust_root(signed_path: Path, keys: KeyFiles) -> None:
    result = verify_pdf(signed_path, trust=[keys.ca])
    assert result.ok, result.problems
    assert result.intact and result.trusted
    assert result.signer == "auditkit development signer"
    assert result.signer_is_development_key
    assert result.signing_time is not None
    assert result.coverage == "ENTIRE_FILE"
    assert result.modification_level == "NONE"
    assert result.evidence == {"metrics.json": sha256(METRICS), "verdicts.json": sha256(VERDICTS)}
    assert result.printed_hashes_match is True
    assert result.problems == []
    assert result.summary == "INTACT:TRUSTED,UNTOUCHED"
    text = format_result(result)
    assert text.splitlines()[-1] == "VERIFIED"
    assert sha256(METRICS) in text and "DEVELOPMENT KEY" in text


def test_page_text_falls_back_to_pypdf_without_pdftotext(
    signed_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auditkit.report.verify as verify_module

    monkeypatch.setattr(verify_module.shutil, "which", lambda name: None)
    result = verify_pdf(signed_path, trust=[keys.ca])
    assert result.ok, result.problems
    assert result.printed_hashes_checked and result.printed_hashes_match is True


def test_page_text_falls_back_to_pypdf_when_pdftotext_fails(
    signed_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auditkit.report.verify as verify_module

    failing = shutil.which("false")  # a "pdftotext" that exits 1
    assert failing is not None
    monkeypatch.setattr(verify_module.shutil, "which", lambda name: failing)
    result = verify_pdf(signed_path, trust=[keys.ca])
    assert result.ok, result.problems
    assert result.printed_hashes_checked and result.printed_hashes_match is True
    assert "page 1 hashes: match" in format_result(result).splitlines()


def test_unreadable_page_text_is_not_checked_rather_than_not_printed(
    signed_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auditkit.report.verify as verify_module

    monkeypatch.setattr(verify_module.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "pypdf", None)  # `import pypdf` raises ImportError
    result = verify_pdf(signed_path, trust=[keys.ca])
    assert not result.printed_hashes_checked and result.printed_hashes_match is None
    assert not result.ok and result.problems == [UNREAD_PAGE1_PROBLEM]  # fails closed
    lines = format_result(result).splitlines()
    assert "page 1 hashes: not checked (the text of page 1 could not be read)" in lines
    assert "page 1 hashes: not printed" not in lines
    assert lines[-1].startswith("FAILED: ")
    assert result.to_json()["printed_hashes_checked"] is False


def test_verify_with_another_ca_is_not_trusted(signed_path: Path, other_keys: KeyFiles) -> None:
    result = verify_pdf(signed_path, trust=[other_keys.ca])
    assert not result.ok
    assert result.intact and not result.trusted
    assert any("trusted certificate" in p for p in result.problems)
    assert format_result(result).splitlines()[-1].startswith("FAILED: ")


def test_verify_without_trust_is_never_ok(signed_path: Path) -> None:
    result = verify_pdf(signed_path)
    assert not result.ok and not result.trusted
    assert result.problems == [NO_TRUST_PROBLEM]


def test_verify_input_errors(tmp_path: Path, keys: KeyFiles, unsigned_pdf: bytes) -> None:
    with pytest.raises(InputError, match="does not exist"):
        verify_pdf(tmp_path / "nope.pdf", trust=[keys.ca])
    with pytest.raises(InputError, match="not a PDF"):
        verify_pdf(write(tmp_path, "x.pdf", b"not a pdf at all"), trust=[keys.ca])
    result = verify_pdf(write(tmp_path, "unsigned.pdf", unsigned_pdf), trust=[keys.ca])
    assert not result.ok and result.problems == ["no signature"]


def test_pdfsig_accepts_the_signature(signed_path: Path) -> None:
    # poppler-utils is installed by `make test` (tools/system-deps.sh): its absence is a failure
    exe = shutil.which("pdfsig")
    assert exe is not None, "pdfsig not found: install poppler-utils (make test does as root)"
    proc = subprocess.run([exe, str(signed_path)], capture_output=True, text=True, timeout=60)
    assert "Signature is Valid" in proc.stdout, proc.stdout + proc.stderr
    assert "Total document signed" in proc.stdout


def test_regulator_countersignature_keeps_the_report_valid(
    work: Path, signed_pdf: bytes, keys: KeyFiles, other_keys: KeyFiles
) -> None:
    path = write(work, "countersigned.pdf", countersign(signed_pdf, other_keys))
    result = verify_pdf(path, trust=[keys.ca, other_keys.ca])  # every signer must be trusted
    assert result.ok, result.problems
    assert result.coverage == "ENTIRE_REVISION"
    assert result.modification_level == "FORM_FILLING"


def test_printed_hash_mismatch_fails(work: Path, keys: KeyFiles) -> None:
    wrong = {"metrics.json": sha256(b"something else"), "verdicts.json": sha256(VERDICTS)}
    signed = sign_pdf(
        render_pdf(METRICS, VERDICTS, printed=wrong),
        key_path=keys.key,
        cert_path=keys.cert,
        passphrase=PASSPHRASE,
        reason="r",
    )
    result = verify_pdf(write(work, "misprinted.pdf", signed), trust=[keys.ca])
    assert result.printed_hashes_match is False
    assert not result.ok
    assert any("page 1 prints SHA-256" in p for p in result.problems)


# --------------------------------------------------------------------------- tampering


def assert_rejected(result: VerifyResult) -> None:
    assert not result.ok
    assert result.problems
    assert format_result(result).splitlines()[-1].startswith("FAILED: ")


def test_tamper_one_byte_in_signed_range(work: Path, signed_pdf: bytes, keys: KeyFiles) -> None:
    path = write(work, "tamper-byte.pdf", tamper_one_byte(signed_pdf))
    result = verify_pdf(path, trust=[keys.ca])
    assert_rejected(result)
    assert not result.intact
    assert result.summary == "INVALID"


def test_tamper_incremental_page_update(work: Path, signed_pdf: bytes, keys: KeyFiles) -> None:
    tampered = tamper_page_incremental(signed_pdf)
    assert tampered.startswith(signed_pdf)  # a genuine incremental update
    result = verify_pdf(write(work, "tamper-page.pdf", tampered), trust=[keys.ca])
    assert_rejected(result)
    assert result.intact  # the signed revision itself is untouched...
    assert result.modification_level == "OTHER"  # ...but the update is not allowed
    assert "ILLEGAL_MODIFICATIONS" in result.summary


def test_tamper_incremental_attachment_swap(work: Path, signed_pdf: bytes, keys: KeyFiles) -> None:
    tampered = tamper_attachment_incremental(signed_pdf)
    assert tampered.startswith(signed_pdf)
    from pypdf import PdfReader

    naive = PdfReader(io.BytesIO(tampered)).attachments["metrics.json"][0]
    assert naive == FORGED_METRICS  # a naive reader sees the forgery

    result = verify_pdf(write(work, "tamper-attachment.pdf", tampered), trust=[keys.ca])
    assert_rejected(result)
    assert "ILLEGAL_MODIFICATIONS" in result.summary
    assert result.evidence["metrics.json"] == sha256(METRICS)  # the signed original
    assert any("metrics.json was replaced after signing" in p for p in result.problems)


def test_many_wrong_passphrases_all_say_wrong_passphrase(tmp_path: Path) -> None:
    # about 1 in 256 wrong passphrases decrypts to valid padding; the message must not change
    from auditkit.report.keys import load_private_key

    files = create_keys(tmp_path, passphrase="right")
    for i in range(600):
        with pytest.raises(SigningKeyError, match="wrong passphrase"):
            load_private_key(files.key, f"wrong-{i}")


def test_verify_command_exit_codes(work: Path, signed_pdf: bytes, keys: KeyFiles) -> None:
    """`auditkit verify` exits 0 for the intact report and 1 for each kind of tampering."""
    import subprocess
    import sys

    cases = {
        "intact.pdf": (signed_pdf, 0),
        "one-byte.pdf": (tamper_one_byte(signed_pdf), 1),
        "page-update.pdf": (tamper_page_incremental(signed_pdf), 1),
        "attachment-swap.pdf": (tamper_attachment_incremental(signed_pdf), 1),
    }
    for name, (data, expected) in cases.items():
        path = write(work, f"cli-{name}", data)
        result = subprocess.run(
            [sys.executable, "-m", "auditkit", "verify", str(path), "--trust", str(keys.ca)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == expected, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert ("VERIFIED" if expected == 0 else "FAILED") in result.stdout
