"""``registry submit --server URL``: submit a signed report to a registry server over its API
(standard library only: the CLI needs no HTTP client package).

The token comes from the environment (``AUDITKIT_TOKEN``), never from an argument, so it is
not in shell history or the process list. The answer is the server's
(``POST /api/v1/audits``); a refusal becomes an :class:`auditkit.errors.AuditkitError` of one
line with the server's reason and the exit code a local submit would have given: 1 when the
report fails verification, 77 when the server does not accept the token (401) or the
account may not submit for the organisation (403), 5 for every other refusal (duplicate,
size, bad deployment, no trust root) and for a missing ``AUDITKIT_TOKEN``, 74 when the server
cannot be reached or cannot write its registry.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitError, ExitCode, InputError, OutputError

TOKEN_VARIABLE = "AUDITKIT_TOKEN"
TIMEOUT_SECONDS = 300.0  # verification with --recompute of a large report takes a while


class RemoteRefused(AuditkitError):
    """The server refused the submission (its reason, and the matching exit code)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def token_from_environment() -> str:
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise InputError(
            f"--server needs an API token in the environment variable {TOKEN_VARIABLE} "
            "(never on the command line)"
        )
    return token


def multipart(fields: dict[str, str], name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (RFC 7578) with text ``fields`` and one file; returns
    (body, content type)."""
    boundary = "auditkit-" + secrets.token_hex(16)
    parts: list[bytes] = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
        )
    safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{safe}"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _reason(error: urllib.error.HTTPError) -> tuple[str, int | None]:
    try:
        body = json.loads(error.read().decode("utf-8"))
    except (ValueError, OSError):
        return error.reason or f"HTTP {error.code}", None
    detail = body.get("detail") if isinstance(body, dict) else None
    code = body.get("exit_code") if isinstance(body, dict) else None
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return text, code if isinstance(code, int) else None


def submit(server: str, pdf: Path, deployment: str, *, token: str) -> dict[str, Any]:
    """POST the report to ``server``'s ``/api/v1/audits``; the server's JSON answer (kind,
    report_id, audit_id, pdf_sha256, verdict, event_seq). Errors: see the module doc."""
    base = server.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InputError(f"--server {server}: give the server's http:// or https:// URL")
    try:
        data = Path(pdf).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {pdf}: {exc.strerror or exc}") from None
    body, content_type = multipart({"deployment": deployment}, "file", Path(pdf).name, data)
    request = urllib.request.Request(
        base + "/api/v1/audits",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": content_type,
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            result: dict[str, Any] = json.loads(answer.read().decode("utf-8"))
            return result
    except urllib.error.HTTPError as exc:
        reason, code = _reason(exc)
        if exc.code >= 500:
            raise OutputError(f"server {base} failed (HTTP {exc.code}): {reason}") from None
        if exc.code in (401, 403):
            code = ExitCode.PERMISSION  # no valid token, or the account may not submit this
        elif code not in (ExitCode.VERIFICATION_FAILED, ExitCode.PERMISSION):
            code = ExitCode.INPUT  # only the codes a local submit gives are taken from a server
        raise RemoteRefused(
            f"server {base} refused {Path(pdf).name} (HTTP {exc.code}): {reason}", code
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise OutputError(f"server {base} cannot be reached: {why}") from None


def submit_to_server(
    server: str, pdf: Path, deployment: str, *, trust: list[Path] | None = None
) -> Any:
    """:func:`submit` with the token from the environment; the answer as the
    :class:`auditkit.registry.ingest.Submission` a local submit returns. ``trust`` must be
    empty: the server checks against its own trust roots, never the client's."""
    from auditkit.registry.ingest import Submission

    if trust:
        raise InputError(
            "--trust is for a local submit: the server checks the signatures against its own "
            "trust roots (auditkit registry trust add on the server)"
        )
    answer = submit(server, pdf, deployment, token=token_from_environment())
    try:
        return Submission(
            kind=str(answer["kind"]),
            report_id=str(answer["report_id"]),
            audit_id=int(answer["audit_id"]),
            pdf_sha256=str(answer["pdf_sha256"]),
            verdict=str(answer["verdict"]),
            event_seq=int(answer["event_seq"]),
        )
    except (KeyError, TypeError, ValueError):
        raise OutputError(f"server {server} answered without the submission's fields") from None
