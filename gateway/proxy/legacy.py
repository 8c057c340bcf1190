"""Legacy uploads (``twine upload``) passed through to the backing index (R-W4).

The multipart form is read as a stream: the fields before the file are buffered (bounded),
which is enough to know the project, version and filename; a filename reserved by a publish
in progress (R-P8) or a name reserved for someone else's first release (R-P4, R-P12) is
refused with 409 before anything reaches the index. Otherwise the form is re-encoded on the
fly — same fields, same bytes — and the file streams through to the index with the caller's
own credentials, never held in memory. The index's answer is relayed as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, web
from packaging.utils import InvalidName, canonicalize_name

from gateway.api.context import services
from gateway.app_keys import HTTP_CLIENT
from gateway.auth.config import decode_basic
from gateway.auth.principals import InvalidCredentials
from gateway.logs import log
from gateway.protocol import multipart
from gateway.protocol.problems import ErrorItem, Problem

_CHUNK = 1024 * 1024
# Headers of the caller's request that the index needs to see as they were.
_FORWARDED = ("Authorization", "User-Agent", "Accept")


@dataclass
class _Field:
    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None

    def encode(self, boundary: str) -> bytes:
        return (
            multipart.part_head(boundary, self.name, self.filename, self.content_type)
            + self.value
            + b"\r\n"
        )


async def legacy_upload(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    limit = svc.settings.uploads.max_file_size
    proxy = svc.settings.proxy
    if (
        request.content_length is not None
        and request.content_length > limit + proxy.max_form_fields_bytes
    ):
        raise _too_large(limit)
    try:
        form = await request.multipart()
    except (KeyError, ValueError, AssertionError):
        raise Problem(
            400, "invalid-request", "A legacy upload is a multipart/form-data POST."
        ) from None
    fields, content = await _fields_before_file(
        form, proxy.max_form_fields_bytes, proxy.client_timeout
    )
    await _refuse_reserved(request, fields, content)
    boundary = multipart.boundary()
    body = _reencoded(boundary, fields, content, form, limit, proxy.client_timeout)
    return await _forward(request, boundary, body)


async def _fields_before_file(
    form: MultipartReader, budget: int, stall_seconds: int
) -> tuple[list[_Field], BodyPartReader | None]:
    fields: list[_Field] = []
    used = 0
    while True:
        async with asyncio.timeout(stall_seconds):
            part = await form.next()
        if part is None:
            return fields, None
        if not isinstance(part, BodyPartReader):
            raise Problem(400, "invalid-request", "Nested multipart bodies are not legacy uploads.")
        if part.name == "content":
            return fields, part
        value = bytearray()
        while chunk := await _read(part, stall_seconds):
            value += chunk
            used += len(chunk)
            if used > budget:
                raise Problem(
                    413,
                    "body-too-large",
                    f"The form fields before the file exceed {budget} bytes.",
                    [ErrorItem("body", "form fields too large")],
                )
        fields.append(
            _Field(part.name or "", bytes(value), part.filename, part.headers.get("Content-Type"))
        )


async def _read(part: BodyPartReader, stall_seconds: int) -> bytes:
    # A client that stalls is cut off rather than left holding an index connection open.
    async with asyncio.timeout(stall_seconds):
        return await part.read_chunk(_CHUNK)


async def _refuse_reserved(
    request: web.Request, fields: list[_Field], content: BodyPartReader | None
) -> None:
    """Reservations hold whichever path an upload arrives by (R-P8, R-P4, R-P12)."""
    values = {field.name: field.value.decode(errors="replace") for field in fields}
    try:
        project = canonicalize_name(values.get("name", ""), validate=True)
    except InvalidName:
        return  # the index will refuse the form itself
    filename = content.filename if content is not None else None
    await services(request).names.refuse_legacy_upload(project, filename, _caller_id(request))


def _caller_id(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _ = decode_basic(value.strip())
    except InvalidCredentials:
        return None
    return f"backend:{username}"


async def _reencoded(
    boundary: str,
    fields: list[_Field],
    content: BodyPartReader | None,
    form: MultipartReader,
    limit: int,
    stall_seconds: int,
) -> AsyncIterator[bytes]:
    for field in fields:
        yield field.encode(boundary)
    if content is not None:
        yield multipart.part_head(
            boundary,
            "content",
            content.filename,
            content.headers.get("Content-Type", "application/octet-stream"),
        )
        sent = 0
        while chunk := await _read(content, stall_seconds):
            sent += len(chunk)
            if sent > limit:
                raise _too_large(limit)
            yield chunk
        yield b"\r\n"
        # Fields after the file (rare, but legal) follow it unchanged.
        while True:
            async with asyncio.timeout(stall_seconds):
                part = await form.next()
            if part is None:
                break
            if isinstance(part, BodyPartReader):
                value = bytearray()
                while chunk := await _read(part, stall_seconds):
                    value += chunk
                yield _Field(
                    part.name or "", bytes(value), part.filename, part.headers.get("Content-Type")
                ).encode(boundary)
    yield multipart.end(boundary)


async def _forward(
    request: web.Request, boundary: str, body: AsyncIterator[bytes]
) -> web.StreamResponse:
    svc = services(request)
    headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
    headers["Content-Type"] = multipart.content_type(boundary)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=10, sock_read=svc.settings.backend.timeout
    )
    try:
        async with request.app[HTTP_CLIENT].post(
            svc.settings.backend.upload_url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=timeout,
        ) as answer:
            text = await answer.content.read(1 << 20)
            log.info("legacy.upload", status=answer.status)
            response = web.Response(status=answer.status, reason=answer.reason, body=text)
            if "Content-Type" in answer.headers:
                response.headers["Content-Type"] = answer.headers["Content-Type"]
            if "WWW-Authenticate" in answer.headers:
                response.headers["WWW-Authenticate"] = answer.headers["WWW-Authenticate"]
            return response
    except Problem:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, Problem) else None
        if cause is not None:
            raise cause from None
        log.warning("legacy.backend_unreachable", error=type(exc).__name__)
        raise Problem(
            502,
            "backend-unavailable",
            "The backing index could not be reached.",
            headers={"Retry-After": "5"},
        ) from None


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        f"Files over {limit} bytes are not accepted.",
        [ErrorItem("content", f"at most {limit} bytes")],
    )
