"""Staged legacy uploads (R-W6): the legacy form's file goes into a publishing session.

An upload is staged when it is POSTed to the staging URL (``{legacy_path}+stage/``), when
``proxy.legacy_uploads`` is ``staged``, or when its form says ``staged`` = ``true``/``1``.
The form's simple fields before the file part were already read (bounded) by the legacy
handler; the file part then streams into S3 as it arrives, and whatever follows it (more
fields, the closing delimiter) is read, bounded, before the file is accepted, so that a
body cut short leaves nothing behind. Answers are for legacy clients: ``200`` with a short
``text/plain`` body, or the refusal's status with the human message as the reason phrase
(which twine and uv print) and the problem document as body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from gateway.api.access import authenticate, authorize
from gateway.api.context import services
from gateway.api.middleware import problem_response
from gateway.api.urls import Urls
from gateway.distribution.releases import normalize_release
from gateway.domain.errors import refused_as_invalid
from gateway.domain.records import FileUpload, PublishingSession
from gateway.protocol.models import Attestation
from gateway.protocol.problems import ErrorItem, Problem, bad_request
from gateway.services.legacy_staging import DIGEST_FIELDS, StagedForm

STAGE_ROUTE = "legacy:stage"
_TRUE = ("true", "1")
_ATTESTATIONS = TypeAdapter(list[Attestation])
_REASON_CHARS = 300  # a status line is no place for an essay


def is_staged(request: web.Request, fields: dict[str, str]) -> bool:
    """The three ways in: the staging URL, the policy, the form field."""
    if request.match_info.route.name == STAGE_ROUTE:
        return True
    if services(request).settings.proxy.legacy_uploads == "staged":
        return True
    return fields.get("staged", "").strip().lower() in _TRUE


async def stage_upload(
    request: web.Request,
    fields: dict[str, str],
    filename: str | None,
    content: AsyncIterator[bytes | memoryview],
) -> web.Response:
    """Stage the form's file; ``content`` yields its bytes and ends after the whole form.
    A refusal is a :class:`Problem`, which the legacy handler answers with :func:`refusal`."""
    svc = services(request)
    principal = await authenticate(request)
    form = staged_form(fields, filename)
    with refused_as_invalid():
        name, _ = normalize_release(form.name, form.version)
    authorize(principal, name)  # on every request: the gateway holds the release now
    claims = dict(principal.claims)
    session, upload = await svc.legacy_staging.stage(principal.id, form, content, claims)
    body = staged_message(svc.urls, session, upload)
    return web.Response(status=200, text=body, content_type="text/plain")


def staged_form(fields: dict[str, str], filename: str | None) -> StagedForm:
    """The release, filename and declared digests; a 400 naming a missing field."""
    for field in ("name", "version"):
        if not fields.get(field, "").strip():
            raise bad_request(
                "invalid-request", f"The form's {field} field must come before content.", field
            )
    if not filename:
        raise bad_request("invalid-request", "The form has no content file part.", "content")
    hashes = {
        algorithm: fields[field].strip().lower()
        for field, algorithm in DIGEST_FIELDS.items()
        if fields.get(field, "").strip()
    }
    return StagedForm(
        fields["name"].strip(),
        fields["version"].strip(),
        filename,
        hashes,
        _attestations(fields.get("attestations")),
    )


def _attestations(field: str | None) -> list[Any] | None:
    """The form's ``attestations``: a JSON array of PEP 740 attestations, checked for shape
    here and verified against the file by the attestation gate."""
    if field is None or not field.strip():
        return None
    try:
        parsed = json.loads(field)
        _ATTESTATIONS.validate_python(parsed)
    except (ValueError, ValidationError):
        raise bad_request(
            "invalid-attestation",
            "The form's attestations field is not a JSON array of PEP 740 attestations.",
            "attestations",
        ) from None
    if not parsed:
        return None
    return cast(list[Any], parsed)


def staged_message(urls: Urls, session: PublishingSession, upload: FileUpload) -> str:
    release = f"{session.name}=={session.version}"
    repository = urls.root
    return (
        f"Staged {upload.filename} for {session.name} {session.version}: nothing is public "
        "until the release is published.\n"
        f"Session: {urls.session(session.id)}\n"
        f"Stage:   {urls.stage(session.id)}  (pip install --index-url <this URL> ...)\n"
        f"Publish: upload-gateway session publish {release} --repository-url {repository}\n"
        f"Cancel:  upload-gateway session cancel {release} --repository-url {repository}\n"
    )


def refusal(problem: Problem) -> web.Response:
    """The problem document, with its detail as the reason phrase legacy clients print."""
    response = problem_response(problem)
    response.set_status(problem.status, reason_phrase(problem.detail))
    return response


def reason_phrase(detail: str) -> str:
    # A reason phrase is one line of visible latin-1 text (RFC 9112 section 4).
    text = " ".join(detail.split())[:_REASON_CHARS]
    return "".join(char if " " <= char <= "~" else "?" for char in text)


class FilePart:
    """The bytes of a form's file part as they arrive, never more than a chunk at a time.

    ``first`` is what of the file already came with the form's head. The last bytes of each
    chunk (the delimiter's length less one) wait for the next, in case the delimiter
    straddles the two. After
    the file part, the rest of the form (bounded by ``budget``) is read to its closing
    delimiter before the iteration ends: a body that stops early raises instead, so the
    ingest behind it aborts.
    """

    def __init__(
        self, chunks: AsyncIterator[bytes], first: bytes, boundary: bytes, budget: int
    ) -> None:
        self._chunks = chunks
        self._first = first
        self._boundary = boundary
        self._budget = budget
        self.trailing: bytes = b""  # from the delimiter after the file to the form's end

    async def content(self) -> AsyncIterator[bytes | memoryview]:
        delimiter = b"\r\n--" + self._boundary
        keep = len(delimiter) - 1
        held = self._first
        while True:
            at = held.find(delimiter)
            if at != -1:
                if at:
                    yield memoryview(held)[:at]
                await self._read_trailing(held[at + 2 :])
                return
            if len(held) > keep:
                yield memoryview(held)[: len(held) - keep]
                held = held[len(held) - keep :]
            chunk = await anext(self._chunks, b"")
            if not chunk:
                raise _cut_short()
            held += chunk

    async def _read_trailing(self, rest: bytes) -> None:
        closing = b"--" + self._boundary + b"--"
        while closing not in rest:
            if len(rest) > self._budget:
                raise Problem(
                    413,
                    "body-too-large",
                    f"The form fields after the file exceed {self._budget} bytes.",
                    [ErrorItem("body", "form fields too large")],
                )
            chunk = await anext(self._chunks, b"")
            if not chunk:
                raise _cut_short()
            rest += chunk
        self.trailing = rest


Scan = Callable[[bytes, bytes], tuple[dict[str, str], str | None, int | None]]


class TrailerWatch:
    """Passes a pass-through form's bytes on unchanged from its file part on, except what
    follows the file part (more fields, the closing delimiter): that is held back (bounded)
    until the body has ended. A ``staged`` field there arrives too late to stage the file,
    whose bytes have gone on to the index already; refusing it keeps the index from ever
    receiving the form whole, so the release stays unpublished, as its uploader asked."""

    def __init__(
        self, boundary: bytes, budget: int, scan: Scan, remaining: int | None = None
    ) -> None:
        self._boundary = boundary
        # Bytes from the file part's start to the body's end, when Content-Length tells.
        self._remaining = remaining
        self._delimiter = b"\r\n--" + boundary
        self._budget = budget
        self._scan = scan
        self._carry = b""  # the end of what was passed on, where a delimiter may begin
        self._trailer: bytearray | None = None
        self._sent = 0  # of the trailer's first bytes, those passed on already (in the carry)

    def feed(self, chunk: bytes) -> bytes:
        """What of ``chunk`` may go on now."""
        if self._trailer is not None:
            self._trailer += chunk
            if len(self._trailer) > self._budget:
                raise _trailer_too_large(self._budget)
            return b""
        keep = len(self._delimiter) - 1
        if self._remaining is not None:
            self._remaining -= len(chunk)
            if self._remaining > self._budget:
                # What follows the file fits the budget (or is refused): no need to search
                # the file's bytes, far from the body's end, for where the file ends.
                self._carry = chunk[-keep:]
                return chunk
        # A delimiter that began in what was passed on already ends in the chunk's start.
        at = (self._carry + chunk[:keep]).find(self._delimiter)
        if at != -1:
            self._trailer = bytearray(self._carry[at:]) + chunk
            self._sent = len(self._carry) - at
            return b""
        at = chunk.find(self._delimiter)
        if at != -1:
            self._trailer = bytearray(chunk[at:])
            return chunk[:at]
        self._carry = chunk[-keep:] if len(chunk) >= keep else (self._carry + chunk)[-keep:]
        return chunk

    def end(self) -> bytes:
        """The held-back rest of the form, unless it asks for staging too late."""
        if self._trailer is None:
            return b""
        fields, _, _ = self._scan(bytes(self._trailer), self._boundary)
        if fields.get("staged", "").strip().lower() in _TRUE:
            raise bad_request(
                "staged-too-late",
                "The staged field came after the file, which was already on its way to the "
                "index: put it before the content part, or upload to the staging URL "
                "(legacy path + '+stage/'). Nothing was published.",
                "staged",
            )
        return bytes(self._trailer[self._sent :])


def _trailer_too_large(budget: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        f"The form fields after the file exceed {budget} bytes.",
        [ErrorItem("body", "form fields too large")],
    )


def _cut_short() -> Problem:
    return bad_request("incomplete-body", "The form ended before its closing delimiter.", "body")
