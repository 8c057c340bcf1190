"""File-upload-session endpoints and the http-post-bytes mechanism (R-F1..F14)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from gateway.api.access import authenticate, authorize
from gateway.api.audit import recorded
from gateway.api.bodies import (
    body_chunks,
    parse_json,
    read_bounded,
    read_request,
    require_content_type,
    validation_errors,
)
from gateway.api.context import services
from gateway.api.errors import problem_for
from gateway.api.render import file_body, upload_json
from gateway.api.sessions import load_authorized_session
from gateway.domain.errors import DomainError
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState
from gateway.protocol import audit
from gateway.protocol.media import OCTET_STREAM, PARTIAL_UPLOAD
from gateway.protocol.models import (
    Attestation,
    EmptyRequest,
    ExtendRequest,
    FileCreateRequest,
)
from gateway.protocol.problems import ErrorItem, Problem

_ATTESTATIONS = TypeAdapter(list[Attestation])


def _retry_after(request: web.Request) -> dict[str, str]:
    return {"Retry-After": str(services(request).settings.uploads.retry_after)}


async def _render(
    request: web.Request,
    upload: FileUpload,
    session: PublishingSession,
    status: int = 200,
    location: bool = False,
) -> web.Response:
    svc = services(request)
    headers = _retry_after(request)
    if location:
        headers["Location"] = svc.urls.file(session.id, upload.id)
    parts = None
    if upload.presigned is not None and upload.status == FileState.PENDING:
        parts = await svc.files.presigned_parts(session, upload)
    body = file_body(upload, session, svc.urls, parts, svc.settings.uploads.presign_seconds)
    return upload_json(body, status=status, headers=headers)


async def create_file(request: web.Request) -> web.Response:
    svc = services(request)
    session = await load_authorized_session(request)
    body = await read_request(request, FileCreateRequest, svc.settings.uploads.max_json_body)
    try:
        upload = await svc.files.create(session, body)
    except DomainError as refused:
        if refused.existing is None:
            raise
        # The same file declared again while its upload is pending: a retry whose first
        # answer was lost, possibly through another replica. Location names the upload to
        # carry on with, as a session create's 409 does (R-W12).
        problem = problem_for(refused)
        location = svc.urls.file(session.id, refused.existing)
        raise replace(problem, headers={**problem.headers, "Location": location}) from None
    return await _render(request, upload, session, status=202, location=True)


async def file_status(request: web.Request) -> web.Response:
    session = await load_authorized_session(request)
    upload = await services(request).files.get(session.id, request.match_info["fid"])
    return await _render(request, upload, session)


async def delete_file(request: web.Request) -> web.Response:
    session = await load_authorized_session(request)
    await services(request).files.delete(session, request.match_info["fid"])
    return web.Response(status=204)


async def extend_file(request: web.Request) -> web.Response:
    """A file upload lives as long as its session, so extending it extends the session."""
    svc = services(request)
    session = await load_authorized_session(request)
    upload = await svc.files.get(session.id, request.match_info["fid"])
    body = await read_request(request, ExtendRequest, svc.settings.uploads.max_json_body)
    session = await svc.sessions.extend(session.id, body.extend_for)
    rendered = _render(request, upload, session)
    return await recorded(request, audit.SESSION_EXTENDED, session, rendered)


async def complete_file(request: web.Request) -> web.Response:
    svc = services(request)
    session = await load_authorized_session(request)
    await read_request(request, EmptyRequest, svc.settings.uploads.max_json_body)
    upload, done = await svc.files.complete(session, request.match_info["fid"])
    return await _render(request, upload, session, status=201 if done else 202, location=True)


async def receive_bytes(request: web.Request) -> web.Response:
    """``http-post-bytes``: the body is the file, streamed to S3 as it arrives (R-F8)."""
    session = await load_authorized_session(request)
    require_content_type(request, OCTET_STREAM)
    upload = await services(request).files.receive(
        session,
        request.match_info["fid"],
        body_chunks(request),
        request.content_length,
    )
    return await _render(request, upload, session)


async def attach_attestations(request: web.Request) -> web.Response:
    """PEP 740 attestations for the file, before completion (R-F9), verified (R-W11)."""
    svc = services(request)
    principal = await authenticate(request)  # its OIDC claims, if any, must match (R-W11)
    session = await svc.sessions.get(request.match_info["sid"])
    authorize(principal, session.name)
    require_content_type(request, "application/json")
    raw = await read_bounded(request, svc.settings.uploads.max_attestations_body)
    payload = parse_json(raw)
    try:
        attestations = _ATTESTATIONS.validate_python(payload)
    except ValidationError as exc:
        raise Problem(
            400,
            "invalid-attestation",
            "The body is not a JSON array of PEP 740 attestations.",
            validation_errors(exc),
        ) from None
    if not attestations:
        raise Problem(400, "invalid-attestation", "At least one attestation is required.")
    fid = request.match_info["fid"]
    target = await svc.files.get(session.id, fid)
    sha256 = target.hashes.get("sha256")
    documents = cast(list[Any], payload)
    await svc.gates.check(session, target.filename, sha256, documents, dict(principal.claims))
    document = json.dumps(payload, separators=(",", ":")).encode()
    upload = await svc.files.attach_attestations(session, fid, document)
    return await _render(request, upload, session)


async def resumable_offset(request: web.Request) -> web.Response:
    """``vnd-uploadgateway-resumable-v1``: how far the upload got (HEAD, as in the draft)."""
    session = await load_authorized_session(request)
    offset, complete = await services(request).resumable.offset(session, request.match_info["fid"])
    return web.Response(status=204, headers=_progress_headers(offset, complete))


async def resumable_append(request: web.Request) -> web.Response:
    """``vnd-uploadgateway-resumable-v1``: append the body at ``Upload-Offset`` (PATCH)."""
    session = await load_authorized_session(request)
    # The draft's media type, or plain octet-stream: what generic HTTP tools send (issue #15).
    require_content_type(request, PARTIAL_UPLOAD, OCTET_STREAM)
    offset = _upload_offset(request)
    finish = _upload_complete(request)
    offset, complete = await services(request).resumable.append(
        session,
        request.match_info["fid"],
        body_chunks(request),
        offset,
        request.content_length,
        finish,
    )
    return web.Response(status=204, headers=_progress_headers(offset, complete))


def _progress_headers(offset: int, complete: bool) -> dict[str, str]:
    return {
        "Upload-Offset": str(offset),
        "Upload-Complete": "?1" if complete else "?0",
        "Cache-Control": "no-store",
    }


def _upload_offset(request: web.Request) -> int:
    value = request.headers.get("Upload-Offset", "")
    if not value.isdigit() or len(value) > 19:
        raise Problem(
            400,
            "invalid-upload-offset",
            "Upload-Offset must be the non-negative byte offset the body starts at.",
            [ErrorItem("Upload-Offset", value or "missing")],
        )
    return int(value)


def _upload_complete(request: web.Request) -> bool:
    value = request.headers.get("Upload-Complete", "")
    if value not in ("?0", "?1"):
        raise Problem(
            400,
            "invalid-upload-complete",
            "Upload-Complete must be ?1 on the request carrying the last byte and ?0 otherwise.",
            [ErrorItem("Upload-Complete", value or "missing")],
        )
    return value == "?1"
