"""File upload sessions: create, receive bytes, attestations, complete, delete (R-F1..F14)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from gateway import metrics
from gateway.distribution.archive import DistributionError, check_identity, extract_metadata
from gateway.distribution.filenames import check_release, normalize_hashes, parse_filename
from gateway.logs import log
from gateway.mechanisms import HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED, presigned
from gateway.mechanisms.ingest import BodyTooLarge, Received, ingest
from gateway.mechanisms.readback import digest_object
from gateway.protocol.models import FileCreateRequest
from gateway.protocol.problems import ErrorItem, Problem, bad_request, conflict, not_found
from gateway.services.audit import NO_AUDIT
from gateway.services.sessions import SessionService, require
from gateway.sessions import clock
from gateway.sessions.records import (
    CommittedBytes,
    FileUpload,
    PublishingSession,
    ResumableProgress,
    StoredMetadata,
)
from gateway.sessions.states import (
    FileEvent,
    FileState,
    SessionEvent,
    TransitionRefused,
    next_file_state,
)
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.records import RecordChanged, RecordExists, RecordMissing, RecordStore

PublishedFiles = Callable[[str], Awaitable[dict[str, str | None]]]

PROCESSING_LEASE = timedelta(minutes=10)


class ValidationFailed(Exception):
    def __init__(self, slug: str, source: str, message: str):
        super().__init__(message)
        self.slug = slug
        self.source = source
        self.message = message


class FileService:
    def __init__(
        self,
        records: RecordStore,
        blobs: BlobStore,
        sessions: SessionService,
        settings: Settings,
        published_files: PublishedFiles,
    ):
        self._records = records
        self._blobs = blobs
        self._sessions = sessions
        self._uploads = settings.uploads
        self._part_size = settings.s3.part_size
        self._published_files = published_files
        self._background: set[asyncio.Task[None]] = set()
        self.audit = NO_AUDIT  # set by the application

    # -- create ------------------------------------------------------------------------

    async def create(self, session: PublishingSession, request: FileCreateRequest) -> FileUpload:
        require(session, SessionEvent.EDIT_FILES)
        parsed = parse_filename(request.filename)
        check_release(parsed, session.name, session.version)
        hashes = normalize_hashes(request.hashes)
        if request.size <= 0:
            raise bad_request("invalid-size", "size must be a positive integer", "size")
        if request.size > self._uploads.max_file_size:
            raise conflict(
                "file-too-large",
                f"{request.size} bytes exceeds the maximum of {self._uploads.max_file_size}",
                "size",
            )
        if request.mechanism not in self._uploads.mechanisms:
            offered = ", ".join(self._uploads.mechanisms)
            raise Problem(
                422,
                "unsupported-mechanism",
                f"Mechanism {request.mechanism!r} is not supported here.",
                [ErrorItem("mechanism", f"supported: {offered}")],
            )
        await self._refuse_published(session, request.filename)
        await self._refuse_too_many(session)
        upload = FileUpload(
            id=secrets.token_urlsafe(16),
            session_id=session.id,
            filename=request.filename,
            size=request.size,
            hashes=hashes,
            mechanism=request.mechanism,
            status=FileState.PENDING,
            created_at=clock.now(),
        )
        attempt = secrets.token_hex(8)
        if upload.mechanism == RESUMABLE:
            upload.resumable = ResumableProgress(attempt=attempt)
        elif upload.mechanism == S3_PRESIGNED:
            key = keys.file_bytes(session.id, upload.id, attempt)
            upload.presigned = await presigned.start(
                self._blobs, key, attempt, upload.size, self._part_size
            )
        await self._records.create(
            keys.file_upload(session.id, upload.id), upload.model_dump(mode="json")
        )
        try:
            await self._claim_filename(session.id, upload)
        except BaseException:
            await self._records.delete(keys.file_upload(session.id, upload.id))
            raise
        log.info("file.created", session=session.id[:8], filename=upload.filename, size=upload.size)
        return upload

    async def _refuse_published(self, session: PublishingSession, filename: str) -> None:
        """Best-effort check at create time (R-F5); the authoritative one is at publish."""
        if await self._records.get(keys.filename_reservation(session.name, filename)):
            raise conflict(
                "filename-reserved", f"{filename} is being published or is published", "filename"
            )
        if filename in await self._published_files(session.name):
            raise conflict(
                "already-published",
                f"{filename} is already published on the index and cannot be replaced",
                "filename",
            )

    async def _refuse_too_many(self, session: PublishingSession) -> None:
        live = self._sessions.visible_files(await self._sessions.files(session.id))
        if len(live) >= self._uploads.max_files_per_session:
            raise conflict(
                "too-many-files",
                f"A session holds at most {self._uploads.max_files_per_session} files.",
                "filename",
            )

    async def _claim_filename(self, sid: str, upload: FileUpload) -> None:
        """One upload owns a filename at a time: pending/processing/error ones block a new
        upload (R-F7), a completed one is replaced by it."""
        claim_key = keys.file_claim(sid, upload.filename)
        for _ in range(8):
            try:
                await self._records.create(claim_key, {"file_id": upload.id})
                return
            except RecordExists:
                pass
            claim = await self._records.get(claim_key)
            if claim is None:
                continue
            previous = await self.find(sid, claim.data["file_id"])
            if previous is not None and previous.status in (
                FileState.PENDING,
                FileState.PROCESSING,
                FileState.ERROR,
            ):
                raise conflict(
                    "file-in-progress",
                    f"{upload.filename} already has a {previous.status.value} upload in this "
                    "session; delete it first",
                    "filename",
                )
            try:
                await self._records.replace(claim_key, {"file_id": upload.id}, claim.etag)
            except (RecordChanged, RecordMissing):
                continue
            if previous is not None and previous.status == FileState.COMPLETED:
                await self._discard(sid, previous.id, FileEvent.DELETE)
            return
        raise Problem(503, "contention", "Too many concurrent uploads of this filename; retry.")

    # -- read --------------------------------------------------------------------------

    async def find(self, sid: str, fid: str) -> FileUpload | None:
        stored = await self._records.get(keys.file_upload(sid, fid))
        return None if stored is None else FileUpload.model_validate(stored.data)

    async def get(self, sid: str, fid: str) -> FileUpload:
        upload = await self.find(sid, fid)
        if upload is None:
            raise not_found("file upload session")
        return upload

    # -- bytes -------------------------------------------------------------------------

    async def receive(
        self,
        session: PublishingSession,
        fid: str,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
    ) -> FileUpload:
        """Run ``http-post-bytes``: the latest POST wins; a repeated one replaces the bytes."""
        require(session, SessionEvent.EDIT_FILES)
        upload = await self.get(session.id, fid)
        require_mechanism(upload, HTTP_POST_BYTES)
        allow(upload, FileEvent.SEND_BYTES)
        if content_length is not None and content_length > upload.size:
            raise too_large(upload.size)
        if content_length is not None and content_length < upload.size:
            raise bad_request(
                "size-mismatch",
                f"Content-Length {content_length} differs from the declared size {upload.size}",
                "Content-Length",
            )
        attempt = secrets.token_hex(8)
        await self._mutate(session.id, fid, FileEvent.SEND_BYTES, current_attempt=attempt)
        key = keys.file_bytes(session.id, fid, attempt)
        metrics.UPLOADS_IN_FLIGHT.inc()
        try:
            received = await ingest(
                chunks,
                self._blobs,
                key,
                algorithms=upload.hashes,
                limit=upload.size,
                part_size=self._part_size,
            )
        except BodyTooLarge:
            raise too_large(upload.size) from None
        finally:
            metrics.UPLOADS_IN_FLIGHT.dec()
        return await self._commit(session.id, fid, attempt, received, key)

    async def _commit(
        self, sid: str, fid: str, attempt: str, received: Received, key: str
    ) -> FileUpload:
        replaced: list[str] = []

        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            upload = FileUpload.model_validate(data)
            if upload.status != FileState.PENDING or upload.current_attempt != attempt:
                raise conflict(
                    "upload-superseded",
                    "Another request replaced or completed this upload while these bytes arrived.",
                    "body",
                )
            replaced[:] = [upload.committed.attempt] if upload.committed else []
            upload.committed = CommittedBytes(
                attempt=attempt, size=received.size, digests=received.digests
            )
            upload.current_attempt = None
            return upload.model_dump(mode="json")

        try:
            stored = await self._records.update(keys.file_upload(sid, fid), mutate)
        except BaseException:
            await self._blobs.delete(key)
            raise
        for old_attempt in replaced:
            await self._blobs.delete(keys.file_bytes(sid, fid, old_attempt))
        return FileUpload.model_validate(stored.data)

    # -- vnd-uploadgateway-s3-presigned-v1 ---------------------------------------------

    async def presigned_parts(
        self, session: PublishingSession, upload: FileUpload
    ) -> list[presigned.PartUrl]:
        require_mechanism(upload, S3_PRESIGNED)
        assert upload.presigned is not None
        key = keys.file_bytes(session.id, upload.id, upload.presigned.attempt)
        return await presigned.part_urls(
            self._blobs, key, upload.presigned, self._uploads.presign_seconds
        )

    async def _close_transfer(self, session: PublishingSession, upload: FileUpload) -> None:
        """Refuse to complete a vnd transfer that has not delivered every byte yet (409, the
        upload stays pending); finish an S3 presigned multipart upload."""
        if upload.committed is not None:
            return
        if upload.resumable is not None:
            offset = upload.resumable.offset
            raise Problem(
                409,
                "upload-incomplete",
                f"{offset} of {upload.size} bytes have arrived; append the rest, the last "
                "request with Upload-Complete: ?1, then complete.",
                [ErrorItem("Upload-Offset", str(offset))],
            )
        if upload.presigned is not None:
            key = keys.file_bytes(session.id, upload.id, upload.presigned.attempt)
            await presigned.finish(self._blobs, key, upload.presigned, upload.size)

    async def _read_back(self, session: PublishingSession, upload: FileUpload) -> FileUpload:
        """Digests of presigned bytes, which the gateway has not seen: read the object once."""
        if upload.committed is not None or upload.presigned is None:
            return upload
        attempt = upload.presigned.attempt
        # sha256 (and what the client declared) only: blake2b would more than double the
        # gateway's CPU per byte, and the legacy form's blake2_256_digest is optional.
        size, digests = await digest_object(
            self._blobs,
            keys.file_bytes(session.id, upload.id, attempt),
            upload.hashes,
            always=("sha256",),
        )
        committed = CommittedBytes(attempt=attempt, size=size, digests=digests)

        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            return {**data, "committed": committed.model_dump(mode="json")}

        stored = await self._records.update(keys.file_upload(session.id, upload.id), mutate)
        return FileUpload.model_validate(stored.data)

    # -- attestations ------------------------------------------------------------------

    async def attach_attestations(
        self, session: PublishingSession, fid: str, document: bytes
    ) -> FileUpload:
        require(session, SessionEvent.EDIT_FILES)
        allow(await self.get(session.id, fid), FileEvent.ATTACH_ATTESTATIONS)
        await self._blobs.put(
            keys.attestations(session.id, fid), document, content_type="application/json"
        )
        return await self._mutate(
            session.id, fid, FileEvent.ATTACH_ATTESTATIONS, has_attestations=True
        )

    # -- complete ----------------------------------------------------------------------

    async def complete(self, session: PublishingSession, fid: str) -> tuple[FileUpload, bool]:
        """Validate now (True: completed) or in the background (False: processing)."""
        require(session, SessionEvent.EDIT_FILES)
        upload = await self.get(session.id, fid)
        allow(upload, FileEvent.COMPLETE_NOW)
        await self._close_transfer(session, upload)
        if upload.size > self._uploads.defer_validation_above:
            upload = await self._mutate(
                session.id,
                fid,
                FileEvent.COMPLETE_DEFERRED,
                processing_deadline=clock.now() + PROCESSING_LEASE,
            )
            self._spawn(self._validate_in_background(session, fid))
            return upload, False
        try:
            metadata = await self._validate(session, upload)
        except ValidationFailed as failure:
            await self._mutate(
                session.id, fid, FileEvent.COMPLETE_FAILED, notices=[failure.message]
            )
            await self.audit.file_event(session, upload, failure.message)
            raise Problem(
                400, failure.slug, failure.message, [ErrorItem(failure.source, failure.message)]
            ) from None
        upload = await self._mutate(session.id, fid, FileEvent.COMPLETE_NOW, metadata=metadata)
        await self.audit.file_event(session, upload)
        log.info("file.completed", session=session.id[:8], filename=upload.filename)
        return upload, True

    async def _validate_in_background(self, session: PublishingSession, fid: str) -> None:
        upload = await self.get(session.id, fid)
        try:
            metadata = await self._validate(session, upload)
        except ValidationFailed as failure:
            await self._mutate(
                session.id, fid, FileEvent.PROCESSING_FAILED, notices=[failure.message]
            )
            await self.audit.file_event(session, upload, failure.message)
            return
        upload = await self._mutate(
            session.id, fid, FileEvent.PROCESSING_SUCCEEDED, metadata=metadata
        )
        await self.audit.file_event(session, upload)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except (Problem, RecordMissing):
                pass  # the upload was deleted or its session ended meanwhile
            except Exception:
                # The processing deadline lets a sweep pick the file up again.
                log.exception("file.validation_failed")

        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def resume_overdue(self, session: PublishingSession) -> None:
        """Re-run deferred validations whose worker vanished (crash, restart, scale-down)."""
        for upload in await self._sessions.files(session.id):
            if upload.status == FileState.PROCESSING:
                try:
                    await self._take_over(session.id, upload.id)
                except RecordChanged:
                    continue  # not overdue, or another replica took it
                self._spawn(self._validate_in_background(session, upload.id))

    async def _take_over(self, sid: str, fid: str) -> None:
        now = clock.now()

        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            upload = FileUpload.model_validate(data)
            deadline = upload.processing_deadline
            if upload.status != FileState.PROCESSING or (deadline and deadline > now):
                raise RecordChanged(fid)
            upload.processing_deadline = now + PROCESSING_LEASE
            return upload.model_dump(mode="json")

        await self._records.update(keys.file_upload(sid, fid), mutate)

    async def _validate(self, session: PublishingSession, upload: FileUpload) -> StoredMetadata:
        """Size, every declared hash, then the archive's own metadata (R-F10)."""
        upload = await self._read_back(session, upload)
        committed = upload.committed
        if committed is None:
            raise ValidationFailed("size-mismatch", "size", "No bytes were received for this file.")
        if committed.size != upload.size:
            raise ValidationFailed(
                "size-mismatch",
                "size",
                f"Received {committed.size} bytes, but {upload.size} were declared.",
            )
        for algorithm, expected in upload.hashes.items():
            if committed.digests.get(algorithm) != expected:
                raise ValidationFailed(
                    "hash-mismatch",
                    f"hashes.{algorithm}",
                    f"The {algorithm} digest of the received bytes does not match the declared "
                    "one.",
                )
        reader = self._blobs.range_reader(
            keys.file_bytes(session.id, upload.id, committed.attempt), committed.size
        )
        try:
            extracted = await extract_metadata(
                reader, upload.filename, max_metadata_bytes=self._uploads.max_metadata_size
            )
            check_identity(extracted, session.name, session.version)
        except DistributionError as exc:
            raise ValidationFailed("invalid-distribution", exc.source, str(exc)) from None
        await self._blobs.put(keys.core_metadata(session.id, upload.id), extracted.raw)
        metadata = extracted.metadata
        return StoredMetadata(
            member=extracted.member,
            sha256=hashlib.sha256(extracted.raw).hexdigest(),
            metadata_version=str(metadata.metadata_version),
            requires_python=str(metadata.requires_python) if metadata.requires_python else None,
        )

    # -- delete / extend ---------------------------------------------------------------

    async def delete(self, session: PublishingSession, fid: str) -> None:
        require(session, SessionEvent.EDIT_FILES)
        await self.get(session.id, fid)
        await self._discard(session.id, fid, FileEvent.DELETE)

    async def _discard(self, sid: str, fid: str, event: FileEvent) -> None:
        upload = await self._mutate(sid, fid, event)
        await self._blobs.purge(keys.file_data(sid, fid))
        claim_key = keys.file_claim(sid, upload.filename)
        claim = await self._records.get(claim_key)
        if claim is not None and claim.data.get("file_id") == fid:
            with contextlib.suppress(RecordChanged):
                await self._records.delete(claim_key, claim.etag)
        log.info("file.deleted", session=sid[:8], filename=upload.filename)

    async def add_notice(self, sid: str, fid: str, text: str) -> None:
        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            upload = FileUpload.model_validate(data)
            upload.notices.append(text)
            return upload.model_dump(mode="json")

        with contextlib.suppress(RecordMissing):
            await self._records.update(keys.file_upload(sid, fid), mutate)

    # -- shared ------------------------------------------------------------------------

    async def _mutate(
        self,
        sid: str,
        fid: str,
        event: FileEvent,
        *,
        notices: list[str] | None = None,
        **changes: Any,
    ) -> FileUpload:
        """Apply ``event`` (and ``changes``) to the stored upload with compare-and-swap."""

        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            upload = FileUpload.model_validate(data)
            upload.status = allow(upload, event)
            for name, value in changes.items():
                setattr(upload, name, value)
            if notices:
                upload.notices.extend(notices)
            if upload.status != FileState.PROCESSING:
                upload.processing_deadline = None
            return upload.model_dump(mode="json")

        try:
            stored = await self._records.update(keys.file_upload(sid, fid), mutate)
        except RecordMissing:
            raise not_found("file upload session") from None
        return FileUpload.model_validate(stored.data)


def allow(upload: FileUpload, event: FileEvent) -> FileState:
    try:
        return next_file_state(upload.status, event)
    except TransitionRefused as exc:
        if upload.status == FileState.CANCELED:
            raise not_found("file upload session") from None
        raise conflict(
            "invalid-file-state",
            f"The file upload is {upload.status.value}: cannot {event.value}.",
            "status",
        ) from exc


def too_large(size: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        f"The body is larger than the declared size of {size} bytes.",
        [ErrorItem("body", f"at most {size} bytes")],
    )


def require_mechanism(upload: FileUpload, mechanism: str) -> None:
    if upload.mechanism != mechanism:
        raise conflict(
            "wrong-mechanism",
            f"This file is uploaded with {upload.mechanism}, not {mechanism}.",
            "mechanism",
        )
