"""Liveness and readiness probes (R-W5)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import metrics
from gateway.api.context import services
from gateway.app_keys import DRAIN, HTTP_CLIENT, S3_CLIENT
from gateway.protocol.openapi import build
from gateway.protocol.problems import ErrorItem, Problem


async def metrics_page(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def openapi(request: web.Request) -> web.Response:
    settings = services(request).settings
    document = build(settings.server.public_base_url, settings.server.api_root)
    return web.json_response(document)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[DRAIN].started:
        raise Problem(503, "not-ready", "Shutting down.", [ErrorItem("process", "draining")])
    settings = services(request).settings
    checks = await asyncio.gather(
        _check_s3(request, settings.s3.bucket), _check_backend(request, settings.backend.simple_url)
    )
    results = {"s3": checks[0], "backend": checks[1]}
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
        return f"unreachable: {type(exc).__name__}"
    return "ok"


async def _check_backend(request: web.Request, url: str) -> str:
    try:
        async with asyncio.timeout(5), request.app[HTTP_CLIENT].get(url) as response:
            # Any HTTP answer means the index is up; auth or redirects are its business.
            return "ok" if response.status < 500 else f"status {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
