"""File upload sessions: create, receive bytes, attestations, complete, delete (R-F1..F14).

The steps are the concepts' own modules: filenames and their claims
(:mod:`~gateway.services.file_claims`), the bytes of each mechanism
(:mod:`~gateway.services.file_transfers`), what completion checks
(:mod:`~gateway.services.file_validation`). This service orders them per request and owns
completion: validating now or in the background, and recording the outcome."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timedelta

from gateway.distribution.filenames import check_release, normalize_hashes, parse_filename
from gateway.domain import clock
from gateway.domain.errors import DomainError, Kind, Pointer, conflict, invalid, refused_as_invalid
from gateway.domain.lease import granted
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileEvent, FileState, SessionEvent
from gateway.domain.transitions import require
from gateway.logs import log
from gateway.mechanisms import presigned
from gateway.protocol.models import FileCreateRequest
from gateway.services.audit import AuditTrail
from gateway.services.completed import NO_FOLLOW_UP, CompletedFiles
from gateway.services.due_index import DueIndex
from gateway.services.file_claims import FilenameClaims
from gateway.services.file_lookup import FileLookup
from gateway.services.file_transfers import FileTransfers
from gateway.services.file_validation import FileValidator, ValidationFailed
from gateway.services.listings import PublishedFiles
from gateway.services.names import NameRegistry
from gateway.services.session_files import SessionFiles
from gateway.services.sessions import SessionService
from gateway.services.uploads import UploadRecords
from gateway.settings import UploadSettings
from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.record_store import RecordChanged, RecordMissing
from gateway.store.typed import Versioned

PROCESSING_LEASE = timedelta(minutes=10)


class FileService:
    def __init__(
        self,
        records: UploadRecords,
        blobs: BlobStore,
        sessions: SessionService,
        due: DueIndex,
        names: NameRegistry,
        settings: UploadSettings,
        part_size: int,
        published_files: PublishedFiles,
        audit: AuditTrail,
        session_files: SessionFiles,
        index_checks: bool = False,
        completed: CompletedFiles = NO_FOLLOW_UP,
    ):
        self._records = records
        self._session_files = session_files
        self._blobs = blobs
        self._due = due
        self._settings = settings
        self._audit = audit
        # The steps of a file, each its own concept over the same collaborators.
        self._lookup = FileLookup(records, session_files)
        self._claims = FilenameClaims(records, blobs, names, published_files, session_files)
        self._transfers = FileTransfers(
            records, blobs, sessions, self._lookup, self._claims, session_files, settings, part_size
        )
        self._validator = FileValidator(records, blobs, settings, index_checks)
        self._completed = completed  # the release gates' review and auto-publish
        # The validations running in the background (deferred completions), until done.
        self.validations: set[asyncio.Task[None]] = set()

    # -- create ------------------------------------------------------------------------

    async def create(self, session: PublishingSession, request: FileCreateRequest) -> FileUpload:
        require(session, SessionEvent.EDIT_FILES)
        _refuse_other_path(session)
        with refused_as_invalid():
            check_release(parse_filename(request.filename), session.name, session.version)
            hashes = normalize_hashes(request.hashes)
        self._refuse_unacceptable(request)
        await self._claims.refuse_published(session, request.filename)
        await self._session_files.refuse_too_many(session)
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
        await self._transfers.prepare(upload)
        await self._records.create(upload)
        try:
            await self._claims.claim(session, upload)
        except BaseException:
            await self._records.forget(session.id, upload.id)
            raise
        # Summarised last: a crash before leaves an upload the status does not show yet, and
        # whoever next meets it (a retried create, through its filename claim) announces it.
        await self._records.announce(upload)
        log.info("file.created", session=session.id[:8], filename=upload.filename, size=upload.size)
        return upload

    def _refuse_unacceptable(self, request: FileCreateRequest) -> None:
        """A size or mechanism this server's configuration does not take."""
        if request.size <= 0:
            raise invalid("invalid-size", "size must be a positive integer", "size")
        if request.size > self._settings.max_file_size:
            raise conflict(
                "file-too-large",
                f"{request.size} bytes exceeds the maximum of {self._settings.max_file_size}",
                "size",
            )
        if request.mechanism not in self._settings.mechanisms:
            offered = ", ".join(self._settings.mechanisms)
            raise DomainError(
                Kind.UNSUPPORTED,
                "unsupported-mechanism",
                f"Mechanism {request.mechanism!r} is not supported here.",
                [Pointer("mechanism", f"supported: {offered}")],
            )

    async def claim(self, session: PublishingSession, upload: FileUpload) -> None:
        """Make ``upload`` the one holding its filename in the session, replacing a completed
        upload of that name (409 while another is pending, processing or in error)."""
        await self._claims.claim(session, upload)  # its completion wrote its summary

    # -- read --------------------------------------------------------------------------

    async def find(self, sid: str, fid: str) -> FileUpload | None:
        return await self._lookup.find(sid, fid)

    async def get(self, sid: str, fid: str) -> FileUpload:
        return await self._lookup.get(sid, fid)

    # -- bytes (file_transfers) --------------------------------------------------------

    async def receive(
        self,
        session: PublishingSession,
        fid: str,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
    ) -> FileUpload:
        """Run ``http-post-bytes`` (``FileTransfers.receive`` says who wins overlapping POSTs)."""
        return await self._transfers.receive(session, fid, chunks, content_length)

    async def receive_unsized(
        self,
        session: PublishingSession,
        filename: str,
        hashes: dict[str, str],
        chunks: AsyncIterator[bytes | memoryview],
    ) -> FileUpload:
        """The file part of a staged legacy form (R-W6); :meth:`claim` it once completed."""
        return await self._transfers.receive_unsized(session, filename, hashes, chunks)

    async def presigned_parts(
        self, session: PublishingSession, upload: FileUpload
    ) -> list[presigned.PartUrl]:
        return await self._transfers.presigned_parts(session, upload)

    # -- attestations ------------------------------------------------------------------

    async def attach_attestations(
        self, session: PublishingSession, fid: str, document: bytes
    ) -> FileUpload:
        require(session, SessionEvent.EDIT_FILES)
        upload = await self._lookup.current(session, fid)
        await self._lookup.allow(upload, FileEvent.ATTACH_ATTESTATIONS)
        await self._blobs.put(
            keys.attestations(session.id, fid), document, content_type="application/json"
        )
        return await self._records.transition(
            session.id, fid, FileEvent.ATTACH_ATTESTATIONS, has_attestations=True
        )

    # -- complete ----------------------------------------------------------------------

    async def complete(
        self, session: PublishingSession, fid: str, *, defer: bool = True
    ) -> tuple[FileUpload, bool]:
        """Validate now (True: completed) or, for a large file when ``defer`` allows, in the
        background (False: processing)."""
        require(session, SessionEvent.EDIT_FILES)
        found = await self._lookup.current_versioned(session, fid)
        upload = found.value
        if upload.status in (FileState.COMPLETED, FileState.PROCESSING):
            # Completed already: a retry whose first answer was lost, maybe sent through
            # another replica (R-W12), is answered with what the first attempt did. It may
            # also retry one that died between the record and its summary entry.
            await self._session_files.repair(upload)
            return upload, upload.status == FileState.COMPLETED
        await self._lookup.allow(upload, FileEvent.COMPLETE_NOW)
        await self._transfers.close(session, upload)
        if defer and upload.size > self._settings.defer_validation_above:
            deadline = granted(None, PROCESSING_LEASE).until
            assert deadline is not None
            # The sweep looks in when the deadline passes, in case this process dies.
            await self._due.wake_at(session.id, deadline)
            upload = await self._records.transition(
                session.id,
                fid,
                FileEvent.COMPLETE_DEFERRED,
                known=found,
                processing_deadline=deadline,
            )
            self._spawn(self._validate_in_background(session, fid))
            return upload, False
        # Validating presigned bytes records their digests first: the upload read is stale.
        known = found if upload.committed is not None else None
        upload, failure = await self._conclude(
            session, upload, FileEvent.COMPLETE_FAILED, FileEvent.COMPLETE_NOW, known
        )
        if failure is not None:
            raise invalid(failure.slug, failure.message, failure.source)
        log.info("file.completed", session=session.id[:8], filename=upload.filename)
        return upload, True

    async def _validate_in_background(self, session: PublishingSession, fid: str) -> None:
        upload = await self.get(session.id, fid)
        await self._conclude(
            session, upload, FileEvent.PROCESSING_FAILED, FileEvent.PROCESSING_SUCCEEDED
        )

    async def _conclude(
        self,
        session: PublishingSession,
        upload: FileUpload,
        failed: FileEvent,
        succeeded: FileEvent,
        known: Versioned[FileUpload] | None = None,
    ) -> tuple[FileUpload, ValidationFailed | None]:
        """Validate ``upload`` and record the outcome: the file's state, then its audit event.
        ``known``: the upload as read, when validating it writes nothing to it."""
        try:
            metadata = await self._validator.validate(session, upload)
        except ValidationFailed as failure:
            notices = [failure.message]
            await self._records.transition(
                session.id, upload.id, failed, known=known, notices=notices
            )
            await self._audit.file_event(session, upload, failure.message)
            return upload, failure
        upload = await self._records.transition(
            session.id, upload.id, succeeded, known=known, metadata=metadata
        )
        await self._audit.file_event(session, upload)
        await self._completed.file_completed(session, upload)
        return upload, None

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except (DomainError, RecordMissing):
                pass  # the upload was deleted or its session ended meanwhile
            except Exception:
                # The processing deadline lets a sweep pick the file up again.
                log.exception("file.validation_failed")

        task = asyncio.create_task(guarded())
        self.validations.add(task)
        task.add_done_callback(self.validations.discard)

    async def resume_overdue(self, session: PublishingSession) -> datetime | None:
        """Re-run deferred validations whose worker vanished (crash, restart, scale-down);
        the earliest deadline of those still under way (when to look again)."""
        deadlines: list[datetime] = []
        for upload in await self._session_files.records(session.id):
            if upload.status != FileState.PROCESSING:
                continue
            lease = granted(None, PROCESSING_LEASE)
            try:
                await self._records.take_over_processing(session.id, upload.id, lease)
            except RecordChanged:
                # Not overdue, or another replica took it.
                deadlines += [upload.processing_deadline] if upload.processing_deadline else []
                continue
            assert lease.until is not None
            deadlines.append(lease.until)
            self._spawn(self._validate_in_background(session, upload.id))
        return min(deadlines, default=None)

    # -- delete / extend ---------------------------------------------------------------

    async def delete(self, session: PublishingSession, fid: str) -> None:
        require(session, SessionEvent.EDIT_FILES)
        await self._lookup.current(session, fid)
        await self._claims.discard(session.id, fid, FileEvent.DELETE)

    async def add_notice(self, sid: str, fid: str, text: str) -> None:
        await self._records.add_notice(sid, fid, text)


def _refuse_other_path(session: PublishingSession) -> None:
    """A release is assembled by one path (R-W6): a session that staged legacy uploads
    created takes its files from them only; it is still published or canceled here."""
    if session.created_via != "upload2":
        raise conflict(
            "session-path-mismatch",
            f"{session.name} {session.version} is being staged through legacy uploads; "
            "upload its files there, or publish or cancel that session first.",
            "filename",
        )
