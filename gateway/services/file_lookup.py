"""The upload a file request is about, read once, and the state check every file request
makes before acting on it (shared by :class:`~gateway.services.files.FileService` and
:class:`~gateway.services.file_transfers.FileTransfers`)."""

from __future__ import annotations

from gateway.domain.errors import DomainError, not_found
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileEvent
from gateway.services.session_files import SessionFiles
from gateway.services.uploads import UploadRecords, allow
from gateway.store.typed import Versioned


class FileLookup:
    def __init__(self, records: UploadRecords, session_files: SessionFiles):
        self._records = records
        self._session_files = session_files

    async def find(self, sid: str, fid: str) -> FileUpload | None:
        return await self._records.find(sid, fid)

    async def get(self, sid: str, fid: str) -> FileUpload:
        upload = await self.find(sid, fid)
        if upload is None:
            raise not_found("file upload session")
        return upload

    async def current(self, session: PublishingSession, fid: str) -> FileUpload:
        return (await self.current_versioned(session, fid)).value

    async def current_versioned(
        self, session: PublishingSession, fid: str
    ) -> Versioned[FileUpload]:
        """The upload as read; its etag lets the request's first change of it skip reading
        it again."""
        found = await self._records.find_versioned(session.id, fid)
        if found is None:
            await self._session_files.forget(session.id, fid)
            raise not_found("file upload session")
        return found

    async def allow(self, upload: FileUpload, event: FileEvent) -> None:
        """Refuse ``event`` as :func:`allow` does, first writing the file's summary: a request
        its file's state refuses may retry one that died between the record and its summary
        (a changed upload shows its previous state until then)."""
        try:
            allow(upload, event)
        except DomainError:
            await self._session_files.repair(upload)
            raise
