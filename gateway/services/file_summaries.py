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
from gateway.store.record_store import JsonRecords, Listed, RecordExists
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
        racing request summarised it): found when a request on it meets no record. Of both
        layouts: a publish folds both, and would refuse while one is left."""
        for folder in (keys.file_summaries(sid), keys.older_file_summaries(sid)):
            async for key in self._entries.keys(f"{folder}{fid}."):
                await self._entries.delete(key)

    async def entries(
        self, sid: str, older_too: bool, listed: list[Listed] | None = None
    ) -> list[FileSummary]:
        """Every summary entry of the session, any order, several per file (``session_files.fold``
        them). ``listed``: a listing already made that holds them (the status's of
        ``keys.session_listing``), else they are listed. ``older_too``: those an older gateway
        wrote where they were before (``keys.older_file_summaries``) as well, one listing more."""
        if listed is None:
            listed = [entry async for entry in self._entries.listing(keys.file_summaries(sid))]
        if older_too:
            older = keys.older_file_summaries(sid)
            listed = listed + [entry async for entry in self._entries.listing(older)]
        return await self._read(listed)

    async def _read(self, listed: list[Listed]) -> list[FileSummary]:
        """The entries of a listing (others it holds are left out): each from its key, read
        only when it holds notices (from what this process holds at the listed etag, if it
        does: entries are never rewritten)."""
        found = [
            (entry, summary) for entry in listed if (summary := _from_key(entry.key)) is not None
        ]
        noticed = [entry for entry, summary in found if summary.notices]
        read = await self._entries.load_listed(noticed)
        by_key = {(s.id, s.revision): s for s in read}
        return [by_key.get((s.id, s.revision), s) for _, s in found]


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
