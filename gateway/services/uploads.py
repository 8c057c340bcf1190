"""File upload records and filename claims: their one writer.

:class:`gateway.services.files.FileService` (create, bytes, complete, delete) and
:class:`gateway.services.resumable.ResumableUploads` (appends) decide what happens; every change
they make to a file record is one of the typed operations here, each a compare-and-swap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.domain.errors import DomainError, Kind, Pointer, conflict, contention, not_found
from gateway.domain.lease import RELEASED, Lease
from gateway.domain.records import CommittedBytes, FileClaim, FileUpload, ResumableProgress
from gateway.domain.states import FileEvent, FileState, TransitionRefused, next_file_state
from gateway.services.file_summaries import FileSummaries
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordChanged, RecordMissing
from gateway.store.typed import ClaimContention, Records, Versioned

FileChange = Callable[[FileUpload], FileUpload | None]


class UploadRecords:
    def __init__(self, records: JsonRecords, summaries: FileSummaries):
        self._uploads = Records(records, FileUpload)
        self._claims = Records(records, FileClaim)
        # Told of every change of a file's status or notices, after it is stored: the file
        # record is the truth, the session's summary follows it.
        self._summaries = summaries

    async def announce(self, upload: FileUpload) -> None:
        """Show ``upload`` in its session's summary (a new one, or one found out of date)."""
        await self._summaries.note(upload)

    # -- read --------------------------------------------------------------------------

    async def find(self, sid: str, fid: str) -> FileUpload | None:
        return await self._uploads.load(keys.file_upload(sid, fid))

    async def find_versioned(self, sid: str, fid: str) -> Versioned[FileUpload] | None:
        """:meth:`find`, with the etag read, for a request that changes the upload next."""
        return await self._uploads.get(keys.file_upload(sid, fid))

    async def of_session(self, sid: str) -> list[FileUpload]:
        """Every file upload of the session, canceled ones included, oldest first: each as
        the listing showed it (read unless this process holds that version: a publish comes
        right after the completions, most often on the same replica). Never fresher than
        the listing; a change is written from a read of its own."""
        listed = [
            entry
            async for entry in self._uploads.listing(keys.file_records(sid), delimiter="/")
            if entry.key.endswith(".json")
        ]
        uploads = await self._uploads.load_listed(listed)
        return sorted(uploads, key=lambda upload: upload.created_at)

    # -- create, claim, discard ----------------------------------------------------------

    async def create(self, upload: FileUpload) -> None:
        await self._uploads.create(keys.file_upload(upload.session_id, upload.id), upload)

    async def forget(self, sid: str, fid: str) -> None:
        await self._uploads.delete(keys.file_upload(sid, fid))

    async def claim_filename(
        self, upload: FileUpload, may_replace: Callable[[str], Awaitable[bool]]
    ) -> bool:
        """Make ``upload`` the one upload of its filename in the session. ``may_replace``
        gets the id of the upload holding it and answers whether it may be replaced (or
        raises why not)."""

        async def may_take(claim: FileClaim) -> bool:
            return await may_replace(claim.file_id)

        key = keys.file_claim(upload.session_id, upload.filename)
        try:
            holder = await self._claims.claim(key, FileClaim(file_id=upload.id), may_take)
        except ClaimContention:
            raise contention("Too many concurrent uploads of this filename; retry.") from None
        return holder is None

    async def drop_claim(self, sid: str, filename: str, fid: str) -> None:
        await self._claims.delete_if(
            keys.file_claim(sid, filename), lambda claim: claim.file_id == fid
        )

    # -- changes -------------------------------------------------------------------------

    async def _change(
        self, sid: str, fid: str, change: FileChange, known: Versioned[FileUpload] | None = None
    ) -> FileUpload:
        """Any change to the record; :class:`DomainError` not-found when it is gone."""
        return (await self._change_versioned(sid, fid, change, known)).value

    async def _change_versioned(
        self, sid: str, fid: str, change: FileChange, known: Versioned[FileUpload] | None = None
    ) -> Versioned[FileUpload]:
        """:meth:`_change`, with the etag written."""
        try:
            return await self._update(sid, fid, change, known)
        except RecordMissing:
            raise not_found("file upload session") from None

    async def _update(
        self, sid: str, fid: str, change: FileChange, known: Versioned[FileUpload] | None = None
    ) -> Versioned[FileUpload]:
        """Change the record; when its status or notices changed, count a revision and pass
        the summary on once stored. ``known``: the record as the request has just read it
        (:meth:`Records.update_versioned`)."""
        shown: list[bool] = [False]

        def counted(upload: FileUpload) -> FileUpload | None:
            before = (upload.status, len(upload.notices))
            changed = change(upload)
            shown[0] = changed is not None and (changed.status, len(changed.notices)) != before
            if shown[0]:
                assert changed is not None
                changed.revision += 1
            return changed

        written = await self._uploads.update_versioned(keys.file_upload(sid, fid), counted, known)
        if shown[0]:
            await self._summaries.note(written.value)
        return written

    async def transition(
        self,
        sid: str,
        fid: str,
        event: FileEvent,
        *,
        notices: list[str] | None = None,
        known: Versioned[FileUpload] | None = None,
        **changes: Any,
    ) -> FileUpload:
        """Apply ``event`` (and ``changes``) to the stored upload; ``known``: the upload as
        the request has just read it."""
        written = await self.transition_versioned(
            sid, fid, event, notices=notices, known=known, **changes
        )
        return written.value

    async def transition_versioned(
        self,
        sid: str,
        fid: str,
        event: FileEvent,
        *,
        notices: list[str] | None = None,
        known: Versioned[FileUpload] | None = None,
        **changes: Any,
    ) -> Versioned[FileUpload]:
        """:meth:`transition`, with the etag written (for the request's next change)."""

        def apply(upload: FileUpload) -> FileUpload:
            upload.status = allow(upload, event)
            for name, value in changes.items():
                setattr(upload, name, value)
            if notices:
                upload.notices.extend(notices)
            if upload.status != FileState.PROCESSING:
                upload.processing_deadline = None
            return upload

        return await self._change_versioned(sid, fid, apply, known)

    async def commit(
        self,
        sid: str,
        fid: str,
        attempt: str,
        committed: CommittedBytes,
        known: Versioned[FileUpload] | None = None,
    ) -> tuple[FileUpload, str | None]:
        """Record the bytes of ``attempt`` unless a later request superseded it; the upload and
        the attempt whose bytes these replace. ``known``: the upload as the request wrote it
        when the bytes began (a write meanwhile makes this the ordinary read, change, write)."""
        replaced: list[str | None] = [None]

        def commit(upload: FileUpload) -> FileUpload:
            if upload.status != FileState.PENDING or upload.current_attempt != attempt:
                raise _superseded()
            replaced[0] = upload.committed.attempt if upload.committed else None
            upload.committed = committed
            upload.current_attempt = None
            return upload

        return await self._change(sid, fid, commit, known), replaced[0]

    async def commit_unmarked(
        self, sid: str, fid: str, committed: CommittedBytes, read: Versioned[FileUpload]
    ) -> tuple[FileUpload, str | None, bool]:
        """Record the bytes of a one-part body that wrote nothing before them (no
        ``current_attempt``): they win unless the upload's bytes changed since ``read``
        (another request's bytes committed or begun meanwhile, or it completed or went);
        then the request is superseded, unless the bytes committed meanwhile are these (an
        overlapping retry: answered with them). One write, from ``read``'s etag. The upload;
        the attempt whose bytes these replace; whether these bytes were recorded (False:
        the same bytes were already)."""
        replaced: list[str | None] = [None]
        before = read.value
        theirs = [False]

        def commit(upload: FileUpload) -> FileUpload | None:
            unchanged = (upload.status, upload.current_attempt, upload.committed) == (
                FileState.PENDING,
                before.current_attempt,
                before.committed,
            )
            if not unchanged:
                if _same_bytes(upload.committed, committed):
                    theirs[0] = True
                    return None
                raise _superseded()
            replaced[0] = upload.committed.attempt if upload.committed else None
            upload.committed = committed
            upload.current_attempt = None  # a POST in flight since before this one lost
            return upload

        upload = await self._change(sid, fid, commit, read)
        return upload, replaced[0], not theirs[0]

    async def read_back(self, sid: str, fid: str, committed: CommittedBytes) -> FileUpload:
        def record(upload: FileUpload) -> FileUpload:
            upload.committed = committed
            return upload

        return await self._change(sid, fid, record)

    async def take_over_processing(self, sid: str, fid: str, lease: Lease) -> None:
        """Hold a deferred validation whose processing lease lapsed; :class:`RecordChanged`
        when it is not processing or its lease is live."""

        def take_over(upload: FileUpload) -> FileUpload:
            if upload.status != FileState.PROCESSING or upload.processing_lease.is_live():
                raise RecordChanged(fid)
            upload.processing_deadline = lease.until
            return upload

        await self._change(sid, fid, take_over)

    async def add_notice(self, sid: str, fid: str, text: str) -> None:
        def notice(upload: FileUpload) -> FileUpload:
            upload.notices.append(text)
            return upload

        with contextlib.suppress(RecordMissing):
            await self._update(sid, fid, notice)

    # -- resumable appends: the writer lease ---------------------------------------------

    async def hold_writer(
        self, sid: str, fid: str, lease: Lease, is_free: Callable[[Lease], bool]
    ) -> ResumableProgress:
        """Make ``lease.holder`` the one request appending; :class:`WriterBusy` when
        ``is_free`` says the current holder still holds it."""

        def hold(upload: FileUpload) -> FileUpload:
            progress = _progress(upload)
            if not is_free(progress.lease):
                raise WriterBusy(fid)
            allow(upload, FileEvent.SEND_BYTES)
            progress.hold(lease)
            return upload

        return _progress(await self._change(sid, fid, hold))

    async def save_progress(
        self, sid: str, fid: str, progress: ResumableProgress, lease: Lease
    ) -> None:
        """Record how far an append got, renewing its writer's lease."""

        def save(upload: FileUpload) -> FileUpload:
            _check_holder(upload, lease.holder)
            upload.resumable = progress.model_copy()
            upload.resumable.hold(lease)
            return upload

        await self._change(sid, fid, save)

    async def commit_appended(
        self,
        sid: str,
        fid: str,
        writer: str,
        progress: ResumableProgress,
        committed: CommittedBytes,
    ) -> None:
        """The last append delivered every byte: commit them and let go of the upload."""

        def commit(upload: FileUpload) -> FileUpload:
            _check_holder(upload, writer)
            upload.resumable = progress.model_copy()
            upload.resumable.hold(RELEASED)
            upload.committed = committed
            return upload

        await self._change(sid, fid, commit)

    async def let_go(self, sid: str, fid: str, writer: str) -> None:
        def release(upload: FileUpload) -> FileUpload | None:
            if upload.resumable is None or upload.resumable.writer != writer:
                return None  # nothing to release
            upload.resumable.hold(RELEASED)
            return upload

        await self._change(sid, fid, release)


class WriterBusy(Exception):
    """Another append request holds the resumable upload."""


def _progress(upload: FileUpload) -> ResumableProgress:
    assert upload.resumable is not None
    return upload.resumable


def _check_holder(upload: FileUpload, writer: str | None) -> None:
    """Only the request holding the upload may record progress (it may have lost its hold
    by stalling past the lease, or the upload may have been deleted or completed)."""
    if upload.resumable is None or upload.resumable.writer != writer:
        raise conflict("upload-busy", "Another request took over this upload.", "Upload-Offset")
    allow(upload, FileEvent.SEND_BYTES)


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


def too_large(size: int) -> DomainError:
    return DomainError(
        Kind.TOO_LARGE,
        "body-too-large",
        f"The body is larger than the declared size of {size} bytes.",
        [Pointer("body", f"at most {size} bytes")],
    )


def require_mechanism(upload: FileUpload, mechanism: str) -> None:
    if upload.mechanism != mechanism:
        raise conflict(
            "wrong-mechanism",
            f"This file is uploaded with {upload.mechanism}, not {mechanism}.",
            "mechanism",
        )


def _superseded() -> DomainError:
    return conflict(
        "upload-superseded",
        "Another request replaced or completed this upload while these bytes arrived.",
        "body",
    )


def _same_bytes(held: CommittedBytes | None, these: CommittedBytes) -> bool:
    return held is not None and (held.size, held.digests) == (these.size, these.digests)
