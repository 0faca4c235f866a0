"""Sign a rendered PDF/A-3b report with pyHanko (PAdES baseline B-B).

Choices (see ``/work/shared/reference/signed-pdf-spike.md`` §3):

* **PAdES B-B**: ``/SubFilter /ETSI.CAdES.detached``, SHA-256, signing-certificate-v2 attribute.
  B-B carries no trusted time; the signing time is the signer's claim (``/M``). A TSA (B-T) can
  be added later without changing callers.
* **Certification signature, DocMDP P=2 (FILL_FORMS)**: the author's signature forbids any
  change to pages or attachments, but still lets a regulator add a receipt countersignature
  later (P=1 would forbid that, spike §3.8).
* **Invisible signature field** (``/Rect [0 0 0 0]``, no appearance stream): a visible stamp
  would need an embedded 1000-upem OTF font to stay PDF/A-valid (pyHanko's default Courier is
  not embedded, and TrueType fonts are mis-scaled by pyHanko 0.38, spike §3.4). The signatory is
  printed on page 1 by the report itself instead (:func:`load_signer_identity`), and zero-area
  annotations are exempt from PDF/A rule 6.3.3.
* **Incremental update**: the signature is appended; the rendered PDF/A revision is kept byte
  for byte, and a signed file must never be rewritten afterwards.
* The issuing CA certificate is embedded in the CMS (explicit ``ca_chain``, or ``ca.pem`` found
  beside the signer certificate) so independent validators such as ``pdfsig`` can build the
  chain.

Every key or certificate problem is a one-line :class:`SigningKeyError`; a PDF that cannot be
signed is a one-line :class:`InputError`.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from auditkit.errors import InputError, SigningKeyError
from auditkit.report.keys import (
    CA_FILE,
    common_name_of,
    load_certificate,
    load_certificates,
    load_private_key,
)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_signer_identity(cert_path: Path) -> str:
    """The signer certificate's subject common name (to print on page 1 before signing)."""
    return common_name_of(load_certificate(Path(cert_path), what="certificate file"))


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_certificate(cert: x509.Certificate, cert_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    if now < cert.not_valid_before_utc:
        raise SigningKeyError(
            f"certificate {cert_path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
        )
    if now > cert.not_valid_after_utc:
        raise SigningKeyError(
            f"certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (ku.digital_signature and ku.content_commitment):
        raise SigningKeyError(
            f"certificate {cert_path} lacks keyUsage digitalSignature + contentCommitment "
            "(non-repudiation), which document signing requires"
        )


def _chain_files(cert_path: Path, cert: x509.Certificate, ca_chain: list[Path] | None) -> list:
    """CA certificates to embed: the explicit list, else ``ca.pem`` beside the cert if it
    issued the signer certificate."""
    if ca_chain is not None:
        certs: list[x509.Certificate] = []
        for p in ca_chain:
            certs.extend(load_certificates(Path(p), what="CA certificate file"))
        return certs
    beside = cert_path.parent / CA_FILE
    if beside.is_file() and beside.resolve() != cert_path.resolve():
        try:
            found = load_certificates(beside, what="CA certificate file")
        except SigningKeyError:
            return []
        return [c for c in found if c.subject == cert.issuer]
    return []


def _build_signer(
    key_path: Path, cert_path: Path, passphrase: str | None, ca_chain: list[Path] | None
) -> signers.SimpleSigner:
    cert = load_certificate(cert_path, what="certificate file")
    key = load_private_key(key_path, passphrase)
    if not isinstance(
        key,
        ec.EllipticCurvePrivateKey
        | rsa.RSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise SigningKeyError(
            f"key file {key_path} holds a {type(key).__name__}; use ECDSA, RSA or EdDSA"
        )
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise SigningKeyError(f"key file {key_path} does not match certificate {cert_path}")
    _check_certificate(cert, cert_path)
    chain = _chain_files(cert_path, cert, ca_chain)

    key_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    registry = SimpleCertificateStore()
    registry.register_multiple(
        [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain]
    )
    return signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=registry,
        embed_roots=True,  # pdfsig needs the root in the CMS to build the chain
    )


def sign_pdf(
    pdf: bytes,
    *,
    key_path: Path,
    cert_path: Path,
    passphrase: str | None = None,
    ca_chain: list[Path] | None = None,
    reason: str,
    location: str | None = None,
    field_name: str = "AuditSignature",
) -> bytes:
    """Return ``pdf`` with a PAdES B-B certification signature (DocMDP P=2) appended.

    ``ca_chain``: CA certificate files to embed; ``None`` means "``ca.pem`` beside
    ``cert_path`` when it issued the certificate", ``[]`` embeds none.
    """
    key_path, cert_path = Path(key_path), Path(cert_path)
    signer = _build_signer(key_path, cert_path, passphrase, ca_chain)

    if pdf.lstrip()[:5] != b"%PDF-":
        raise InputError("cannot sign: the input is not a PDF")
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        location=location,
        certify=True,
        docmdp_permissions=fields.MDPPerm.FILL_FORMS,
    )
    out = io.BytesIO()
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        if writer.prev.encrypted:
            raise InputError("cannot sign: the PDF is encrypted")
        # No new_field_spec: pyHanko creates an invisible field (zero-area widget, no /AP).
        signers.PdfSigner(meta, signer).sign_pdf(writer, output=out)
    except InputError:
        raise
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot sign the PDF: {_one_line(exc)}") from None
    return out.getvalue()
