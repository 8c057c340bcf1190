"""Reads shared by the file creates that only ask them for advice: the index's listing of a
project (by project), and a release's filename reservations (by session, NameRegistry).

A file create refuses a filename the index already holds (R-F5) or that a publish reserved
(R-P8), before any byte is sent; the authoritative checks are the publish's own fresh
listing of the index, which never overwrites a file, and its conditional create of each
reservation. A release's files are created in a burst (ten wheels at once, or one after
another while their bytes are sent), and each read costs real work (pypiserver rescans its
folder after every upload and hashes each new file; a reservation read is an S3 request per
file), so the creates share one read: requests arriving while it is being read wait for it,
and later ones reuse it for ``max_age`` seconds. A file put on the index behind the
gateway's back within that time is refused at publish (409 ``filename-conflict``) instead
of at its file create.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

# What the index holds for a project: filename -> sha256 (None when the index does not say).
Listing = Mapping[str, str | None]
# Where the services ask for it (the backend's ``published_files``, or a RecentListings).
PublishedFiles = Callable[[str], Awaitable[Listing]]

# Reads kept at once: a bound on memory with many projects, never reached by one release.
MAX_PROJECTS = 1024

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentReads(Generic[K, V]):
    """``read(key)``, shared by whoever asks for the same key within ``max_age`` seconds
    (read only: every caller gets the same value)."""

    def __init__(self, read: Callable[[K], Awaitable[V]], max_age: float):
        self._read = read
        self._max_age = max_age
        self._recent: dict[K, tuple[float, asyncio.Future[V]]] = {}

    async def __call__(self, key: K) -> V:
        """The value of ``key``, as read at most ``max_age`` ago."""
        if self._max_age <= 0:
            return await self._read(key)
        now = time.monotonic()
        held = self._recent.get(key)
        if held is not None and now - held[0] <= self._max_age:
            return await asyncio.shield(held[1])
        reading = asyncio.ensure_future(self._read(key))
        reading.add_done_callback(lambda done: self._forget_failed(key, done))
        self._remember(key, now, reading)
        return await asyncio.shield(reading)

    def _forget_failed(self, key: K, reading: asyncio.Future[V]) -> None:
        """A failed read (index or S3 down, timeout) is not kept: the next create asks
        again. Its error is taken here, so that nobody waiting for it any more leaves it
        unretrieved."""
        failed = reading.cancelled() or reading.exception() is not None
        held = self._recent.get(key)
        if failed and held is not None and held[1] is reading:
            del self._recent[key]

    def _remember(self, key: K, now: float, reading: asyncio.Future[V]) -> None:
        if len(self._recent) >= MAX_PROJECTS:
            expired = [k for k, (at, _) in self._recent.items() if now - at > self._max_age]
            for stale in expired or list(self._recent)[: MAX_PROJECTS // 2]:
                del self._recent[stale]
        self._recent[key] = (now, reading)


# The index's listing of a project, shared by a release's creates.
RecentListings = RecentReads[str, Listing]
