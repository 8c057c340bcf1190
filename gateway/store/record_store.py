"""JSON records with create-if-absent and compare-and-swap updates (R-W1).

S3's conditional writes (``If-None-Match: *`` and ``If-Match: <etag>``) give every replica the
same atomic primitives without a coordination service.
"""

from __future__ import annotations

import asyncio
import json
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from gateway.store.objects import SmallObjects
from gateway.store.s3 import is_not_found, is_precondition_failed


class RecordExists(Exception):
    """A create-if-absent found the key taken."""


class RecordChanged(Exception):
    """A compare-and-swap lost against a concurrent writer."""


class RecordMissing(Exception):
    """An update or conditional delete found no record."""


class UpdateContention(Exception):
    """A compare-and-swap kept losing; the caller answers 503 and the client retries."""


# A record's JSON document, as a mapping or already encoded (typed records encode themselves).
Document = dict[str, Any] | bytes


class Stored:
    """A record as read: its etag, and its JSON document, decoded on first use (a typed
    record validates the encoded body directly, twice as fast for a large session)."""

    __slots__ = ("_data", "body", "etag")

    def __init__(self, data: Document, etag: str):
        self.body = data if isinstance(data, bytes) else None
        self._data = None if isinstance(data, bytes) else data
        self.etag = etag

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self.body is not None
            self._data = json.loads(self.body)
        return self._data


class Listed(NamedTuple):
    """A key as a listing showed it, with its record's etag then."""

    key: str
    etag: str


# A mutation returns the new document, or None to leave the record as it is (no write).
Mutation = Callable[[dict[str, Any]], Document | Awaitable[Document | None] | None]


def encode(data: Document) -> bytes:
    if isinstance(data, bytes):
        return data
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


class JsonRecords(ABC):
    """The conditional-write primitives every record store offers, and the compare-and-swap
    loop built on them (the one loop in the gateway: typed stores and tests go through it)."""

    max_attempts = 16

    @abstractmethod
    async def create(self, key: str, data: Document) -> str:
        """Write ``data`` if ``key`` is absent (else :class:`RecordExists`); the new etag."""

    @abstractmethod
    async def get(self, key: str) -> Stored | None: ...

    @abstractmethod
    async def replace(self, key: str, data: Document, etag: str) -> str:
        """Write ``data`` if the record still has ``etag`` (else :class:`RecordChanged`, or
        :class:`RecordMissing` when it is gone); the new etag."""

    @abstractmethod
    async def delete(self, key: str, etag: str | None = None) -> None:
        """Delete a record; with ``etag`` only if nobody changed it since it was read."""

    @abstractmethod
    def listing(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[Listed]:
        """Every key under ``prefix`` in lexical order, with the etag of its record as listed,
        without descending past ``delimiter`` when one is given."""

    async def keys(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[str]:
        """The keys of :meth:`listing`."""
        async for listed in self.listing(prefix, delimiter):
            yield listed.key

    async def get_listed(self, listed: Listed) -> Stored | None:
        """The record a listing showed, at that version or a later one: a store that holds
        the record's body at the listed etag may answer without a request. Never for a read
        that decides a write (that is :meth:`get`'s)."""
        return await self.get(listed.key)

    async def update(self, key: str, mutate: Mutation) -> Stored:
        """Read, mutate, write back if nobody wrote in between; retry otherwise.

        ``mutate`` gets a fresh copy on every attempt and may raise to abort the update, or
        return None to keep the record as it is.
        """
        for attempt in range(self.max_attempts):
            current = await self.get(key)
            if current is None:
                raise RecordMissing(key)
            changed = mutate(current.data)
            if isinstance(changed, Awaitable):
                changed = await changed
            if changed is None:
                return current
            try:
                etag = await self.replace(key, changed, current.etag)
            except RecordChanged:
                await asyncio.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))
                continue
            return Stored(changed, etag)
        raise UpdateContention(key)


class RecordStore(JsonRecords):
    """Small JSON documents under one key prefix of one bucket."""

    def __init__(
        self,
        objects: SmallObjects,
        bucket: str,
        prefix: str,
        max_attempts: int = 16,
    ):
        self._objects = objects  # reads, conditional writes, deletes, listings (objects.py)
        self._bucket = bucket
        self._prefix = prefix
        self.max_attempts = max_attempts

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def create(self, key: str, data: Document) -> str:
        try:
            return await self._put(key, data, {"If-None-Match": "*"})
        except ClientError as exc:
            if is_precondition_failed(exc):
                raise RecordExists(key) from None
            raise

    async def get(self, key: str) -> Stored | None:
        answer = await self._objects.get(self._bucket, self._key(key))
        if answer.status == 404:
            return None
        return Stored(answer.body, answer.headers["ETag"])

    async def replace(self, key: str, data: Document, etag: str) -> str:
        try:
            return await self._put(key, data, {"If-Match": etag})
        except ClientError as exc:
            if is_precondition_failed(exc):
                raise RecordChanged(key) from None
            if is_not_found(exc):
                raise RecordMissing(key) from None
            raise

    async def _put(self, key: str, data: Document, condition: dict[str, str]) -> str:
        """Write the record if S3 finds ``condition`` true; the new etag."""
        headers = {"Content-Type": "application/json", **condition}
        answer = await self._objects.put(self._bucket, self._key(key), encode(data), headers)
        return answer.headers["ETag"]

    async def delete(self, key: str, etag: str | None = None) -> None:
        conditions = {"If-Match": etag} if etag else {}
        try:
            await self._objects.delete(self._bucket, self._key(key), conditions)
        except ClientError as exc:
            if is_precondition_failed(exc):
                raise RecordChanged(key) from None
            if not is_not_found(exc):
                raise

    async def listing(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[Listed]:
        listed = self._objects.listing(self._bucket, self._key(prefix), delimiter)
        async for key, etag in listed:
            yield Listed(key[len(self._prefix) :], etag)
