"""The read path's simple API (R-W10): the index's root and project pages answered as PEP 691
JSON or PEP 503 HTML by negotiation, with the facts the gateway knows, and ``{file}.metadata``
(PEP 658) served from them. Everything else under the read prefixes is passed through."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from packaging.utils import (
    InvalidName,
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from gateway.logs import log
from gateway.protocol.problems import ErrorItem, Problem, not_found
from gateway.proxy.index_reader import IndexAnswer, TooLarge
from gateway.proxy.pages import SimplePages
from gateway.proxy.upstream import unreachable
from gateway.services.file_facts import FileFactsService
from gateway.stage import simple

_METADATA = ".metadata"


@dataclass(frozen=True)
class ReadPath:
    """What the read path's handlers use: the pages, the facts, and where the index's simple
    root is on the read path (``/simple/``, or devpi's ``/user/index/+simple/``)."""

    pages: SimplePages
    facts: FileFactsService
    simple_path: str
    public_base: str  # redirects name the gateway's public address


# A metadata file is found by its file's sha256 on the project's listing, which the installer
# asking has nearly always just read through this replica: a listing confirmed this recently
# is used as it is rather than asked of the index a second time (R-W10, docs/reads.md).
METADATA_LISTING_AGE = 10.0


class PassThrough(Exception):
    """The request is not one the simple API answers itself: proxy it as it is."""


async def answer(request: web.Request, reads: ReadPath) -> web.StreamResponse:
    """The simple API's answer to ``request``; PassThrough for everything else."""
    path = request.path
    authorization = request.headers.get("Authorization")
    try:
        if path == reads.simple_path:
            content_type = _content_type(request)
            body = await reads.pages.root(path, content_type, authorization)
            return _page(body, content_type)
        if path.startswith(reads.simple_path) and path.endswith("/"):
            return await _project(request, reads, path[len(reads.simple_path) : -1])
        if path.endswith(_METADATA):
            return await _metadata(request, reads)
    except IndexAnswer as exc:
        # Not a page (404, a redirect, the index's own error): the client gets the index's
        # own answer, and nothing is cached from it.
        log.info("reads.index_answered", path=path, status=exc.status)
        raise PassThrough from None
    except TooLarge:
        raise PassThrough from None
    except ValueError as exc:
        log.warning("reads.index_page_unreadable", path=path, error=str(exc))
        raise Problem(
            502, "index-invalid-page", f"The index answered a page that is not a simple page: {exc}"
        ) from None
    except (aiohttp.ClientError, TimeoutError):
        raise unreachable() from None
    raise PassThrough


async def _project(request: web.Request, reads: ReadPath, segment: str) -> web.Response:
    try:
        project = canonicalize_name(unquote(segment), validate=True)
    except InvalidName:
        raise not_found("project") from None
    if unquote(segment) != project:
        # As PyPI does: one URL per project, so caches and installers agree.
        location = reads.public_base + reads.simple_path + project + "/"
        raise web.HTTPMovedPermanently(
            location + (f"?{request.query_string}" if request.query_string else "")
        )
    content_type = _content_type(request)
    served = await reads.pages.project(
        request.path, project, content_type, request.headers.get("Authorization")
    )
    return _page(served.body, content_type)


async def _metadata(request: web.Request, reads: ReadPath) -> web.Response:
    """PEP 658: the wheel's METADATA, as the facts record keeps it; a file the gateway has no
    record of is the index's business (it may serve its own)."""
    filename = unquote(request.path.rsplit("/", 1)[-1]).removesuffix(_METADATA)
    try:
        project = canonicalize_name(parse_wheel_filename(filename)[0])
    except InvalidWheelFilename:
        raise PassThrough from None
    page_path = reads.simple_path + project + "/"
    served = await reads.pages.project(
        page_path,
        project,
        simple.HTML_LEGACY,
        request.headers.get("Authorization"),
        max_age=METADATA_LISTING_AGE,
    )
    file_path = request.path.removesuffix(_METADATA)
    for file in served.files:
        if file.url.split("?", 1)[0] == file_path and file.sha256 and file.metadata_sha256:
            body = await reads.facts.metadata(file.sha256)
            if body is not None:
                return web.Response(body=body, content_type="application/octet-stream")
    raise PassThrough


def _content_type(request: web.Request) -> str:
    chosen = simple.negotiate_request(request.query.get("format"), request.headers.get("Accept"))
    if chosen is None:
        raise Problem(
            406,
            "not-acceptable",
            "The simple API serves PEP 691 JSON (application/vnd.pypi.simple.v1+json) or HTML "
            "(application/vnd.pypi.simple.v1+html, text/html); ?format= takes json or html.",
            [
                ErrorItem("Accept", request.headers.get("Accept", "")),
                ErrorItem("format", request.query.get("format", "")),
            ],
        )
    return chosen


def _page(body: str, content_type: str) -> web.Response:
    response = web.Response(text=body, content_type=content_type, charset="utf-8")
    response.headers["Vary"] = "Accept"
    return response
