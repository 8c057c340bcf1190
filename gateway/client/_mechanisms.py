"""The bytes of one file, by the mechanism the file upload session names, all streamed from
disk: ``http-post-bytes``; the gateway's ``vnd-uploadgateway-resumable-v1`` (a dropped
connection resumes from the offset the server confirms); ``vnd-uploadgateway-s3-presigned-v1``
(parts go straight to S3)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

import aiohttp

from gateway.client._errors import ProblemError, TransportError
from gateway.client._models import FileUploadView
from gateway.client._transport import (
    CONNECTION_ERRORS,
    Body,
    Transport,
    describe,
    file_chunks,
    read_range,
)
from gateway.protocol.mechanisms import HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED
from gateway.protocol.media import OCTET_STREAM, PARTIAL_UPLOAD

# The mechanisms this client can run, most preferred first.
SUPPORTED_MECHANISMS = (S3_PRESIGNED, RESUMABLE, HTTP_POST_BYTES)
# Below this a single http-post-bytes request is the cheapest way; above it a transfer worth
# protecting against a dropped connection.
RESUMABLE_ABOVE = 16 << 20

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


async def send_file(
    transport: Transport,
    file: FileUploadView,
    mechanism: str,
    path: Path,
    size: int,
    progress: ProgressCallback | None = None,
    on_resume: ResumeCallback | None = None,
) -> None:
    """The file's bytes by ``mechanism`` (the one its upload session was created with)."""
    if mechanism == RESUMABLE:
        await send_resumable(transport, file, path, size, progress, on_resume)
    elif mechanism == S3_PRESIGNED:
        await PresignedParts(transport, file, path, size, progress).send()
    else:
        await send_bytes(transport, file, path, size, progress)


class _Counter:
    """Bytes sent of one transfer, passed on to ``progress`` (which may go back on a retry)."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.sent = 0
        self._progress = progress

    def __call__(self, count: int) -> None:
        self.sent += count
        if self._progress is not None:
            self._progress(count)

    def set(self, position: int) -> None:
        """Bytes in flight that did not land are taken back."""
        if position != self.sent:
            self(position - self.sent)


async def send_bytes(
    transport: Transport,
    file: FileUploadView,
    path: Path,
    size: int,
    progress: ProgressCallback | None = None,
) -> FileUploadView:
    """``http-post-bytes``: stream ``path`` as the body (never whole in memory). A retry
    after a connection error starts the body over (the server keeps the latest complete
    POST); ``progress`` then receives a negative count to rewind."""
    counter = _Counter(progress)
    body = Body(
        make=lambda: file_chunks(path, counter),
        headers={"Content-Type": OCTET_STREAM, "Content-Length": str(size)},
        on_retry=lambda: counter.set(0),
    )
    answer = await transport.request("POST", file.file_url, body, streaming=True)
    return FileUploadView.read(answer, file.filename, 200, 201, 202, 204, empty_ok=True)


async def send_resumable(
    transport: Transport,
    file: FileUploadView,
    path: Path,
    size: int,
    progress: ProgressCallback | None = None,
    on_resume: ResumeCallback | None = None,
) -> None:
    """``vnd-uploadgateway-resumable-v1``: send the rest of the file in one ``PATCH``; when
    the connection drops, ask the server how far it got (``HEAD``) and go on from there,
    never sending confirmed bytes again. Gives up after ``retry.retries`` resumptions
    without progress."""
    url = str(file.mechanism["upload_url"])
    counter = _Counter(progress)
    offset, stalled = 0, 0
    while (failure := await _patch_rest(transport, url, path, size, offset, counter)) is not None:
        confirmed = await _resumable_offset(transport, url)
        counter.set(confirmed)
        stalled = 0 if confirmed > offset else stalled + 1
        if stalled > transport.retry.retries:
            raise TransportError(f"PATCH {url}: {failure}; no progress after resuming")
        offset = confirmed
        if on_resume is not None:
            on_resume(file.filename, offset)
        if stalled:
            await asyncio.sleep(transport.retry.delay(stalled))


async def _patch_rest(
    transport: Transport, url: str, path: Path, size: int, offset: int, counter: _Counter
) -> str | None:
    """One ``PATCH`` of the file from ``offset`` to its end: None once the upload is
    complete, else what cut it short (a refusal raises)."""
    body = Body(
        make=functools.partial(file_chunks, path, counter, start=offset),
        headers={
            "Content-Type": PARTIAL_UPLOAD,
            "Content-Length": str(size - offset),
            "Upload-Offset": str(offset),
            "Upload-Complete": "?1",
        },
    )
    try:
        answer = await transport.send("PATCH", url, body, streaming=True)
    except CONNECTION_ERRORS as exc:
        return describe(exc)
    if answer.status == 204 and answer.headers.get("Upload-Complete") == "?1":
        return None
    if answer.status < 500 and answer.status != 409:
        raise ProblemError.from_answer(answer)
    return f"HTTP {answer.status}"


async def _resumable_offset(transport: Transport, url: str) -> int:
    answer = await transport.request("HEAD", url)
    if answer.status != 204 or not answer.headers.get("Upload-Offset", "").isdigit():
        raise ProblemError.from_answer(answer)
    return int(answer.headers["Upload-Offset"])


class PresignedParts:
    """``vnd-uploadgateway-s3-presigned-v1``: PUT each part straight to its presigned S3
    URL, a few at a time; a failed part is retried, with fresh URLs when they expired."""

    def __init__(
        self,
        transport: Transport,
        file: FileUploadView,
        path: Path,
        size: int,
        progress: ProgressCallback | None = None,
    ) -> None:
        self._transport = transport
        self._file = file
        self._path = path
        self._size = size
        self._progress = progress
        self._part_size = int(file.mechanism["part_size"])
        self._urls = self._part_urls(file)

    async def send(self, parallel: int = 2) -> None:
        limit = asyncio.Semaphore(parallel)

        async def bounded(number: int) -> None:
            async with limit:
                await self._put(number)

        await asyncio.gather(*(bounded(number) for number in sorted(self._urls)))

    async def _put(self, number: int) -> None:
        start = (number - 1) * self._part_size
        length = min(self._part_size, self._size - start)
        data = await asyncio.to_thread(read_range, self._path, start, length)
        retry = self._transport.retry
        for attempt in range(retry.retries + 1):
            failure = await self._put_once(number, data)
            if failure is None:
                if self._progress is not None:
                    self._progress(len(data))
                return
            await asyncio.sleep(retry.delay(attempt))
        raise TransportError(f"part {number} of {self._file.filename}: {failure}")

    async def _put_once(self, number: int, data: bytes) -> str | None:
        """None once the part is stored, else why not (an expired URL is renewed)."""
        transport = self._transport
        try:
            async with transport.http.put(
                self._urls[number], data=data, timeout=transport.stream_timeout
            ) as response:
                if response.status == 200:
                    return None
                if response.status == 403:  # the URL expired: get new ones
                    await self._renew()
                return f"HTTP {response.status}"
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            return describe(exc)

    async def _renew(self) -> None:
        url = str(self._file.mechanism.get("parts_url") or self._file.url)
        answer = await self._transport.request("GET", url)
        self._urls.update(self._part_urls(FileUploadView.read(answer, "", 200)))

    @staticmethod
    def _part_urls(file: FileUploadView) -> dict[int, str]:
        return {int(p["number"]): str(p["url"]) for p in file.mechanism.get("parts", [])}
