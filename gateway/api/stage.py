"""The stage URL: a PEP 503/691 simple repository of one session, readable without
credentials (R-S1, R-S2)."""

from __future__ import annotations

import re
from datetime import timedelta

from aiohttp import web
from packaging.utils import InvalidName, canonicalize_name

from gateway.api.context import services
from gateway.domain import clock
from gateway.gates.provenance import INTEGRITY_V1_JSON
from gateway.protocol.problems import ErrorItem, Problem, not_found
from gateway.stage import simple
from gateway.stage.page import SECURITY_HEADERS
from gateway.stage.preview import render_page

PROVENANCE = ".provenance"  # beside the file, as ``.metadata`` is (PEP 658)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 20


def _content_type(request: web.Request) -> str:
    chosen = simple.negotiate(request.headers.get("Accept"))
    if chosen is None:
        raise Problem(
            406,
            "not-acceptable",
            "The stage serves PEP 691 JSON or PEP 503 HTML.",
            [ErrorItem("Accept", request.headers.get("Accept", ""))],
        )
    return chosen


def _page(body: str, content_type: str) -> web.Response:
    response = web.Response(text=body, content_type=content_type, charset="utf-8")
    response.headers["Vary"] = "Accept"
    return response


async def root(request: web.Request) -> web.Response:
    svc = services(request)
    token = request.match_info["token"]
    session, _ = await svc.stage.open(token)
    content_type = _content_type(request)
    project_url = svc.urls.stage(token) + session.name + "/"
    preview_url = svc.urls.stage(token) + "+preview/"
    body = simple.root_page(session.name, project_url, content_type, preview_url)
    return _page(body, content_type)


async def preview(request: web.Request) -> web.Response:
    """The release as a person reviews it before publishing (docs/preview.md)."""
    svc = services(request)
    token = request.match_info["token"]
    page = await svc.preview.preview(token, svc.urls.stage(token))
    response = web.Response(text=render_page(page), content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response


async def project(request: web.Request) -> web.Response:
    svc = services(request)
    token = request.match_info["token"]
    session, uploads = await svc.stage.open(token)
    requested = request.match_info["project"]
    try:
        normalized = canonicalize_name(requested, validate=True)
    except InvalidName:
        raise not_found("project") from None
    if normalized != session.name:
        raise not_found("project")
    if requested != normalized:
        raise web.HTTPMovedPermanently(svc.urls.stage(token) + normalized + "/")
    content_type = _content_type(request)
    files = [
        simple.StagedFile(
            filename=u.filename,
            url=svc.urls.stage(token) + "+files/" + u.filename,
            sha256=u.committed.digests["sha256"],
            size=u.committed.size,
            requires_python=u.metadata.requires_python if u.metadata else None,
            metadata_sha256=u.metadata.sha256 if u.metadata else None,
            upload_time=clock.rfc3339(u.created_at),
            provenance=(
                svc.urls.stage(token) + "+files/" + u.filename + PROVENANCE
                if u.has_attestations
                else None
            ),
        )
        for u in uploads
        if u.committed is not None
    ]
    body = simple.project_page(session.name, [session.version], files, content_type)
    return _page(body, content_type)


async def download(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    token, name = request.match_info["token"], request.match_info["filename"]
    if name.endswith(PROVENANCE):
        return await _staged_provenance(request, token, name.removesuffix(PROVENANCE))
    if name.endswith(".metadata"):
        session, upload = await svc.stage.staged(token, name.removesuffix(".metadata"))
        body = await svc.stage.metadata(session, upload)
        return web.Response(body=body, content_type="application/octet-stream")
    session, upload = await svc.stage.staged(token, name)
    assert upload.committed is not None
    settings = svc.settings.stage
    if settings.redirect_downloads:
        lifetime = timedelta(seconds=settings.presign_seconds)
        raise web.HTTPFound(await svc.stage.presigned_url(session, upload, lifetime))
    etag = f'"{upload.committed.digests["sha256"]}"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    size = upload.committed.size
    byte_range = _requested_range(request.headers.get("Range"), size)
    response = web.StreamResponse(
        status=206 if byte_range else 200,
        headers={"ETag": etag, "Accept-Ranges": "bytes"},
    )
    response.content_type = "application/octet-stream"
    start, end = byte_range or (0, size - 1)
    response.content_length = end - start + 1
    if byte_range:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    await response.prepare(request)
    if request.method != "HEAD":
        key = svc.stage.bytes_key(session, upload)
        async for chunk in svc.stage.stream(key, byte_range):
            await response.write(chunk)
    await response.write_eof()
    return response


async def _staged_provenance(request: web.Request, token: str, filename: str) -> web.Response:
    """PEP 740 provenance of a staged file, as the integrity API answers for a published one."""
    svc = services(request)
    session, upload = await svc.stage.staged(token, filename)
    document = await svc.provenance.staged(session, upload)
    if document is None:
        raise not_found("provenance")
    return web.Response(body=document, content_type=INTEGRITY_V1_JSON)


def _requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (first, last), None for the whole file (RFC 9110 §14)."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges, or another unit: answering in full is allowed
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the final N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise Problem(
            416,
            "range-not-satisfiable",
            f"The file has {size} bytes.",
            [ErrorItem("Range", header)],
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end
