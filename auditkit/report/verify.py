"""Verify a signed auditkit report offline (what a regulator runs).

The rules (spike §4 and §6):

1. The file must carry at least one signature; the first one (by signed revision) is the
   author's certification signature. Every later signature (countersignatures) is validated
   the same way and must hold too. pyHanko validates it with an explicit trust list only
   (``allow_fetching=False``, revocation soft-fail, never the operating system's store).
2. Its bottom line must hold: the signed bytes are intact, the signature is valid, and every
   later incremental update is allowed by DocMDP P=2 (form filling / further signatures).
   Updates that alter a page or replace an attachment are ``ILLEGAL_MODIFICATIONS``.
3. The signer must chain to one of the ``trust`` certificates. Without ``trust`` nothing is
   trusted and the result is never ``ok``.
4. The evidence (``metrics.json``, ``verdicts.json``, ...) is read from the **signed revision**
   (never from the latest one, which an attacker can extend), hashed as the exact embedded
   bytes, and compared with the latest revision's copy: a replaced, added or removed
   attachment is a problem even if pyHanko accepted the update.
5. When page 1 of the signed revision prints an attachment's SHA-256, it must equal the hash of
   the embedded bytes. Page 1 is read with ``pdftotext`` on the file truncated at the end of the
   signed revision (so a later update cannot change what is read); when ``pdftotext`` is not
   installed or fails, ``pypdf`` (a dependency) reads it. When neither can read the page, the
   comparison is not checked (``printed_hashes_checked`` False) and that is a problem: a check
   that could not run is not a pass.

6. With ``recompute``, the verdicts are re-derived from the embedded metrics, rubric, run and
   baseline (:mod:`auditkit.report.recompute`) and must equal the embedded ``verdicts.json``;
   and the verdict and outcome words printed on the pages of the signed revision must be the
   shipped catalogue's words for the recomputed verdicts, in the language ``presentation.json``
   records (:mod:`auditkit.report.presentation`), whatever template made the pages.
7. What was verified is part of the result: the verdict, report ID, model, rubric (from the
   signed ``verdicts.json`` and ``run.json``) and whether the shipped template made the pages.

``pdfsig`` is not enough on its own: it prints "Signature is Valid." for incremental-update
tampering and exits 0 even on a digest mismatch (spike §4).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from auditkit.errors import InputError, first_line
from auditkit.report.keys import common_name_of, is_development_certificate, load_certificates

NO_TRUST_PROBLEM = "signer not checked against a trust anchor: pass --trust CA.pem"
UNREAD_PAGE1_PROBLEM = (
    "the text of page 1 of the signed revision cannot be read (pdftotext, pypdf): "
    "its printed hashes are not checked"
)
_HEX64 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_MAX_NAME_TREE_DEPTH = 32


@dataclass(frozen=True)
class SignatureInfo:
    """One signature of the report, as pyHanko judged it."""

    field: str
    signer: str | None
    signer_is_development_key: bool
    signing_time: datetime | None
    timestamp: datetime | None  # from a valid RFC 3161 time stamp, else None
    intact: bool
    trusted: bool
    coverage: str
    modification_level: str
    summary: str
    ok: bool


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_pdf`.

    ``intact``: the author signature's signed bytes are unchanged and the signature is
    cryptographically valid (pyHanko ``intact and valid``); whether later updates are allowed is
    in ``modification_level`` and ``problems``. ``evidence``: attachment name → SHA-256 of the
    exact embedded bytes in the signed revision. ``printed_hashes_checked``: page 1's text was
    read; ``printed_hashes_match``: None when it was not, or when page 1 prints no SHA-256 of
    any attachment.
    """

    ok: bool
    intact: bool
    trusted: bool
    signer: str | None
    signer_is_development_key: bool
    signing_time: datetime | None
    coverage: str
    modification_level: str
    evidence: dict[str, str] = field(default_factory=dict)
    printed_hashes_match: bool | None = None
    printed_hashes_checked: bool = False
    problems: list[str] = field(default_factory=list)
    summary: str = ""  # pyHanko's one-line summary, e.g. "INTACT:TRUSTED,UNTOUCHED"
    signatures: list[SignatureInfo] = field(default_factory=list)
    timestamp: datetime | None = None
    recomputed: bool | None = None  # None: not asked; True: verdicts re-derived and equal
    # what the signed evidence says (None where the report does not embed it)
    verdict: str | None = None
    report_id: str | None = None
    model: dict[str, Any] | None = None  # name, version, sha256
    rubric: dict[str, Any] | None = None  # id, version, sha256
    template_shipped: bool | None = None  # presentation.json: pages made by the shipped template
    lang: str | None = None
    page_words_match: bool | None = None  # --recompute: printed words = recomputed outcomes

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``verify --json``)."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {"format": "auditkit.verify/1", **plain(asdict(self))}


def _read_pdf_bytes(path: Path) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a PDF") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if b"%PDF-" not in data[:1024]:
        raise InputError(f"{path} is not a PDF")
    return data


def _trust_roots(trust: list[Path] | None) -> list[asn1_x509.Certificate]:
    roots = []
    for p in trust or []:
        for c in load_certificates(Path(p), what="trust certificate file"):
            roots.append(asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)))
    return roots


# --------------------------------------------------------------------------- embedded files


def _name_tree_items(node: Any, depth: int = 0) -> list[tuple[str, Any]]:
    """(name, value) pairs of a PDF name tree, flat /Names or nested /Kids."""
    if depth > _MAX_NAME_TREE_DEPTH or not isinstance(node, generic.DictionaryObject):
        return []
    out: list[tuple[str, Any]] = []
    names = node.get("/Names")
    if isinstance(names, generic.ArrayObject):
        for i in range(0, len(names) - 1, 2):
            key = names[i]
            if isinstance(key, generic.TextStringObject | generic.ByteStringObject | str):
                out.append((str(key), names[i + 1]))
    kids = node.get("/Kids")
    if isinstance(kids, generic.ArrayObject):
        for kid in kids:
            out.extend(_name_tree_items(kid.get_object(), depth + 1))
    return out


def _filespec_bytes(filespec: Any) -> bytes | None:
    fs = filespec.get_object() if hasattr(filespec, "get_object") else filespec
    if not isinstance(fs, generic.DictionaryObject):
        return None
    ef = fs.get("/EF")
    if not isinstance(ef, generic.DictionaryObject):
        return None
    stream = ef.get("/UF") or ef.get("/F")
    if stream is None:
        return None
    stream = stream.get_object()
    if not isinstance(stream, generic.StreamObject):
        return None
    return bytes(stream.data)


def _filespec_name(fs: generic.DictionaryObject) -> str | None:
    for key in ("/UF", "/F"):
        value = fs.get(key)
        if value is not None:
            return str(value)
    return None


def embedded_files(
    root: Any, contents: dict[str, bytes] | None = None
) -> tuple[dict[str, str], list[str]]:
    """name → SHA-256 for every embedded file reachable from the catalog (name tree and /AF),
    plus problems (two different files under one name, unreadable entries). The bytes go into
    ``contents`` when given."""
    found: dict[str, str] = {}
    problems: list[str] = []

    def add(name: str, data: bytes | None) -> None:
        if data is None:
            problems.append(f"embedded file {name} cannot be read")
            return
        sha = hashlib.sha256(data).hexdigest()
        if name in found and found[name] != sha:
            problems.append(f"two different embedded files are named {name}")
            return
        found[name] = sha
        if contents is not None:
            contents[name] = data

    names = root.get("/Names")
    names = names.get_object() if names is not None else None
    if isinstance(names, generic.DictionaryObject) and "/EmbeddedFiles" in names:
        for name, fs in _name_tree_items(names["/EmbeddedFiles"]):
            add(name, _filespec_bytes(fs))
    af = root.get("/AF")
    af = af.get_object() if af is not None else None
    if isinstance(af, generic.ArrayObject):
        for entry in af:
            fs = entry.get_object()
            if isinstance(fs, generic.DictionaryObject) and "/EF" in fs:
                af_name = _filespec_name(fs)
                if af_name is not None:
                    add(af_name, _filespec_bytes(fs))
    return found, problems


def _compare_evidence(signed: dict[str, str], latest: dict[str, str]) -> list[str]:
    problems = []
    for name, sha in sorted(signed.items()):
        if name not in latest:
            problems.append(f"embedded file {name} was removed after signing")
        elif latest[name] != sha:
            problems.append(
                f"embedded file {name} was replaced after signing "
                f"(signed SHA-256 {sha[:16]}…, latest {latest[name][:16]}…)"
            )
    for name in sorted(set(latest) - set(signed)):
        problems.append(f"embedded file {name} was added after signing")
    return problems


# --------------------------------------------------------------------------- page 1 text


def _pages_text(
    signed_bytes: bytes, *, layout: bool = False, first_only: bool = False
) -> list[str] | None:
    """Text of every page of the signed revision (the file truncated at its end), page 1
    first; ``layout`` keeps a table row on one line (``pdftotext -layout``). ``pdftotext``
    when installed and it succeeds, else ``pypdf``; None when neither can read the file."""
    exe = shutil.which("pdftotext")
    if exe is not None:
        args = [exe, *(["-layout"] if layout else []), *(["-l", "1"] if first_only else [])]
        args += ["-enc", "UTF-8", "-q", "-", "-"]
        proc: subprocess.CompletedProcess[bytes] | None
        try:
            proc = subprocess.run(
                args, input=signed_bytes, capture_output=True, timeout=120, check=False
            )
        except (OSError, subprocess.SubprocessError):
            proc = None  # pypdf below reads it instead
        if proc is not None and proc.returncode == 0:
            pages = proc.stdout.decode("utf-8", "replace").split("\f")
            return pages[:-1] if len(pages) > 1 and not pages[-1].strip() else pages
    try:
        from pypdf import PdfReader  # a dependency, so the check works without poppler
    except ImportError:
        return None
    try:
        objects = PdfReader(io.BytesIO(signed_bytes)).pages
        mode: Literal["plain", "layout"] = "layout" if layout else "plain"
        texts = [
            p.extract_text(extraction_mode=mode) for p in (objects[:1] if first_only else objects)
        ]
    except Exception:
        return None
    # pypdf's layout mode glues a cell to the next when they touch ("n/aSKIPPED"); an upper-case
    # word right after a lower-case letter, a digit or a slash starts a cell of its own
    return [_UNGLUED.sub(" ", text) for text in texts]


_UNGLUED = re.compile(r"(?<=[a-z0-9/])(?=[A-Z]{4,}\b)")


def _page1_text(signed_bytes: bytes) -> str | None:
    """Text of page 1 of the signed revision."""
    pages = _pages_text(signed_bytes, first_only=True)
    return pages[0] if pages else None


def _printed_hashes(text: str | None, evidence: dict[str, str]) -> tuple[bool | None, list[str]]:
    """Compare page-1 hashes with the evidence.

    An evidence hash that appears on the page (whitespace ignored, so a wrapped hash counts)
    matches. A 64-hex value printed shortly after an attachment's name that is not that
    attachment's hash is a mismatch. None when page 1 prints no hash of any attachment.
    """
    if not text or not evidence:
        return None, []
    collapsed = re.sub(r"\s+", "", text).lower()
    matched, problems = 0, []
    for name, sha in sorted(evidence.items()):
        if sha in collapsed:
            matched += 1
            continue
        for m in re.finditer(re.escape(name), text):
            window = text[m.end() : m.end() + 200]
            other = [o for o in evidence if o != name and o in window]
            if other:
                window = window[: window.index(other[0])]
            printed = _HEX64.search(window)
            if printed:
                problems.append(
                    f"page 1 prints SHA-256 {printed.group(0)[:16]}… for {name}, "
                    f"but the embedded file's SHA-256 is {sha[:16]}…"
                )
                break
    if problems:
        return False, problems
    return (True if matched else None), []


# --------------------------------------------------------------------------- main entry


@contextlib.contextmanager
def _quiet_pyhanko() -> Iterator[None]:
    """pyHanko logs a full traceback (WARNING) for an untrusted chain; the result already says
    it in one line, so raise its loggers' threshold while validating."""
    loggers = [logging.getLogger(n) for n in ("pyhanko", "pyhanko_certvalidator")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


def _failed(problem: str, **kw: Any) -> VerifyResult:
    base: dict[str, Any] = {
        "ok": False,
        "intact": False,
        "trusted": False,
        "signer": None,
        "signer_is_development_key": False,
        "signing_time": None,
        "coverage": "NONE",
        "modification_level": "UNKNOWN",
    }
    base.update(kw)
    return VerifyResult(problems=[problem], **base)


def _judge(sig: Any, vc: ValidationContext) -> tuple[Any, list[str]]:
    """pyHanko's status of one signature and the problems it shows."""
    with _quiet_pyhanko():
        status = validate_pdf_signature(sig, vc)
    summary = status.summary()
    problems: list[str] = []
    if not status.intact:
        problems.append(f"the signed bytes were changed after signing ({summary})")
    elif not status.valid:
        problems.append(f"the signature is cryptographically invalid ({summary})")
    if status.coverage not in (
        SignatureCoverageLevel.ENTIRE_FILE,
        SignatureCoverageLevel.ENTIRE_REVISION,
    ):
        problems.append(f"the signature does not cover a whole revision ({summary})")
    elif status.coverage != SignatureCoverageLevel.ENTIRE_FILE and not status.docmdp_ok:
        problems.append(
            "the file was modified after signing in a way the author's certification "
            f"does not allow ({summary})"
        )
    if not status.seed_value_ok:
        problems.append(f"the signature violates its field's seed values ({summary})")
    return status, problems


def _info(sig: Any, status: Any, roots: list[Any], problems: list[str]) -> SignatureInfo:
    cert = status.signing_cert
    ts = getattr(status, "timestamp_validity", None)
    ts_time = ts.timestamp if ts is not None and ts.intact and ts.valid else None
    level = status.modification_level
    return SignatureInfo(
        field=str(sig.field_name),
        signer=common_name_of(cert),
        signer_is_development_key=is_development_certificate(cert),
        signing_time=status.signer_reported_dt,
        timestamp=ts_time,
        intact=bool(status.intact and status.valid),
        trusted=bool(roots) and bool(status.trusted),
        coverage=status.coverage.name if status.coverage is not None else "NONE",
        modification_level=level.name if level is not None else "UNKNOWN",
        summary=status.summary(),
        ok=bool(status.bottom_line) and bool(roots) and not problems,
    )


def verify_pdf(
    path: Path, *, trust: list[Path] | None = None, recompute: bool = False
) -> VerifyResult:
    """Verify the report at ``path`` against the ``trust`` CA certificates (see module doc).

    Raises :class:`InputError` when the file is missing or not a PDF, and
    :class:`~auditkit.errors.SigningKeyError` when a trust file is unreadable. Every other
    failure is reported in the result (``ok`` False, one line per problem).
    """
    data = _read_pdf_bytes(Path(path))
    roots = _trust_roots(trust)

    try:
        reader = PdfFileReader(io.BytesIO(data))
        _ = reader.root
    except (PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return _failed(f"cannot read the PDF's structure: {first_line(exc, 200)}")
    try:  # pyHanko parses each signature's CMS here
        sigs = sorted(reader.embedded_signatures, key=lambda s: s.signed_revision)
    except Exception as exc:
        return _failed(_unreadable_signature(exc))
    if not sigs:
        return _failed("no signature")
    author = sigs[0]

    vc = ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")
    problems: list[str] = []
    infos: list[SignatureInfo] = []
    status = None
    for i, sig in enumerate(sigs):
        name = str(sig.field_name)
        try:
            sig_status, sig_problems = _judge(sig, vc)
        except Exception as exc:
            if i == 0:
                return _failed(_unreadable_signature(exc))
            problems.append(f"countersignature {name}: {_unreadable_signature(exc)}")
            continue
        info = _info(sig, sig_status, roots, sig_problems)
        if roots and not sig_status.trusted and info.intact:
            sig_problems.append(
                f"signer {info.signer!r} does not chain to a trusted certificate ({info.summary})"
            )
        infos.append(info)
        if i == 0:
            status = sig_status
            problems.extend(sig_problems)
        else:
            problems.extend(f"countersignature {name}: {p}" for p in sig_problems)
            if not sig_status.bottom_line and not sig_problems:
                problems.append(f"countersignature {name} is not valid ({info.summary})")
    assert status is not None
    if not roots:
        problems.append(NO_TRUST_PROBLEM)

    # Evidence: from the signed revision, compared with the latest revision.
    evidence: dict[str, str] = {}
    contents: dict[str, bytes] = {}
    try:
        signed_root = reader.get_historical_root(author.signed_revision)
        evidence, ev_problems = embedded_files(signed_root, contents)
        problems.extend(ev_problems)
        latest, latest_problems = embedded_files(reader.root)
        problems.extend(p + " (latest revision)" for p in latest_problems)
        problems.extend(_compare_evidence(evidence, latest))
    except (PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problems.append(f"cannot read the embedded files: {first_line(exc, 200)}")
    if not evidence:
        problems.append("the signed revision embeds no evidence files")

    # Page 1 of the signed revision: the bytes up to the end of the signed byte range.
    printed: bool | None = None
    page1: str | None = None
    try:
        br = [int(x) for x in author.byte_range]
        end = br[2] + br[3]
    except (TypeError, ValueError, IndexError):
        end = 0
    if 0 < end <= len(data):
        page1 = _page1_text(data[:end])
        printed, printed_problems = _printed_hashes(page1, evidence)
        problems.extend(printed_problems)
    if page1 is None:  # a check that could not run is not a pass
        problems.append(UNREAD_PAGE1_PROBLEM)

    facts = _facts(contents)
    recomputed: bool | None = None
    words: bool | None = None
    if recompute:
        from auditkit.report.recompute import recompute as rederive

        document, recompute_problems = rederive(contents)
        problems.extend(f"recompute: {p}" for p in recompute_problems)
        recomputed = not recompute_problems
        if document is not None:
            word_problems = _page_word_problems(
                data[:end] if 0 < end <= len(data) else b"", document, facts
            )
            problems.extend(f"printed pages: {p}" for p in word_problems)
            words = not word_problems

    first = infos[0]
    ok = bool(status.bottom_line) and bool(roots) and not problems
    return VerifyResult(
        ok=ok,
        intact=first.intact,
        trusted=bool(roots) and all(i.trusted for i in infos),
        signer=first.signer,
        signer_is_development_key=first.signer_is_development_key,
        signing_time=first.signing_time,
        coverage=first.coverage,
        modification_level=first.modification_level,
        evidence=evidence,
        printed_hashes_match=printed,
        printed_hashes_checked=page1 is not None,
        problems=problems,
        summary=first.summary,
        signatures=infos,
        timestamp=first.timestamp,
        recomputed=recomputed,
        page_words_match=words,
        **facts,
    )


def _unreadable_signature(exc: BaseException) -> str:
    """One line for a signature pyHanko cannot read or validate: damaged CMS bytes surface as
    Python errors from the parser (``'EmbeddedPdfSignature' object has no attribute ...``,
    ``Insufficient data``, ASN.1 tag errors), which mean nothing to the reader."""
    text = first_line(exc, 200)
    damaged = isinstance(exc, AttributeError | TypeError | KeyError | IndexError) or any(
        marker in text for marker in ("asn1crypto", "Insufficient data", "signer_infos")
    )
    if damaged:
        return "the signature's data (CMS) is damaged and cannot be read: the file was altered"
    return f"the signature cannot be validated: {text}"


def _json_or_none(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _facts(contents: dict[str, bytes]) -> dict[str, Any]:
    """What the signed evidence says the report is about (VerifyResult's verdict, report_id,
    model, rubric, template_shipped, lang)."""
    from auditkit.report.presentation import PRESENTATION_FILE

    verdicts = _json_or_none(contents.get("verdicts.json")) or {}
    run = _json_or_none(contents.get("run.json")) or {}
    presentation = _json_or_none(contents.get(PRESENTATION_FILE))
    model, rubric = _dict(run.get("model")), _dict(verdicts.get("rubric"))
    card = _dict(model.get("card"))
    report_id = None
    if "verdicts.json" in contents and run.get("run_id"):
        from auditkit.report.render import report_id_for

        report_id = report_id_for(str(run["run_id"]), contents["verdicts.json"])
    shipped = presentation.get("shipped") if presentation else None
    return {
        "verdict": str(verdicts["verdict"]) if "verdict" in verdicts else None,
        "report_id": report_id,
        "model": {
            "name": card.get("name"),
            "version": card.get("version"),
            "sha256": model.get("sha256"),
        }
        if model
        else None,
        "rubric": {
            "id": rubric.get("id"),
            "version": rubric.get("version"),
            "sha256": rubric.get("sha256"),
        }
        if rubric
        else None,
        "template_shipped": shipped if isinstance(shipped, bool) else None,
        "lang": str(presentation["lang"]) if presentation and "lang" in presentation else None,
    }


def _page_word_problems(
    signed: bytes, recomputed: dict[str, Any], facts: dict[str, Any]
) -> list[str]:
    """The verdict and outcome words of the signed pages against the recomputed verdicts, in
    the shipped catalogue of the recorded language (English for a report that records none)."""
    from auditkit.errors import InputError as NoCatalogue
    from auditkit.report.presentation import check_page_words

    lang = facts.get("lang")
    pages = _pages_text(signed, layout=True) if signed else None
    try:
        return check_page_words(pages or [], recomputed, lang or "en", facts.get("report_id"))
    except NoCatalogue:
        return [f"the pages are in {lang!r}, a language auditkit ships no words for: not checked"]


def _short(sha: Any) -> str:
    return f"SHA-256 {sha}" if sha else "SHA-256 not recorded"


def _what_lines(result: VerifyResult) -> list[str]:
    """What the signed evidence says the report is about."""
    lines = []
    if result.verdict is not None:
        lines.append(f"verdict:       {result.verdict} (as signed in verdicts.json)")
    if result.report_id is not None:
        lines.append(f"report ID:     {result.report_id}")
    if result.model:
        m = result.model
        name = " ".join(str(v) for v in (m.get("name"), m.get("version")) if v) or "(unnamed)"
        lines.append(f"model:         {name}, {_short(m.get('sha256'))}")
    if result.rubric:
        r = result.rubric
        lines.append(f"rubric:        {r.get('id')} version {r.get('version')}")
    if result.template_shipped is None:
        template = "not recorded (a report made before presentation.json)"
    elif result.template_shipped:
        template = "the shipped one (presentation.json)"
    else:
        template = "CUSTOM, not the shipped one (presentation.json lists its SHA-256)"
    if result.evidence:
        lines.append(f"template:      {template}")
    return lines


def _signature_lines(result: VerifyResult) -> list[str]:
    """One block per signature, each with its own trust."""
    lines = []
    for i, info in enumerate(result.signatures):
        role = "author, certification" if i == 0 else "countersignature"
        signer = info.signer or "(none)"
        if info.signer_is_development_key:
            signer += "  [DEVELOPMENT KEY — not for regulatory submission]"
        lines.append(f"signature {i + 1}:   {signer} ({role}, field {info.field})")
        when = info.signing_time.isoformat() if info.signing_time else "(unknown)"
        if info.timestamp is not None:
            lines.append(
                f"  signing time: {when}; RFC 3161 time stamp {info.timestamp.isoformat()}"
            )
        else:
            lines.append(f"  signing time: {when} (claimed by the signer; no trusted time stamp)")
        lines.append(
            f"  intact:       {'yes' if info.intact else 'NO'}; coverage {info.coverage}, "
            f"modifications {info.modification_level}"
        )
        lines.append(f"  trusted:      {_trust_word(info, result)}")
    if not result.signatures:
        lines.append("signature:     none readable")
    return lines


def _trust_word(info: SignatureInfo, result: VerifyResult) -> str:
    if info.trusted:
        return "yes"
    if NO_TRUST_PROBLEM in result.problems:
        return "no (no trust certificate given)"
    return "no (does not chain to a trusted certificate)" if info.intact else "no"


def format_result(result: VerifyResult) -> str:
    """The human lines the CLI prints for a verification result: what the report is about,
    each signature with its own trust, the evidence, and the checks."""
    lines = _what_lines(result) + _signature_lines(result)
    if result.evidence:
        lines.append("evidence (as signed):")
        width = max(len(n) for n in result.evidence)
        for name, sha in sorted(result.evidence.items()):
            lines.append(f"  {name:<{width}}  sha256 {sha}")
    if not result.printed_hashes_checked:
        lines.append("page 1 hashes: not checked (the text of page 1 could not be read)")
    elif result.printed_hashes_match is None:
        lines.append("page 1 hashes: not printed")
    else:
        lines.append(f"page 1 hashes: {'match' if result.printed_hashes_match else 'MISMATCH'}")
    if result.recomputed is None:
        lines.append("recomputed:    not checked (verify --recompute re-derives the verdicts)")
    else:
        lines.append(
            "recomputed:    " + ("verdicts match the evidence" if result.recomputed else "MISMATCH")
        )
    if result.page_words_match is not None:
        lines.append(
            "printed words: "
            + ("verdict and outcomes as recomputed" if result.page_words_match else "MISMATCH")
        )
    if result.ok:
        lines.append("VERIFIED")
    else:
        lines.append("FAILED: " + "; ".join(result.problems or ["unknown problem"]))
    return "\n".join(lines)
