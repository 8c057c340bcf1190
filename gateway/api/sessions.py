"""Publishing-session endpoints: create, status, extend, cancel (R-P1..P3, P5, P6, P10)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gateway.api.access import authenticate, authorize
from gateway.api.audit import recorded, session_event
from gateway.api.bodies import read_request
from gateway.api.context import services
from gateway.api.render import session_document
from gateway.auth.principals import may_approve
from gateway.distribution.releases import normalize_release
from gateway.domain.errors import DomainError, refused_as_invalid
from gateway.domain.records import FileSummary, FileUpload, PublishingSession
from gateway.domain.states import SessionState, is_terminal
from gateway.protocol import audit
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.protocol.models import EmptyRequest, ExtendRequest, SessionCreateRequest
from gateway.protocol.problems import ErrorItem, Problem
from gateway.services.session_status import Status


async def create_session(request: web.Request) -> web.Response:
    svc = services(request)
    principal = await authenticate(request)
    body = await read_request(request, SessionCreateRequest, svc.settings.uploads.max_json_body)
    with refused_as_invalid():
        name, _ = normalize_release(body.name, body.version)
    # 403 before 409, so an unauthorized caller never learns a session exists (R-P3).
    authorize(principal, name)
    first_release = await svc.names.is_first_release(name)
    if first_release:
        await svc.names.check(name, principal.id)
    session, created = await svc.sessions.create(body.name, body.version, principal.id)
    if created and first_release:
        try:
            await svc.names.reserve(name, principal.id, session.id)  # R-P4
        except DomainError:
            await svc.sessions.cancel(session.id)  # lost a race for the name
            raise
    location = svc.urls.session(session.id)
    if not created:
        raise Problem(
            409,
            "session-exists",
            f"{session.name} {session.version} already has a session in progress.",
            [ErrorItem("version", "a non-terminal session exists; use its Location")],
            headers={"Location": location},
            extensions={"session-token": session.id},
        )
    # A session this request just created has no files yet: no listing to render it.
    rendered = _render(request, session, status=201, headers={"Location": location}, files={})
    return await recorded(request, audit.SESSION_CREATED, session, rendered)


async def session_status(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    status = await services(request).status.read(request.match_info["sid"])
    if not may_approve(principal, status.session.name):  # an approver reads it (R-W11)
        authorize(principal, status.session.name)
    return await _render_status(request, status)


async def release_session(request: web.Request) -> web.Response:
    """The live session of ``{project}/{version}``, for whoever may read its status: an
    approver finds the release it approves without creating a session (R-W11)."""
    principal = await authenticate(request)
    project, version = request.match_info["project"], request.match_info["version"]
    if not may_approve(principal, project):
        authorize(principal, project)
    session = await services(request).sessions.of_release(project, version)
    return await _render_status(request, Status(session, listed=None))


async def _render_status(request: web.Request, status: Status) -> web.Response:
    """The session's document with what its release gates say (who approved, what is
    missing) when a policy covers the project."""
    svc = services(request)
    session = status.session
    if not svc.gate_status.covers(session.name) or is_terminal(session.status):
        return await _render(request, session, files=await svc.status.files(status))
    uploads = await svc.session_files.records(session.id)
    files = svc.session_files.visible(uploads)
    gates = await svc.gate_status.describe(session, list(files.values()))
    body = session_document(session, files, svc.urls, svc.mechanisms, gates)
    return web.Response(body=body, content_type=UPLOAD_V2_JSON)


async def extend_session(request: web.Request) -> web.Response:
    svc = services(request)
    session = await load_authorized_session(request)
    body = await read_request(request, ExtendRequest, svc.settings.uploads.max_json_body)
    session = await svc.sessions.extend(session.id, body.extend_for)
    return await recorded(request, audit.SESSION_EXTENDED, session, _render(request, session))


async def cancel_session(request: web.Request) -> web.Response:
    svc = services(request)
    principal = await authenticate(request)
    session = await svc.sessions.get(request.match_info["sid"])
    if not svc.approvals.authorize_cancel(session, principal):  # R-W11 cancel_requires
        authorize(principal, session.name)
    session = await svc.sessions.cancel(session.id)
    await session_event(request, audit.SESSION_CANCELED, session)
    return web.Response(status=204)


async def load_authorized_session(request: web.Request) -> PublishingSession:
    """The session in the URL, after checking the caller may upload to its project now (R-G7)."""
    svc = services(request)
    principal = await authenticate(request)
    session = await svc.sessions.get(request.match_info["sid"])
    authorize(principal, session.name)
    return session


async def _render(
    request: web.Request,
    session: PublishingSession,
    status: int = 200,
    headers: dict[str, str] | None = None,
    files: Mapping[str, FileSummary | FileUpload] | None = None,
) -> web.Response:
    """The session's document; its files are listed unless the caller already knows them."""
    svc = services(request)
    if files is None:
        files = await svc.session_files.listed(session)
    body = session_document(session, files, svc.urls, svc.mechanisms)
    return web.Response(status=status, body=body, content_type=UPLOAD_V2_JSON, headers=headers)


async def publish_session(request: web.Request) -> web.Response:
    """Publish onto the backing index: 201 ``published`` or 202 ``processing`` (R-P7)."""
    svc = services(request)
    principal = await authenticate(request)
    session, etag = await svc.sessions.get_versioned(request.match_info["sid"])
    authorize(principal, session.name)
    await read_request(request, EmptyRequest, svc.settings.uploads.max_json_body)
    session = await svc.publisher.publish(session, principal, etag)
    status = 201 if session.status == SessionState.PUBLISHED else 202
    headers = {"Location": svc.urls.session(session.id)}
    if status == 202:
        headers["Retry-After"] = str(svc.settings.uploads.retry_after)
    return await _render(request, session, status=status, headers=headers)
