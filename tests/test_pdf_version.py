"""A signed and countersigned report stays PDF 1.7, the base of the PDF/A-3b it claims.

pyHanko marks an ECDSA P-256 signature with the ISO 32002 extension and raises the catalog's
``/Version`` to 2.0, which contradicts PDF/A-3 (ISO 19005-3 is based on PDF 1.7). Checked here
from the bytes, with pyHanko's reader, and with poppler's ``pdfinfo`` and ``qpdf --check``
where they are installed.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader

from auditkit.audit import run_report
from auditkit.errors import SigningKeyError
from auditkit.report.keys import create_keys
from auditkit.report.sign import countersign_pdf, sign_pdf
from tests.conftest import copy_small_run

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("version")
    run = tmp / "run"
    copy_small_run(run)
    unsigned = run_report(run, sign=False, out=tmp / "unsigned.pdf").pdf.read_bytes()
    author = run_report(run).pdf.read_bytes()
    other = create_keys(tmp / "regulator", common_name="Regulator")
    counter = countersign_pdf(author, key_path=other.key, cert_path=other.cert)
    return {"unsigned": unsigned, "signed": author, "countersigned": counter}


@pytest.mark.parametrize("name", ["unsigned", "signed", "countersigned"])
def test_header_and_catalog_say_pdf_1_7(
    signed: dict[str, bytes], name: str, tmp_path: Path
) -> None:
    data = signed[name]
    assert data.startswith(b"%PDF-1.7\n")
    versions = set(re.findall(rb"/Version\s*/(\d\.\d)", data))
    assert versions <= {b"1.7"}, versions
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    assert str(reader.root.get("/Version", "/1.7")).lstrip("/") == "1.7"
    assert reader.input_version == (1, 7)
    # the PDF/A identification is still the one the header matches
    xmp = reader.root["/Metadata"].get_object().data
    assert re.search(rb"pdfaid:part(>|=\")3", xmp), xmp[:400]
    assert re.search(rb"pdfaid:conformance(>|=\")B", xmp), xmp[:400]
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(data)
    # poppler-utils and qpdf are test dependencies (tools/system-deps.sh): two independent
    # readers must agree, so a missing one fails here rather than passing unchecked
    for tool in ("pdfinfo", "qpdf"):
        assert shutil.which(tool), f"{tool} not found: run tools/system-deps.sh as root"
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    assert re.search(r"^PDF version:\s+1\.7$", info.stdout, re.M), info.stdout
    check = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_signatures_declare_the_pades_extension_not_iso_32002(signed: dict[str, bytes]) -> None:
    for name in ("signed", "countersigned"):
        reader = PdfFileReader(io.BytesIO(signed[name]), strict=False)
        extensions = reader.root["/Extensions"]
        assert "/ESIC" in extensions, name  # PAdES on PDF 1.7 (ETSI EN 319 142-1)
        assert "/ISO_" not in extensions, name


def test_an_eddsa_key_is_refused(tmp_path: Path, signed: dict[str, bytes]) -> None:
    import datetime as dt

    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ed Signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, None)
    )
    (tmp_path / "ed.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "ed.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(SigningKeyError, match=r"EdDSA signatures need PDF 2\.0"):
        sign_pdf(
            signed["unsigned"],
            key_path=tmp_path / "ed.key",
            cert_path=tmp_path / "ed.pem",
            reason="test",
        )
