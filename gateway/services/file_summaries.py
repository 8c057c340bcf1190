"""The summary entries of a session's files: their one writer, and their listing.

Each change of a file's status or notices writes one small summary entry of its own, its
fields in its key (``keys.file_summary``), so the requests on one file read and write the same
bytes whatever the number of files in the session (R-W13). Entries are never rewritten: a change
writes the entry of its new revision, and whoever reads them folds the highest revision of each
file (``session_files.fold``).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from gateway.domain.records import FileSummary, FileUpload
from gateway.domain.states import FileState
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordExists
from gateway.store.typed import Records


class FileSummaries:
    """The one writer of file summary entries (the file records' writer calls :meth:`note`
    after each change it stores)."""

    def __init__(self, records: JsonRecords) -> None:
        self._entries = Records(records, FileSummary)

    async def note(self, upload: FileUpload) -> None:
        """Write the summary of ``upload`` as stored (after its record: the record is the
        truth). One request; written again, the same entry is left as it is."""
        summary = upload.summary()
        with contextlib.suppress(RecordExists):
            await self._entries.create(_entry_key(upload.session_id, summary), summary)

    async def forget(self, sid: str, fid: str) -> None:
        """Drop the entries of a file whose record is gone (a create that failed after a
        racing request summarised it): found when a request on it meets no record."""
        async for key in self._entries.keys(keys.file_summaries_of(sid, fid)):
            await self._entries.delete(key)

    async def entries(self, sid: str) -> list[FileSummary]:
        """Every summary entry of the session, any order, several per file (``session_files.fold``
        them): each from its key, read only when it holds notices."""
        found = [
            summary
            async for key in self._entries.keys(keys.file_summaries(sid))
            if (summary := _from_key(key)) is not None
        ]
        noticed = [s for s in found if s.notices]
        read = await self._entries.load_all(_entry_key(sid, s) for s in noticed)
        by_key = {(s.id, s.revision): s for s in read}
        return [by_key.get((s.id, s.revision), s) for s in found]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATES = frozenset(state.value for state in FileState)


def _entry_key(sid: str, summary: FileSummary) -> str:
    created_us = (summary.created_at - _EPOCH) // timedelta(microseconds=1)
    status, notices = summary.status.value, len(summary.notices)
    fields = (summary.id, summary.revision, created_us, status, notices, summary.filename)
    return keys.file_summary(sid, fields)


def _from_key(key: str) -> FileSummary | None:
    """The summary a key names; its notices (when it has any) are only in the entry."""
    fields = keys.file_summary_fields(key)
    if fields is None:
        return None
    fid, revision, created_us, status, notices, filename = fields
    if status not in _STATES:
        return None
    # Built without validation: every field was parsed from a key this module wrote.
    return FileSummary.model_construct(
        id=fid,
        filename=filename,
        status=FileState(status),
        created_at=_EPOCH + timedelta(microseconds=created_us),
        notices=[""] * notices,  # placeholders: the entry is read for them
        revision=revision,
    )
