"""The publish journal: the progress and the lease of a publish, kept in the session record.
This module is its one writer, and of the status changes a publish makes; every other field
of the session record is written by :class:`gateway.services.sessions.SessionService`.

Whoever holds the lease works; it renews the lease a few times per lease period, and a
replica that finds a lapsed lease takes the publish over and resumes from the journal.

Each write of a journal this process works on starts from the session record as the process
last wrote it (one conditional write, no read first; a read only when someone else wrote in
between), and what it wrote tells whether its lease is surely still held.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Literal

from gateway.domain import clock
from gateway.domain.errors import DomainError, not_found
from gateway.domain.lease import Lease, granted, lapsed
from gateway.domain.records import PublishingSession, PublishJournal
from gateway.domain.states import SessionEvent, SessionState, is_editable, next_session_state
from gateway.domain.transitions import next_state
from gateway.logs import log
from gateway.services.due_index import DueIndex
from gateway.services.session_files import SessionFiles, fold
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordChanged, RecordMissing
from gateway.store.typed import Records, Versioned

SessionChange = Callable[[PublishingSession], PublishingSession]


class Journals:
    """The journals this process holds the lease of (``holder`` names the process)."""

    def __init__(
        self, records: JsonRecords, due: DueIndex, files: SessionFiles, lease_seconds: float
    ):
        self._sessions = Records(records, PublishingSession)
        self._due = due
        self._files = files  # a published session's record keeps its files' summaries
        self._duration = timedelta(seconds=lease_seconds)
        self.holder = secrets.token_hex(4)
        # By publish attempt this process works on: the session record as it last wrote it.
        self._written: dict[str, Versioned[PublishingSession]] = {}

    def lease(self) -> Lease:
        return granted(self.holder, self._duration)

    def new_attempt(
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

        def update(session: PublishingSession) -> PublishingSession:
            change(_held_journal(session, attempt, self.holder))
            return session

        written = await self._write(sid, update, known)
        if attempt in self._written:
            self._written[attempt] = written
        return written.value

    async def confirm(self, sid: str, attempt: str, filenames: list[str]) -> PublishJournal:
        """``filenames`` are on the index; the lease is renewed with them."""
        lease = self.lease()

        def confirm(journal: PublishJournal) -> None:
            journal.confirmed.extend(filenames)
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
            await self._due.wake_at(sid, clock.now())  # not when the lease would have run out
            log.info("publish.handed_over", session=sid[:8])
        except Exception:  # the lease then simply runs out; nothing is lost
            log.exception("publish.hand_over_failed", session=sid[:8])

    async def take_over(self, session: PublishingSession) -> PublishJournal | None:
        """Hold a publish whose worker stopped renewing its lease (crash, restart): its
        journal, or None when the lease is live (or another replica took it first)."""
        journal = session.publish
        if journal is None or journal.lease.is_live():
            return None
        await self._take_over(session.id, self.lease())
        return journal

    async def _take_over(self, sid: str, lease: Lease) -> None:
        """Hold a publish whose lease lapsed; :class:`RecordChanged` when it has not."""

        def take_over(session: PublishingSession) -> PublishingSession:
            if session.publish is None or session.publish.lease.is_live():
                raise RecordChanged(sid)
            session.publish.hold(lease)
            if is_editable(session.status):  # its caller is gone: report by polling
                session.status = next_session_state(session.status, SessionEvent.PUBLISH_DEFERRED)
            return session

        await self._write(sid, take_over)
        await self._due.wake_at(sid, lease.until or clock.now())

    async def open_in_session(
        self,
        sid: str,
        journal: PublishJournal,
        known: Versioned[PublishingSession] | None = None,
    ) -> Versioned[PublishingSession]:
        """Open the journal in the session record. ``known``: the session as the publish
        request read it."""

        def start(session: PublishingSession) -> PublishingSession:
            next_state(session, SessionEvent.PUBLISH_NOW)  # also refuses a publish under way
            session.publish = journal
            return session

        # Visited when the lease would lapse: a publish whose worker died is resumed.
        await self._due.wake_at(sid, journal.lease_until)
        return await self._write(sid, start, known)

    async def defer(self, sid: str, attempt: str) -> PublishingSession:
        """The publish goes on in the background: ``processing``. :class:`RecordChanged` when
        it ended meanwhile."""

        def defer(session: PublishingSession) -> PublishingSession:
            _journal(session, attempt)
            if is_editable(session.status):
                session.status = next_session_state(session.status, SessionEvent.PUBLISH_DEFERRED)
            return session

        return (await self._write(sid, defer)).value

    async def finish(
        self,
        sid: str,
        attempt: str,
        succeeded: bool,
        notices: list[str],
        maybe_on_index: Collection[str] = (),
    ) -> Versioned[PublishingSession]:
        """End publish ``attempt``: ``published``, or back to where it was for a caller still
        waiting (R-P7), ``error`` with ``notices`` for one that is not. The session as written.
        ``maybe_on_index``: of a failed attempt, the files it put or may have put on the
        index, noted in the session (their reservations stay, whoever releases the others).

        A published session is to be settled at once by the caller. Should it die first, no
        new entry of the sweep's is needed: the one for the publish lease (written when the
        publish started or was taken over, and moved on by every visit while the publish ran)
        comes at the latest when the lease would have lapsed, and its visit settles it."""
        known = self._written.pop(attempt, None)
        # Once published, the record keeps the summaries: the session's data is purged next.
        shown = await self._files.entries(sid) if succeeded else []

        def finish(session: PublishingSession) -> PublishingSession:
            _held_journal(session, attempt, self.holder)
            session.publish = None
            if succeeded:
                editable = is_editable(session.status)
                event = SessionEvent.PUBLISH_NOW if editable else SessionEvent.PUBLISH_SUCCEEDED
                session.status = next_session_state(session.status, event)
                session.ended_at = clock.now()
                session.notices.extend(notices)
                session.files = fold(session.files or {}, shown)
            else:
                kept = set(maybe_on_index) - set(session.maybe_on_index)
                session.maybe_on_index.extend(sorted(kept))
                if session.status == SessionState.PROCESSING:
                    event = SessionEvent.PUBLISH_FAILED
                    session.status = next_session_state(session.status, event)
                    session.notices.extend(notices)
            return session

        return await self._write(sid, finish, known)

    async def _write(
        self, sid: str, change: SessionChange, known: Versioned[PublishingSession] | None = None
    ) -> Versioned[PublishingSession]:
        """Compare-and-swap of the session record; ``known``: the record as this process has
        just read or written it (:meth:`Records.update_versioned`)."""
        try:
            return await self._sessions.update_versioned(keys.session(sid), change, known)
        except RecordMissing:
            raise not_found("session") from None


def _journal(session: PublishingSession, attempt: str) -> PublishJournal:
    if session.publish is None or session.publish.attempt != attempt:
        raise RecordChanged(session.id)
    return session.publish


def _held_journal(session: PublishingSession, attempt: str, holder: str) -> PublishJournal:
    journal = _journal(session, attempt)
    if journal.owner != holder:
        raise RecordChanged(session.id)  # another replica took the publish over
    return journal


# A journal entry waits for this many seconds since the last, and for this share of the
# run's files: a run writes its session record (which grows with the release) a bounded
# number of times, whatever the number of files.
CONFIRM_INTERVAL = 1.0
MOST_ENTRIES = 16


class Confirmations:
    """Files of one run confirmed on the index, journaled in batches: one write at a time, at
    most one per ``CONFIRM_INTERVAL`` and ``MOST_ENTRIES`` per run, each with every file
    confirmed since the last, so a release of hundreds of files writes its session record a
    few times, not once per file.
    A crash that loses entries costs nothing: the resumed run lists the index and counts a
    file there with the same sha256 as done. Files confirmed after the last write get none:
    the publish's end says more."""

    def __init__(self, journals: Journals, sid: str, attempt: str, files: int):
        self._journals = journals
        self._batch = max(1, files // MOST_ENTRIES)
        self._sid = sid
        self._attempt = attempt
        self._pending: list[str] = []
        self._since = time.monotonic()
        self._writing: asyncio.Task[PublishJournal] | None = None

    async def add(self, filename: str) -> None:
        """Note ``filename``; raises what the last write raised (the publish was taken over)."""
        self._pending.append(filename)
        if self._writing is not None:
            if not self._writing.done():
                return
            writing, self._writing = self._writing, None
            await writing
        due = time.monotonic() - self._since >= CONFIRM_INTERVAL
        if due and len(self._pending) >= self._batch:
            batch, self._pending = self._pending, []
            self._since = time.monotonic()
            self._writing = asyncio.create_task(
                self._journals.confirm(self._sid, self._attempt, batch)
            )

    async def close(self) -> None:
        """Wait for the write under way; its failure is raised (the run stops on it)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing
