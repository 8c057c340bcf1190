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

This module holds the operations; the private modules beside it hold the plumbing: errors
(``_errors``), the views of the server's documents (``_models``), requests, retries and polling
(``_transport``), the mechanisms' transfers (``_mechanisms``), following deferred operations
to their end (``_deferred``) and reading the audit journal (``_audit``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp

from gateway.client import _deferred
from gateway.client._audit import read_audit_page
from gateway.client._errors import (
    ClientError,
    NotUpload2Error,
    OperationFailed,
    ProblemError,
    TransportError,
)
from gateway.client._mechanisms import (
    RESUMABLE_ABOVE,
    PresignedParts,
    ProgressCallback,
    ResumeCallback,
    choose_mechanism,
    send_bytes,
    send_file,
    send_resumable,
)
from gateway.client._models import FileUploadView, SessionView
from gateway.client._transport import (
    Answer,
    Body,
    RetryPolicy,
    Transport,
    expect,
    problem_type,
    retry_after,
)
from gateway.protocol.audit import AuditPage
from gateway.protocol.mechanisms import HTTP_POST_BYTES
from gateway.protocol.media import API_VERSION, PROBLEM_JSON, UPLOAD_V2_JSON

__all__ = [
    "RESUMABLE_ABOVE",
    "ClientError",
    "FileUploadView",
    "NotUpload2Error",
    "OperationFailed",
    "ProblemError",
    "ProgressCallback",
    "ResumeCallback",
    "RetryPolicy",
    "SessionView",
    "TransportError",
    "UploadClient",
    "choose_mechanism",
]

META = {"api-version": API_VERSION}


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
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.api_url = api_url
        self.resumable_above = resumable_above
        self._transport = Transport(
            api_url,
            authorization=authorization,
            http=http,
            retry=retry or RetryPolicy(),
            max_poll_interval=max_poll_interval,
            request_timeout=request_timeout,
            read_timeout=read_timeout,
            on_retry=on_retry,
        )

    async def __aenter__(self) -> UploadClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        return self._transport.http

    @property
    def retry(self) -> RetryPolicy:
        return self._transport.retry

    # -- publishing sessions -------------------------------------------------------------

    async def create_session(
        self, name: str, version: str, *, reuse: bool = True
    ) -> tuple[SessionView, bool]:
        """Create the release's publishing session: ``(session, created)``.

        When the release already has a live session (``409`` with ``Location``) and ``reuse``
        is true, that session is fetched and returned with ``created=False``.
        """
        answer = await self._post(self.api_url, {"name": name, "version": version})
        speaks_v2 = answer.media_type in (UPLOAD_V2_JSON, PROBLEM_JSON)
        # A 5xx page from a proxy in front of an Upload 2.0 server is an outage, not a sign
        # of a legacy index: only a non-5xx answer in another format means "no Upload 2.0".
        if answer.status in (404, 405, 406, 501) or (not speaks_v2 and answer.status < 500):
            raise NotUpload2Error(self.api_url, answer.status, answer.media_type)
        location = answer.headers.get("Location")
        if answer.status == 409 and reuse and location:
            return await self.get_session(urljoin(answer.url, location)), False
        return SessionView.read(answer, 201), True

    async def get_session(self, url: str) -> SessionView:
        return SessionView.read(await self._transport.request("GET", url), 200)

    async def release_session(self, name: str, version: str) -> SessionView:
        """The release's live session, by name and version (this gateway's lookup, R-W11):
        needs only the right to read it, as an approver has."""
        url = f"{self.api_url.rstrip('/')}/releases/{quote(name)}/{quote(version)}"
        return SessionView.read(await self._transport.request("GET", url), 200)

    async def extend_session(self, session: SessionView, seconds: int) -> SessionView:
        """Ask for ``seconds`` more; the answer's ``expires-at`` is what the server granted."""
        url = session.response.links.extend
        if not url:
            raise ClientError("the server does not offer session extensions")
        answer = await self._post(url, {"extend-for": int(seconds)})
        return SessionView.read(answer, 200)

    async def cancel_session(self, url: str) -> None:
        expect(await self._transport.request("DELETE", url), 204)

    async def approve_session(self, url: str) -> dict[str, Any]:
        """Approve the session's current files (R-W11): who has approved them, and how
        many approvals the policy requires."""
        return expect(await self._post(url.rstrip("/") + "/approve", {}), 200)

    async def publish(
        self, session: SessionView, *, wait: bool = True, max_wait: float | None = None
    ) -> SessionView:
        """Publish the session; with ``wait``, poll a deferred (``202``) publish to its end.

        Returns the ``published`` session (or the ``processing`` one without ``wait``);
        raises :class:`OperationFailed` when the publish resolves to ``error``.
        """
        answer = await self._post(session.response.links.publish, {})
        if _under_review(answer):
            # The gateway's review step (R-W11) runs on the files first: wait for its
            # verdict, then publish what passed.
            reviewed = await self.wait_session(session.url, max_wait=max_wait)
            if reviewed.status != "open":
                raise OperationFailed(
                    f"the review ended in {reviewed.status!r}", reviewed.status, reviewed.notices
                )
            answer = await self._post(session.response.links.publish, {})
        result = await _deferred.published_already(self._transport, answer, session)
        if result is not None:
            url = result.url
        else:
            result = SessionView.read(answer, 201, 202)
            url = urljoin(answer.url, answer.headers.get("Location") or result.url)
        if result.status == "published" or not wait:
            return result
        first_delay = retry_after(answer.headers)
        return await _deferred.published(self._transport, url, first_delay, max_wait)

    async def wait_session(
        self, url: str, *, first_delay: float | None = None, max_wait: float | None = None
    ) -> SessionView:
        """Poll the session until it leaves ``processing``."""
        return await _deferred.session_settled(self._transport, url, first_delay, max_wait)

    async def wait_for_files(
        self, session: SessionView, filenames: list[str], *, max_wait: float | None = None
    ) -> SessionView:
        """Poll the session until none of ``filenames`` is ``processing`` any more: the
        deferred validations of a release's files, waited for once rather than file by file."""
        return await _deferred.files_validated(self._transport, session, filenames, max_wait)

    # -- file upload sessions ------------------------------------------------------------

    async def create_file(
        self,
        session: SessionView,
        filename: str,
        size: int,
        hashes: Mapping[str, str],
        *,
        mechanism: str = HTTP_POST_BYTES,
    ) -> FileUploadView:
        document = {"filename": filename, "size": size, "hashes": dict(hashes)}
        answer = await self._post(
            session.response.links.upload, {**document, "mechanism": mechanism}
        )
        location = answer.headers.get("Location")
        if answer.status == 409 and location:
            # The server points at a pending upload declared just like this one: this
            # create's own first attempt, whose answer was lost (R-W12). Carry on with it.
            self._transport.on_retry(f"{filename}: the create had gone through; continuing")
            return await self.get_file(urljoin(answer.url, location), filename)
        return FileUploadView.read(answer, filename, 202)

    async def get_file(self, url: str, filename: str = "") -> FileUploadView:
        return FileUploadView.read(await self._transport.request("GET", url), filename, 200)

    async def delete_file(self, url: str) -> None:
        expect(await self._transport.request("DELETE", url), 204)

    async def upload_bytes(
        self,
        file: FileUploadView,
        path: Path,
        size: int,
        *,
        progress: ProgressCallback | None = None,
    ) -> FileUploadView:
        """``http-post-bytes``: stream ``path`` from disk as the body (never whole in memory);
        a retry starts over, and ``progress`` then receives a negative count to rewind."""
        return await send_bytes(self._transport, file, path, size, progress)

    async def upload_resumable(
        self,
        file: FileUploadView,
        path: Path,
        size: int,
        *,
        progress: ProgressCallback | None = None,
        on_resume: ResumeCallback | None = None,
    ) -> None:
        """``vnd-uploadgateway-resumable-v1``: one ``PATCH`` of the rest of the file, resumed
        from the offset the server confirms when the connection drops."""
        await send_resumable(self._transport, file, path, size, progress, on_resume)

    async def upload_presigned(
        self,
        file: FileUploadView,
        path: Path,
        size: int,
        *,
        progress: ProgressCallback | None = None,
        parallel: int = 2,
    ) -> None:
        """``vnd-uploadgateway-s3-presigned-v1``: parts straight to S3, ``parallel`` at once."""
        await PresignedParts(self._transport, file, path, size, progress).send(parallel)

    async def upload_attestations(
        self, file: FileUploadView, attestations: list[dict[str, Any]]
    ) -> FileUploadView:
        url = file.attestations_url
        if not url:
            raise ClientError("the server does not accept attestations for this file")
        body = Body.json(attestations, content_type="application/json")
        answer = await self._transport.request("POST", url, body)
        return FileUploadView.read(answer, file.filename, 200, 201, 202, 204, empty_ok=True)

    async def complete_file(
        self, file: FileUploadView, *, wait: bool = True, max_wait: float | None = None
    ) -> FileUploadView:
        """Complete the file; with ``wait``, poll a deferred (``202``) validation to its end.

        A synchronous refusal raises :class:`ProblemError` (the file is then in ``error`` and
        must be deleted); a deferred one raises :class:`OperationFailed`.
        """
        answer = await self._post(file.described.links.complete, {})
        result = FileUploadView.read(answer, file.filename, 201, 202)
        if answer.status == 201 or not wait or result.status == "completed":
            return result
        return await _deferred.completed(self._transport, answer, result, file, max_wait)

    async def upload_file(
        self,
        session: SessionView,
        path: Path,
        *,
        filename: str | None = None,
        size: int,
        hashes: Mapping[str, str],
        attestations: list[dict[str, Any]] | None = None,
        progress: ProgressCallback | None = None,
        on_created: Callable[[FileUploadView], None] | None = None,
        on_resume: ResumeCallback | None = None,
        wait: bool = True,
    ) -> FileUploadView:
        """The whole flow for one file: create, bytes (by :func:`choose_mechanism`),
        attestations, complete (without ``wait``, a deferred validation is left
        ``processing``: :meth:`wait_for_files` waits for several at once).

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
            await send_file(self._transport, file, mechanism, path, size, progress, on_resume)
            if attestations:
                await self.upload_attestations(file, attestations)
            return await self.complete_file(file, wait=wait)
        except ClientError:
            await self.discard_file(file.url)
            raise

    async def discard_file(self, url: str) -> None:
        """Delete a file upload session, best effort (after a failure, as the PEP recommends)."""
        with contextlib.suppress(ClientError, TimeoutError):
            await asyncio.wait_for(self.delete_file(url), 15)

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
        return await read_audit_page(self._transport, self.api_url, query)

    async def _post(self, url: str, document: dict[str, Any]) -> Answer:
        """POST an Upload 2.0 request document (``meta`` added)."""
        return await self._transport.request("POST", url, Body.json({"meta": META, **document}))


def _under_review(answer: Answer) -> bool:
    """A ``409 review-in-progress``: the session is ``processing`` for its review step."""
    return answer.status == 409 and problem_type(answer).endswith("review-in-progress")
