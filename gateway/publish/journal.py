"""The publish journal as its worker sees it: progress and the lease, kept in the session
record by :class:`gateway.services.sessions.SessionService` (its one writer).

Whoever holds the lease works; it renews the lease a few times per lease period, and a
replica that finds a lapsed lease takes the publish over and resumes from the journal.

Each write of a journal this process works on starts from the session record as the process
last wrote it (one conditional write, no read first; a read only when someone else wrote in
between), and what it wrote tells whether its lease is surely still held.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

from gateway.logs import log
from gateway.services.sessions import SessionService
from gateway.sessions import clock
from gateway.sessions.errors import DomainError
from gateway.sessions.lease import Lease, granted, lapsed
from gateway.sessions.records import PublishingSession, PublishJournal
from gateway.store.records import RecordChanged, RecordMissing
from gateway.store.typed import Versioned


class Journals:
    """The journals this process holds the lease of (``holder`` names the process)."""

    def __init__(self, sessions: SessionService, lease_seconds: float):
        self._sessions = sessions
        self._duration = timedelta(seconds=lease_seconds)
        self.holder = secrets.token_hex(4)
        # By publish attempt this process works on: the session record as it last wrote it.
        self._written: dict[str, Versioned[PublishingSession]] = {}

    def lease(self) -> Lease:
        return granted(self.holder, self._duration)

    def open(
        self,
        order: list[str],
        new_project: bool | None,
        published_by: str,
        credential: Literal["service", "caller"],
    ) -> PublishJournal:
        """The journal of a new publish attempt, its lease held by this process."""
        journal = PublishJournal(
            attempt=secrets.token_hex(8),
            owner=self.holder,
            lease_until=clock.now(),
            order=order,
            new_project=new_project,
            published_by=published_by,
            credential=credential,
        )
        journal.hold(self.lease())
        return journal

    def begin(self, attempt: str, written: Versioned[PublishingSession]) -> None:
        """This process works on ``attempt``; ``written``: its session record as just
        written (the journal opened, taken over) or read."""
        self._written[attempt] = written

    def end(self, attempt: str) -> None:
        self._written.pop(attempt, None)

    def surely_held(self, attempt: str) -> bool:
        """Nobody can have taken ``attempt`` over: the lease this process last wrote runs
        for half its period more (a live lease is never taken over), so work only a holder
        may do can go on without reading the record to check."""
        written = self._written.get(attempt)
        journal = None if written is None else written.value.publish
        if journal is None or journal.attempt != attempt or journal.owner != self.holder:
            return False
        return journal.lease_until - clock.now() >= self._duration / 2

    async def record(
        self, sid: str, attempt: str, change: Callable[[PublishJournal], None]
    ) -> PublishingSession:
        """Change the journal; :class:`RecordChanged` once another replica took it over."""
        known = self._written.get(attempt)
        written = await self._sessions.update_journal(sid, attempt, self.holder, change, known)
        if attempt in self._written:
            self._written[attempt] = written
        return written.value

    async def confirm(self, sid: str, attempt: str, filename: str) -> PublishJournal:
        """``filename`` is on the index; the lease is renewed with it."""
        lease = self.lease()

        def confirm(journal: PublishJournal) -> None:
            journal.confirmed.append(filename)
            journal.hold(lease)

        session = await self.record(sid, attempt, confirm)
        assert session.publish is not None
        return session.publish

    async def keep(self, sid: str, attempt: str) -> None:
        """Renew the lease until cancelled or taken over."""
        while True:
            await asyncio.sleep(self._duration.total_seconds() / 3)
            try:
                await self.renew(sid, attempt)
            except (RecordChanged, RecordMissing, DomainError):
                return
            except Exception:  # a missed renewal is retried; the lease has slack for it
                log.exception("publish.lease_renewal_failed", session=sid[:8])

    async def renew(self, sid: str, attempt: str) -> None:
        lease = self.lease()
        await self.record(sid, attempt, lambda journal: journal.hold(lease))

    async def hand_over(self, sid: str, attempt: str) -> None:
        """Let any replica's next sweep resume the publish at once (shutting down)."""
        expired = lapsed(self.holder)
        try:
            await self.record(sid, attempt, lambda journal: journal.hold(expired))
            await self._sessions.wake_at(sid, clock.now())  # not when the lease would have run out
            log.info("publish.handed_over", session=sid[:8])
        except Exception:  # the lease then simply runs out; nothing is lost
            log.exception("publish.hand_over_failed", session=sid[:8])

    async def take_over(self, session: PublishingSession) -> PublishJournal | None:
        """Hold a publish whose worker stopped renewing its lease (crash, restart): its
        journal, or None when the lease is live (or another replica took it first)."""
        journal = session.publish
        if journal is None or journal.lease.is_live():
            return None
        await self._sessions.take_over_publish(session.id, self.lease())
        return journal

    async def finish(
        self, sid: str, attempt: str, succeeded: bool, notices: list[str]
    ) -> Versioned[PublishingSession]:
        """End the publish (:meth:`SessionService.finish_publish`): the session as written."""
        known = self._written.pop(attempt, None)
        return await self._sessions.finish_publish(
            sid, attempt, self.holder, succeeded, notices, known
        )
