"""The service side of ``vnd-uploadgateway-resumable-v1`` (the transfer itself is in
``gateway.mechanisms.resumable``): which request may append, the durable offset, and
committing the finished bytes to the file record.

One append request at a time holds an upload, recorded in the file record with a lease. The
lease is renewed at every checkpoint; a request cut off mid-body keeps its hold until it has
saved what it received, and the next request (or a ``HEAD``) waits for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

from gateway import metrics
from gateway.domain.errors import DomainError, Kind, Pointer
from gateway.domain.lease import Lease, granted
from gateway.domain.records import (
    CommittedBytes,
    FileUpload,
    PublishingSession,
    ResumableProgress,
)
from gateway.domain.states import FileEvent, SessionEvent
from gateway.domain.transitions import require
from gateway.mechanisms import RESUMABLE
from gateway.mechanisms.ingest import Received
from gateway.mechanisms.readback import digest_object
from gateway.mechanisms.resumable import Appended, Appending, DigestCache
from gateway.services.files import FileService
from gateway.services.uploads import (
    UploadRecords,
    WriterBusy,
    allow,
    require_mechanism,
    too_large,
)
from gateway.store import keys
from gateway.store.blobs import BlobStore

# An append request holds an upload this long past its last checkpoint; the next request
# waits up to WRITER_WAIT for a cut-off predecessor to notice and let go.
WRITER_LEASE = timedelta(seconds=60)
WRITER_WAIT = 5.0


class ResumableUploads:
    def __init__(
        self, records: UploadRecords, blobs: BlobStore, files: FileService, part_size: int
    ):
        self._records = records
        self._blobs = blobs
        self._files = files
        self._part_size = part_size
        self._digests = DigestCache()
        # Append requests of this process: a hold one of them left behind (it failed while
        # S3 was down, say) is known to be dead here, without waiting for its lease to lapse.
        self._process = secrets.token_hex(4)
        self._writers: set[str] = set()

    async def offset(self, session: PublishingSession, fid: str) -> tuple[int, bool]:
        """How many bytes are durable, and whether the transfer is complete."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITER_WAIT
        while True:
            upload = await self._files.get(session.id, fid)
            require_mechanism(upload, RESUMABLE)
            if upload.committed is not None:
                return upload.committed.size, True
            progress = upload.resumable
            assert progress is not None
            # A request cut off a moment ago may still be saving what it received: its
            # offset is the one to report, so wait (briefly) for it to let go.
            busy = self._is_held(progress.lease)
            if not busy or loop.time() > deadline:
                return progress.offset, False
            await asyncio.sleep(0.1)

    async def append(
        self,
        session: PublishingSession,
        fid: str,
        chunks: AsyncIterator[bytes],
        offset: int,
        content_length: int | None,
        finish: bool,
    ) -> tuple[int, bool]:
        """Append at ``offset``; the new offset and whether the transfer is now complete."""
        require(session, SessionEvent.EDIT_FILES)
        upload = await self._files.get(session.id, fid)
        require_mechanism(upload, RESUMABLE)
        allow(upload, FileEvent.SEND_BYTES)
        writer = f"{self._process}-{secrets.token_hex(8)}"
        self._writers.add(writer)
        try:
            progress = await self._hold(session.id, fid, writer)
        except BaseException:
            self._writers.discard(writer)
            raise
        try:
            if offset != progress.offset:
                raise _offset_mismatch(progress.offset, offset)
            if content_length is not None and offset + content_length > upload.size:
                raise too_large(upload.size)
            appended = await self._append_held(session.id, upload, writer, progress, chunks, finish)
            return await self._conclude(upload, writer, appended)
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):  # the lease runs out anyway
                await self._let_go(session.id, fid, writer)

    async def _append_held(
        self,
        sid: str,
        upload: FileUpload,
        writer: str,
        progress: ResumableProgress,
        chunks: AsyncIterator[bytes],
        finish: bool,
    ) -> Appended:
        """Feed ``chunks`` to the upload's parts while ``writer`` holds it; each checkpoint
        saves the progress under that hold."""

        async def checkpoint(current: ResumableProgress) -> None:
            await self._save_progress(sid, upload.id, writer, current)

        appending = Appending(
            self._blobs,
            sid=sid,
            fid=upload.id,
            progress=progress,
            size=upload.size,
            part_size=self._part_size,
            digests=self._digests.take(upload.id, progress.offset, upload.hashes),
            checkpoint=checkpoint,
        )
        metrics.UPLOADS_IN_FLIGHT.inc()
        try:
            return await appending.run(chunks, finish)
        finally:
            metrics.UPLOADS_IN_FLIGHT.dec()

    async def _conclude(
        self, upload: FileUpload, writer: str, appended: Appended
    ) -> tuple[int, bool]:
        """After an append: keep the running digests for the next one, or commit the bytes
        once the last one arrived."""
        sid, fid = upload.session_id, upload.id
        if not appended.finished:
            if appended.digests is not None:
                self._digests.keep(fid, appended.progress.offset, appended.digests)
            if appended.cut_short is not None:
                raise appended.cut_short
            return appended.progress.offset, False
        if appended.digests is not None:
            digests = appended.digests.hexdigests()
        else:
            key = keys.file_bytes(sid, fid, appended.progress.attempt)
            _, digests = await digest_object(self._blobs, key, upload.hashes)
        received = Received(upload.size, digests)
        await self._commit(sid, fid, writer, appended.progress, received)
        return upload.size, True

    def _is_held(self, lease: Lease) -> bool:
        """Whether a live append request holds the upload."""
        if not lease.holder or not lease.until:
            return False
        if lease.holder.startswith(f"{self._process}-"):
            return lease.holder in self._writers
        return lease.is_live()

    async def _hold(self, sid: str, fid: str, writer: str) -> ResumableProgress:
        """Become the one request appending to the upload. A predecessor cut off mid-request
        may still be saving what it received: wait a little for it to let go."""
        deadline = asyncio.get_running_loop().time() + WRITER_WAIT

        def is_free(lease: Lease) -> bool:
            return not self._is_held(lease)

        while True:
            try:
                lease = granted(writer, WRITER_LEASE)
                return await self._records.hold_writer(sid, fid, lease, is_free)
            except WriterBusy:
                if asyncio.get_running_loop().time() > deadline:
                    raise DomainError(
                        Kind.CONFLICT,
                        "upload-busy",
                        "Another request is appending to this upload; retry when it is done.",
                        [Pointer("Upload-Offset", "another append is in progress")],
                        retry_after=1,
                    ) from None
                await asyncio.sleep(0.2)

    async def _save_progress(
        self, sid: str, fid: str, writer: str, progress: ResumableProgress
    ) -> None:
        await self._records.save_progress(sid, fid, progress, granted(writer, WRITER_LEASE))

    async def _commit(
        self, sid: str, fid: str, writer: str, progress: ResumableProgress, received: Received
    ) -> None:
        committed = CommittedBytes(
            attempt=progress.attempt, size=received.size, digests=received.digests
        )
        await self._records.commit_appended(sid, fid, writer, progress, committed)

    async def _let_go(self, sid: str, fid: str, writer: str) -> None:
        await self._records.let_go(sid, fid, writer)


def _offset_mismatch(expected: int, given: int) -> DomainError:
    # As the resumable-uploads draft asks: 409, and the offset the client must resume from.
    return DomainError(
        Kind.CONFLICT,
        "mismatching-upload-offset",
        f"The upload is at offset {expected}, not {given}: resume from {expected}.",
        [Pointer("Upload-Offset", f"expected {expected}, got {given}")],
        offset=expected,
    )
