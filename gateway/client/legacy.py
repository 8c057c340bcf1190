"""The legacy upload API (PEP 694 "Legacy API Fallback"): one multipart POST per file.

The form is what the gateway itself replays at publish, and what twine sends: built by
:func:`gateway.protocol.legacy_upload_form.legacy_form_fields` from the file's own
METADATA/PKG-INFO.
The body is framed by hand so its exact ``Content-Length`` is known (some legacy indexes
refuse chunked uploads) and the file streams from disk as the last part.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp

from gateway.client._errors import ClientError, ProblemError, TransportError, plain_text
from gateway.client._transport import CHUNK_BYTES, CONNECTION_ERRORS, USER_AGENT, RetryPolicy
from gateway.client.local import Distribution, LocalCheckError
from gateway.protocol.legacy_upload_form import (
    LegacyFileInfo,
    LegacyFormError,
    encode_attestations,
    filetype_and_pyversion,
    legacy_form_fields,
)
from gateway.protocol.multipart import frame

__all__ = ["form_fields", "upload_legacy"]


def form_fields(dist: Distribution) -> list[tuple[str, str]]:
    """The legacy form of ``dist``; :class:`LocalCheckError` if it cannot be sent faithfully."""
    try:
        filetype, pyversion = filetype_and_pyversion(dist.filename)
        info = LegacyFileInfo(dist.filename, filetype, pyversion, dist.sha256, dist.blake2_256)
        attestations = encode_attestations(dist.attestations) if dist.attestations else None
        return legacy_form_fields(dist.metadata, info, attestations=attestations)
    except LegacyFormError as exc:
        raise LocalCheckError(f"{dist.path}: {exc}") from None


async def upload_legacy(
    http: aiohttp.ClientSession,
    url: str,
    dist: Distribution,
    *,
    authorization: str | None,
    progress: Callable[[int], None] | None = None,
    retry: RetryPolicy | None = None,
) -> None:
    """POST ``dist`` to the legacy upload ``url``; raises :class:`ProblemError` on refusal.

    Connection errors and 502/503/504 are retried (the whole file again); any other answer
    of 300 or more is a refusal, reported with the index's own status and text.
    """
    content_type, head, tail = frame(form_fields(dist), dist.filename)
    policy = retry or RetryPolicy()
    body = _FormBody(dist, head, tail, progress)
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(head) + dist.size + len(tail)),
        "User-Agent": USER_AGENT,
    }
    if authorization:
        headers["Authorization"] = authorization
    attempt = 0
    while True:
        try:
            status, reason, location, text = await _post(http, url, body, headers)
        except CONNECTION_ERRORS as exc:
            if attempt >= policy.retries:
                raise TransportError(f"POST {url}: {exc or type(exc).__name__}") from exc
        else:
            if status < 300:
                return
            if status not in (502, 503, 504) or attempt >= policy.retries:
                raise _refusal(url, status, reason, location, text)
        body.rewind()
        await asyncio.sleep(policy.delay(attempt))
        attempt += 1


async def _post(
    http: aiohttp.ClientSession, url: str, body: _FormBody, headers: dict[str, str]
) -> tuple[int, str, str | None, str]:
    """One POST of the form: the status, reason, ``Location`` and the start of the text."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
    async with http.post(
        url, data=body.chunks(), headers=headers, allow_redirects=False, timeout=timeout
    ) as response:
        text = (await response.content.read(64 * 1024)).decode(errors="replace")
        return response.status, response.reason or "", response.headers.get("Location"), text


class _FormBody:
    """The framed form with the file streamed from disk as its last part. Progress counts
    the file's bytes as they go out, and takes them back when a retry sends them again."""

    def __init__(
        self,
        dist: Distribution,
        head: bytes,
        tail: bytes,
        progress: Callable[[int], None] | None,
    ) -> None:
        self._dist = dist
        self._head = head
        self._tail = tail
        self._progress = progress
        self._sent = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._head
        handle = await asyncio.to_thread(self._dist.path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                self._sent += len(chunk)
                if self._progress is not None:
                    self._progress(len(chunk))
                yield chunk
        finally:
            handle.close()
        yield self._tail

    def rewind(self) -> None:
        if self._progress is not None and self._sent:
            self._progress(-self._sent)
        self._sent = 0


def _refusal(url: str, status: int, reason: str, location: str | None, text: str) -> ClientError:
    if 300 <= status < 400:
        return ClientError(
            f"{url} redirected the upload to {location}; use that URL as the repository URL"
        )
    return ProblemError(status, reason, plain_text(text))
