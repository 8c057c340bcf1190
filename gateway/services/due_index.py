"""The sweep's due index: when each session next needs a look (``due/{time}/{sid}``).

Its one writer. A session gets an entry before its record exists, and every change that moves
the session's next moment (an extension, a publish lease, a deferred validation, its end)
adds one; the sweep lists only the entries whose time has come (R-W9), and each visit keeps
only the session's next entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from gateway.domain import clock
from gateway.domain.records import DueEntry, DueIndexed, PublishingSession
from gateway.domain.states import is_terminal
from gateway.logs import log
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordExists
from gateway.store.typed import Records


class DueIndex:
    def __init__(self, records: JsonRecords, retention: int):
        self._entries = Records(records, DueEntry)
        self._indexed = Records(records, DueIndexed)
        self._sessions = Records(records, PublishingSession)  # read only, to index them once
        self._retention = timedelta(seconds=retention)

    async def wake_at(self, sid: str, when: datetime) -> None:
        """Have the sweep visit the session at ``when`` (an entry more is harmless: a visit
        that finds nothing due keeps only the session's next one)."""
        with contextlib.suppress(RecordExists):
            await self._entries.create(keys.due(when, sid), DueEntry(session_id=sid))

    async def due(self, now: datetime) -> list[tuple[str, str]]:
        """(entry key, session id) of every visit due by ``now``, oldest first: one listing
        request per thousand due entries, none for the sessions that are not due."""
        found: list[tuple[str, str]] = []
        async for key in self._entries.keys(keys.DUE):
            parts = keys.due_parts(key)
            if parts is None:
                continue
            if parts[0] > now:
                break  # the keys sort by time: everything after is later
            found.append((key, parts[1]))
        return found

    async def visited(self, key: str, sid: str, following: datetime | None) -> None:
        """Done with due entry ``key``: schedule the session's ``following`` visit (None: the
        session is gone), then drop the entry (in this order, so a crash never leaves a
        session without an entry)."""
        if following is not None:
            await self.wake_at(sid, following)
            if keys.due(following, sid) == key:
                return
        await self._entries.delete(key)

    def next_visit(
        self, session: PublishingSession, deadline: datetime | None = None
    ) -> datetime | None:
        """When the sweep must next look at ``session``: its expiry, when its publish lease
        or a validation ``deadline`` runs out, once ended to settle and purge it, and at the
        end of its retention to forget it."""
        now = clock.now()
        if is_terminal(session.status):
            if not session.settled or session.ended_at is None:
                return now
            return session.ended_at + self._retention
        moments = [session.expires_at]
        if session.publish is not None:
            moments.append(session.publish.lease_until)
        if deadline is not None:
            moments.append(deadline)
        return max(min(moments), now)

    async def is_indexed(self) -> bool:
        return await self._indexed.load(keys.DUE_INDEXED) is not None

    async def index_all(self) -> int:
        """Give every session an entry, for sessions written before the index existed; then
        mark the bucket indexed, so this full scan runs once. The number indexed."""
        count = 0
        async for sid in self._session_ids():
            try:
                session = await self._sessions.load(keys.session(sid))
            except ValueError:  # unreadable: its visit logs why, as every sweep used to
                log.exception("sweep.unreadable_session", session=sid[:8])
                await self.wake_at(sid, clock.now())
                continue
            when = None if session is None else self.next_visit(session)
            if when is not None:
                await self.wake_at(sid, when)
                count += 1
        with contextlib.suppress(RecordExists):
            await self._indexed.create(keys.DUE_INDEXED, DueIndexed(since=clock.now()))
        return count

    async def _session_ids(self) -> AsyncIterator[str]:
        async for key in self._sessions.keys(keys.SESSIONS, delimiter="/"):
            if keys.is_session_record(key):
                yield keys.session_id_of(key)
