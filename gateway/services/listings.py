"""The index's listing of a project, shared by the file creates that only ask it for advice.

A file create refuses a filename the index already holds (R-F5), before any byte is sent;
the authoritative check is the publish's own fresh listing, which never overwrites a file.
A release's files are created in a burst (ten wheels at once, or one after another while
their bytes are sent), and each listing costs the index real work (pypiserver rescans its
folder after every upload and hashes each new file), so the creates of one project share
one listing: requests arriving while it is being read wait for it, and later ones reuse it
for ``max_age`` seconds. A file put on the index behind the gateway's back within that time
is refused at publish (409 ``filename-conflict``) instead of at its file create; files
published through the gateway are refused at once by their filename reservations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

# What the index holds for a project: filename -> sha256 (None when the index does not say).
Listing = Mapping[str, str | None]
# Where the services ask for it (the backend's ``published_files``, or a RecentListings).
PublishedFiles = Callable[[str], Awaitable[Listing]]

# Listings kept at once: a bound on memory with many projects, never reached by one release.
MAX_PROJECTS = 1024


class RecentListings:
    def __init__(self, published_files: PublishedFiles, max_age: float):
        self._published_files = published_files
        self._max_age = max_age
        self._recent: dict[str, tuple[float, asyncio.Future[Listing]]] = {}

    async def __call__(self, project: str) -> Listing:
        """The files the index holds for ``project``, as read at most ``max_age`` ago (read
        only: every caller shares it)."""
        if self._max_age <= 0:
            return await self._published_files(project)
        now = time.monotonic()
        held = self._recent.get(project)
        if held is not None and now - held[0] <= self._max_age:
            return await asyncio.shield(held[1])
        reading = asyncio.ensure_future(self._published_files(project))
        reading.add_done_callback(lambda done: self._forget_failed(project, done))
        self._remember(project, now, reading)
        return await asyncio.shield(reading)

    def _forget_failed(self, project: str, reading: asyncio.Future[Listing]) -> None:
        """A failed read (index down, timeout) is not kept: the next create asks again. Its
        error is taken here, so that nobody waiting for it any more leaves it unretrieved."""
        failed = reading.cancelled() or reading.exception() is not None
        if failed and self._recent.get(project, (0.0, None))[1] is reading:
            del self._recent[project]

    def _remember(self, project: str, now: float, reading: asyncio.Future[Listing]) -> None:
        if len(self._recent) >= MAX_PROJECTS:
            expired = [p for p, (at, _) in self._recent.items() if now - at > self._max_age]
            for stale in expired or list(self._recent)[: MAX_PROJECTS // 2]:
                del self._recent[stale]
        self._recent[project] = (now, reading)
