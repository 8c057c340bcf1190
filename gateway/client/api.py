"""An async client for the Upload 2.0 API (PEP 694), over aiohttp.

One :class:`UploadClient` talks to one API root. It covers the whole protocol: publishing
sessions (create — reusing the live session a ``409`` points at —, status, extend, cancel,
publish), file upload sessions (create, status, delete, complete), PEP 740 attestations, and
three mechanisms, all streamed from disk: ``http-post-bytes``, and for large files the
gateway's ``vnd-uploadgateway-resumable-v1`` (a dropped connection resumes from the offset
the server confirms) and ``vnd-uploadgateway-s3-presigned-v1`` (parts go straight to S3),
chosen by :func:`choose_mechanism`. Operations the server may defer
(``202``) are polled, honouring ``Retry-After``, until they resolve.

Errors:

- a 4xx/5xx answer raises :class:`ProblemError` carrying the RFC 9457 document's ``status``,
  ``title``, ``detail`` and ``errors`` (a non-problem error body is turned into one);
- a deferred operation that resolves to ``error`` raises :class:`OperationFailed` with the
  server's ``notices``;
- a server that does not speak Upload 2.0 at all raises :class:`NotUpload2Error` from
  :meth:`UploadClient.create_session`, the signal for the legacy fallback;
- connection failures and 5xx answers are retried with exponential backoff (never 4xx); when
  the retries are spent, :class:`TransportError` (or the last 5xx as a :class:`ProblemError`).

Credentials (the ``Authorization`` header) are only sent to URLs on the API root's origin, so a
server cannot make the client hand them to another host through a link.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import aiohttp
from pydantic import BaseModel, ValidationError
from yarl import URL

from gateway.mechanisms import HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED
from gateway.protocol.audit import AuditPage
from gateway.protocol.media import (
    API_VERSION,
    PARTIAL_UPLOAD,
    PROBLEM_JSON,
    UPLOAD_V2_JSON,
    media_type,
)
from gateway.protocol.models import FileResponse, SessionResponse

__all__ = [
    "ClientError",
    "FileUpload",
    "NotUpload2Error",
    "OperationFailed",
    "ProblemError",
    "PublishingSession",
    "TransportError",
    "UploadClient",
    "choose_mechanism",
]

META = {"api-version": API_VERSION}
# The mechanisms this client can run, most preferred first.
SUPPORTED_MECHANISMS = (S3_PRESIGNED, RESUMABLE, HTTP_POST_BYTES)
# Below this a single http-post-bytes request is the cheapest way; above it a transfer worth
# protecting against a dropped connection.
RESUMABLE_ABOVE = 16 << 20
USER_AGENT = "upload-gateway-client/0.1"
CHUNK_BYTES = 1 << 20
# Bodies the API answers are small JSON documents; never buffer more than this of one.
MAX_RESPONSE_BYTES = 4 << 20

_Model = TypeVar("_Model", bound=BaseModel)
ProgressCallback = Callable[[int], None]
ResumeCallback = Callable[[str, int], None]  # (filename, offset resumed from)


def choose_mechanism(offered: list[str], size: int, threshold: int = RESUMABLE_ABOVE) -> str:
    """The mechanism for a file of ``size`` bytes: small files go in one http-post-bytes
    request; larger ones use the first mechanism the server offers (its order wins) that this
    client supports, and the client's own preference when the server states none."""
    if size < threshold:
        return HTTP_POST_BYTES
    usable = [m for m in offered if m in SUPPORTED_MECHANISMS] or [
        m for m in SUPPORTED_MECHANISMS if not offered
    ]
    return usable[0] if usable else HTTP_POST_BYTES


class ClientError(Exception):
    """Anything that stops an Upload 2.0 operation."""


class ProblemError(ClientError):
    """The server refused a request: an RFC 9457 problem document (or an error turned into one)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        *,
        type: str = "about:blank",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.type = type
        self.headers = dict(headers or {})

    @classmethod
    def from_answer(cls, answer: _Answer) -> ProblemError:
        document: Any = None
        if answer.media_type in (PROBLEM_JSON, "application/json", UPLOAD_V2_JSON):
            try:
                document = json.loads(answer.body)
            except ValueError:
                document = None
        if isinstance(document, dict):
            errors = [
                {"source": str(item.get("source", "")), "message": str(item.get("message", ""))}
                for item in document.get("errors") or []
                if isinstance(item, dict)
            ]
            # RFC 9457 says "detail"; the PEP's example says "details": accept both.
            detail = document.get("detail", document.get("details", ""))
            return cls(
                int(document.get("status", answer.status) or answer.status),
                str(document.get("title") or answer.reason),
                str(detail or ""),
                errors,
                type=str(document.get("type", "about:blank")),
                headers=answer.headers,
            )
        text = answer.body.decode(errors="replace").strip()
        return cls(answer.status, answer.reason, plain_text(text), headers=answer.headers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "type": self.type,
            "title": self.title,
            "detail": self.detail,
            "errors": self.errors,
        }


class OperationFailed(ClientError):
    """A deferred operation (completion, publish) resolved to ``error`` or ``canceled``."""

    def __init__(self, message: str, status: str, notices: list[str]) -> None:
        super().__init__(message)
        self.status = status
        self.notices = notices


class NotUpload2Error(ClientError):
    """The URL does not speak Upload 2.0 (the legacy API, or no upload API at all)."""

    def __init__(self, url: str, status: int, content_type: str) -> None:
        super().__init__(
            f"{url} does not speak Upload 2.0 (HTTP {status}, {content_type or 'no content type'})"
        )
        self.url = url
        self.status = status
        self.content_type = content_type


class TransportError(ClientError):
    """The server could not be reached (after retrying)."""


def plain_text(text: str, limit: int = 500) -> str:
    """An error body fit for a terminal: HTML tags dropped, whitespace folded, bounded."""
    import re

    text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    media_type: str
    body: bytes
    headers: dict[str, str]
    url: str

    def json(self) -> dict[str, Any]:
        try:
            document = json.loads(self.body)
        except ValueError:
            raise ClientError(f"{self.url} answered invalid JSON") from None
        if not isinstance(document, dict):
            raise ClientError(f"{self.url} answered JSON that is not an object")
        return document


@dataclass
class PublishingSession:
    """A publishing session as the server last described it."""

    response: SessionResponse

    @classmethod
    def parse(cls, document: dict[str, Any], url: str = "the server") -> PublishingSession:
        return cls(_parse(SessionResponse, document, url))

    @property
    def links(self) -> dict[str, str]:
        """The links the server gave (a key it does not offer, such as ``extend``, is absent)."""
        return self.response.links.model_dump(exclude_none=True)

    @property
    def url(self) -> str:
        return self.response.links.session

    @property
    def stage(self) -> str | None:
        return self.response.links.stage

    @property
    def status(self) -> str:
        return self.response.status

    @property
    def token(self) -> str | None:
        return self.response.session_token

    @property
    def expires_at(self) -> str | None:
        return self.response.expires_at

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Each file's ``status``, ``link`` and ``notices``, by filename."""
        return {name: entry.model_dump() for name, entry in self.response.files.items()}

    @property
    def mechanisms(self) -> list[str]:
        return list(self.response.mechanisms)

    @property
    def notices(self) -> list[str]:
        return list(self.response.notices)


@dataclass
class FileUpload:
    """A file upload session as the server last described it (``response`` is None when the
    server answered a transfer without a body)."""

    response: FileResponse | None
    filename: str = ""

    @classmethod
    def parse(cls, document: dict[str, Any], filename: str, url: str) -> FileUpload:
        return cls(_parse(FileResponse, document, url) if document else None, filename)

    @property
    def described(self) -> FileResponse:
        if self.response is None:
            raise ClientError(f"the server did not describe the upload of {self.filename}")
        return self.response

    @property
    def links(self) -> dict[str, str]:
        return self.response.links.model_dump(exclude_none=True) if self.response else {}

    @property
    def url(self) -> str:
        return self.described.links.file_upload_session

    @property
    def status(self) -> str:
        return self.response.status if self.response is not None else ""

    @property
    def mechanism(self) -> dict[str, Any]:
        """``identifier`` and the mechanism's own keys (its URLs, part sizes ...)."""
        return self.response.mechanism.model_dump() if self.response is not None else {}

    @property
    def file_url(self) -> str:
        return str(self.mechanism["file_url"])

    @property
    def mechanism_identifier(self) -> str:
        return self.response.mechanism.identifier if self.response is not None else ""

    @property
    def attestations_url(self) -> str | None:
        return self.mechanism.get("attestations_url")

    @property
    def notices(self) -> list[str]:
        return list(self.response.notices) if self.response is not None else []


def _parse(model: type[_Model], document: dict[str, Any], url: str) -> _Model:
    """A response document as the protocol's model; a clear error when it is not one."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise ClientError(
            f"{url} answered a document Upload 2.0 does not describe: {where}: {first['msg']}"
        ) from None


@dataclass
class RetryPolicy:
    retries: int = 4  # attempts after the first
    backoff: float = 0.5  # first delay, doubled each time
    max_delay: float = 30.0


@dataclass
class _Body:
    """A request body that can be produced again for a retry."""

    make: Callable[[], Any]
    headers: dict[str, str] = field(default_factory=dict)
    on_retry: Callable[[], None] | None = None


class UploadClient:
    """Upload 2.0 operations against the API root ``api_url``.

    ``authorization`` is a full ``Authorization`` header value (``Basic ...``, ``Bearer ...``).
    Pass ``http`` to share an :class:`aiohttp.ClientSession`; otherwise the client owns one
    (use ``async with``, or :meth:`close`).
    """

    def __init__(
        self,
        api_url: str,
        *,
        authorization: str | None = None,
        http: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        max_poll_interval: float = 30.0,
        request_timeout: float = 120.0,
        read_timeout: float = 600.0,
        resumable_above: int = RESUMABLE_ABOVE,
    ) -> None:
        self.api_url = api_url
        self._authorization = authorization
        self._origin = URL(api_url).origin()
        self._http = http
        self._owns_http = http is None
        self.retry = retry or RetryPolicy()
        self.max_poll_interval = max_poll_interval
        self.resumable_above = resumable_above
        self._json_timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=30, sock_read=read_timeout
        )

    async def __aenter__(self) -> UploadClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    # -- publishing sessions -------------------------------------------------------------

    async def create_session(
        self, name: str, version: str, *, reuse: bool = True
    ) -> tuple[PublishingSession, bool]:
        """Create the release's publishing session: ``(session, created)``.

        When the release already has a live session (``409`` with ``Location``) and ``reuse``
        is true, that session is fetched and returned with ``created=False``.
        """
        answer = await self._request(
            "POST", self.api_url, json_body={"meta": META, "name": name, "version": version}
        )
        speaks_v2 = answer.media_type in (UPLOAD_V2_JSON, PROBLEM_JSON)
        # A 5xx page from a proxy in front of an Upload 2.0 server is an outage, not a sign
        # of a legacy index: only a non-5xx answer in another format means "no Upload 2.0".
        if answer.status in (404, 405, 406, 501) or (not speaks_v2 and answer.status < 500):
            raise NotUpload2Error(self.api_url, answer.status, answer.media_type)
        location = answer.headers.get("Location")
        if answer.status == 409 and reuse and location:
            return await self.get_session(urljoin(answer.url, location)), False
        return self._session(answer, 201), True

    async def get_session(self, url: str) -> PublishingSession:
        return self._session(await self._request("GET", url), 200)

    async def extend_session(self, session: PublishingSession, seconds: int) -> PublishingSession:
        """Ask for ``seconds`` more; the answer's ``expires-at`` is what the server granted."""
        url = session.response.links.extend
        if not url:
            raise ClientError("the server does not offer session extensions")
        answer = await self._request(
            "POST", url, json_body={"meta": META, "extend-for": int(seconds)}
        )
        return self._session(answer, 200)

    async def cancel_session(self, url: str) -> None:
        self._expect(await self._request("DELETE", url), 204)

    async def approve_session(self, url: str) -> dict[str, Any]:
        """Approve the session's current files (R-W11): who has approved them, and how
        many approvals the policy requires."""
        answer = await self._request("POST", url.rstrip("/") + "/approve", json_body={"meta": META})
        return self._expect(answer, 200)

    async def publish(
        self, session: PublishingSession, *, wait: bool = True, max_wait: float | None = None
    ) -> PublishingSession:
        """Publish the session; with ``wait``, poll a deferred (``202``) publish to its end.

        Returns the ``published`` session (or the ``processing`` one without ``wait``);
        raises :class:`OperationFailed` when the publish resolves to ``error``.
        """
        answer = await self._request(
            "POST", session.response.links.publish, json_body={"meta": META}
        )
        result = self._session(answer, 201, 202)
        if answer.status == 201 or not wait:
            return result
        url = urljoin(answer.url, answer.headers.get("Location") or result.url)
        final = await self.wait_session(
            url, first_delay=_retry_after(answer.headers), max_wait=max_wait
        )
        if final.status != "published":
            raise OperationFailed(
                f"publishing ended in {final.status!r}", final.status, final.notices
            )
        return final

    async def wait_session(
        self,
        url: str,
        *,
        first_delay: float | None = None,
        max_wait: float | None = None,
    ) -> PublishingSession:
        """Poll the session until it leaves ``processing``."""
        deadline = None if max_wait is None else time.monotonic() + max_wait
        delay = first_delay if first_delay is not None else 1.0
        while True:
            await asyncio.sleep(min(delay, self.max_poll_interval))
            answer = await self._request("GET", url)
            session = self._session(answer, 200)
            if session.status != "processing":
                return session
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError("timed out waiting for the session to finish processing")
            delay = _retry_after(answer.headers) or min(delay * 1.5, self.max_poll_interval)

    # -- file upload sessions ------------------------------------------------------------

    async def create_file(
        self,
        session: PublishingSession,
        filename: str,
        size: int,
        hashes: Mapping[str, str],
        *,
        mechanism: str = HTTP_POST_BYTES,
    ) -> FileUpload:
        body = {
            "meta": META,
            "filename": filename,
            "size": size,
            "hashes": dict(hashes),
            "mechanism": mechanism,
        }
        answer = await self._request("POST", session.response.links.upload, json_body=body)
        return self._file(answer, filename, 202)

    async def get_file(self, url: str, filename: str = "") -> FileUpload:
        return self._file(await self._request("GET", url), filename, 200)

    async def delete_file(self, url: str) -> None:
        self._expect(await self._request("DELETE", url), 204)

    async def upload_bytes(
        self,
        file: FileUpload,
        path: Path,
        size: int,
        *,
        progress: ProgressCallback | None = None,
    ) -> FileUpload:
        """``http-post-bytes``: stream ``path`` from disk as the body (never whole in memory).

        A retry after a connection error starts the body over (the server keeps the latest
        complete POST); ``progress`` then receives a negative count to rewind.
        """
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            if progress is not None:
                progress(n)

        def rewind() -> None:
            nonlocal sent
            if progress is not None and sent:
                progress(-sent)
            sent = 0

        body = _Body(
            make=lambda: _file_chunks(path, count),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            on_retry=rewind,
        )
        answer = await self._request("POST", file.file_url, body=body, streaming=True)
        return self._file(answer, file.filename, 200, 201, 202, 204, empty_ok=True)

    async def upload_resumable(
        self,
        file: FileUpload,
        path: Path,
        size: int,
        *,
        progress: ProgressCallback | None = None,
        on_resume: ResumeCallback | None = None,
    ) -> None:
        """``vnd-uploadgateway-resumable-v1``: send the rest of the file in one ``PATCH``; when
        the connection drops, ask the server how far it got (``HEAD``) and go on from there,
        never sending confirmed bytes again. Gives up after ``retry.retries`` resumptions
        without progress."""
        url = str(file.mechanism["upload_url"])
        offset, position, stalled = 0, 0, 0
        while True:

            def count(n: int) -> None:
                nonlocal position
                position += n
                if progress is not None:
                    progress(n)

            failure = await self._patch_rest(url, path, size, offset, count)
            if failure is None:
                return
            confirmed = await self._resumable_offset(url)
            if progress is not None and position != confirmed:
                progress(confirmed - position)  # bytes in flight that did not land
            stalled = 0 if confirmed > offset else stalled + 1
            if stalled > self.retry.retries:
                raise TransportError(f"PATCH {url}: {failure}; no progress after resuming")
            offset = position = confirmed
            if on_resume is not None:
                on_resume(file.filename, offset)
            if stalled:
                await asyncio.sleep(min(self.retry.backoff * 2**stalled, self.retry.max_delay))

    async def _patch_rest(
        self, url: str, path: Path, size: int, offset: int, count: Callable[[int], None]
    ) -> str | None:
        """One ``PATCH`` of the file from ``offset`` to its end: None once the upload is
        complete, else what cut it short (a refusal raises)."""
        body = _Body(
            make=functools.partial(_file_chunks, path, count, start=offset),
            headers={
                "Content-Type": PARTIAL_UPLOAD,
                "Content-Length": str(size - offset),
                "Upload-Offset": str(offset),
                "Upload-Complete": "?1",
            },
        )
        try:
            answer = await self._send("PATCH", url, body, streaming=True)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            return _describe(exc)
        if answer.status == 204 and answer.headers.get("Upload-Complete") == "?1":
            return None
        if answer.status < 500 and answer.status != 409:
            raise ProblemError.from_answer(answer)
        return f"HTTP {answer.status}"

    async def _resumable_offset(self, url: str) -> int:
        answer = await self._request("HEAD", url)
        if answer.status != 204 or not answer.headers.get("Upload-Offset", "").isdigit():
            raise ProblemError.from_answer(answer)
        return int(answer.headers["Upload-Offset"])

    async def upload_presigned(
        self,
        file: FileUpload,
        path: Path,
        size: int,
        *,
        progress: ProgressCallback | None = None,
        parallel: int = 2,
    ) -> None:
        """``vnd-uploadgateway-s3-presigned-v1``: PUT each part straight to its presigned S3
        URL, a few at a time; a failed part is retried, with fresh URLs when they expired."""
        part_size = int(file.mechanism["part_size"])
        urls = {int(p["number"]): str(p["url"]) for p in file.mechanism.get("parts", [])}
        limit = asyncio.Semaphore(parallel)

        async def renew() -> None:
            fresh = await self.get_file(str(file.mechanism.get("parts_url") or file.url))
            urls.update({int(p["number"]): str(p["url"]) for p in fresh.mechanism["parts"]})

        async def put(number: int) -> None:
            async with limit:
                start = (number - 1) * part_size
                data = await asyncio.to_thread(
                    _read_range, path, start, min(part_size, size - start)
                )
                for attempt in range(self.retry.retries + 1):
                    try:
                        async with self.http.put(
                            urls[number], data=data, timeout=self._stream_timeout
                        ) as response:
                            if response.status == 200:
                                if progress is not None:
                                    progress(len(data))
                                return
                            if response.status == 403:  # the URL expired: get new ones
                                await renew()
                            failure = f"HTTP {response.status}"
                    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                        failure = _describe(exc)
                    await asyncio.sleep(min(self.retry.backoff * 2**attempt, self.retry.max_delay))
                raise TransportError(f"part {number} of {file.filename}: {failure}")

        await asyncio.gather(*(put(number) for number in sorted(urls)))

    async def upload_attestations(
        self, file: FileUpload, attestations: list[dict[str, Any]]
    ) -> FileUpload:
        url = file.attestations_url
        if not url:
            raise ClientError("the server does not accept attestations for this file")
        body = json.dumps(attestations).encode()
        answer = await self._request(
            "POST",
            url,
            body=_Body(make=lambda: body, headers={"Content-Type": "application/json"}),
        )
        return self._file(answer, file.filename, 200, 201, 202, 204, empty_ok=True)

    async def complete_file(
        self, file: FileUpload, *, wait: bool = True, max_wait: float | None = None
    ) -> FileUpload:
        """Complete the file; with ``wait``, poll a deferred (``202``) validation to its end.

        A synchronous refusal raises :class:`ProblemError` (the file is then in ``error`` and
        must be deleted); a deferred one raises :class:`OperationFailed`.
        """
        complete = file.described.links.complete
        answer = await self._request("POST", complete, json_body={"meta": META})
        result = self._file(answer, file.filename, 201, 202)
        if answer.status == 201 or not wait or result.status == "completed":
            return result
        url = urljoin(answer.url, answer.headers.get("Location") or file.url)
        deadline = None if max_wait is None else time.monotonic() + max_wait
        delay = _retry_after(answer.headers) or 1.0
        while result.status == "processing":
            await asyncio.sleep(min(delay, self.max_poll_interval))
            poll = await self._request("GET", url)
            result = self._file(poll, file.filename, 200)
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"timed out waiting for {file.filename} to be validated")
            delay = _retry_after(poll.headers) or min(delay * 1.5, self.max_poll_interval)
        if result.status != "completed":
            raise OperationFailed(
                f"{file.filename or 'the file'} ended in {result.status!r}",
                result.status,
                result.notices,
            )
        return result

    async def upload_file(
        self,
        session: PublishingSession,
        path: Path,
        *,
        filename: str | None = None,
        size: int,
        hashes: Mapping[str, str],
        attestations: list[dict[str, Any]] | None = None,
        progress: ProgressCallback | None = None,
        on_created: Callable[[FileUpload], None] | None = None,
        on_resume: ResumeCallback | None = None,
    ) -> FileUpload:
        """The whole flow for one file: create, bytes (by :func:`choose_mechanism`),
        attestations, complete.

        If anything fails after the file upload session was created, the file is deleted
        (best effort) before the error propagates, as the PEP recommends.
        """
        mechanism = choose_mechanism(session.mechanisms, size, self.resumable_above)
        file = await self.create_file(
            session, filename or path.name, size, hashes, mechanism=mechanism
        )
        if on_created is not None:
            on_created(file)
        try:
            if mechanism == RESUMABLE:
                await self.upload_resumable(
                    file, path, size, progress=progress, on_resume=on_resume
                )
            elif mechanism == S3_PRESIGNED:
                await self.upload_presigned(file, path, size, progress=progress)
            else:
                await self.upload_bytes(file, path, size, progress=progress)
            if attestations:
                await self.upload_attestations(file, attestations)
            return await self.complete_file(file)
        except ClientError:
            await self._discard(file)
            raise

    async def _discard(self, file: FileUpload) -> None:
        with contextlib.suppress(ClientError, TimeoutError):
            await asyncio.wait_for(self.delete_file(file.url), 15)

    # -- the audit journal (not Upload 2.0: this gateway's own, docs/audit.md) ----------

    async def audit_page(
        self,
        *,
        project: str | None = None,
        since: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> AuditPage:
        """One page of audit events, newest first; ``page.next`` is the following page's
        ``cursor``."""
        query = {"project": project, "since": since, "cursor": cursor, "limit": str(limit)}
        url = URL(urljoin(self.api_url, "audit")).with_query(
            {name: value for name, value in query.items() if value}
        )
        answer = await self._request("GET", str(url))
        if answer.status >= 400:
            raise ProblemError.from_answer(answer)
        if answer.status != 200 or answer.media_type != "application/json":
            raise ClientError(f"{answer.url} answered {answer.status} {answer.media_type}")
        return AuditPage.model_validate_json(answer.body)

    # -- plumbing ------------------------------------------------------------------------

    def _session(self, answer: _Answer, *statuses: int) -> PublishingSession:
        return PublishingSession.parse(self._expect(answer, *statuses), answer.url)

    def _file(
        self, answer: _Answer, filename: str, *statuses: int, empty_ok: bool = False
    ) -> FileUpload:
        document = self._expect(answer, *statuses, empty_ok=empty_ok)
        return FileUpload.parse(document, filename, answer.url)

    def _expect(self, answer: _Answer, *statuses: int, empty_ok: bool = False) -> dict[str, Any]:
        if answer.status >= 400:
            raise ProblemError.from_answer(answer)
        if answer.status not in statuses:
            raise ClientError(f"{answer.url} answered an unexpected HTTP {answer.status}")
        if answer.status == 204 or (empty_ok and not answer.body):
            return {}
        if answer.media_type != UPLOAD_V2_JSON:
            raise ClientError(
                f"{answer.url} answered {answer.media_type or 'no content type'}, "
                f"not {UPLOAD_V2_JSON}"
            )
        return answer.json()

    def _headers(self, url: str, extra: Mapping[str, str]) -> dict[str, str]:
        headers = {
            "Accept": f"{UPLOAD_V2_JSON}, {PROBLEM_JSON};q=0.9",
            "User-Agent": USER_AGENT,
            **extra,
        }
        if self._authorization and URL(url).origin() == self._origin:
            headers["Authorization"] = self._authorization
        return headers

    async def _request(
        self,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        body: _Body | None = None,
        streaming: bool = False,
    ) -> _Answer:
        if json_body is not None:
            encoded = json.dumps(json_body).encode()
            body = _Body(make=lambda: encoded, headers={"Content-Type": UPLOAD_V2_JSON})
        policy = self.retry
        attempt = 0
        while True:
            delay = min(policy.backoff * (2**attempt), policy.max_delay)
            try:
                answer = await self._send(method, url, body, streaming)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                if attempt >= policy.retries:
                    raise TransportError(f"{method} {url}: {_describe(exc)}") from exc
            else:
                if answer.status < 500 or answer.status == 501 or attempt >= policy.retries:
                    return answer
                delay = min(_retry_after(answer.headers) or delay, policy.max_delay)
            attempt += 1
            if body is not None and body.on_retry is not None:
                body.on_retry()
            await asyncio.sleep(delay)

    async def _send(self, method: str, url: str, body: _Body | None, streaming: bool) -> _Answer:
        async with self.http.request(
            method,
            url,
            data=body.make() if body is not None else None,
            headers=self._headers(url, body.headers if body is not None else {}),
            allow_redirects=method in ("GET", "HEAD"),
            timeout=self._stream_timeout if streaming else self._json_timeout,
        ) as response:
            raw = await _read_whole(response, MAX_RESPONSE_BYTES)
            return _Answer(
                status=response.status,
                reason=response.reason or "",
                media_type=media_type(response.headers.get("Content-Type")),
                body=raw,
                headers=dict(response.headers),
                url=str(response.url),
            )


async def _read_whole(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, up to ``limit`` bytes. (``content.read(n)`` answers what has arrived so
    far: a session of a few hundred files comes in several pieces.)"""
    body = bytearray()
    while chunk := await response.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise ClientError(f"{response.url} answered more than {limit} bytes")
    return bytes(body)


async def _file_chunks(
    path: Path, count: Callable[[int], None], start: int = 0
) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        handle.seek(start)
        while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            count(len(chunk))
            yield chunk
    finally:
        handle.close()


def _read_range(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(start)
        return handle.read(length)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
