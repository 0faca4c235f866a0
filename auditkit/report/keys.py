"""Signing keys and certificates for auditkit reports.

:func:`create_keys` makes a small two-level private PKI in one folder:

* ``ca.pem`` - a private root CA certificate (CA=TRUE, pathlen 0, keyCertSign + cRLSign);
* ``signer.pem`` - the end-entity signing certificate, issued by that CA (ECDSA P-256,
  keyUsage digitalSignature + contentCommitment, EKU documentSigning + emailProtection);
* ``signer.key`` - the signer's private key, PKCS#8 PEM, encrypted when a passphrase is given,
  created with mode 0600 so it is never readable by other users, not even for an instant.

The CA's private key is generated in memory, used once to issue ``signer.pem`` and then
discarded: it is **never written anywhere**. The CA exists only so that independent validators
(poppler's ``pdfsig``/NSS, Acrobat) can build a chain: they refuse to trust a bare self-signed
end-entity certificate (spike §3.5). Because the CA key is gone, nobody can issue a second
certificate under this CA, so trusting ``ca.pem`` means trusting exactly this one signer.
A real deployment uses a signing certificate issued by its organisation's own CA instead.

When the default common name is used, the certificate subject carries an organisational unit
that marks it as a development key (:data:`DEVELOPMENT_OU`); :func:`is_development_certificate`
detects it so that reports and ``verify`` can say so.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from auditkit.errors import SigningKeyError

DEFAULT_COMMON_NAME = "auditkit development signer"
DEVELOPMENT_OU = "development key — not for regulatory submission"
#: id-kp-documentSigning (RFC 9336)
EKU_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

CA_FILE = "ca.pem"
CERT_FILE = "signer.pem"
KEY_FILE = "signer.key"


@dataclass(frozen=True)
class KeyFiles:
    """Paths of the files written by :func:`create_keys`."""

    ca: Path
    cert: Path
    key: Path


def create_keys(
    out_dir: Path,
    *,
    passphrase: str | None = None,
    common_name: str = DEFAULT_COMMON_NAME,
    organisation: str = "auditkit development",
    days: int = 365,
    overwrite: bool = False,
) -> KeyFiles:
    """Write ``ca.pem``, ``signer.pem`` and ``signer.key`` into ``out_dir`` (see module doc).

    Raises :class:`SigningKeyError` when a file already exists (unless ``overwrite``), when
    ``days`` is not positive or the passphrase is empty.
    """
    out_dir = Path(out_dir)
    files = KeyFiles(ca=out_dir / CA_FILE, cert=out_dir / CERT_FILE, key=out_dir / KEY_FILE)
    if days < 1:
        raise SigningKeyError(f"certificate validity must be at least 1 day, got {days}")
    if passphrase is not None and passphrase == "":
        raise SigningKeyError("the key passphrase must not be empty (omit it for no passphrase)")
    if not common_name.strip():
        raise SigningKeyError("the signer's common name must not be empty")
    if not overwrite:
        for path in (files.key, files.cert, files.ca):
            if path.exists() or path.is_symlink():
                raise SigningKeyError(
                    f"{path} already exists; refusing to overwrite it (use --overwrite)"
                )
    try:
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SigningKeyError(f"cannot create key folder {out_dir}: {exc.strerror}") from None

    development = common_name == DEFAULT_COMMON_NAME
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_before = now - dt.timedelta(minutes=5)
    not_after = now + dt.timedelta(days=days)

    # --- private root CA (key kept in memory only) ---
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)]
    if development:
        ca_attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVELOPMENT_OU))
    ca_attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} report-signing CA"))
    ca_name = x509.Name(ca_attrs)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    # --- end-entity signer ---
    key = ec.generate_private_key(ec.SECP256R1())
    subject_attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)]
    if development:
        subject_attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVELOPMENT_OU))
    subject_attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject_attrs))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,  # non-repudiation: pyHanko requires it of signers
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([EKU_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    del ca_key  # never persisted: see the module docstring

    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    else:
        encryption = serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )

    _write_private(files.key, key_pem)
    _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    _write_public(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable), then write."""
    try:
        if path.exists() or path.is_symlink():
            path.unlink()  # a fresh inode: an old file's looser mode must not survive
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise SigningKeyError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits; make the mode exact
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise SigningKeyError(f"cannot write {path}: {exc.strerror}") from None


def _write_public(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise SigningKeyError(f"cannot write {path}: {exc.strerror}") from None


# --------------------------------------------------------------------------- loading helpers


def _read(path: Path, what: str) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise SigningKeyError(f"{what} {path} is a folder, not a file") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_certificates(path: Path, *, what: str = "certificate file") -> list[x509.Certificate]:
    """Every certificate in a PEM file (or one DER certificate). One-line SigningKeyError."""
    data = _read(path, what)
    if b"-----BEGIN" in data:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            certs = []
        if certs:
            return certs
        raise SigningKeyError(f"{what} {path} holds no readable PEM certificate")
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise SigningKeyError(f"{what} {path} is not a PEM certificate") from None


def load_certificate(path: Path, *, what: str = "certificate file") -> x509.Certificate:
    """The first certificate in ``path`` (PEM or DER)."""
    return load_certificates(path, what=what)[0]


def load_private_key(path: Path, passphrase: str | None) -> PrivateKeyTypes:
    """A PEM private key (PKCS#8 or traditional), with one-line SigningKeyError messages."""
    data = _read(path, "key file")
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        raise SigningKeyError(f"key file {path} is not a PEM private key")
    password = passphrase.encode("utf-8") if passphrase else None
    try:
        return serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        if "not encrypted" in str(exc):
            raise SigningKeyError(
                f"key file {path} is not encrypted, but a passphrase was given"
            ) from None
        raise SigningKeyError(f"key file {path} is encrypted: a passphrase is required") from None
    except ValueError as exc:
        # A wrong passphrase usually fails the decryption, but about 1 in 256 times it yields
        # valid padding and then fails as undecodable key data: both mean "wrong passphrase".
        encrypted = b"ENCRYPTED" in data
        if password is not None and (encrypted or "decrypt" in str(exc).lower()):
            raise SigningKeyError(
                f"wrong passphrase for key file {path} (or the file is damaged)"
            ) from None
        raise SigningKeyError(f"key file {path} is not a readable PEM private key") from None
    except Exception as exc:  # unsupported algorithm and the like
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SigningKeyError(f"cannot load key file {path}: {first}") from None


def _as_cryptography_cert(cert: Any) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    dump = getattr(cert, "dump", None)  # asn1crypto.x509.Certificate (pyHanko's type)
    if callable(dump):
        return x509.load_der_x509_certificate(dump())
    raise TypeError(f"not a certificate: {type(cert).__name__}")


def common_name_of(cert: Any) -> str:
    """The subject common name, or the whole subject when it has none."""
    c = _as_cryptography_cert(cert)
    names = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return c.subject.rfc4514_string()


def is_development_certificate(cert: Any) -> bool:
    """True when the subject carries auditkit's development-key marker (:data:`DEVELOPMENT_OU`).

    Accepts a ``cryptography`` certificate or an ``asn1crypto`` one (as pyHanko returns).
    """
    c = _as_cryptography_cert(cert)
    return any(
        attr.value == DEVELOPMENT_OU
        for attr in c.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    )


# --------------------------------------------------------------------------- signing material


@dataclass(frozen=True)
class SigningMaterial:
    """A private key, its certificate and any further certificates that came with it."""

    key: PrivateKeyTypes
    cert: x509.Certificate
    extra_certs: tuple[x509.Certificate, ...] = ()


def is_pkcs12(path: Path) -> bool:
    """A PKCS#12 bundle (``.p12``/``.pfx``, DER) rather than a PEM key."""
    if Path(path).suffix.lower() in {".p12", ".pfx"}:
        return True
    if not Path(path).is_file():
        return False
    return _read(path, "key file")[:1] == b"\x30"  # DER SEQUENCE, not PEM text


def key_needs_passphrase(path: Path) -> bool:
    """True for an encrypted PEM key or a PKCS#12 bundle (which is nearly always encrypted)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return b"ENCRYPTED" in data or data[:1] == b"\x30"


def load_signing_material(
    key_path: Path, cert_path: Path | None, passphrase: str | None
) -> SigningMaterial:
    """The signer's key and certificate: a PEM key with a PEM certificate, or a PKCS#12 bundle
    (its own certificate, unless ``cert_path`` names one). One-line SigningKeyError."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    key_path = Path(key_path)
    if is_pkcs12(key_path):
        data = _read(key_path, "PKCS#12 file")
        password = passphrase.encode("utf-8") if passphrase else None
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            hint = "a passphrase is required" if password is None else "wrong passphrase"
            raise SigningKeyError(
                f"cannot open PKCS#12 file {key_path}: {hint} (or it is not a PKCS#12 file)"
            ) from None
        if key is None:
            raise SigningKeyError(f"PKCS#12 file {key_path} holds no private key")
        if cert_path is not None:
            cert = load_certificate(Path(cert_path), what="certificate file")
        if cert is None:
            raise SigningKeyError(f"PKCS#12 file {key_path} holds no certificate: give --sign-cert")
        return SigningMaterial(key=key, cert=cert, extra_certs=tuple(extra))
    if cert_path is None:
        raise SigningKeyError(f"key file {key_path} is a PEM key: give its certificate too")
    return SigningMaterial(
        key=load_private_key(key_path, passphrase),
        cert=load_certificate(Path(cert_path), what="certificate file"),
    )
