"""``POST {session}/approve`` (R-W11): the caller approves the release's current files.
Answers who has approved the files as they are now and how many the policy requires."""

from __future__ import annotations

import json

from aiohttp import web

from gateway.api.access import authenticate
from gateway.api.bodies import read_request
from gateway.api.context import services
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.protocol.models import EmptyRequest

META = {"api-version": "2.0"}


async def approve_session(request: web.Request) -> web.Response:
    svc = services(request)
    principal = await authenticate(request)  # an approver need not be allowed to upload
    session = await svc.sessions.get(request.match_info["sid"])
    await read_request(request, EmptyRequest, svc.settings.uploads.max_json_body)
    given = await svc.approvals.approve(session, principal)
    policy = svc.approvals.policy_for(session.name)
    body = {
        "meta": META,
        "approvals": [{"principal": a.principal, "at": a.at.isoformat()} for a in given],
        "required": policy.approvals if policy else 0,
    }
    return web.Response(body=json.dumps(body), content_type=UPLOAD_V2_JSON)
