"""A file's bytes (R-F8, R-F9): what each mechanism needs before the first byte,
``http-post-bytes`` bodies streamed into S3 and committed to the file record, the unsized
file part of a staged legacy form, S3 presigned part URLs and the closing of their multipart
upload at completion. What the bytes path saw (size, digests and, for a small body, the core
metadata) is committed with the bytes so that completing the file reads nothing back."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator

from gateway import metrics
from gateway.distribution.archive import seen
from gateway.distribution.filenames import check_release, parse_filename
from gateway.domain import clock
from gateway.domain.errors import DomainError, Kind, Pointer, invalid, refused_as_invalid
from gateway.domain.records import CommittedBytes, FileUpload, PublishingSession, ResumableProgress
from gateway.domain.states import FileEvent, FileState, SessionEvent
from gateway.domain.transitions import require
from gateway.logs import log
from gateway.mechanisms import HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED, presigned
from gateway.mechanisms.ingest import BodyTooLarge, Received, ingest
from gateway.services.file_claims import FilenameClaims
from gateway.services.file_lookup import FileLookup
from gateway.services.session_files import SessionFiles
from gateway.services.sessions import SessionService
from gateway.services.uploads import UploadRecords, require_mechanism, too_large
from gateway.settings import UploadSettings
from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.typed import Versioned

# The largest core metadata file a file record carries from the bytes path to completion;
# a larger one (a long description) is read back from the stored archive instead.
MAX_CARRIED_METADATA = 64 * 1024


class FileTransfers:
    def __init__(
        self,
        records: UploadRecords,
        blobs: BlobStore,
        sessions: SessionService,
        lookup: FileLookup,
        claims: FilenameClaims,
        session_files: SessionFiles,
        settings: UploadSettings,
        part_size: int,
    ):
        self._records = records
        self._blobs = blobs
        self._sessions = sessions
        self._lookup = lookup
        self._claims = claims
        self._session_files = session_files
        self._settings = settings
        self._part_size = part_size

    async def prepare(self, upload: FileUpload) -> None:
        """What the upload's mechanism needs before the first byte: the resumable progress
        record, or the S3 multipart upload behind the presigned part URLs."""
        attempt = secrets.token_hex(8)
        if upload.mechanism == RESUMABLE:
            upload.resumable = ResumableProgress(attempt=attempt)
        elif upload.mechanism == S3_PRESIGNED:
            key = keys.file_bytes(upload.session_id, upload.id, attempt)
            upload.presigned = await presigned.start(
                self._blobs, key, attempt, upload.size, self._part_size
            )

    async def receive(
        self,
        session: PublishingSession,
        fid: str,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
    ) -> FileUpload:
        """Run ``http-post-bytes``: a repeated POST replaces the bytes. Of overlapping ones,
        the latest to begin wins when the body's length is unknown or over one part; of
        one-part bodies, the first to commit (a retry meeting its own bytes gets them)."""
        require(session, SessionEvent.EDIT_FILES)
        found = await self._lookup.current_versioned(session, fid)
        upload = found.value
        require_mechanism(upload, HTTP_POST_BYTES)
        await self._lookup.allow(upload, FileEvent.SEND_BYTES)
        if content_length is not None and content_length > upload.size:
            raise too_large(upload.size)
        if content_length is not None and content_length < upload.size:
            raise invalid(
                "size-mismatch",
                f"Content-Length {content_length} differs from the declared size {upload.size}",
                "Content-Length",
            )
        attempt = secrets.token_hex(8)
        key = keys.file_bytes(session.id, fid, attempt)
        if content_length is not None and content_length <= self._part_size:
            # One part, in flight for milliseconds: no attempt marker written before the
            # bytes, one write after them, from the version read (_commit_unmarked).
            received = await self._ingest(chunks, key, upload.hashes, upload.size)
            committed = await self._committed(upload.filename, attempt, received)
            return await self._commit_unmarked(session.id, fid, committed, key, found)
        began = await self._records.transition_versioned(
            session.id, fid, FileEvent.SEND_BYTES, known=found, current_attempt=attempt
        )
        received = await self._ingest(chunks, key, upload.hashes, upload.size)
        committed = await self._committed(upload.filename, attempt, received)
        return await self._commit(session.id, fid, committed, key, began)

    async def receive_unsized(
        self,
        session: PublishingSession,
        filename: str,
        hashes: dict[str, str],
        chunks: AsyncIterator[bytes | memoryview],
    ) -> FileUpload:
        """A file whose size nobody declared (the file part of a staged legacy form, R-W6):
        its bytes stream into S3 exactly as ``http-post-bytes`` does, and only once the body
        is complete does a pending upload exist, with those bytes committed and ``hashes``
        (ingest's algorithm names) to check on completion. A body that fails midway leaves
        no object and no record. The upload does not hold its filename yet: it is claimed
        once it has completed, so that a bad file never displaces a good one."""
        require(session, SessionEvent.EDIT_FILES)
        with refused_as_invalid():
            check_release(parse_filename(filename), session.name, session.version)
        await self._claims.refuse_published(session, filename)
        await self._session_files.refuse_too_many(session)
        fid, attempt = secrets.token_urlsafe(16), secrets.token_hex(8)
        key = keys.file_bytes(session.id, fid, attempt)
        received = await self._ingest(chunks, key, hashes, self._settings.max_file_size)
        upload = FileUpload(
            id=fid,
            session_id=session.id,
            filename=filename,
            size=received.size,
            hashes=hashes,
            mechanism=HTTP_POST_BYTES,
            status=FileState.PENDING,
            created_at=clock.now(),
            committed=await self._committed(filename, attempt, received),
        )
        await self._record_received(session.id, upload, key)
        log.info("file.received", session=session.id[:8], filename=filename, size=received.size)
        return upload

    async def _ingest(
        self,
        chunks: AsyncIterator[bytes | memoryview],
        key: str,
        algorithms: dict[str, str],
        limit: int,
    ) -> Received:
        metrics.UPLOADS_IN_FLIGHT.inc()
        try:
            return await ingest(
                chunks,
                self._blobs,
                key,
                algorithms=algorithms,
                limit=limit,
                part_size=self._part_size,
            )
        except BodyTooLarge:
            raise too_large(limit) from None
        finally:
            metrics.UPLOADS_IN_FLIGHT.dec()

    async def _record_received(self, sid: str, upload: FileUpload, key: str) -> None:
        try:
            # The session may have ended while the bytes arrived: its purge is already done.
            require(await self._sessions.get(sid), SessionEvent.EDIT_FILES)
            await self._records.create(upload)
        except BaseException:
            await asyncio.shield(self._blobs.delete(key))
            raise

    async def _committed(self, filename: str, attempt: str, received: Received) -> CommittedBytes:
        """What the bytes path saw of a body: its size and digests and, for a body that
        fitted in memory, the archive's core metadata, so that completing it reads nothing
        back from S3."""
        committed = CommittedBytes(attempt=attempt, size=received.size, digests=received.digests)
        limit = min(self._settings.max_metadata_size, MAX_CARRIED_METADATA)
        if received.body is not None and (found := await seen(received.body, filename, limit)):
            committed.metadata = base64.b64encode(found.raw).decode()
            committed.metadata_member = found.member
        return committed

    async def _commit(
        self, sid: str, fid: str, committed: CommittedBytes, key: str, known: Versioned[FileUpload]
    ) -> FileUpload:
        try:
            upload, replaced = await self._records.commit(
                sid, fid, committed.attempt, committed, known
            )
        except BaseException:
            await self._blobs.delete(key)
            raise
        if replaced is not None:
            await self._blobs.delete(keys.file_bytes(sid, fid, replaced))
        return upload

    async def _commit_unmarked(
        self, sid: str, fid: str, committed: CommittedBytes, key: str, read: Versioned[FileUpload]
    ) -> FileUpload:
        try:
            upload, replaced, recorded = await self._records.commit_unmarked(
                sid, fid, committed, read
            )
        except BaseException:
            await self._blobs.delete(key)
            raise
        if not recorded:  # an overlapping request committed the same bytes: keep theirs
            await self._blobs.delete(key)
        if replaced is not None:
            await self._blobs.delete(keys.file_bytes(sid, fid, replaced))
        return upload

    # -- vnd-uploadgateway-s3-presigned-v1 ---------------------------------------------

    async def presigned_parts(
        self, session: PublishingSession, upload: FileUpload
    ) -> list[presigned.PartUrl]:
        require_mechanism(upload, S3_PRESIGNED)
        assert upload.presigned is not None
        key = keys.file_bytes(session.id, upload.id, upload.presigned.attempt)
        return await presigned.part_urls(
            self._blobs, key, upload.presigned, self._settings.presign_seconds
        )

    async def close(self, session: PublishingSession, upload: FileUpload) -> None:
        """Refuse to complete a vnd transfer that has not delivered every byte yet (409, the
        upload stays pending); finish an S3 presigned multipart upload."""
        if upload.committed is not None:
            return
        if upload.resumable is not None:
            offset = upload.resumable.offset
            raise DomainError(
                Kind.CONFLICT,
                "upload-incomplete",
                f"{offset} of {upload.size} bytes have arrived; append the rest, the last "
                "request with Upload-Complete: ?1, then complete.",
                [Pointer("Upload-Offset", str(offset))],
            )
        if upload.presigned is not None:
            key = keys.file_bytes(session.id, upload.id, upload.presigned.attempt)
            await presigned.finish(self._blobs, key, upload.presigned, upload.size)
