"""The whole report path on a real (tiny) run: archival PDF/A-3b with four attachments, the
visible and countersignature fields, pdfsig, RFC 3161 time stamps from a local server,
PKCS#12 keys, verify --recompute and --json, the Chinese report, and --html.

Expensive objects are module fixtures: one replay, one evaluation, a few renders.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auditkit.audit import run_evaluate, run_replay, run_report
from auditkit.errors import InputError, SigningKeyError
from auditkit.replay.pipeline import ReplaySettings
from auditkit.report.keys import KeyFiles, create_keys
from auditkit.report.passphrase import ENV_VAR, resolve_passphrase
from auditkit.report.render import EMBEDDED_FILES, render_html, render_report
from auditkit.report.sign import (
    countersign_pdf,
    sign_pdf,
    signature_box,
)
from auditkit.report.signature_boxes import AUTHOR_FIELD, COUNTERSIGN_FIELD
from auditkit.report.verify import verify_pdf
from tests.conftest import card_dict, write_dataset, write_tiny_model
from tests.test_keys_sign_verify import (
    tamper_attachment_incremental,
    tamper_one_byte,
    tamper_page_incremental,
)

SIGNATORY = "Quality Lab, Dr. Mei Lin"
PASSPHRASE = "p12 passphrase"


def _tool(name: str) -> str:
    exe = shutil.which(name)
    assert exe is not None, f"{name} not found: install poppler-utils (make test does as root)"
    return exe


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("archive")


@pytest.fixture(scope="module")
def run_dir(work: Path) -> Path:
    model = write_tiny_model(work / "tiny.onnx")
    (work / "tiny.card.yaml").write_text(yaml.safe_dump(card_dict()))
    manifest = write_dataset(work / "data", n=48, corrupt=1)
    out = work / "run"
    settings = ReplaySettings(batch_size=8, single_stream_samples=16, seed=1)
    run_replay(manifest, model, out, settings=settings)
    run_evaluate(out)
    return out


@pytest.fixture(scope="module")
def keys(work: Path) -> KeyFiles:
    return create_keys(work / "keys")


@pytest.fixture(scope="module")
def regulator(work: Path) -> KeyFiles:
    return create_keys(work / "reg", common_name="Market surveillance desk", organisation="Reg")


@pytest.fixture(scope="module")
def unsigned(run_dir: Path) -> bytes:
    return render_report(run_dir, signatory=SIGNATORY, development_key=True)


@pytest.fixture(scope="module")
def signed(work: Path, unsigned: bytes, keys: KeyFiles) -> Path:
    path = work / "signed.pdf"
    path.write_bytes(sign_pdf(unsigned, key_path=keys.key, cert_path=keys.cert, reason="test"))
    return path


@pytest.fixture(scope="module")
def countersigned(work: Path, signed: Path, regulator: KeyFiles) -> Path:
    path = work / "countersigned.pdf"
    done = _run_cli(
        "countersign",
        str(signed),
        "--sign-key",
        str(regulator.key),
        "--sign-cert",
        str(regulator.cert),
        "--out",
        str(path),
    )
    assert done.returncode == 0, done.stderr
    return path


# --------------------------------------------------------------------------- archival


def test_four_attachments_listed_by_pdfdetach(signed: Path, run_dir: Path) -> None:
    listing = subprocess.run(
        [_tool("pdfdetach"), "-list", str(signed)], capture_output=True, text=True, check=True
    ).stdout
    names = re.findall(r"^\s*\d+:\s*(\S+)\s*$", listing, flags=re.M)
    assert sorted(names) == sorted(EMBEDDED_FILES)
    assert (run_dir / "rubric.yaml").is_file()  # written by evaluate, hashed in verdicts.json
    rubric_sha = json.loads((run_dir / "verdicts.json").read_text())["rubric"]["sha256"]
    assert hashlib.sha256((run_dir / "rubric.yaml").read_bytes()).hexdigest() == rubric_sha


def test_unsigned_renders_are_byte_identical(run_dir: Path, unsigned: bytes) -> None:
    assert render_report(run_dir, signatory=SIGNATORY, development_key=True) == unsigned


def test_signature_boxes_are_found_on_the_cover(unsigned: bytes) -> None:
    author = signature_box(unsigned, AUTHOR_FIELD)
    counter = signature_box(unsigned, COUNTERSIGN_FIELD)
    assert author is not None and counter is not None
    (page_a, (x1, y1, x2, y2)), (page_c, (cx1, cy1, _, _)) = author, counter
    assert page_a == page_c == 0
    assert (x2 - x1, y2 - y1) == pytest.approx((84 * 72 / 25.4, 26 * 72 / 25.4), abs=2)
    assert cx1 > x2 and cy1 == y1  # side by side


# --------------------------------------------------------------------------- signatures


def test_pdfsig_reports_every_signature_valid(signed: Path, countersigned: Path) -> None:
    for path, count in ((signed, 1), (countersigned, 2)):
        out = subprocess.run(
            [_tool("pdfsig"), str(path)], capture_output=True, text=True, timeout=60
        ).stdout
        assert out.count("Signature Validation: Signature is Valid.") == count, out
        assert "Digest Mismatch" not in out


def test_signed_report_has_visible_certification_and_empty_countersign_field(
    signed: Path,
) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import fields

    with signed.open("rb") as fh:
        reader = PdfFileReader(fh)
        sig = reader.embedded_signatures[0]
        assert sig.field_name == AUTHOR_FIELD
        assert sig.docmdp_level == fields.MDPPerm.FILL_FORMS  # P=2: later signatures allowed
        rect = [float(v) for v in sig.sig_field["/Rect"]]
        assert rect[2] - rect[0] > 200 and rect[3] - rect[1] > 60  # visible on the cover
        empty = [n for n, value, _ in fields.enumerate_sig_fields(reader) if value is None]
        assert empty == [COUNTERSIGN_FIELD]


def test_countersignature_keeps_the_first_valid(
    countersigned: Path, keys: KeyFiles, regulator: KeyFiles
) -> None:
    result = verify_pdf(countersigned, trust=[keys.ca, regulator.ca])
    assert result.ok, result.problems
    assert [s.field for s in result.signatures] == [AUTHOR_FIELD, COUNTERSIGN_FIELD]
    assert result.signatures[1].signer == "Market surveillance desk"
    assert result.modification_level == "FORM_FILLING"
    # without the regulator's CA the countersignature is not trusted: not verified
    partial = verify_pdf(countersigned, trust=[keys.ca])
    assert not partial.ok
    assert any("countersignature" in p for p in partial.problems)


def test_a_second_countersignature_also_keeps_every_signature_valid(
    work: Path, countersigned: Path, keys: KeyFiles, regulator: KeyFiles
) -> None:
    third = work / "third.pdf"
    third.write_bytes(
        countersign_pdf(
            countersigned.read_bytes(),
            key_path=regulator.key,
            cert_path=regulator.cert,
            reason="second receipt",
        )
    )
    result = verify_pdf(third, trust=[keys.ca, regulator.ca])
    assert result.ok, result.problems
    assert [s.field for s in result.signatures] == [
        AUTHOR_FIELD,
        COUNTERSIGN_FIELD,
        f"{COUNTERSIGN_FIELD}3",  # no reserved box left: an invisible field
    ]


def test_countersign_refuses_an_unsigned_report(unsigned: bytes, regulator: KeyFiles) -> None:
    with pytest.raises(InputError, match="not signed yet"):
        countersign_pdf(unsigned, key_path=regulator.key, cert_path=regulator.cert)


def test_verify_json_and_recompute(signed: Path, keys: KeyFiles) -> None:
    done = _run_cli("verify", str(signed), "--trust", str(keys.ca), "--json", "--recompute")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True and result["recomputed"] is True
    assert sorted(result["evidence"]) == sorted(EMBEDDED_FILES)
    assert result["signatures"][0]["field"] == AUTHOR_FIELD


def test_verify_fails_for_each_tampering(work: Path, signed: Path, keys: KeyFiles) -> None:
    data = signed.read_bytes()
    cases = {
        "byte": tamper_one_byte(data),
        "page": tamper_page_incremental(data),
        "attachment": tamper_attachment_incremental(data),
    }
    for name, tampered in cases.items():
        path = work / f"tampered-{name}.pdf"
        path.write_bytes(tampered)
        done = _run_cli("verify", str(path), "--trust", str(keys.ca))
        assert done.returncode == 1, (name, done.stdout)
        assert "FAILED" in done.stdout and "Traceback" not in done.stderr


def test_recompute_catches_an_edited_verdict(work: Path, run_dir: Path, keys: KeyFiles) -> None:
    """A vendor edits verdicts.json (FAIL -> PASS) and renders and signs a report from it with
    a key the verifier trusts: the signature holds, but the evidence contradicts the verdict."""
    edited = work / "edited-run"
    shutil.copytree(run_dir, edited, ignore=shutil.ignore_patterns("*.pdf", "dev-keys"))
    verdicts = json.loads((edited / "verdicts.json").read_text())
    target = next(c for c in verdicts["criteria"] if c["outcome"] != "PASS")
    target["outcome"] = "PASS"
    verdicts["verdict"] = "ACCEPT"
    (edited / "verdicts.json").write_text(json.dumps(verdicts, indent=2))
    pdf = render_report(edited, signatory=SIGNATORY, development_key=True)
    path = work / "edited.pdf"
    path.write_bytes(sign_pdf(pdf, key_path=keys.key, cert_path=keys.cert, reason="edited"))

    assert verify_pdf(path, trust=[keys.ca]).ok  # the signature alone cannot tell
    done = _run_cli("verify", str(path), "--trust", str(keys.ca), "--recompute")
    assert done.returncode == 1
    assert "recomputed:    MISMATCH" in done.stdout
    assert f"criterion {target['id']}: outcome 'PASS' in verdicts.json" in done.stdout


# --------------------------------------------------------------------------- time stamps


def _tsa_material(tmp: Path) -> tuple[Any, Path]:
    """A private CA and a time-stamping certificate (EKU timeStamping, critical)."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA root")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # dummy: RSA only
    tsa = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")]))
        .issuer_name(ca_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = tmp / "tsa-ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_der = tsa_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    store = SimpleCertificateStore()
    store.register(asn1_x509.Certificate.load(ca.public_bytes(serialization.Encoding.DER)))
    stamper = DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(tsa.public_bytes(serialization.Encoding.DER)),
        tsa_key=asn1_keys.PrivateKeyInfo.load(key_der),
        certs_to_embed=store,
    )
    return stamper, ca_path


@pytest.fixture(scope="module")
def tsa(work: Path) -> Iterator[tuple[str, Path, list[int]]]:
    """A local RFC 3161 server (pyHanko's DummyTimeStamper over http.server)."""
    from asn1crypto import tsp

    stamper, ca_path = _tsa_material(work)
    hits: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            response = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
            hits.append(len(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(response)))
            self.end_headers()
            self.wfile.write(response)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa", ca_path, hits
    finally:
        server.shutdown()
        server.server_close()


def test_time_stamp_from_a_local_tsa(
    work: Path, unsigned: bytes, keys: KeyFiles, tsa: tuple[str, Path, list[int]]
) -> None:
    url, tsa_ca, hits = tsa
    before = len(hits)
    path = work / "stamped.pdf"
    path.write_bytes(
        sign_pdf(unsigned, key_path=keys.key, cert_path=keys.cert, reason="t", tsa_url=url)
    )
    assert len(hits) > before  # the server was asked
    result = verify_pdf(path, trust=[keys.ca, tsa_ca])
    assert result.ok, result.problems
    assert result.timestamp is not None
    assert abs((result.timestamp - dt.datetime.now(dt.UTC)).total_seconds()) < 600


def test_unreachable_tsa_is_one_line_input_error(unsigned: bytes, keys: KeyFiles) -> None:
    with pytest.raises(InputError, match="time-stamping server") as info:
        sign_pdf(
            unsigned,
            key_path=keys.key,
            cert_path=keys.cert,
            reason="t",
            tsa_url="http://127.0.0.1:9/none",
        )
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- keys


def test_pkcs12_key_with_passphrase(work: Path, unsigned: bytes, keys: KeyFiles) -> None:
    from auditkit.report.keys import load_private_key

    key = load_private_key(keys.key, None)
    cert = x509.load_pem_x509_certificate(keys.cert.read_bytes())
    bundle = pkcs12.serialize_key_and_certificates(
        b"signer",
        key,  # type: ignore[arg-type]
        cert,
        None,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    p12 = work / "signer.p12"
    p12.write_bytes(bundle)
    signed = sign_pdf(unsigned, key_path=p12, cert_path=None, passphrase=PASSPHRASE, reason="p")
    path = work / "p12.pdf"
    path.write_bytes(signed)
    assert verify_pdf(path, trust=[keys.ca]).ok
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        sign_pdf(unsigned, key_path=p12, cert_path=None, passphrase="nope", reason="p")
    with pytest.raises(SigningKeyError, match="passphrase is required"):
        sign_pdf(unsigned, key_path=p12, cert_path=None, reason="p")


def test_passphrase_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    secret = tmp_path / "secret.txt"
    secret.write_text("from the file\nignored second line\n")
    monkeypatch.setenv(ENV_VAR, "from the environment")
    assert resolve_passphrase(file=secret) == "from the file"
    assert resolve_passphrase() == "from the environment"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setattr("getpass.getpass", lambda prompt: "typed")
    assert resolve_passphrase(ask=True) == "typed"
    assert resolve_passphrase() is None  # not a terminal, nothing asked
    with pytest.raises(SigningKeyError, match="does not exist"):
        resolve_passphrase(file=tmp_path / "missing")


def test_cli_has_no_passphrase_literal_option() -> None:
    done = _run_cli("report", "--help")
    assert "--passphrase-file" in done.stdout
    assert re.search(r"--passphrase\s", done.stdout) is None


# --------------------------------------------------------------------------- languages, html


def test_chinese_report_text(work: Path, run_dir: Path) -> None:
    pdf = render_report(run_dir, signatory=SIGNATORY, development_key=True, lang="zh")
    path = work / "zh.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        [_tool("pdftotext"), "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode("utf-8")
    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    chinese = {"ACCEPT": "接受", "REJECT": "拒收", "HOLD": "暂缓", "CONDITIONAL": "有条件接受"}
    flat = "".join(text.split())
    assert chinese[verdicts["verdict"]] in flat
    for heading in ("检测报告", "各准则检测结果", "判定规则", "漏检率", "过检率", "置信区间"):
        assert heading in flat, heading
    catalogue = yaml.safe_load(
        (Path(__file__).parent.parent / "reports/templates/strings.zh.yaml").read_text()
    )["zh"]["known_text"]
    for crit in verdicts["criteria"]:  # the shipped rubric's titles, in Chinese
        assert "".join(catalogue[crit["title"]].split()) in flat
    assert "全部缺陷零件的漏检率" in flat
    fonts = subprocess.run(
        [_tool("pdffonts"), str(path)], capture_output=True, text=True, check=True
    ).stdout
    cjk = [line for line in fonts.splitlines() if "CJK" in line]
    assert cjk and all(" yes yes " in line for line in cjk)  # embedded, subset


def test_html_report_is_self_contained(work: Path, run_dir: Path, keys: KeyFiles) -> None:
    html = work / "report.html"
    result = run_report(
        run_dir,
        out=work / "with-html.pdf",
        sign_key=keys.key,
        sign_cert=keys.cert,
        html=html,
    )
    page = html.read_text(encoding="utf-8")
    assert result.pdf.is_file()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    assert page == render_html(run_dir, signatory=result.signatory, development_key=True)
