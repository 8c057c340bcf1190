"""The periodic sweep: expiry, purge, retention, stalled work.

It costs what is due, not what is kept (R-W9): the due index (``services/due_index.py``)
keeps an entry under ``due/{time}/{sid}`` for the next moment each session needs a look (its
expiry, a publish lease or a deferred validation that may lapse, the end of its retention),
and a sweep lists only the entries whose time has come. One replica sweeps at a time, the one
holding the sweep lease; every change is still a compare-and-swap, so a replica whose lease lapsed
mid-sweep never conflicts with the next holder.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Protocol

from gateway import metrics
from gateway.domain import clock
from gateway.domain.errors import DomainError
from gateway.domain.records import PublishingSession, SweepLease
from gateway.domain.states import is_terminal
from gateway.logs import log
from gateway.services.audit import AuditTrail
from gateway.services.due_index import DueIndex
from gateway.services.files import FileService
from gateway.services.sessions import SessionService
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordChanged, RecordMissing
from gateway.store.typed import ClaimContention, Records


class LapsedPublishes(Protocol):
    """The publish side, which resumes a publish whose worker stopped (the publisher)."""

    async def resume_lapsed(self, session: PublishingSession) -> None: ...


class PendingGates(Protocol):
    """The release gates' background work (reviews, auto-publish), resumed by the sweep."""

    async def resume(self, session: PublishingSession) -> datetime | None: ...


class _NoGates:
    async def resume(self, session: PublishingSession) -> datetime | None:
        return None


class Sweeper:
    def __init__(
        self,
        sessions: SessionService,
        due: DueIndex,
        files: FileService,
        publisher: LapsedPublishes,
        records: JsonRecords,
        audit: AuditTrail,
        interval: int = 60,
        gates: PendingGates = _NoGates(),  # noqa: B008 - stateless, shared on purpose
    ):
        self._sessions = sessions
        self._due = due
        self._files = files
        self._publisher = publisher
        self._lease = Records(records, SweepLease)  # its one writer: the sweepers
        self.holder = secrets.token_hex(8)
        # Held across a few sweeps, renewed by each: another replica takes over only when
        # the holder stopped sweeping.
        self._hold_for = timedelta(seconds=3 * interval)
        self._audit = audit
        self._gates = gates

    async def sweep(self) -> bool:
        """Visit what is due, if this replica holds the sweep lease (False: another does).
        Every replica reports the sessions holding their release, so that the gauge's
        ``max`` across replicas is current whichever replica sweeps."""
        held = await self._hold()
        if held:
            await self._visit_due()
            await self._audit.expire()  # audit days past retention
        metrics.SESSIONS.labels("open").set(await self._sessions.live_count())
        return held

    async def _visit_due(self) -> None:
        if not await self._due.is_indexed():  # one read; a full scan only once
            count = await self._due.index_all()
            log.info("sweep.indexed", sessions=count)
        for key, sid in await self._due.due(clock.now()):
            try:
                following = await self._visit(sid)
                await self._due.visited(key, sid, following)
            except (RecordChanged, RecordMissing, DomainError):
                continue  # a request got there first; the entry stays for the next sweep
            except Exception:
                log.exception("sweep.session_failed", session=sid[:8])

    async def _hold(self) -> bool:
        """Take or renew the sweep lease: one create, or a read and a conditional replace."""
        lease = SweepLease(holder=self.holder, until=clock.now() + self._hold_for)

        async def may_take(held: SweepLease) -> bool:
            return held.lease.may_be_taken_by(self.holder)

        try:
            return await self._lease.claim(keys.SWEEP_LEASE, lease, may_take) is None
        except ClaimContention:
            return False

    async def _visit(self, sid: str) -> datetime | None:
        """Do what the session needs now; when it next needs a look (None: it is gone)."""
        session = await self._sessions.find(sid)  # expires it when its time is up
        if session is None:
            return None
        deadline = None
        if is_terminal(session.status):
            await self._sessions.tidy(session)
        elif session.publish is not None:
            await self._publisher.resume_lapsed(session)
        else:
            deadline = await self._files.resume_overdue(session)
            waiting = await self._gates.resume(session)
            deadline = min((d for d in (deadline, waiting) if d is not None), default=None)
        session = await self._sessions.find(sid)
        return None if session is None else self._due.next_visit(session, deadline)
