"""A session's files: their records (one per file, read where every file is handled anyway)
and their summaries (what the status shows), written per file and listed by prefix
(``file_summaries``).

Each change of a file's status or notices writes one small summary entry of its own, its
fields in its key (``keys.file_summary``), so the requests on one file read and write the same
bytes whatever the number of files in the session (R-W13), and the status folds a listing of
the entries (one request per thousand) instead of reading a record per file (R-W9). Entries
are never rewritten: a change writes the entry of its new revision and the fold keeps the
highest revision of each file, so summaries written out of order converge on the latest. An
ended session's summaries are folded into its record once (its last write), after which its
data, the entries included, is purged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime

from gateway.domain.errors import DomainError, conflict
from gateway.domain.records import FileSummary, FileUpload, PublishingSession
from gateway.domain.states import FileState, is_terminal
from gateway.services.file_summaries import FileSummaries
from gateway.services.uploads import UploadRecords
from gateway.store.record_store import Listed

# How long a session's file count, listed once, serves the creates that follow (with what
# this process created since added): a release's creates come in a burst, and listing the
# session on each one would cost every create the size of the session again.
COUNT_MAX_AGE = 10.0
# Sessions whose count is kept at once: a bound on memory, never reached by one release.
MAX_COUNTED = 1024


class SessionFiles:
    """The reader of a session's files: their records, and their summaries folded from the
    entries that :class:`FileSummaries` writes."""

    def __init__(self, uploads: UploadRecords, summaries: FileSummaries, max_files: int):
        self._uploads = uploads
        self._summaries = summaries
        self._max_files = max_files
        self._counts: dict[str, tuple[float, int]] = {}  # sid -> (listed at, files since)

    # -- the file records ----------------------------------------------------------------

    async def records(self, sid: str) -> list[FileUpload]:
        """Every file upload of the session, canceled ones included, oldest first: one read
        per file, for the work that handles every file anyway (publish, settle, stage)."""
        return await self._uploads.of_session(sid)

    @staticmethod
    def visible(uploads: list[FileUpload]) -> dict[str, FileUpload]:
        """The session's ``files`` mapping: canceled uploads never appear (R-F14)."""
        return {u.filename: u for u in uploads if u.status != FileState.CANCELED}

    # -- the summaries -------------------------------------------------------------------

    async def repair(self, upload: FileUpload) -> None:
        """Write the summary of ``upload`` in case a crash between its record and its entry
        left it out: called where a request meets a file whose state refuses it (a retry of
        the request that died), never on the ordinary path."""
        await self._summaries.note(upload)

    async def forget(self, sid: str, fid: str) -> None:
        """Drop the entries of a file whose record is gone (a create that failed after a
        racing request summarised it): found when a request on it meets no record."""
        await self._summaries.forget(sid, fid)

    async def summaries(
        self,
        session: PublishingSession,
        listed: list[Listed] | None = None,
        older_too: bool = False,
    ) -> dict[str, FileSummary]:
        """File id -> the latest summary of each file, canceled ones included. An ended
        session's come from its record; a live one's from the entries, folded over any its
        record holds (written by a gateway from before the entries). ``listed``: a listing
        of the session's ``keys.session_listing`` already made. ``older_too``: the entries an
        older replica may have written where they were before as well, where a decision
        rests on them (see ``PublishingSession.summaries_beside`` for the others)."""
        stored = session.files
        if stored is None:  # a record from before summaries: its file records, read once
            stored = {u.id: u.summary() for u in await self.records(session.id)}
        if is_terminal(session.status) and session.files is not None:
            return dict(stored)
        older_too = older_too or not session.summaries_beside
        return fold(stored, await self._summaries.entries(session.id, older_too, listed))

    async def listed(
        self, session: PublishingSession, listed: list[Listed] | None = None
    ) -> dict[str, FileSummary]:
        """The session's ``files`` mapping, oldest first, canceled files left out (R-F14).
        ``listed``: as for :meth:`summaries`."""
        ordered = sorted((await self.summaries(session, listed)).values(), key=_created)
        return {s.filename: s for s in ordered if s.status != FileState.CANCELED}

    async def entries(self, sid: str) -> list[FileSummary]:
        """Every summary entry of the session, any order, several per file (:func:`fold`
        them), those an older replica may have written included: for the write that ends
        the session with them."""
        return await self._summaries.entries(sid, older_too=True)

    async def check_as_read(self, session: PublishingSession, uploads: list[FileUpload]) -> None:
        """Before a publish opens its journal from ``uploads`` (every file record, just
        read): a conflict when a summary knows of a change made since they were read (a file
        added, deleted, completed); summaries a crash left behind are written."""
        shown = await self.summaries(session, older_too=True)
        read = {upload.id: upload for upload in uploads}
        for fid, summary in shown.items():
            if fid not in read or summary.revision > read[fid].revision:
                raise conflict(
                    "files-changed",
                    "A file of the session changed while the publish started: publish again.",
                    source="files",
                )
        behind = [u for u in uploads if u.id not in shown or shown[u.id].revision < u.revision]
        await asyncio.gather(*(self._summaries.note(upload) for upload in behind))

    # -- the per-session cap ---------------------------------------------------------------

    async def refuse_too_many(self, session: PublishingSession) -> None:
        """409 when the session holds its most files, counted from a listing shared by the
        creates of ``COUNT_MAX_AGE`` seconds (each adds itself); near the cap, exactly. A
        soft cap: creates on other replicas meanwhile are not seen until the next listing."""
        now = time.monotonic()
        held = self._counts.get(session.id)
        fresh = held is not None and now - held[0] <= COUNT_MAX_AGE
        count = held[1] if held is not None and fresh else None
        if count is None or count >= self._max_files:
            count = len(await self.listed(session))
            self._remember(session.id, now, count)
        if count >= self._max_files:
            raise _too_many(self._max_files)
        at, counted = self._counts.get(session.id, (now, count))
        self._counts[session.id] = (at, counted + 1)  # admitted: racing creates see it

    def _remember(self, sid: str, now: float, count: int) -> None:
        if len(self._counts) >= MAX_COUNTED:
            stale = [s for s, (at, _) in self._counts.items() if now - at > COUNT_MAX_AGE]
            for gone in stale or list(self._counts)[: MAX_COUNTED // 2]:
                del self._counts[gone]
        self._counts[sid] = (now, count)


def fold(base: Mapping[str, FileSummary], entries: list[FileSummary]) -> dict[str, FileSummary]:
    """``base`` with ``entries`` applied: the highest revision of each file wins."""
    folded = dict(base)
    for summary in entries:
        held = folded.get(summary.id)
        if held is None or held.revision < summary.revision:
            folded[summary.id] = summary
    return folded


def _too_many(cap: int) -> DomainError:
    return conflict("too-many-files", f"A session holds at most {cap} files.", "filename")


def _created(summary: FileSummary) -> tuple[datetime, str]:
    return summary.created_at, summary.id
