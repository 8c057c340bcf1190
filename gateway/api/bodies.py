"""Reading JSON request bodies: content type, size bound, syntax, schema (R-G2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.api.context import services
from gateway.protocol.media import UPLOAD_V2_JSON, media_type
from gateway.protocol.problems import ErrorItem, Problem

M = TypeVar("M", bound=BaseModel)


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The body as it arrives. A client that stops sending for ``server.client_timeout``
    seconds is cut off with a 408, so a slow client cannot pin a connection and a handler.

    One watchdog per request, not a timeout per chunk (that would cost ~0.2 CPU-seconds per
    GiB): it only counts time spent waiting for the client, never time the consumer spends
    (an S3 part upload, say), and notices a stall within one and a half timeouts.
    """
    stall_seconds = services(request).settings.server.client_timeout
    loop = asyncio.get_running_loop()
    waiting_since: float | None = None
    watchdog: asyncio.TimerHandle

    def watch() -> None:
        nonlocal watchdog
        if waiting_since is not None and loop.time() - waiting_since >= stall_seconds:
            request.content.set_exception(_Stalled())
            return
        watchdog = loop.call_later(stall_seconds / 2, watch)

    watchdog = loop.call_later(stall_seconds / 2, watch)
    try:
        while True:
            waiting_since = loop.time()
            chunk = await request.content.readany()
            waiting_since = None
            if not chunk:
                return
            yield chunk
    except _Stalled:
        raise Problem(
            408,
            "client-too-slow",
            f"No part of the request body arrived for {stall_seconds} seconds.",
        ) from None
    finally:
        watchdog.cancel()


class _Stalled(Exception):
    """Set on a request's body stream by its watchdog."""


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing with 413 before reading more than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    # Chunk by chunk: a single read() returns whatever has arrived, not the whole body.
    body = bytearray()
    async for chunk in body_chunks(request):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        f"The request body exceeds {limit} bytes.",
        [ErrorItem("body", f"at most {limit} bytes")],
    )


def require_content_type(request: web.Request, expected: str, *also: str) -> None:
    given = media_type(request.headers.get("Content-Type"))
    if given != expected and given not in also:
        accepted = " or ".join((expected, *also))
        raise Problem(
            415,
            "unsupported-media-type",
            f"Content-Type must be {accepted}, not {given or 'missing'}.",
            [ErrorItem("Content-Type", f"expected {accepted}")],
        )


def parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except RecursionError:
        raise Problem(
            400, "malformed-json", "The JSON is nested too deeply.", [ErrorItem("body", "depth")]
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(
            400,
            "malformed-json",
            f"The body is not valid JSON: {exc}",
            [ErrorItem("body", str(exc))],
        ) from None


def validate(model: type[M], payload: object) -> M:
    if not isinstance(payload, dict):
        raise Problem(
            400,
            "invalid-request",
            "The body must be a JSON object.",
            [ErrorItem("body", "expected an object")],
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = validation_errors(exc)
        raise Problem(
            400,
            "invalid-request",
            "; ".join(f"{e.source}: {e.message}" for e in errors),
            errors,
        ) from None


async def read_request(request: web.Request, model: type[M], limit: int) -> M:
    require_content_type(request, UPLOAD_V2_JSON)
    return validate(model, parse_json(await read_bounded(request, limit)))


def validation_errors(exc: ValidationError) -> list[ErrorItem]:
    """One problem ``errors`` item per pydantic error, its source the dotted location."""
    return [
        ErrorItem(".".join(str(p) for p in error["loc"]) or "body", error["msg"])
        for error in exc.errors(include_url=False)
    ]
