"""Legacy uploads (``twine upload``) passed through to the backing index (R-W4).

The multipart form is read as a stream only as far as the header of its file part: the
fields before it are buffered (bounded), which is enough to know the project, version and
filename. A filename reserved by a publish in progress (R-P8) or a name reserved for someone
else's first release (R-P4, R-P12) is refused with 409 before anything reaches the index.
Otherwise the request body goes on to the index byte for byte — what was buffered, then the
rest as it arrives, never held in memory, never re-parsed — with the caller's own
credentials, and the index's answer is relayed as it is.

A staged upload (R-W6: the staging URL, the ``staged`` policy, or ``staged=true`` among the
fields before the file) goes into a publishing session instead (``gateway.api.staged``).
Refusals carry their message as the reason phrase too, which is what twine and uv print.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.helpers import parse_mimetype
from aiohttp.multipart import parse_content_disposition
from packaging.utils import InvalidName, canonicalize_name

from gateway.api import staged
from gateway.api.audit import legacy_upload_event, legacy_upload_starts
from gateway.api.bodies import body_chunks
from gateway.api.context import services
from gateway.api.errors import problem_for
from gateway.app_keys import HOPS, HTTP_CLIENT
from gateway.auth.config import basic_username
from gateway.domain import clock
from gateway.domain.errors import DomainError
from gateway.logs import log
from gateway.outbound import tls_failure
from gateway.protocol.problems import ErrorItem, Problem
from gateway.proxy.legacy_facts import FileTap, record_facts
from gateway.proxy.upstream import streaming_timeout, unreachable

# Headers of the caller's request that the index needs to see as they were.
_FORWARDED = ("Authorization", "User-Agent", "Accept")
INDEX_ANSWER_CHARS = 2000  # of an index's error page, relayed in the problem's errors


@dataclass
class _FormHead:
    """The start of a legacy upload form: everything up to the file's bytes."""

    raw: bytes
    fields: dict[str, str]
    filename: str | None
    file_start: int  # offset in the body where the file's bytes begin (or len(raw))


async def legacy_upload(request: web.Request) -> web.StreamResponse:
    try:
        return await _legacy_upload(request)
    except Problem as problem:
        return staged.refusal(problem)  # twine and uv print the reason phrase
    except DomainError as error:
        return staged.refusal(problem_for(error))


async def _legacy_upload(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    limit = svc.settings.uploads.max_file_size + svc.settings.proxy.max_form_fields_bytes
    proxy = svc.settings.proxy
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(svc.settings.uploads.max_file_size)
    boundary = _boundary(request)
    chunks = body_chunks(request)
    head = await _read_head(chunks, boundary, proxy.max_form_fields_bytes)
    # After the head come the file's bytes and the closing delimiter ("\r\n--" b "--\r\n").
    allowed = svc.settings.uploads.max_file_size + len(boundary) + 8
    already = len(head.raw) - head.file_start  # file bytes that came with the head
    expected = (
        request.content_length - head.file_start if request.content_length is not None else already
    )
    if max(expected, already) > allowed:
        raise _too_large(svc.settings.uploads.max_file_size)
    if staged.is_staged(request, head.fields):  # R-W6: into a publishing session instead
        part = staged.FilePart(
            chunks, head.raw[head.file_start :], boundary, proxy.max_form_fields_bytes
        )
        accepted = await staged.stage_upload(request, head.fields, head.filename, part.content())
        await legacy_upload_event(request, head.fields, head.filename, staged=True)
        return accepted
    await _refuse_reserved(request, head)
    # A `staged` field after the file must not let the form reach the index whole.
    remaining = request.content_length - head.file_start if request.content_length else None
    watch = staged.TrailerWatch(boundary, proxy.max_form_fields_bytes, _scan, remaining)
    tap = FileTap(boundary) if head.filename else None
    body = _passed_through(
        chunks, head, allowed - already, svc.settings.uploads.max_file_size, watch, tap
    )
    legacy_upload_starts(request, head.fields)  # the audit journal: an index refusal
    response = await _forward(request, body)
    await legacy_upload_event(request, head.fields, head.filename)
    if tap is not None and head.filename and svc.file_facts is not None:
        upload_time = clock.rfc3339(clock.now())
        await record_facts(svc.file_facts, tap, head.filename, upload_time)
    return response


def _boundary(request: web.Request) -> bytes:
    mime = parse_mimetype(request.headers.get("Content-Type", ""))
    boundary = mime.parameters.get("boundary", "")
    if (mime.type, mime.subtype) != ("multipart", "form-data") or not boundary:
        raise Problem(400, "invalid-request", "A legacy upload is a multipart/form-data POST.")
    return boundary.encode("latin-1")


async def _read_head(chunks: AsyncIterator[bytes], boundary: bytes, budget: int) -> _FormHead:
    """Read until the header of the ``content`` part (or the end of a form without one)."""
    raw = bytearray()
    while True:
        fields, filename, file_start = _scan(bytes(raw), boundary)
        if file_start is not None:
            return _FormHead(bytes(raw), fields, filename, file_start)
        if len(raw) > budget:
            raise Problem(
                413,
                "body-too-large",
                f"The form fields before the file exceed {budget} bytes.",
                [ErrorItem("body", "form fields too large")],
            )
        chunk = await anext(chunks, b"")
        if not chunk:
            return _FormHead(bytes(raw), fields, filename, len(raw))
        raw += chunk


def _scan(raw: bytes, boundary: bytes) -> tuple[dict[str, str], str | None, int | None]:
    """The simple fields seen so far, the file part's filename, and where the file's bytes
    start once its header (or the form's end) has been reached."""
    fields: dict[str, str] = {}
    delimiter = b"--" + boundary
    position = raw.find(delimiter)
    while position != -1:
        after = position + len(delimiter)
        if raw[after : after + 2] == b"--":
            return fields, None, len(raw)  # the closing delimiter: a form without a file
        header_end = raw.find(b"\r\n\r\n", after)
        if header_end == -1:
            return fields, None, None
        name, filename = _disposition(raw[after:header_end])
        if name == "content":
            return fields, filename, header_end + 4
        next_delimiter = raw.find(b"\r\n" + delimiter, header_end + 4)
        if next_delimiter == -1:
            return fields, None, None
        if name:
            fields[name] = raw[header_end + 4 : next_delimiter].decode(errors="replace")
        position = next_delimiter + 2
    return fields, None, None


def _disposition(header_block: bytes) -> tuple[str | None, str | None]:
    for line in header_block.decode("latin-1").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-disposition":
            _, params = parse_content_disposition(value.strip())
            return params.get("name"), params.get("filename")
    return None, None


async def _refuse_reserved(request: web.Request, head: _FormHead) -> None:
    """Reservations hold whichever path an upload arrives by (R-P8, R-P4, R-P12)."""
    try:
        project = canonicalize_name(head.fields.get("name", ""), validate=True)
    except InvalidName:
        return  # the index will refuse the form itself
    await services(request).names.refuse_legacy_upload(project, head.filename, _caller_id(request))


def _caller_id(request: web.Request) -> str | None:
    username = basic_username(request)
    return None if username is None else f"backend:{username}"


async def _passed_through(
    chunks: AsyncIterator[bytes],
    head: _FormHead,
    allowed: int,
    max_file_size: int,
    watch: staged.TrailerWatch,
    tap: FileTap | None,
) -> AsyncIterator[bytes]:
    """The form as it arrived; what passes from the file part on is also ``tap``'s."""
    yield head.raw[: head.file_start]
    if first := watch.feed(head.raw[head.file_start :]):
        if tap is not None:
            tap.feed(first)
        yield first
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        if sent > allowed:  # a client without Content-Length: stop as soon as it overflows
            raise _too_large(max_file_size)
        if passed := watch.feed(chunk):
            if tap is not None:
                tap.feed(passed)
            yield passed
    rest = watch.end()
    if tap is not None:
        tap.end(rest)
    if rest:
        yield rest


async def _forward(request: web.Request, body: AsyncIterator[bytes]) -> web.StreamResponse:
    svc = services(request)
    headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
    headers["Content-Type"] = request.headers["Content-Type"]  # same bytes, same boundary
    if request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
    try:
        async with request.app[HTTP_CLIENT].post(
            svc.settings.backend.upload_url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=streaming_timeout(svc.settings.backend),
            **request.app[HOPS].backend.options(svc.settings.backend.upload_url),
        ) as answer:
            text = await answer.content.read(1 << 20)
            log.info("legacy.upload", status=answer.status)
            if answer.status >= 400:
                raise _index_refused(answer, text)
            response = web.Response(status=answer.status, reason=answer.reason, body=text)
            if "Content-Type" in answer.headers:
                response.headers["Content-Type"] = answer.headers["Content-Type"]
            return response
    except Problem:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, Problem) else None
        if cause is not None:
            raise cause from None
        log.warning(
            "legacy.backend_unreachable", error=type(exc).__name__, tls_error=tls_failure(exc)
        )
        raise unreachable() from None


def _index_refused(answer: aiohttp.ClientResponse, body: bytes) -> Problem:
    """The index's refusal, relayed as a problem document like every other error: its 4xx
    status (a 5xx becomes this gateway's 502), its reason phrase (where devpi says why) and its
    body (where pypiserver does)."""
    reason = answer.reason or ""
    said = body.decode(errors="replace").strip()[:INDEX_ANSWER_CHARS]
    headers = {
        name: answer.headers[name] for name in ("WWW-Authenticate",) if name in answer.headers
    }
    return Problem(
        answer.status if answer.status < 500 else 502,
        "index-refused",
        f"The index refused the upload: {answer.status} {reason}".rstrip(),
        [ErrorItem("index", said or reason)],
        headers=headers,
    )


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        f"Files over {limit} bytes are not accepted.",
        [ErrorItem("content", f"at most {limit} bytes")],
    )
