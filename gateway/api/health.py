"""Liveness and readiness probes (R-W5)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import metrics
from gateway.api.context import services
from gateway.app_keys import DRAIN, HOPS, HTTP_CLIENT, S3_CLIENT
from gateway.outbound import Hop, tls_failure
from gateway.protocol.openapi import build
from gateway.protocol.problems import ErrorItem, Problem


async def metrics_page(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def openapi(request: web.Request) -> web.Response:
    settings = services(request).settings
    document = build(
        settings.server.public_base_url,
        settings.server.api_root,
        settings.uploads.mechanisms,
        settings.uploads.max_file_size,
    )
    return web.json_response(document)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[DRAIN].leaving:
        raise Problem(503, "not-ready", "Shutting down.", [ErrorItem("process", "draining")])
    settings = services(request).settings
    hops = request.app[HOPS]
    probes = {
        "s3": _check_s3(request, settings.s3.bucket),
        "backend": _check_http(request, settings.backend.simple_url, hops.backend),
    }
    if settings.proxy.read_proxy and settings.proxy.upstream:
        probes["proxy"] = _check_http(request, settings.proxy.upstream, hops.upstream)
    results = dict(zip(probes, await asyncio.gather(*probes.values()), strict=True))
    failed = [ErrorItem(name, result) for name, result in results.items() if result != "ok"]
    metrics.READY.set(0 if failed else 1)  # its changes are what the flapping alert watches
    if failed:
        raise Problem(503, "not-ready", "A dependency is not reachable.", failed)
    return web.json_response({"status": "ok", "checks": results})


async def _check_s3(request: web.Request, bucket: str) -> str:
    try:
        async with asyncio.timeout(5):
            await request.app[S3_CLIENT].head_bucket(Bucket=bucket)
    except Exception as exc:  # any failure means "not ready", and is reported as such
        return _unreachable(exc)
    return "ok"


async def _check_http(request: web.Request, url: str, hop: Hop) -> str:
    try:
        async with (
            asyncio.timeout(5),
            request.app[HTTP_CLIENT].get(url, **hop.options(url)) as response,
        ):
            # Any HTTP answer means the index is up; auth or redirects are its business.
            return "ok" if response.status < 500 else f"status {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _unreachable(exc)


def _unreachable(exc: Exception) -> str:
    reason = tls_failure(exc)
    if reason:
        return f"TLS handshake failed: {reason}"
    return f"unreachable: {type(exc).__name__}"
