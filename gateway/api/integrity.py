"""Warehouse's integrity API for files published through the gateway (PEP 740, R-W11):
``GET /integrity/{project}/{version}/{filename}/provenance``, answered in
``application/vnd.pypi.integrity.v1+json``, ``404`` when the gateway keeps no provenance for
the file and ``406`` when the Accept header admits nothing it can answer."""

from __future__ import annotations

from aiohttp import web

from gateway.api.context import services
from gateway.gates.provenance import INTEGRITY_V1_JSON
from gateway.protocol.media import parse_accept
from gateway.protocol.problems import ErrorItem, Problem

_ACCEPTED = (INTEGRITY_V1_JSON, "application/*", "*/*")


async def provenance(request: web.Request) -> web.Response:
    accept = request.headers.get("Accept", "")
    if accept.strip() and not any(m in _ACCEPTED and q > 0 for m, q in parse_accept(accept)):
        raise Problem(
            406,
            "not-acceptable",
            f"Provenance is served as {INTEGRITY_V1_JSON} only.",
            [ErrorItem("Accept", accept)],
        )
    info = request.match_info
    document = await services(request).provenance.get(
        info["project"], info["version"], info["filename"]
    )
    if document is None:
        raise Problem(
            404,
            "not-found",
            f"No provenance for {info['filename']}.",
            [ErrorItem("url", "no provenance for this file")],
        )
    return web.Response(body=document, content_type=INTEGRITY_V1_JSON)
