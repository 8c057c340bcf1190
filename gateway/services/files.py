"""File upload sessions: create, receive bytes, attestations, complete, delete (R-F1..F14)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timedelta

from gateway import metrics
from gateway.distribution.archive import (
    DistributionError,
    ExtractedMetadata,
    check_identity,
    extract_metadata,
    parsed,
    seen,
)
from gateway.distribution.checks import index_refusals
from gateway.distribution.filenames import (
    check_release,
    normalize_hashes,
    parse_filename,
)
from gateway.domain import clock
from gateway.domain.errors import (
    DomainError,
    Kind,
    Pointer,
    conflict,
    invalid,
    not_found,
    refused_as_invalid,
)
from gateway.domain.lease import granted
from gateway.domain.records import (
    CommittedBytes,
    FileUpload,
    PublishingSession,
    ResumableProgress,
    StoredMetadata,
)
from gateway.domain.states import FileEvent, FileState, SessionEvent
from gateway.domain.transitions import require
from gateway.logs import log
from gateway.mechanisms import HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED, presigned
from gateway.mechanisms.ingest import BodyTooLarge, Received, ingest
from gateway.mechanisms.readback import digest_object
from gateway.protocol.models import FileCreateRequest
from gateway.services.audit import AuditTrail
from gateway.services.completed import NO_FOLLOW_UP, CompletedFiles
from gateway.services.due_index import DueIndex
from gateway.services.listings import PublishedFiles
from gateway.services.names import NameRegistry
from gateway.services.session_files import SessionFiles
from gateway.services.sessions import SessionService
from gateway.services.uploads import UploadRecords, allow, require_mechanism, too_large
from gateway.settings import UploadSettings
from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.record_store import RecordChanged, RecordMissing
from gateway.store.typed import Versioned

PROCESSING_LEASE = timedelta(minutes=10)
# The largest core metadata file a file record carries from the bytes path to completion;
# a larger one (a long description) is read back from the stored archive instead.
MAX_CARRIED_METADATA = 64 * 1024


class ValidationFailed(Exception):
    def __init__(self, slug: str, source: str, message: str):
        super().__init__(message)
        self.slug = slug
        self.source = source
        self.message = message


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
        self._sessions = sessions
        self._due = due
        self._names = names
        self._settings = settings
        self._part_size = part_size
        self._checks_like_pypi = index_checks
        self._published_files = published_files
        self._audit = audit
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
        await self._refuse_published(session, request.filename)
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
        await self._prepare_transfer(upload)
        await self._records.create(upload)
        try:
            await self._claim_filename(session, upload)
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

    async def _prepare_transfer(self, upload: FileUpload) -> None:
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

    async def _refuse_published(self, session: PublishingSession, filename: str) -> None:
        """Best-effort check at create time (R-F5); the authoritative one is at publish."""
        if await self._names.is_filename_reserved(session.name, filename):
            raise conflict(
                "filename-reserved", f"{filename} is being published or is published", "filename"
            )
        if filename in await self._published_files(session.name):
            raise conflict(
                "already-published",
                f"{filename} is already published on the index and cannot be replaced",
                "filename",
            )

    async def _claim_filename(self, session: PublishingSession, upload: FileUpload) -> None:
        """One upload owns a filename at a time: pending/processing/error ones block a new
        upload (R-F7), a completed one is replaced by it."""
        sid = session.id
        replaced: list[FileUpload] = []

        async def may_replace(holder: str) -> bool:
            previous = await self.find(sid, holder)
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
                await self._discard(sid, previous.id, FileEvent.DELETE)

    # -- read --------------------------------------------------------------------------

    async def find(self, sid: str, fid: str) -> FileUpload | None:
        return await self._records.find(sid, fid)

    async def get(self, sid: str, fid: str) -> FileUpload:
        upload = await self.find(sid, fid)
        if upload is None:
            raise not_found("file upload session")
        return upload

    async def _current(self, session: PublishingSession, fid: str) -> FileUpload:
        return (await self._current_versioned(session, fid)).value

    async def _current_versioned(
        self, session: PublishingSession, fid: str
    ) -> Versioned[FileUpload]:
        """The upload as read; its etag lets the request's first change of it skip reading
        it again."""
        found = await self._records.find_versioned(session.id, fid)
        if found is None:
            await self._session_files.forget(session.id, fid)
            raise not_found("file upload session")
        return found

    async def _allow(self, upload: FileUpload, event: FileEvent) -> None:
        """Refuse ``event`` as :func:`allow` does, first writing the file's summary: a request
        its file's state refuses may retry one that died between the record and its summary
        (a changed upload shows its previous state until then)."""
        try:
            allow(upload, event)
        except DomainError:
            await self._session_files.repair(upload)
            raise

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
        found = await self._current_versioned(session, fid)
        upload = found.value
        require_mechanism(upload, HTTP_POST_BYTES)
        await self._allow(upload, FileEvent.SEND_BYTES)
        if content_length is not None and content_length > upload.size:
            raise too_large(upload.size)
        if content_length is not None and content_length < upload.size:
            raise invalid(
                "size-mismatch",
                f"Content-Length {content_length} differs from the declared size {upload.size}",
                "Content-Length",
            )
        attempt = secrets.token_hex(8)
        began = await self._records.transition_versioned(
            session.id, fid, FileEvent.SEND_BYTES, known=found, current_attempt=attempt
        )
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
        no object and no record. The upload does not hold its filename yet: :meth:`claim`
        it once it has completed, so that a bad file never displaces a good one."""
        require(session, SessionEvent.EDIT_FILES)
        with refused_as_invalid():
            check_release(parse_filename(filename), session.name, session.version)
        await self._refuse_published(session, filename)
        await self._session_files.refuse_too_many(session)
        fid, attempt = secrets.token_urlsafe(16), secrets.token_hex(8)
        key = keys.file_bytes(session.id, fid, attempt)
        limit = self._settings.max_file_size
        metrics.UPLOADS_IN_FLIGHT.inc()
        try:
            received = await ingest(
                chunks, self._blobs, key, algorithms=hashes, limit=limit, part_size=self._part_size
            )
        except BodyTooLarge:
            raise too_large(limit) from None
        finally:
            metrics.UPLOADS_IN_FLIGHT.dec()
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

    async def _record_received(self, sid: str, upload: FileUpload, key: str) -> None:
        try:
            # The session may have ended while the bytes arrived: its purge is already done.
            require(await self._sessions.get(sid), SessionEvent.EDIT_FILES)
            await self._records.create(upload)
        except BaseException:
            await asyncio.shield(self._blobs.delete(key))
            raise

    async def claim(self, session: PublishingSession, upload: FileUpload) -> None:
        """Make ``upload`` the one holding its filename in the session, replacing a completed
        upload of that name (409 while another is pending, processing or in error)."""
        await self._claim_filename(session, upload)  # its completion wrote its summary

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

    async def _close_transfer(self, session: PublishingSession, upload: FileUpload) -> None:
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
        return await self._records.read_back(session.id, upload.id, committed)

    # -- attestations ------------------------------------------------------------------

    async def attach_attestations(
        self, session: PublishingSession, fid: str, document: bytes
    ) -> FileUpload:
        require(session, SessionEvent.EDIT_FILES)
        await self._allow(await self._current(session, fid), FileEvent.ATTACH_ATTESTATIONS)
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
        found = await self._current_versioned(session, fid)
        upload = found.value
        if upload.status in (FileState.COMPLETED, FileState.PROCESSING):
            # Completed already: a retry whose first answer was lost, maybe sent through
            # another replica (R-W12), is answered with what the first attempt did. It may
            # also retry one that died between the record and its summary entry.
            await self._session_files.repair(upload)
            return upload, upload.status == FileState.COMPLETED
        await self._allow(upload, FileEvent.COMPLETE_NOW)
        await self._close_transfer(session, upload)
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
            metadata = await self._validate(session, upload)
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
        try:
            extracted = await self._extracted(session.id, upload, committed)
            check_identity(extracted, session.name, session.version)
        except DistributionError as exc:
            raise ValidationFailed("invalid-distribution", exc.source, str(exc)) from None
        if self._checks_like_pypi and (
            refusals := index_refusals(extracted.metadata, upload.filename)
        ):
            raise ValidationFailed("invalid-distribution", refusals[0].source, refusals[0].message)
        await self._blobs.put(keys.core_metadata(session.id, upload.id), extracted.raw)
        metadata = extracted.metadata
        return StoredMetadata(
            member=extracted.member,
            sha256=hashlib.sha256(extracted.raw).hexdigest(),
            metadata_version=str(metadata.metadata_version),
            requires_python=str(metadata.requires_python) if metadata.requires_python else None,
        )

    async def _extracted(
        self, sid: str, upload: FileUpload, committed: CommittedBytes
    ) -> ExtractedMetadata:
        """The archive's core metadata: as the bytes path read it, else read back."""
        if committed.metadata is not None and committed.metadata_member is not None:
            raw = base64.b64decode(committed.metadata)
            return parsed(raw, upload.filename, committed.metadata_member)
        reader = self._blobs.range_reader(
            keys.file_bytes(sid, upload.id, committed.attempt), committed.size
        )
        return await extract_metadata(
            reader, upload.filename, max_metadata_bytes=self._settings.max_metadata_size
        )

    # -- delete / extend ---------------------------------------------------------------

    async def delete(self, session: PublishingSession, fid: str) -> None:
        require(session, SessionEvent.EDIT_FILES)
        await self._current(session, fid)
        await self._discard(session.id, fid, FileEvent.DELETE)

    async def _discard(self, sid: str, fid: str, event: FileEvent) -> None:
        upload = await self._records.transition(sid, fid, event)
        await self._blobs.purge(keys.file_data(sid, fid))
        await self._records.drop_claim(sid, upload.filename, fid)
        log.info("file.deleted", session=sid[:8], filename=upload.filename)

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
