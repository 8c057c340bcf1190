"""Record bodies this process has read or written, by key and etag, so that a record a
listing shows at a version held here needs no ``GET``.

Safe by construction: a record's etag names its bytes (S3's ETag of a single ``PUT`` is the
MD5 of the body, and a listing shows the same ETag as the ``PUT`` and ``GET`` of the object),
so a body held at the etag a listing shows is the record as listed, byte for byte; a record
changed since is listed with another etag, and read. Only :meth:`JsonRecords.get_listed`
answers from here: :meth:`get`, which a compare-and-swap decides from, always asks S3.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator

from gateway.store.record_store import Document, JsonRecords, Listed, Stored, encode

# The bodies held at most, in bytes: the file records of a few concurrent publishes of large
# releases (400 files of 2-5 KiB each is 2 MiB) and the session records their statuses read,
# at a cost no replica notices. Least recently used bodies go first.
MAX_CACHED_BYTES = 16 << 20


class BodyCache:
    """Record bodies by key, each with the etag it was read or written at; bounded by the
    sum of their sizes, the least recently used dropped first."""

    def __init__(self, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bodies: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.size = 0  # the bytes held

    def get(self, key: str, etag: str) -> bytes | None:
        """The body of ``key`` at ``etag``, if held."""
        held = self._bodies.get(key)
        if held is None or held[0] != etag:
            return None
        self._bodies.move_to_end(key)
        return held[1]

    def put(self, key: str, etag: str, body: bytes) -> None:
        """Hold ``body`` as ``key`` at ``etag`` (instead of any other version of it)."""
        self.forget(key)
        if len(body) > self._max_bytes:
            return
        self._bodies[key] = (etag, body)
        self.size += len(body)
        while self.size > self._max_bytes:
            _, (_, dropped) = self._bodies.popitem(last=False)
            self.size -= len(dropped)

    def forget(self, key: str) -> None:
        held = self._bodies.pop(key, None)
        if held is not None:
            self.size -= len(held[1])


class CachedRecords(JsonRecords):
    """A record store that keeps what it reads and writes in a :class:`BodyCache`, and
    answers :meth:`get_listed` from it when the listed etag is the one held."""

    def __init__(self, store: JsonRecords, cache: BodyCache | None = None) -> None:
        self._store = store
        self._cache = cache or BodyCache()
        self.max_attempts = store.max_attempts

    async def create(self, key: str, data: Document) -> str:
        body = encode(data)
        etag = await self._store.create(key, body)
        self._cache.put(key, etag, body)
        return etag

    async def get(self, key: str) -> Stored | None:
        found = await self._store.get(key)
        if found is None:
            self._cache.forget(key)
        elif found.body is not None:
            self._cache.put(key, found.etag, found.body)
        return found

    async def replace(self, key: str, data: Document, etag: str) -> str:
        body = encode(data)
        written = await self._store.replace(key, body, etag)
        self._cache.put(key, written, body)
        return written

    async def delete(self, key: str, etag: str | None = None) -> None:
        self._cache.forget(key)
        await self._store.delete(key, etag)

    def listing(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[Listed]:
        return self._store.listing(prefix, delimiter)

    async def get_listed(self, listed: Listed) -> Stored | None:
        body = self._cache.get(listed.key, listed.etag)
        if body is not None:
            return Stored(body, listed.etag)  # bytes: each caller decodes its own copy
        return await self.get(listed.key)
