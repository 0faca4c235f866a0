"""The JSON API under ``/api/v1`` (bearer token): submission and queries.

Queries answer what the pages show (:mod:`auditkit.registry.views`, filtered by the token's
scope); a deployment or audit outside the scope is 404, exactly like a missing one.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from auditkit.errors import AuditkitError, first_line
from auditkit.registry.db import session
from auditkit.registry.models import Organisation
from auditkit.registry.web import files
from auditkit.registry.web.common import API, Refusal, api_principal, context, status_for, today
from auditkit.registry.web.security import BodyTooLarge, limited

router = APIRouter(prefix=API, tags=["registry"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "deployment"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The signed PDF report.",
                        },
                        "deployment": {
                            "type": "string",
                            "description": "ORGANISATION/SITE/STATION/MODEL; MODEL is the "
                            "model card's name.",
                        },
                    },
                }
            }
        },
    }
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _upload_name(filename: str | None) -> str:
    """A harmless file name for the upload (events and messages name it)."""
    base = Path((filename or "").replace("\\", "/")).name
    safe = _SAFE_NAME.sub("_", base).strip("._")[:100]
    return safe or "report.pdf"


@router.get("/health", summary="Whether the server is up (no credentials needed).")
def health() -> dict[str, bool]:
    return {"ok": True}


@router.get("/whoami", summary="The account behind the token and what it may read.")
def whoami(request: Request) -> dict[str, Any]:
    principal = api_principal(request)
    orgs = principal.scope.organisations
    return {
        "username": principal.username,
        "role": principal.role,
        "organisation_id": principal.organisation_id,
        "organisations": None if orgs is None else sorted(orgs),
    }


@router.post(
    "/audits",
    status_code=201,
    summary="Submit a signed report: verified (signatures against the registry's trust roots, "
    "verify --recompute) and registered, or refused with the reason.",
    openapi_extra=_UPLOAD_BODY,
    responses={
        401: {"description": "no valid token"},
        403: {"description": "the account may not submit for this organisation"},
        409: {"description": "duplicate"},
        413: {"description": "upload too large"},
        422: {"description": "malformed or refused report (reason in detail)"},
    },
)
async def submit_audit(request: Request) -> JSONResponse:
    principal = await run_in_threadpool(api_principal, request)
    ctx = context(request)
    limit = ctx.settings.max_upload_bytes
    too_large = HTTPException(413, f"the upload is larger than the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    bounded = Request(request.scope, limited(request.receive, limit))
    try:
        form = await bounded.form(max_files=1, max_fields=4)
    except BodyTooLarge:
        raise too_large from None
    folder = Path(tempfile.mkdtemp(prefix="auditkit-upload-"))
    try:
        upload, deployment = form.get("file"), form.get("deployment")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "the form needs a file field with the signed PDF")
        if not isinstance(deployment, str) or not deployment.strip():
            raise HTTPException(422, "the form needs a deployment field: ORG/SITE/STATION/MODEL")
        path = folder / _upload_name(upload.filename)
        with path.open("wb") as out:
            shutil.copyfileobj(upload.file, out)
        done = await run_in_threadpool(_submit, ctx.location, path, deployment, principal)
    finally:
        await form.close()
        shutil.rmtree(folder, ignore_errors=True)
    return JSONResponse(
        {
            "kind": done.kind,
            "report_id": done.report_id,
            "audit_id": done.audit_id,
            "pdf_sha256": done.pdf_sha256,
            "verdict": done.verdict,
            "event_seq": done.event_seq,
            "deployment": deployment,
        },
        status_code=201,
    )


def _submit(location: Any, path: Path, deployment: str, principal: Any) -> Any:
    from auditkit.registry.ingest import submit

    try:
        return submit(location, path, deployment, trust=None, submitter=principal)
    except AuditkitError as exc:
        # the reason names the upload by its own name, not the server's temporary folder
        reason = first_line(exc, 500).replace(f"{path.parent}/", "")
        raise Refusal(status_for(exc), reason, exc.exit_code) from None


@router.get("/organisations", summary="Every organisation (regulators only).")
def organisations(request: Request) -> dict[str, Any]:
    principal = api_principal(request)
    if principal.role != "regulator":
        raise HTTPException(403, "only a regulator's account may list every organisation")
    with session(context(request).engine) as s:
        rows = s.scalars(select(Organisation).order_by(Organisation.name))
        return {
            "organisations": [{"id": o.id, "name": o.name, "kind": o.kind} for o in rows],
        }


@router.get("/deployments", summary="The fleet: every deployment in the token's scope.")
def deployments(
    request: Request,
    organisation: str | None = None,
    site: str | None = None,
    task: str | None = None,
    verdict: str | None = None,
    rubric: str | None = None,
    q: str | None = None,
    page: int = 1,
) -> dict[str, Any]:
    principal = api_principal(request)  # before anything else: no token, no work
    from auditkit.registry import views

    filters = views.FleetFilters(
        organisation=organisation or None,
        site=site or None,
        task=task or None,
        verdict=verdict or None,
        rubric=rubric or None,
        q=q or None,
        page=max(1, page),
    )
    with session(context(request).engine) as s:
        return views.as_json(views.fleet(s, principal.scope, filters, today=today()))


@router.get("/deployments/{deployment_id}", summary="One deployment and its audit history.")
def deployment(request: Request, deployment_id: int) -> dict[str, Any]:
    principal = api_principal(request)  # before anything else: no token, no work
    from auditkit.registry import views

    with session(context(request).engine) as s:
        view = views.deployment(s, principal.scope, deployment_id, today=today())
        if view is None:
            raise HTTPException(404, f"no deployment {deployment_id}")
        return views.as_json(view)


@router.get("/audits/{audit_id}", summary="One audit: criteria, signatures, files.")
def audit(request: Request, audit_id: int) -> dict[str, Any]:
    principal = api_principal(request)  # before anything else: no token, no work
    from auditkit.registry import views

    with session(context(request).engine) as s:
        view = views.audit(s, principal.scope, audit_id)
        if view is None:
            raise HTTPException(404, f"no audit {audit_id}")
        return views.as_json(view)


@router.get(
    "/audits/{audit_id}/report.pdf",
    summary="The original signed PDF, byte for byte as submitted.",
    response_class=Response,
)
def report_pdf(request: Request, audit_id: int) -> Response:
    principal = api_principal(request)
    return files.report_response(context(request), principal.scope, audit_id)


@router.get(
    "/audits/{audit_id}/evidence/{name}",
    summary="One evidence file as signed (embedded in the report's signed revision).",
    response_class=Response,
)
def evidence(request: Request, audit_id: int, name: str) -> Response:
    principal = api_principal(request)
    return files.evidence_response(context(request), principal.scope, audit_id, name)
