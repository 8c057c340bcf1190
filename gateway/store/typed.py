"""Typed records: a pydantic model per record kind over a :class:`JsonRecords` store.

Callers never see the JSON: ``update`` hands the change function a fresh model on every
compare-and-swap attempt and retries inside, like one transaction per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from gateway.store.record_store import (
    JsonRecords,
    Listed,
    RecordChanged,
    RecordExists,
    RecordMissing,
    Stored,
)

T = TypeVar("T", bound=BaseModel)

# How often a create-or-take-over gives way to a racing writer before giving up.
CLAIM_ATTEMPTS = 8


@dataclass(frozen=True)
class Versioned(Generic[T]):
    """A record as read, with the etag a conditional write or delete compares against."""

    value: T
    etag: str


class ClaimContention(Exception):
    """A create-or-take-over kept losing against other writers."""


class Records(Generic[T]):
    """Records of one kind (``model``) in a JSON record store."""

    def __init__(self, store: JsonRecords, model: type[T]):
        self._store = store
        self._model = model

    def _dump(self, value: T) -> bytes:
        # pydantic's own encoder: a third of model_dump + json.dumps for a large session.
        return value.model_dump_json().encode()

    def _load(self, stored: Stored) -> T:
        if stored.body is not None:  # straight from the bytes: no dict in between
            return self._model.model_validate_json(stored.body)
        return self._model.model_validate(stored.data)

    async def get(self, key: str) -> Versioned[T] | None:
        stored = await self._store.get(key)
        if stored is None:
            return None
        return Versioned(self._load(stored), stored.etag)

    async def load(self, key: str) -> T | None:
        found = await self.get(key)
        return None if found is None else found.value

    async def load_listed(self, listed: Iterable[Listed]) -> list[T]:
        """The records a listing showed that still exist, in order: each as listed when this
        process holds that version (no request), else read (:meth:`JsonRecords.get_listed`).
        Each a model of its own, whoever else loads the same record."""

        async def load(one: Listed) -> T | None:
            stored = await self._store.get_listed(one)
            return None if stored is None else self._load(stored)

        found = await asyncio.gather(*(load(one) for one in listed))
        return [value for value in found if value is not None]

    async def create(self, key: str, value: T) -> Versioned[T]:
        """Create-if-absent; :class:`RecordExists` when the key is taken."""
        return Versioned(value, await self._store.create(key, self._dump(value)))

    async def replace(self, key: str, value: T, etag: str) -> Versioned[T]:
        return Versioned(value, await self._store.replace(key, self._dump(value), etag))

    async def update(
        self, key: str, change: Callable[[T], T | None], known: Versioned[T] | None = None
    ) -> T:
        """Compare-and-swap with retry: ``change`` gets a fresh copy of the record on every
        attempt and returns the new record (it may change its argument and return it), or
        None to keep the record as it is. It may raise to abort; :class:`RecordMissing`
        when there is no record. ``known``: see :meth:`update_versioned`."""
        return (await self.update_versioned(key, change, known)).value

    async def update_versioned(
        self, key: str, change: Callable[[T], T | None], known: Versioned[T] | None = None
    ) -> Versioned[T]:
        """:meth:`update`, with the etag written. ``known`` is the record as the caller has
        just read or written it: the change is first made to it and written under its etag,
        without reading the record again (one request instead of two). If anyone wrote
        meanwhile (412), or if ``change`` keeps or refuses ``known`` (it may be stale: only
        the current record may decide that), it is the ordinary read, change, write."""
        if known is not None:
            # A copy through JSON: a third of model_copy(deep=True)'s cost for a large session.
            draft = self._model.model_validate_json(self._dump(known.value))
            changed = _try(change, draft)
            if changed is not None:
                with contextlib.suppress(RecordChanged):
                    return await self.replace(key, changed, known.etag)
        result: list[T] = []

        def mutate(data: dict[str, Any]) -> bytes | None:
            current = self._model.model_validate(data)
            changed = change(current)
            result[:] = [current if changed is None else changed]
            return None if changed is None else self._dump(changed)

        stored = await self._store.update(key, mutate)
        return Versioned(result[0], stored.etag)

    async def delete(self, key: str, etag: str | None = None) -> None:
        await self._store.delete(key, etag)

    async def delete_if(self, key: str, condition: Callable[[T], bool]) -> None:
        """Delete the record if it meets ``condition``, unless someone changes it meanwhile
        (then it is theirs to keep)."""
        found = await self.get(key)
        if found is not None and condition(found.value):
            with contextlib.suppress(RecordChanged):
                await self._store.delete(key, found.etag)

    async def claim(self, key: str, value: T, may_take: Callable[[T], Awaitable[bool]]) -> T | None:
        """Create ``value`` at ``key``, or replace the record there when ``may_take`` says its
        holder is gone. None when ``value`` is in place; otherwise the holder that stays."""
        for _ in range(CLAIM_ATTEMPTS):
            try:
                await self.create(key, value)
                return None
            except RecordExists:
                pass
            found = await self.get(key)
            if found is None:
                continue
            if not await may_take(found.value):
                return found.value
            try:
                await self.replace(key, value, found.etag)
                return None
            except (RecordChanged, RecordMissing):
                continue
        raise ClaimContention(key)

    def keys(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[str]:
        return self._store.keys(prefix, delimiter)

    def listing(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[Listed]:
        """The keys under ``prefix`` with their etags (:meth:`JsonRecords.listing`), for
        :meth:`load_listed`."""
        return self._store.listing(prefix, delimiter)


def _try(change: Callable[[T], T | None], draft: T) -> T | None:
    """``change`` applied to ``draft``; None when it keeps or refuses it."""
    try:
        return change(draft)
    except Exception:  # a refusal of a version that may be stale: the current record decides
        return None
