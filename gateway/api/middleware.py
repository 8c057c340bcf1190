"""Request ids, access logs, content negotiation and problem rendering for every response."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from gateway import metrics
from gateway.api.errors import failure_problem
from gateway.app_keys import DRAIN
from gateway.logs import log
from gateway.protocol.media import PROBLEM_JSON, accepts_upload_json
from gateway.protocol.problems import ErrorItem, Problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = "X-Request-ID"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
API_ROUTE_PREFIX = "api:"
_REQUEST_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def problem_response(problem: Problem) -> web.Response:
    response = web.Response(
        status=problem.status,
        body=json.dumps(problem.document()).encode(),
        content_type=PROBLEM_JSON,
    )
    response.headers.update(problem.headers)
    return response


def _request_id(request: web.Request) -> str:
    offered = request.headers.get(REQUEST_ID, "")
    if 0 < len(offered) <= 128 and set(offered) <= _REQUEST_ID_CHARS:
        return offered
    return secrets.token_hex(8)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = _request_id(request)
    request[REQUEST_ID_KEY] = request_id  # for the audit journal
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    sent = 0
    try:
        response = await handler(request)
        status = response.status
        response.headers[REQUEST_ID] = request_id
        sent = response.body_length if response.prepared else (response.content_length or 0)
        return response
    except web.HTTPException as exc:  # a redirect or an aiohttp refusal is its own status
        status = exc.status
        raise
    except asyncio.CancelledError:  # the client went away: nginx's 499, not a failure of ours
        status = 499
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        requests, seconds, received, sent_bytes = _request_metrics(route, request.method, status)
        requests.inc()
        seconds.observe(elapsed)
        received.inc(request.content_length or 0)
        sent_bytes.inc(sent)
        log.info(
            "request",
            method=request.method,
            route=route,
            status=status,
            ms=round(elapsed * 1000, 1),
        )


@functools.lru_cache(maxsize=1024)  # route names x methods x statuses: a few hundred at most
def _request_metrics(
    route: str, method: str, status: int
) -> tuple[Counter, Histogram, Counter, Counter]:
    """The labelled metrics of one kind of request, looked up once rather than per request
    (``labels()`` takes a lock and builds a tuple on every call)."""
    return (
        metrics.REQUESTS.labels(route, method, str(status)),
        metrics.REQUEST_SECONDS.labels(route, method),
        metrics.BYTES_RECEIVED.labels(route),
        metrics.BYTES_SENT.labels(route),
    )


def _route_name(request: web.Request) -> str:
    # Route names, not paths: paths carry session tokens, which are capabilities.
    route = request.match_info.route
    return route.name or (route.resource.canonical if route.resource else "unmatched")


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure, aiohttp's own 404/405/413 and unexpected exceptions included, leaves
    as an RFC 9457 document (R-G5)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except Exception as failure:
        return problem_response(failure_problem(failure))
    if (
        response.status >= 400
        and response.content_type != PROBLEM_JSON
        and isinstance(response, web.Response)
        and not response.prepared
    ):
        return _from_http_exception(response)
    return response


def _from_http_exception(exc: web.StreamResponse) -> web.Response:
    detail = exc.reason or "error"
    if isinstance(exc, web.HTTPException) and exc.text and not exc.text.startswith(f"{exc.status}"):
        detail = exc.text
    problem = Problem(exc.status, "about:blank", detail, [ErrorItem("request", detail)])
    response = problem_response(problem)
    for header in ("Allow", "WWW-Authenticate", "Retry-After", "Location"):
        if header in exc.headers:
            response.headers[header] = exc.headers[header]
    return response


@web.middleware
async def negotiation(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Upload 2.0 routes serve one representation; an Accept that admits none gets 406 (R-G4)."""
    name = request.match_info.route.name or ""
    if name.startswith(API_ROUTE_PREFIX) and not accepts_upload_json(request.headers.get("Accept")):
        raise Problem(
            406,
            "not-acceptable",
            "This API answers application/vnd.pypi.upload.v2+json only.",
            [ErrorItem("Accept", request.headers.get("Accept", ""))],
        )
    return await handler(request)


_WRITES = ("api:", "mech:", "legacy:")


@web.middleware
async def draining(request: web.Request, handler: Handler) -> web.StreamResponse:
    """While shutting down, new writes go to another replica (503 + Retry-After); requests
    already in flight are counted so that shutdown can wait for them."""
    drain = request.app[DRAIN]
    name = request.match_info.route.name or ""
    if drain.started and request.method in ("POST", "PUT", "DELETE") and name.startswith(_WRITES):
        raise Problem(
            503,
            "shutting-down",
            "This replica is shutting down; retry, another one will answer.",
            headers={"Retry-After": "1"},
        )
    drain.enter()
    try:
        return await handler(request)
    finally:
        drain.leave()
