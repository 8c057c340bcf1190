"""The session status ``GET`` in one S3 request as a rule: one listing of the session's
``keys.session_listing`` finds its record, with the record's etag, and its files' summary
entries (keys.file_summaries, beside the record). The record comes from what this process
last read or wrote of it when the listing shows that version (``store/record_cache.py``), and
is read otherwise (a change made on another replica): 1 request, or 2."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.errors import not_found
from gateway.domain.records import FileSummary, PublishingSession
from gateway.services.session_files import SessionFiles
from gateway.services.sessions import SessionService
from gateway.store import keys
from gateway.store.record_store import JsonRecords, Listed
from gateway.store.typed import Records


@dataclass(frozen=True)
class Status:
    """A session as its status shows it, and its summary entries as listed with it (None
    when reading the session ended it: its record holds its summaries now)."""

    session: PublishingSession
    listed: list[Listed] | None


class SessionStatus:
    """The reads of the status ``GET``: the session, then its files' mapping."""

    def __init__(self, records: JsonRecords, sessions: SessionService, files: SessionFiles):
        self._records = Records(records, PublishingSession)
        self._sessions = sessions  # a session whose time is up is expired as it is read
        self._files = files

    async def read(self, sid: str) -> Status:
        """The session (``SessionService.get``: not found, or expired first when its time is
        up) and its summary entries, from one listing."""
        found = [entry async for entry in self._records.listing(keys.session_listing(sid))]
        record = [entry for entry in found if entry.key == keys.session(sid)]
        loaded = await self._records.load_listed(record)
        if not loaded:
            raise not_found("session")
        session = await self._sessions.expire_if_due(loaded[0])
        if session is not loaded[0]:
            return Status(session, None)
        entries = keys.file_summaries(sid)
        return Status(session, [entry for entry in found if entry.key.startswith(entries)])

    async def files(self, status: Status) -> dict[str, FileSummary]:
        """The session's ``files`` mapping (``SessionFiles.listed``), folded from the entries
        listed with it."""
        return await self._files.listed(status.session, status.listed)
