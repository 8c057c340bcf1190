"""The audit journal at the HTTP edge: what each request tells about its caller, refusals
recorded on their way out, the helpers handlers call once an action succeeded, and the reader
(``GET {api root}audit``)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Mapping, Sequence

from aiohttp import web
from packaging.utils import InvalidName, canonicalize_name
from pydantic import IPvAnyNetwork, ValidationError

from gateway.api.access import authenticate
from gateway.api.bodies import validation_errors
from gateway.api.context import SERVICES, services
from gateway.api.middleware import REQUEST_ID_KEY, Handler
from gateway.auth.config import basic_username
from gateway.domain.records import PublishingSession
from gateway.protocol import audit
from gateway.protocol.audit import AuditFile, AuditQuery
from gateway.protocol.problems import ErrorItem, Problem
from gateway.services.audit import REQUEST, RequestFacts, refused

_MAX_HEADER = 512  # of a user agent or forwarded address kept in an event


def client_address(
    remote: str | None, forwarded_for: str | None, trusted: Sequence[IPvAnyNetwork]
) -> str | None:
    """The caller's address: ``remote``, or — while the hop that sent the request is a trusted
    proxy — the address that proxy says it forwarded for (X-Forwarded-For, right to left)."""
    address = remote
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    while hops and address is not None and _is_trusted(address, trusted):
        address = hops.pop()[:_MAX_HEADER]
    return address


def _is_trusted(address: str, trusted: Sequence[IPvAnyNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


@web.middleware
async def audit_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Make the request's facts available to whoever records an event, and record the
    authentication and permission refusals that access control raised."""
    trusted = request.app[SERVICES].settings.server.trusted_proxies
    facts = RequestFacts(
        client_address=client_address(
            request.remote, request.headers.get("X-Forwarded-For"), trusted
        ),
        user_agent=request.headers.get("User-Agent", "")[:_MAX_HEADER] or None,
        request_id=request.get(REQUEST_ID_KEY),
    )
    # Work the request spawns (a deferred publish, a background validation) copies the
    # context, and so records this request's facts; the next request on the connection gets
    # its own.
    token = REQUEST.set(facts)
    try:
        response = await handler(request)
    except Problem as problem:
        if facts.refusal is not None and problem.status in (401, 403):
            await _record_refusal(request, facts.refusal, problem.status)
        raise
    else:  # the legacy endpoint answers its refusals itself, with a reason phrase
        if facts.refusal is not None and response.status in (401, 403):
            await _record_refusal(request, facts.refusal, response.status)
        return response
    finally:
        REQUEST.reset(token)


async def _record_refusal(
    request: web.Request, refusal: tuple[str | None, str | None, str], status: int
) -> None:
    action, project, detail = refusal
    if action is None:  # the index refused; its status says how
        action = audit.AUTHENTICATION_REFUSED if status == 401 else audit.PERMISSION_REFUSED
    await services(request).audit.record(
        action, project=project, outcome=audit.REFUSED, detail=detail
    )


async def session_event(
    request: web.Request,
    action: str,
    session: PublishingSession,
    files: list[AuditFile] | None = None,
) -> None:
    """Record that ``action`` succeeded on ``session`` (call it before answering)."""
    await services(request).audit.record(action, session=session, files=files)


async def recorded(
    request: web.Request,
    action: str,
    session: PublishingSession,
    answer: Awaitable[web.Response],
) -> web.Response:
    """Record ``action`` while its answer is prepared (two S3 round trips at once, not one
    after the other); the answer leaves only once the event is stored."""
    response, _ = await asyncio.gather(answer, session_event(request, action, session))
    return response


def legacy_upload_starts(request: web.Request, fields: Mapping[str, str]) -> None:
    """A legacy upload goes to the index with the caller's credentials: a 401 or 403 it
    answers is journaled as a refusal of the user the request named (never its password)."""
    caller = _legacy_caller(request)
    who = f" (Basic user {caller.name})" if caller else ""
    refused(None, _project(fields), f"The index refused the upload{who}.")


async def legacy_upload_event(
    request: web.Request, fields: Mapping[str, str], filename: str | None, staged: bool = False
) -> None:
    """Record a legacy upload the index (or, ``staged``, a publishing session) accepted. The
    caller is the pass-through user when the gateway did not authenticate one itself."""
    svc = services(request)
    facts = REQUEST.get()
    if facts is not None and facts.principal is None:
        facts.principal = _legacy_caller(request)
    digest = fields.get("sha256_digest") or None
    await svc.audit.record(
        audit.LEGACY_STAGED if staged else audit.LEGACY_PASSED_THROUGH,
        project=_project(fields),
        version=fields.get("version"),
        files=[AuditFile(filename=filename, sha256=digest)] if filename else [],
    )


def _project(fields: Mapping[str, str]) -> str | None:
    try:
        return canonicalize_name(fields.get("name", ""), validate=True)
    except InvalidName:
        return None


def _legacy_caller(request: web.Request) -> audit.AuditPrincipal | None:
    """The index user a pass-through upload authenticated as (the password stays out)."""
    username = basic_username(request)
    if username is None:
        return None
    return audit.AuditPrincipal(id=f"backend:{username}", name=username, kind="backend")


async def read_journal(request: web.Request) -> web.Response:
    """``GET {api root}audit?project=&since=&cursor=&limit=``: events, newest first."""
    svc = services(request)
    principal = await authenticate(request)
    if not principal.audit:
        detail = f"{principal.display_name} may not read the audit journal."
        refused(audit.PERMISSION_REFUSED, None, detail)
        raise Problem(403, "forbidden", detail, [ErrorItem("principal", "no audit permission")])
    try:
        query = AuditQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise Problem(
            400, "invalid-query", "The query parameters are not valid.", validation_errors(exc)
        ) from None
    page = await svc.audit.read(query.project, query.since, query.cursor, query.limit)
    return web.json_response(page.model_dump(mode="json", exclude_none=True))
