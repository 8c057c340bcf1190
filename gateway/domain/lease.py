"""Leases: who may work on a record until when (pure logic; the stores persist them).

Three kinds of work hold one: a publish worker (the journal's ``owner``/``lease_until``), a
deferred validation (the file's ``processing_deadline``, held by whoever is validating) and a
resumable append request (``writer``/``writer_until``). The holder renews before the lease
runs out; anyone may take over a lapsed lease, and a takeover is a compare-and-swap of the
record holding it, so exactly one claimant wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.domain import clock


@dataclass(frozen=True)
class Lease:
    holder: str | None
    until: datetime | None

    def is_live(self, now: datetime | None = None) -> bool:
        """Held by someone, and not run out yet."""
        return self.until is not None and self.until > (now or clock.now())

    def is_held_by(self, holder: str) -> bool:
        return self.holder == holder

    def may_be_taken_by(self, claimant: str, now: datetime | None = None) -> bool:
        return self.is_held_by(claimant) or not self.is_live(now)


def granted(holder: str | None, duration: timedelta, now: datetime | None = None) -> Lease:
    """A lease for ``holder`` from now (or ``now``) for ``duration``."""
    return Lease(holder, (now or clock.now()) + duration)


def lapsed(holder: str | None) -> Lease:
    """A lease that anyone may take over at once (a worker handing its work over)."""
    return Lease(holder, clock.now() - timedelta(seconds=1))


RELEASED = Lease(None, None)
