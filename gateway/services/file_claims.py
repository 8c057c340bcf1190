"""Filenames within a session and on the index (R-F5, R-F7): the best-effort check at create
that a filename is not published or being published, the claim that makes one upload the
holder of its filename in its session, and the discarding of an upload (which drops its
claim)."""

from __future__ import annotations

from gateway.domain.errors import conflict
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileEvent, FileState
from gateway.logs import log
from gateway.services.listings import PublishedFiles
from gateway.services.names import NameRegistry
from gateway.services.session_files import SessionFiles
from gateway.services.uploads import UploadRecords
from gateway.store import keys
from gateway.store.blobs import BlobStore


class FilenameClaims:
    def __init__(
        self,
        records: UploadRecords,
        blobs: BlobStore,
        names: NameRegistry,
        published_files: PublishedFiles,
        session_files: SessionFiles,
    ):
        self._records = records
        self._blobs = blobs
        self._names = names
        self._published_files = published_files
        self._session_files = session_files

    async def refuse_published(self, session: PublishingSession, filename: str) -> None:
        """Best-effort check at create time (R-F5); the authoritative one is at publish."""
        if await self._names.reserved_against(session, filename):
            raise conflict(
                "filename-reserved", f"{filename} is being published or is published", "filename"
            )
        if filename in await self._published_files(session.name):
            raise conflict(
                "already-published",
                f"{filename} is already published on the index and cannot be replaced",
                "filename",
            )

    async def claim(self, session: PublishingSession, upload: FileUpload) -> None:
        """One upload owns a filename at a time: pending/processing/error ones block a new
        upload (R-F7), a completed one is replaced by it."""
        sid = session.id
        replaced: list[FileUpload] = []

        async def may_replace(holder: str) -> bool:
            previous = await self._records.find(sid, holder)
            if previous is not None:  # the retry of a create that died before its summary?
                await self._session_files.repair(previous)
            if previous is not None and previous.status in (
                FileState.PENDING,
                FileState.PROCESSING,
                FileState.ERROR,
            ):
                refused = conflict(
                    "file-in-progress",
                    f"{upload.filename} already has a {previous.status.value} upload in this "
                    "session; delete it first",
                    "filename",
                )
                if _same_declaration(previous, upload):
                    refused.existing = previous.id
                raise refused
            replaced[:] = [] if previous is None else [previous]
            return True

        await self._records.claim_filename(upload, may_replace)
        for previous in replaced:
            if previous.status == FileState.COMPLETED:
                await self.discard(sid, previous.id, FileEvent.DELETE)

    async def discard(self, sid: str, fid: str, event: FileEvent) -> None:
        """The upload's state changed by ``event``, its bytes purged, its claim dropped."""
        upload = await self._records.transition(sid, fid, event)
        await self._blobs.purge(keys.file_data(sid, fid))
        await self._records.drop_claim(sid, upload.filename, fid)
        log.info("file.deleted", session=sid[:8], filename=upload.filename)


def _same_declaration(previous: FileUpload, upload: FileUpload) -> bool:
    """Whether ``upload`` declares what the pending ``previous`` did: then the create is most
    likely a retry whose first answer was lost (R-W12), and the caller may carry on with
    ``previous`` (the API points at it with ``Location``) instead of deleting it."""
    return (
        previous.status == FileState.PENDING
        and previous.size == upload.size
        and previous.hashes == upload.hashes
        and previous.mechanism == upload.mechanism
    )
