"""Read traffic (simple index, file downloads, JSON API) proxied to the backing index.

The simple API's pages and PEP 658 metadata files are answered by ``simple_api`` (R-W10);
everything else is passed through. Bodies stream both ways; hop-by-hop headers stay on their
hop; the index learns who asked through ``X-Forwarded-*``; redirects that point at the index
are rewritten to the gateway's public base, so clients never see the index's own address.
Only configured path prefixes are forwarded. A project that is only reserved (not yet
published) is not on the index, so it never shows up here (R-P4).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from gateway.api.context import services
from gateway.app_keys import HOPS, HTTP_CLIENT
from gateway.protocol.problems import not_found
from gateway.proxy import simple_api
from gateway.proxy.upstream import streaming_timeout, unreachable, upstream_url

# RFC 9110 §7.6.1, plus Host (ours) and the framing headers aiohttp sets itself.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
_CHUNK = 256 * 1024


def upstream_base(request: web.Request) -> str:
    return upstream_url(services(request).settings)


async def proxy_read(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    if not any(request.path.startswith(prefix) for prefix in svc.settings.proxy.read_prefixes):
        raise not_found("path")
    if svc.reads is not None:
        try:
            return await simple_api.answer(request, svc.reads)
        except simple_api.PassThrough:
            pass
    return await _pass_through(request)


async def _pass_through(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    upstream = upstream_base(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    headers["X-Forwarded-For"] = ", ".join(
        filter(None, [request.headers.get("X-Forwarded-For"), request.remote])
    )
    public = urlsplit(svc.settings.server.public_base_url)
    headers["X-Forwarded-Proto"] = public.scheme
    headers["X-Forwarded-Host"] = public.netloc
    try:
        async with request.app[HTTP_CLIENT].request(
            request.method,
            upstream + request.path_qs,
            headers=headers,
            allow_redirects=False,
            timeout=streaming_timeout(svc.settings.backend),
            **request.app[HOPS].upstream.options(upstream),
        ) as answer:
            response = web.StreamResponse(status=answer.status, reason=answer.reason)
            for name, value in answer.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    response.headers.add(name, value)
            if "Location" in answer.headers:
                response.headers["Location"] = _public_location(
                    answer.headers["Location"], upstream, svc.settings.server.public_base_url
                )
            if answer.content_length is not None:
                response.content_length = answer.content_length
            await response.prepare(request)
            async for chunk in answer.content.iter_chunked(_CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientError, TimeoutError):
        raise unreachable() from None


def _public_location(location: str, upstream: str, public_base: str) -> str:
    if location.startswith(upstream):
        return public_base + location[len(upstream) :]
    if location.startswith("/"):
        return public_base + location
    return location
