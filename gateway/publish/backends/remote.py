"""Random access to a file on the backing index, by HTTP Range requests.

A ``RemoteFile`` is a ``distribution.archive.RangeReader``: reading a released wheel's
METADATA takes its tail (the zip directory) and the few KiB of the member, never the whole
file. An index that ignores Range answers 200 with the whole file, which is used as it is up
to the listing bound (``MAX_LISTING_BYTES``); past that the read fails as too big.
"""

from __future__ import annotations

import re

from gateway.publish.backends.base import Backend, BackendInvalidResponse, Document

__all__ = ["TAIL_BYTES", "RemoteFile", "open_remote"]

# The zip end-of-directory record with the longest comment, and a ZIP64 locator before it.
TAIL_BYTES = 22 + 0xFFFF + 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class RemoteFile:
    def __init__(self, backend: Backend, url: str, size: int, start: int, data: bytes) -> None:
        self._backend = backend
        self._url = url
        self._size = size
        self._held = (start, data)  # the last answer: the tail first, as a wheel reader asks

    @property
    def size(self) -> int:
        return self._size

    async def read_range(self, start: int, length: int) -> bytes:
        length = max(0, min(length, self._size - start))
        held_start, held = self._held
        if held_start <= start and start + length <= held_start + len(held):
            return held[start - held_start : start - held_start + length]
        document = await _get(self._backend, self._url, f"bytes={start}-{start + length - 1}")
        if document.status == 200:  # the index ignored the range: it sent everything
            self._held = (0, document.body)
            return document.body[start : start + length]
        first, _, _ = _content_range(document)
        if first != start:
            raise BackendInvalidResponse(f"{self._url} answered another range than asked")
        self._held = (first, document.body)
        return document.body[start - first : start - first + length]


async def open_remote(backend: Backend, url: str) -> RemoteFile:
    """Learn the file's size with a first request that fetches its tail."""
    document = await _get(backend, url, f"bytes=-{TAIL_BYTES}")
    if document.status == 200:
        return RemoteFile(backend, url, len(document.body), 0, document.body)
    first, _, size = _content_range(document)
    return RemoteFile(backend, url, size, first, document.body)


async def _get(backend: Backend, url: str, byte_range: str) -> Document:
    document = await backend.fetch(
        # identity: a range of compressed bytes would be no range of the file.
        url,
        accept="*/*",
        headers={"Range": byte_range, "Accept-Encoding": "identity"},
        operation="read",
    )
    if document is None:
        raise BackendInvalidResponse(f"{url} is listed by the index but answers 404")
    if document.status not in (200, 206):
        raise BackendInvalidResponse(f"{url} answered {document.status} to a Range request")
    return document


def _content_range(document: Document) -> tuple[int, int, int]:
    match = _CONTENT_RANGE.fullmatch((document.content_range or "").strip())
    if match is None:
        raise BackendInvalidResponse(f"{document.url} answered 206 without a usable Content-Range")
    first, last, size = (int(group) for group in match.groups())
    if last - first + 1 != len(document.body) or last >= size:
        raise BackendInvalidResponse(f"{document.url} sent a range that does not add up")
    return first, last, size
