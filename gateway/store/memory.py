"""In-memory record and blob stores with S3's conditional-write semantics, for the fast test
tier (``make test-fast``): services, the publisher and the sweeper run against them in
milliseconds. They never replace the S3 stores outside tests.

Every operation yields to the event loop once, as a network round trip would, so concurrent
compare-and-swaps really interleave and lose against each other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

from gateway.store.record_store import (
    Document,
    JsonRecords,
    Listed,
    RecordChanged,
    RecordExists,
    RecordMissing,
    Stored,
    encode,
)

_etags = itertools.count(1)


def _etag() -> str:
    return f'"{next(_etags)}"'


class MemoryRecordStore(JsonRecords):
    """JSON records: create-if-absent, If-Match replace and delete, listing by prefix."""

    def __init__(self, max_attempts: int = 16) -> None:
        self.max_attempts = max_attempts
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.writes = 0

    async def create(self, key: str, data: Document) -> str:
        await asyncio.sleep(0)
        if key in self.objects:
            raise RecordExists(key)
        return self._write(key, data)

    async def get(self, key: str) -> Stored | None:
        await asyncio.sleep(0)
        found = self.objects.get(key)
        if found is None:
            return None
        return Stored(found[0], found[1])

    async def replace(self, key: str, data: Document, etag: str) -> str:
        await asyncio.sleep(0)
        found = self.objects.get(key)
        if found is None:
            raise RecordMissing(key)
        if found[1] != etag:
            raise RecordChanged(key)
        return self._write(key, data)

    async def delete(self, key: str, etag: str | None = None) -> None:
        await asyncio.sleep(0)
        found = self.objects.get(key)
        if found is None:
            return
        if etag is not None and found[1] != etag:
            raise RecordChanged(key)
        del self.objects[key]

    async def listing(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[Listed]:
        await asyncio.sleep(0)
        for key in sorted(self.objects):
            rest = key[len(prefix) :]
            found = self.objects.get(key)  # None once deleted while the caller went through
            if found and key.startswith(prefix) and not (delimiter and delimiter in rest):
                yield Listed(key, found[1])

    def _write(self, key: str, data: Document) -> str:
        etag = _etag()
        # Stored encoded, as S3 would: a caller keeping the dict cannot change the record.
        self.objects[key] = (encode(data), etag)
        self.writes += 1
        return etag


class MemoryMultipartWrite:
    """:class:`gateway.store.blobs.MultipartWrite`'s interface, parts kept in memory."""

    def __init__(self, blobs: MemoryBlobStore, key: str) -> None:
        self._blobs = blobs
        self._key = key
        self._parts: list[bytes] = []
        self._upload_id: str | None = None

    async def add_part(self, data: bytes | bytearray) -> asyncio.Task[None]:
        self._upload_id = self._upload_id or _etag()
        self._parts.append(bytes(data))

        async def done() -> None:
            await asyncio.sleep(0)

        return asyncio.create_task(done())

    async def complete(self) -> None:
        await self._blobs.put(self._key, b"".join(self._parts))

    async def abort(self) -> None:
        self._parts.clear()

    async def settle(self) -> None:
        await asyncio.sleep(0)

    @property
    def started(self) -> bool:
        return self._upload_id is not None

    @property
    def upload_id(self) -> str | None:
        return self._upload_id

    def etag(self, number: int) -> str:
        return f'"part-{number}"'


class MemoryRangeReader:
    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    async def read_range(self, start: int, length: int) -> bytes:
        await asyncio.sleep(0)
        return self._data[start : start + length]


class MemoryBlobStore:
    """The part of :class:`gateway.store.blobs.BlobStore` that the services use for staged
    bytes sent through ``http-post-bytes`` (presigned and resumable transfers need S3)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def multipart(self, key: str, max_in_flight: int = 2) -> MemoryMultipartWrite:
        return MemoryMultipartWrite(self, key)

    async def put(self, key: str, data: bytes | bytearray, content_type: str | None = None) -> None:
        await asyncio.sleep(0)
        self.objects[key] = bytes(data)

    async def get(self, key: str) -> bytes | None:
        await asyncio.sleep(0)
        return self.objects.get(key)

    def range_reader(self, key: str, size: int) -> MemoryRangeReader:
        return MemoryRangeReader(self.objects[key])

    async def stream(
        self,
        key: str,
        chunk_size: int = 1 << 20,
        byte_range: tuple[int, int] | None = None,
        size: int | None = None,
    ) -> AsyncIterator[bytes]:
        data = self.objects[key]
        start, end = byte_range or (0, len(data) - 1)
        for offset in range(start, end + 1, chunk_size):
            await asyncio.sleep(0)
            yield data[offset : min(offset + chunk_size, end + 1)]

    async def read_through(self, key: str, consume: Callable[[memoryview], None]) -> int:
        data = self.objects[key]
        consume(memoryview(data))
        return len(data)

    async def size(self, key: str) -> int | None:
        found = self.objects.get(key)
        return None if found is None else len(found)

    async def delete(self, key: str) -> None:
        await asyncio.sleep(0)
        self.objects.pop(key, None)

    async def keys(self, prefix: str) -> list[str]:
        await asyncio.sleep(0)
        return sorted(key for key in self.objects if key.startswith(prefix))

    async def purge(self, prefix: str, multipart: bool = True) -> None:
        await asyncio.sleep(0)
        for key in [key for key in self.objects if key.startswith(prefix)]:
            del self.objects[key]
