"""Downloads: an audit's original signed PDF and its evidence files, within a scope.

The PDF is the blob stored under the audit's ``pdf_sha256`` (the file first submitted); an
evidence file is read from the revision the author signed, and served only when its bytes
still have the SHA-256 recorded at submission. Outside the scope, missing, or a stored file
that no longer matches: 404, 404 and 500 (the registry was altered: ``registry check``).
"""

from __future__ import annotations

import hashlib
import re

from fastapi import HTTPException
from fastapi.responses import Response

from auditkit.registry import blobs
from auditkit.registry.db import session
from auditkit.registry.models import Audit, Deployment
from auditkit.registry.scope import Scope
from auditkit.registry.web.common import Context

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TYPES = {".json": "application/json", ".parquet": "application/vnd.apache.parquet"}


def audit_in_scope(ctx: Context, scope: Scope, audit_id: int) -> tuple[str, str, dict[str, str]]:
    """(report ID, PDF SHA-256, evidence name → SHA-256) of an audit the scope allows; 404
    otherwise."""
    with session(ctx.engine) as s:
        audit = s.get(Audit, audit_id)
        dep = s.get(Deployment, audit.deployment_id) if audit is not None else None
        if audit is None or dep is None or not scope.allows(dep.organisation_id):
            raise HTTPException(404, f"no audit {audit_id}")
        return audit.report_id, audit.pdf_sha256, dict(audit.evidence or {})


def _stored_pdf(ctx: Context, sha: str) -> bytes:
    path = blobs.blob_path(ctx.location.blobs, sha)
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    if hashlib.sha256(data).hexdigest() != sha:
        raise HTTPException(
            500, "the stored PDF is missing or altered: run auditkit registry check"
        )
    return data


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{_SAFE.sub("_", name)}"'}


def report_response(ctx: Context, scope: Scope, audit_id: int) -> Response:
    report_id, sha, _evidence = audit_in_scope(ctx, scope, audit_id)
    data = _stored_pdf(ctx, sha)
    return Response(
        data, media_type="application/pdf", headers=_attachment(f"report-{report_id}.pdf")
    )


def evidence_response(ctx: Context, scope: Scope, audit_id: int, name: str) -> Response:
    from auditkit.registry.extract import signed_evidence

    _report_id, sha, evidence = audit_in_scope(ctx, scope, audit_id)
    if name not in evidence:
        raise HTTPException(404, f"audit {audit_id} has no evidence file {name}")
    data = signed_evidence(_stored_pdf(ctx, sha)).get(name)
    if data is None or hashlib.sha256(data).hexdigest() != evidence[name]:
        raise HTTPException(500, "the stored evidence is altered: run auditkit registry check")
    suffix = name[name.rfind(".") :] if "." in name else ""
    return Response(
        data,
        media_type=_TYPES.get(suffix, "application/octet-stream"),
        headers=_attachment(name),
    )
