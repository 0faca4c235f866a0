"""Sign a rendered PDF/A-3b report with pyHanko (PAdES baseline B-B).

Choices (see ``/work/shared/reference/signed-pdf-spike.md`` §3):

* **PAdES B-B**: ``/SubFilter /ETSI.CAdES.detached``, SHA-256, signing-certificate-v2 attribute.
  B-B carries no trusted time; the signing time is the signer's claim (``/M``). A TSA (B-T) can
  be added later without changing callers.
* **Certification signature, DocMDP P=2 (FILL_FORMS)**: the author's signature forbids any
  change to pages or attachments, but still lets a regulator add a receipt countersignature
  later (P=1 would forbid that, spike §3.8).
* **Visible signature block on the cover**: the report draws two boxes on page 1 (the author's
  and a reserved countersignature box, HTML ids :data:`AUTHOR_FIELD` and
  :data:`COUNTERSIGN_FIELD`, exported by WeasyPrint as named destinations). The signature
  widget is placed exactly on the author's box and an empty signature field on the other, both
  with empty appearance streams: the visible text (signatory, "signed with a development key")
  is the report's own, with embedded fonts, so no stamp font is needed (pyHanko's default
  Courier is not embedded and TrueType fonts are mis-scaled by pyHanko 0.38, spike §3.4).
  Without those boxes (a custom template) the signature is invisible (zero-area widget,
  exempt from PDF/A rule 6.3.3).
* **Countersignature** (:func:`countersign_pdf`): an approval signature in the reserved field,
  which DocMDP P=2 allows; the author's signature stays valid.
* **Time stamp** (``tsa_url``): an RFC 3161 signature time stamp (PAdES B-T) from that server.
* **Incremental update**: the signature is appended; the rendered PDF/A revision is kept byte
  for byte, and a signed file must never be rewritten afterwards.
* **PDF version 1.7 kept**: PDF/A-3 is based on PDF 1.7 (ISO 19005-3). pyHanko marks an
  ECDSA P-256 signature with the ISO 32002 extension and raises the catalog's ``/Version`` to
  2.0; :class:`_PdfA3Signer` registers only the ETSI ESIC extension that PAdES on PDF 1.7 uses,
  so the signed (and countersigned) file still says 1.7. EdDSA, which only PDF 2.0 defines,
  is refused for the same reason.
* The issuing CA certificate is embedded in the CMS (explicit ``ca_chain``, or ``ca.pem`` found
  beside the signer certificate) so independent validators such as ``pdfsig`` can build the
  chain.

Every key or certificate problem is a one-line :class:`SigningKeyError`; a PDF that cannot be
signed is a one-line :class:`InputError`.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_signer import _ensure_esic_ext
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from auditkit.errors import InputError, SigningKeyError, first_line
from auditkit.report.keys import (
    CA_FILE,
    SigningMaterial,
    common_name_of,
    load_certificate,
    load_certificates,
    load_signing_material,
)
from auditkit.report.signature_boxes import AUTHOR_FIELD, COUNTERSIGN_FIELD, SIGNATURE_BOX_MM

TSA_TIMEOUT_S = 20


def load_signer_identity(cert_path: Path) -> str:
    """The signer certificate's subject common name (to print on page 1 before signing)."""
    return common_name_of(load_certificate(Path(cert_path), what="certificate file"))


def signer_identity(material: SigningMaterial) -> str:
    """The common name of the signing certificate (PEM or PKCS#12)."""
    return common_name_of(material.cert)


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
    key_path: Path, cert_path: Path | None, passphrase: str | None, ca_chain: list[Path] | None
) -> signers.SimpleSigner:
    material = load_signing_material(key_path, cert_path, passphrase)
    cert, key = material.cert, material.key
    shown_cert = cert_path if cert_path is not None else key_path
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise SigningKeyError(
            f"key file {key_path} is an EdDSA key: EdDSA signatures need PDF 2.0, and a PDF/A-3 "
            "report is PDF 1.7; use an ECDSA or RSA key"
        )
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SigningKeyError(f"key file {key_path} holds a {type(key).__name__}; use ECDSA or RSA")
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise SigningKeyError(f"key file {key_path} does not match certificate {shown_cert}")
    _check_certificate(cert, Path(shown_cert))
    chain = list(material.extra_certs) + _chain_files(Path(shown_cert), cert, ca_chain)

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


def _idnum(ref: Any) -> int | None:
    return getattr(ref, "idnum", None) or getattr(getattr(ref, "reference", None), "idnum", None)


def _page_ids(reader: PdfFileReader) -> list[int | None]:
    """Object numbers of the pages, in page order."""
    ids: list[int | None] = []

    def walk(node: Any, depth: int) -> None:
        kids = node.get("/Kids")
        if depth > 32 or kids is None:
            return
        for i in range(len(kids)):
            raw = kids.raw_get(i)
            obj = raw.get_object()
            if obj.get("/Type") == "/Pages":
                walk(obj, depth + 1)
            else:
                ids.append(_idnum(raw))

    walk(reader.root["/Pages"], 0)
    return ids


def signature_box(pdf: bytes, name: str) -> tuple[int, tuple[int, int, int, int]] | None:
    """(page index, box in PDF points) of the cover's signature box ``name``: its named
    destination gives the top-left corner; the size is :data:`SIGNATURE_BOX_MM`."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        names = reader.root.get("/Names")
        dests = names.get("/Dests") if names is not None else None
        items = dests.get("/Names") if dests is not None else None
        if items is None:
            return None
        for i in range(0, len(items) - 1, 2):
            if str(items.raw_get(i)) != name:
                continue
            dest = items.raw_get(i + 1)
            dest = dest.get_object() if hasattr(dest, "get_object") else dest
            if isinstance(dest, generic.DictionaryObject):
                dest = dest["/D"]
            page_ref = list.__getitem__(dest, 0)
            page = _page_ids(reader).index(_idnum(page_ref))
            left, top = float(list.__getitem__(dest, 2)), float(list.__getitem__(dest, 3))
            width, height = (mm * 72 / 25.4 for mm in SIGNATURE_BOX_MM)
            return page, (
                math.floor(left),
                math.floor(top - height),
                math.ceil(left + width),
                math.ceil(top),
            )
    except (PdfError, KeyError, ValueError, TypeError, IndexError, AttributeError):
        return None
    return None


def check_signing_key(key_path: Path, cert_path: Path | None, passphrase: str | None) -> None:
    """Everything :func:`sign_pdf` needs of the key, checked without signing anything: the key
    loads with this passphrase, matches its certificate, the certificate is valid now and fit
    for document signing. One-line :class:`SigningKeyError` (exit 5)."""
    _build_signer(Path(key_path), Path(cert_path) if cert_path else None, passphrase, None)


def check_tsa_url(tsa_url: str) -> None:
    """An RFC 3161 server URL: ``http(s)://host[:port]/path``, no spaces (checked before a run,
    so a typo does not surface only after the replay)."""
    try:
        parts = urlsplit(tsa_url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in tsa_url)
    ):
        raise InputError(
            f"--tsa {tsa_url!r}: expected an http:// or https:// URL of a time-stamping server"
        )


def _timestamper(tsa_url: str | None) -> HTTPTimeStamper | None:
    if tsa_url is None:
        return None
    check_tsa_url(tsa_url)
    return HTTPTimeStamper(tsa_url, timeout=TSA_TIMEOUT_S)


class _PdfA3Signer(signers.PdfSigner):
    """pyHanko's signer, keeping the file at PDF 1.7 as PDF/A-3 requires (module doc): only the
    ESIC extension of PAdES is registered, never ISO 32002 (which would raise /Version to 2.0).
    EdDSA keys, which do need PDF 2.0, are refused before this point."""

    def register_extensions(self, pdf_out: BasePdfFileWriter, *, md_algorithm: str) -> None:
        if self.signature_meta.subfilter == fields.SigSeedSubFilter.PADES:
            _ensure_esic_ext(pdf_out)


def _run_signer(
    pdf: bytes,
    meta: signers.PdfSignatureMetadata,
    signer: signers.SimpleSigner,
    *,
    tsa_url: str | None,
    field: fields.SigFieldSpec | None,
    extra_field: fields.SigFieldSpec | None = None,
    style: StaticStampStyle | None = None,
) -> bytes:
    if pdf.lstrip()[:5] != b"%PDF-":
        raise InputError("cannot sign: the input is not a PDF")
    out = io.BytesIO()
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        if writer.prev.encrypted:
            raise InputError("cannot sign: the PDF is encrypted")
        if extra_field is not None:
            fields.append_signature_field(writer, extra_field)
        # default: an empty appearance, the visible text is the report's own (embedded fonts)
        style = style or StaticStampStyle(border_width=0)
        _PdfA3Signer(
            meta,
            signer,
            timestamper=_timestamper(tsa_url),
            stamp_style=style,
            new_field_spec=field,
        ).sign_pdf(writer, output=out)
    except InputError:
        raise
    except OSError as exc:  # the time-stamping server
        raise InputError(f"time-stamping server {tsa_url} failed: {first_line(exc)}") from None
    except (PdfError, SigningError, ValueError, KeyError, TypeError) as exc:
        message = first_line(exc)
        if tsa_url and ("timestamp" in message.lower() or "tsa" in message.lower()):
            raise InputError(f"time-stamping server {tsa_url} failed: {message}") from None
        raise InputError(f"cannot sign the PDF: {message}") from None
    return out.getvalue()


def sign_pdf(
    pdf: bytes,
    *,
    key_path: Path,
    cert_path: Path | None,
    passphrase: str | None = None,
    ca_chain: list[Path] | None = None,
    reason: str,
    location: str | None = None,
    field_name: str = AUTHOR_FIELD,
    tsa_url: str | None = None,
) -> bytes:
    """Return ``pdf`` with a PAdES certification signature (DocMDP P=2) appended: B-B, or B-T
    with an RFC 3161 time stamp from ``tsa_url``.

    The widget sits on the cover's signature box when the report has one, and an empty
    countersignature field is created on the second box. ``ca_chain``: CA certificate files to
    embed; ``None`` means "``ca.pem`` beside ``cert_path`` when it issued the certificate",
    ``[]`` embeds none. ``key_path`` may be a PKCS#12 bundle (then ``cert_path`` is optional).
    """
    key_path = Path(key_path)
    cert_path = Path(cert_path) if cert_path is not None else None
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
        use_pades_lta=False,
    )
    field = None
    extra = None
    author_box = signature_box(pdf, AUTHOR_FIELD)
    if author_box is not None:
        field = fields.SigFieldSpec(field_name, on_page=author_box[0], box=author_box[1])
        counter_box = signature_box(pdf, COUNTERSIGN_FIELD)
        if counter_box is not None:
            extra = fields.SigFieldSpec(
                COUNTERSIGN_FIELD, on_page=counter_box[0], box=counter_box[1]
            )
    # No field spec: pyHanko creates an invisible field (zero-area widget, no /AP).
    return _run_signer(pdf, meta, signer, tsa_url=tsa_url, field=field, extra_field=extra)


def _empty_signature_fields(pdf: bytes) -> tuple[list[str], int]:
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    signed = len(reader.embedded_signatures)
    empty = [name for name, value, _ in fields.enumerate_sig_fields(reader) if value is None]
    return empty, signed


def countersign_pdf(
    pdf: bytes,
    *,
    key_path: Path,
    cert_path: Path | None,
    passphrase: str | None = None,
    ca_chain: list[Path] | None = None,
    reason: str = "countersigned",
    location: str | None = None,
    tsa_url: str | None = None,
) -> bytes:
    """Add an approval signature to an already signed report, as an incremental update that
    the author's certification (DocMDP P=2) allows: in the reserved countersignature field
    when it is still empty, else in a new invisible field."""
    key_path = Path(key_path)
    cert_path = Path(cert_path) if cert_path is not None else None
    signer = _build_signer(key_path, cert_path, passphrase, ca_chain)
    if pdf.lstrip()[:5] != b"%PDF-":
        raise InputError("cannot countersign: the input is not a PDF")
    try:
        empty, signed = _empty_signature_fields(pdf)
    except (PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"cannot read the PDF: {first_line(exc)}") from None
    if signed == 0:
        raise InputError("cannot countersign: the report is not signed yet (auditkit report)")
    reserved = COUNTERSIGN_FIELD in empty
    name = COUNTERSIGN_FIELD if reserved else f"{COUNTERSIGN_FIELD}{signed + 1}"
    meta = signers.PdfSignatureMetadata(
        field_name=name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        location=location,
        certify=False,
    )
    if not reserved:  # no reserved box left: an invisible signature
        field = fields.SigFieldSpec(name)
        return _run_signer(pdf, meta, signer, tsa_url=tsa_url, field=field)
    with tempfile.TemporaryDirectory(prefix="auditkit-stamp-") as tmp:
        style = _countersign_style(pdf, signer, reason, Path(tmp) / "stamp.pdf")
        return _run_signer(pdf, meta, signer, tsa_url=tsa_url, field=None, style=style)


def _countersign_style(
    pdf: bytes, signer: signers.SimpleSigner, reason: str, stamp_path: Path
) -> StaticStampStyle:
    """A stamp that covers the reserved box with the countersigner's name and signing time,
    rendered in the report's language (its catalog's /Lang) with embedded fonts."""
    from pyhanko.pdf_utils.content import ImportedPdfPage

    from auditkit.report.render import render_stamp

    try:
        lang = str(PdfFileReader(io.BytesIO(pdf), strict=False).root.get("/Lang", "en"))
    except (PdfError, ValueError, KeyError, TypeError):
        lang = "en"
    cert = signer.signing_cert
    stamp = render_stamp(
        signer=common_name_of(cert) if cert is not None else "",
        when=dt.datetime.now(dt.UTC),
        reason=reason,
        lang=lang.split("-")[0],
    )
    # ImportedPdfPage reads a file; its content is copied into the signed PDF when signing
    stamp_path.write_bytes(stamp)
    fill = layout.SimpleBoxLayoutRule(
        x_align=layout.AxisAlignment.ALIGN_MIN,
        y_align=layout.AxisAlignment.ALIGN_MIN,
        inner_content_scaling=layout.InnerScaling.STRETCH_FILL,
    )
    return StaticStampStyle(
        border_width=0,
        background=ImportedPdfPage(str(stamp_path)),
        background_layout=fill,
        background_opacity=1.0,
    )
