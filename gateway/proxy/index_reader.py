"""How the read path reads the index itself: a listing, revalidated with the validators the
index gave, and a file's bytes by ranges (R-W10).

Every request names the index's own URL; the caller's ``Authorization`` goes with it, so the
gateway reads no more of the index than the installer asking could.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from gateway.distribution.ranged import from_blocks
from gateway.outbound import Hop

# An index page larger than this is not a listing we serve; the client gets the index's own.
MAX_PAGE_BYTES = 32 << 20
# An index that ignores Range sends the whole file; past this it is left unread.
MAX_WHOLE_FILE_BYTES = 64 << 20
# The first range: a wheel's central directory is at its end, an sdist's PKG-INFO near its
# start; one request of this size finds both in nearly every distribution.
FIRST_RANGE_BYTES = 256 << 10
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_CHUNK = 256 << 10


class IndexAnswer(Exception):
    """The index answered something that is not a page: relayed as its own status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class TooLarge(Exception):
    """More bytes than the read path will hold in memory for one answer."""


@dataclass(frozen=True)
class Page:
    """One answer of the index to a listing request (a 304 carries no body)."""

    status: int
    content_type: str
    charset: str | None
    body: bytes
    etag: str | None
    last_modified: str | None


class IndexReader:
    def __init__(
        self, http: aiohttp.ClientSession, hop: Hop, timeout: float, index_origin: str
    ) -> None:
        """``index_origin``: the only scheme://host:port credentials are ever sent to (a
        listing may link files anywhere)."""
        self._http = http
        self._hop = hop
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
        self._origin = _origin(index_origin)

    def _credentials(self, url: str, authorization: str | None) -> dict[str, str]:
        if authorization and _origin(url) == self._origin:
            return {"Authorization": authorization}
        return {}

    async def page(
        self, url: str, accept: str, authorization: str | None, validators: Page | None
    ) -> Page:
        """The listing at ``url``; 304 when ``validators`` (the last answer) still hold.
        Raises IndexAnswer for any other status, aiohttp/timeout errors when unreachable."""
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        headers.update(self._credentials(url, authorization))
        if validators is not None and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators is not None and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        async with self._http.get(
            url, headers=headers, timeout=self._timeout, **self._hop.options(url)
        ) as answer:
            if answer.status not in (200, 304):
                raise IndexAnswer(answer.status, answer.reason or "")
            body = await _bounded(answer, MAX_PAGE_BYTES) if answer.status == 200 else b""
            return Page(
                answer.status,
                answer.content_type,
                answer.charset,
                body,
                answer.headers.get("ETag"),
                answer.headers.get("Last-Modified"),
            )

    async def open_file(self, url: str, filename: str, authorization: str | None) -> RemoteFile:
        """A random-access view of the index's file, starting with one ranged GET."""
        first = f"bytes=-{FIRST_RANGE_BYTES}" if filename.endswith(".whl") else None
        first = first or f"bytes=0-{FIRST_RANGE_BYTES - 1}"
        status, body, content_range, last_modified = await self.get_range(url, authorization, first)
        if status == 200:  # Range ignored: the whole file is here
            return RemoteFile(self, url, authorization, len(body), {0: body}, last_modified)
        match = _CONTENT_RANGE.fullmatch(content_range or "")
        if status != 206 or match is None:
            raise IndexAnswer(status, "not a file")
        start, size = int(match[1]), int(match[3])
        return RemoteFile(self, url, authorization, size, {start: body}, last_modified)

    async def get_range(
        self, url: str, authorization: str | None, byte_range: str
    ) -> tuple[int, bytes, str | None, str | None]:
        headers = {"Range": byte_range, "Accept-Encoding": "identity"}
        headers.update(self._credentials(url, authorization))
        async with self._http.get(
            url, headers=headers, timeout=self._timeout, **self._hop.options(url)
        ) as answer:
            if answer.status not in (200, 206):
                raise IndexAnswer(answer.status, answer.reason or "")
            body = await _bounded(answer, MAX_WHOLE_FILE_BYTES)
            return (
                answer.status,
                body,
                answer.headers.get("Content-Range"),
                answer.headers.get("Last-Modified"),
            )


class RemoteFile:
    """``RangeReader`` over the index's copy of a file: ranges already fetched are reused,
    any other one is one more ranged GET. ``fetched`` counts the bytes that crossed."""

    def __init__(
        self,
        reader: IndexReader,
        url: str,
        authorization: str | None,
        size: int,
        blocks: dict[int, bytes],
        last_modified: str | None,
    ) -> None:
        self._reader = reader
        self._url = url
        self._authorization = authorization
        self._size = size
        self._blocks = blocks
        self.last_modified = last_modified
        self.fetched = sum(len(b) for b in blocks.values())

    @property
    def size(self) -> int:
        return self._size

    async def read_range(self, start: int, length: int) -> bytes:
        length = max(0, min(length, self._size - start))
        held = from_blocks(self._blocks, start, length)
        if held is not None:
            return held
        byte_range = f"bytes={start}-{start + length - 1}"
        status, body, _, _ = await self._reader.get_range(
            self._url, self._authorization, byte_range
        )
        self.fetched += len(body)
        if status == 200:  # the index stopped honouring Range: keep the whole file
            self._blocks = {0: body}
            return body[start : start + length]
        self._blocks[start] = body
        return body[:length]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower().rpartition("@")[2]


async def _bounded(answer: aiohttp.ClientResponse, limit: int) -> bytes:
    if answer.content_length is not None and answer.content_length > limit:
        raise TooLarge(f"{answer.url} is larger than {limit} bytes")
    body = bytearray()
    async for chunk in answer.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"{answer.url} is larger than {limit} bytes")
    return bytes(body)
