"""How many sessions a principal holds open (``sessions.max_open_per_principal``), estimated
without listing every open-session marker of the principal on every create.

Listing the markers costs a request per thousand and grows with the principal's open
sessions (a CI system publishing as one principal may hold thousands). So the creates of one
principal in this process share one listing: those arriving while it is read wait for it,
and later ones reuse its count for ``max_age`` seconds, adding what this process did since:
the markers it wrote after the listing began, and the creations it admitted whose marker is
not written yet. The estimate never misses a session this process opened; a marker written
while the listing ran may count twice (on the high side, which only sends the next create
to the exact count sooner; in the exact count at the cap, a create of a burst may be
refused a little early). What it cannot see are the sessions other processes opened since
the listing: the cap, soft already, may be overshot by as many as the principal opened
elsewhere within ``max_age`` seconds (a listing still being read is shared whatever its age:
it is the freshest there is). Sessions that ended meanwhile still count until the next
listing; when the estimate reaches the cap, the caller counts exactly (``begin``, then
``counted``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

CountMarkers = Callable[[str], Awaitable[int]]

# Principals whose counts are kept at once: a bound on memory with many principals.
MAX_PRINCIPALS = 4096


@dataclass
class _Principal:
    """What this process knows of one principal's open sessions."""

    written: int = 0  # markers this process has written for it
    in_flight: int = 0  # creations admitted here whose marker is not written yet
    listing: asyncio.Future[int] | None = None  # its markers, as counted by the last listing
    listed: Listing | None = None  # when that listing began


@dataclass(frozen=True)
class Listing:
    """A listing of a principal's markers: when it began, and what this process knew then."""

    at: float  # monotonic
    written: int  # markers this process had written
    of: _Principal

    def estimate(self, markers: int) -> int:
        """The principal's open sessions: ``markers`` listed, and what this process did
        since the listing began."""
        return markers + self.of.written - self.written + self.of.in_flight


class OpenSessionCounts:
    def __init__(self, count_markers: CountMarkers, max_age: float):
        self._count_markers = count_markers
        self._max_age = max_age
        self._principals: dict[str, _Principal] = {}

    async def estimate(self, principal: str) -> int:
        """The principal's open sessions, never fewer than this process opened."""
        while True:
            held = self._principal(principal)
            listing = held.listing
            if listing is None or (listing.done() and self._too_old(held)):
                listing = self._list(principal, held)
            listed = held.listed
            assert listed is not None
            count = await asyncio.shield(listing)
            if held.listing is listing:
                return listed.estimate(count)
            # Replaced while it was read (an exact count came in): read the newer one.

    def admit(self, principal: str) -> None:
        """A creation goes ahead: counted at once, so creates racing it here see it."""
        self._principal(principal).in_flight += 1

    def concluded(self, principal: str, marker_written: bool) -> None:
        """An admitted creation ended; ``marker_written`` unless it certainly wrote none."""
        held = self._principal(principal)
        held.in_flight -= 1
        if marker_written:
            held.written += 1

    def begin(self, principal: str) -> Listing:
        """An exact count is about to list the principal's markers."""
        held = self._principal(principal)
        return Listing(time.monotonic(), held.written, held)

    def counted(self, listing: Listing, markers: int) -> int:
        """The exact count is done: ``markers`` open as listed from ``listing``. Kept as the
        principal's count; the estimate from it."""
        done = asyncio.get_running_loop().create_future()
        done.set_result(markers)
        listing.of.listing, listing.of.listed = done, listing
        return listing.estimate(markers)

    def _too_old(self, held: _Principal) -> bool:
        return held.listed is None or time.monotonic() - held.listed.at > self._max_age

    def _list(self, principal: str, held: _Principal) -> asyncio.Future[int]:
        listing = asyncio.ensure_future(self._count_markers(principal))
        held.listing, held.listed = listing, Listing(time.monotonic(), held.written, held)

        def forget_failed(done: asyncio.Future[int]) -> None:
            # A failed listing is not kept: the next create lists again. Its error is taken
            # here, so that nobody waiting for it any more leaves it unretrieved.
            if (done.cancelled() or done.exception() is not None) and held.listing is done:
                held.listing = None

        listing.add_done_callback(forget_failed)
        return listing

    def _principal(self, principal: str) -> _Principal:
        held = self._principals.get(principal)
        if held is None:
            if len(self._principals) >= MAX_PRINCIPALS:
                self._forget_idle()
            held = self._principals[principal] = _Principal()
        return held

    def _forget_idle(self) -> None:
        """Drop the principals with no creation in flight and a count too old to serve (an
        exact count under way keeps what it needs through its :class:`Listing`)."""
        for principal, held in list(self._principals.items()):
            if held.in_flight == 0 and self._too_old(held):
                del self._principals[principal]
