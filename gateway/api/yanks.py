"""``PUT`` / ``DELETE {api root}yanks/{project}/{version}``: PEP 592 yank for any index
(R-W10). Plain JSON, like the audit reader: not an Upload 2.0 document."""

from __future__ import annotations

import json

from aiohttp import web
from packaging.utils import InvalidName, canonicalize_name
from pydantic import ValidationError

from gateway.api.access import authenticate
from gateway.api.bodies import validation_errors
from gateway.api.context import services
from gateway.auth.principals import may_yank
from gateway.protocol.audit import PERMISSION_REFUSED
from gateway.protocol.problems import ErrorItem, Problem, not_found
from gateway.protocol.yanks import MAX_REASON, YankRequest
from gateway.services.audit import refused
from gateway.services.yanks import UnknownRelease

_MAX_BODY = MAX_REASON * 8


async def yank(request: web.Request) -> web.Response:
    body = await _request(request)
    return await _set(request, yanked=True, reason=body.reason)


async def unyank(request: web.Request) -> web.Response:
    return await _set(request, yanked=False, reason=None)


async def _set(request: web.Request, *, yanked: bool, reason: str | None) -> web.Response:
    svc = services(request)
    principal = await authenticate(request)
    project = _project(request.match_info["project"])
    if not may_yank(principal, project):
        detail = f"{principal.display_name} may not yank releases of {project}."
        refused(PERMISSION_REFUSED, project, detail)
        raise Problem(403, "forbidden", detail, [ErrorItem("project", project)])
    try:
        state = await svc.yanks.set(
            project, request.match_info["version"], principal.id, yanked, reason
        )
    except UnknownRelease as exc:
        raise Problem(404, "unknown-release", str(exc), [ErrorItem("version", str(exc))]) from None
    return web.json_response(state.model_dump(mode="json"))


def _project(segment: str) -> str:
    try:
        return canonicalize_name(segment, validate=True)
    except InvalidName:
        raise not_found("project") from None


async def _request(request: web.Request) -> YankRequest:
    if not request.can_read_body:
        return YankRequest()
    raw = await request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise Problem(413, "body-too-large", f"A yank request is at most {_MAX_BODY} bytes.")
    try:
        document = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:  # JSON syntax, and bytes that are not UTF-8
        raise Problem(400, "invalid-json", f"The body is not JSON: {exc}") from None
    try:
        return YankRequest.model_validate(document)
    except ValidationError as exc:
        raise Problem(
            400, "invalid-request", "The yank request is not valid.", validation_errors(exc)
        ) from None
