"""Signing keys and certificates for auditkit reports.

:func:`create_keys` makes a small two-level private PKI in one folder:

* ``ca.pem`` - a private root CA certificate (CA=TRUE, pathlen 0, keyCertSign + cRLSign);
* ``signer.pem`` - the end-entity signing certificate, issued by that CA (ECDSA P-256,
  keyUsage digitalSignature + contentCommitment, EKU documentSigning + emailProtection);
* ``signer.key`` - the signer's private key, PKCS#8 PEM, encrypted when a passphrase is given,
  created with mode 0600 so it is never readable by other users, not even for an instant.

* ``ca.key`` - the CA's private key, kept only when a CA passphrase is given, and then
  always encrypted (PKCS#8, mode 0600): :func:`issue_signer` issues further signers under the
  same CA, so verifiers who trust ``ca.pem`` once trust every signer of the organisation.

Without a CA passphrase (the development keys, say) the CA key is generated in memory, used
once to issue ``signer.pem`` and discarded: nobody can issue a second certificate under that
CA, so trusting its ``ca.pem`` means trusting exactly that one signer. The CA exists so that
independent validators (poppler's ``pdfsig``/NSS, Acrobat) can build a chain: they refuse to
trust a bare self-signed end-entity certificate (spike §3.5). A real deployment may instead use
a signing certificate issued by its organisation's own CA.

Every file is written atomically (:func:`auditkit.run.write_atomic`); private keys are created
with mode 0600, never readable by others, not even for an instant.

When the default common name is used, the certificate subject carries an organisational unit
that marks it as a development key (:data:`DEVELOPMENT_OU`); :func:`is_development_certificate`
detects it so that reports and ``verify`` can say so.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from auditkit.errors import SigningKeyError
from auditkit.run import refuse_symlink, write_atomic

DEFAULT_COMMON_NAME = "auditkit development signer"
DEVELOPMENT_OU = "development key — not for regulatory submission"
#: id-kp-documentSigning (RFC 9336)
EKU_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CERT_FILE = "signer.pem"
KEY_FILE = "signer.key"
#: a CA kept for issuing further signers outlives them: at least this many days
MIN_KEPT_CA_DAYS = 1825


@dataclass(frozen=True)
class KeyFiles:
    """Paths of the files written by :func:`create_keys`."""

    ca: Path
    cert: Path
    key: Path
    #: the CA's encrypted private key, when it was kept (``ca_passphrase``)
    ca_key: Path | None = None


def create_keys(
    out_dir: Path,
    *,
    passphrase: str | None = None,
    common_name: str = DEFAULT_COMMON_NAME,
    organisation: str = "auditkit development",
    days: int = 365,
    overwrite: bool = False,
    ca_passphrase: str | None = None,
    ca_days: int | None = None,
) -> KeyFiles:
    """Write ``ca.pem``, ``signer.pem`` and ``signer.key`` into ``out_dir`` (see module doc);
    with ``ca_passphrase`` also ``ca.key``, the CA's key encrypted with it, for
    :func:`issue_signer`. ``days``: the signer certificate's validity; ``ca_days``: the CA's
    (default: ``days``, or at least :data:`MIN_KEPT_CA_DAYS` when the CA key is kept).

    Raises :class:`SigningKeyError` when a file already exists (unless ``overwrite``), when
    a validity is not positive or a passphrase is empty.
    """
    out_dir = Path(out_dir)
    keep_ca = ca_passphrase is not None
    files = KeyFiles(
        ca=out_dir / CA_FILE,
        cert=out_dir / CERT_FILE,
        key=out_dir / KEY_FILE,
        ca_key=out_dir / CA_KEY_FILE if keep_ca else None,
    )
    if ca_days is None:
        ca_days = max(days, MIN_KEPT_CA_DAYS) if keep_ca else days
    _check_new_key_options(days, passphrase, common_name)
    if ca_days < days:
        raise SigningKeyError(
            f"the CA must be valid at least as long as its signer ({ca_days} < {days} days)"
        )
    if ca_passphrase is not None and ca_passphrase == "":
        raise SigningKeyError("the CA key passphrase must not be empty")
    written = [files.key, files.cert, files.ca] + ([files.ca_key] if files.ca_key else [])
    _prepare_folder(out_dir, written, overwrite)

    development = common_name == DEFAULT_COMMON_NAME
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_before = now - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(
        ca_key, organisation, development, not_before, now + dt.timedelta(days=ca_days)
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _signer_certificate(
        key.public_key(),
        ca_cert,
        ca_key,
        common_name=common_name,
        organisation=organisation,
        development=development,
        not_before=not_before,
        not_after=now + dt.timedelta(days=days),
    )
    _write_private(files.key, _key_pem(key, passphrase))
    if files.ca_key is not None:
        _write_private(files.ca_key, _key_pem(ca_key, ca_passphrase))
    del ca_key  # kept only encrypted in ca.key, or not at all: see the module docstring
    _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    _write_public(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def issue_signer(
    ca_dir: Path,
    out_dir: Path,
    *,
    ca_passphrase: str | None,
    common_name: str,
    organisation: str | None = None,
    passphrase: str | None = None,
    days: int = 365,
    overwrite: bool = False,
) -> KeyFiles:
    """Issue a further signer under the CA that :func:`create_keys` kept in ``ca_dir``
    (``ca.pem`` + encrypted ``ca.key``): ``signer.pem`` and ``signer.key`` in ``out_dir``, with
    a copy of ``ca.pem`` beside them (signing embeds it, verifiers trust it). The certificate
    may not outlive the CA. One-line :class:`SigningKeyError`."""
    ca_dir, out_dir = Path(ca_dir), Path(out_dir)
    ca_cert = load_certificate(ca_dir / CA_FILE, what="CA certificate")
    if not (ca_dir / CA_KEY_FILE).exists():
        raise SigningKeyError(
            f"{ca_dir} has no {CA_KEY_FILE}: that CA's key was not kept (create the keys "
            "with a CA passphrase to issue further signers)"
        )
    if not ca_passphrase:
        raise SigningKeyError(f"{ca_dir / CA_KEY_FILE} is encrypted: its passphrase is required")
    ca_key = load_private_key(ca_dir / CA_KEY_FILE, ca_passphrase)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or _spki(ca_key) != _spki_of(ca_cert):
        raise SigningKeyError(f"{ca_dir / CA_KEY_FILE} is not the key of {ca_dir / CA_FILE}")
    _check_new_key_options(days, passphrase, common_name)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_after = now + dt.timedelta(days=days)
    if not_after > ca_cert.not_valid_after_utc:
        raise SigningKeyError(
            f"a {days}-day certificate would outlive the CA, which expires on "
            f"{ca_cert.not_valid_after_utc:%Y-%m-%d}; give fewer --days"
        )
    files = KeyFiles(ca=out_dir / CA_FILE, cert=out_dir / CERT_FILE, key=out_dir / KEY_FILE)
    same_folder = out_dir.resolve() == ca_dir.resolve()
    written = [files.key, files.cert] + ([] if same_folder else [files.ca])
    _prepare_folder(out_dir, written, overwrite)
    ca_org = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    org = organisation or (str(ca_org[0].value) if ca_org else "auditkit")
    development = any(
        a.value == DEVELOPMENT_OU
        for a in ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _signer_certificate(
        key.public_key(),
        ca_cert,
        ca_key,
        common_name=common_name,
        organisation=org,
        development=development,
        not_before=now - dt.timedelta(minutes=5),
        not_after=not_after,
    )
    _write_private(files.key, _key_pem(key, passphrase))
    _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    if not same_folder:
        _write_public(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _spki_of(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_new_key_options(days: int, passphrase: str | None, common_name: str) -> None:
    if days < 1:
        raise SigningKeyError(f"certificate validity must be at least 1 day, got {days}")
    if passphrase is not None and passphrase == "":
        raise SigningKeyError("the key passphrase must not be empty (omit it for no passphrase)")
    if not common_name.strip():
        raise SigningKeyError("the signer's common name must not be empty")


def _prepare_folder(out_dir: Path, paths: list[Path], overwrite: bool) -> None:
    for path in paths:
        refuse_symlink(path)
        if not overwrite and path.exists():
            raise SigningKeyError(
                f"{path} already exists; refusing to overwrite it (use --overwrite)"
            )
    try:
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SigningKeyError(f"cannot create key folder {out_dir}: {exc.strerror}") from None


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: str | None) -> bytes:
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    else:
        encryption = serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _ca_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    organisation: str,
    development: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """The private root CA (CA=TRUE, pathlen 0, keyCertSign + cRLSign), self-signed."""
    ca_attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)]
    if development:
        ca_attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVELOPMENT_OU))
    ca_attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} report-signing CA"))
    ca_name = x509.Name(ca_attrs)
    return (
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )


def _signer_certificate(
    public_key: ec.EllipticCurvePublicKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    organisation: str,
    development: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """An end-entity document-signing certificate (ECDSA P-256) issued by the CA."""
    subject_attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)]
    if development:
        subject_attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVELOPMENT_OU))
    subject_attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject_attrs))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key: a new file, mode 0600 from its creation (never readable by others),
    renamed over ``path`` (an old file's looser mode does not survive)."""
    write_atomic(path, data, private=True)


def _write_public(path: Path, data: bytes) -> None:
    write_atomic(path, data)


def key_file_warning(path: Path) -> str | None:
    """A warning when a private key file can be read (or written) by other users than its
    owner (``mode & 0o077``), else None. Not an error: the key still signs."""
    try:
        mode = stat.S_IMODE(Path(path).stat().st_mode)
    except OSError:
        return None
    if os.name == "nt" or not mode & 0o077:
        return None
    return (
        f"key file {path} can be read by other users (mode {mode:04o}); "
        f"protect it with: chmod 600 {path}"
    )


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
        raise SigningKeyError(
            f"key file {path} is encrypted and no passphrase was given (--passphrase-file, "
            f"the environment variable AUDITKIT_KEY_PASSPHRASE or --ask-passphrase)"
        ) from None
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
        _read(key_path, "key file")  # a missing file is named as such, not as "a PEM key"
        raise SigningKeyError(
            f"key file {key_path} is a PEM key: give its certificate with --sign-cert"
        )
    return SigningMaterial(
        key=load_private_key(key_path, passphrase),
        cert=load_certificate(Path(cert_path), what="certificate file"),
    )
