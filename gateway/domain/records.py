"""The persisted shape of sessions and file uploads (stored as JSON records in S3)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.domain.lease import Lease
from gateway.domain.states import FileState, SessionState

CreationPath = Literal["upload2", "legacy"]


class Record(BaseModel):
    # Records written by a newer gateway during a rolling upgrade must still load.
    model_config = ConfigDict(extra="ignore")


class ReleasePointer(Record):
    """Names a session: the live session of a release, or one of a principal's open ones."""

    session_id: str


class DueEntry(Record):
    """An entry of the sweep's due index (``due/{time}/{sid}``): the session named is to be
    visited at the time its key carries."""

    session_id: str


class FileClaim(Record):
    """Which upload owns a filename in its session (one at a time, R-F7)."""

    file_id: str


class FilenameReservation(Record):
    """A filename of a project held by session ``session_id`` since its publish reserved it
    (R-P8). It says nothing of whether the file was published: its session's state does
    (``published``), or the index (the file is there). It is dropped only for a file that
    never reached the index; one whose file did, or may have, stays for good.

    ``state``: "published" only in records written before the session said it (a write per
    file at publish that is no longer made); such a reservation is never released."""

    session_id: str
    state: Literal["publishing", "published"] = "publishing"


class NameRegistration(Record):
    """A project name reserved by a first-release session, or registered by its publish."""

    project: str
    principal: str
    state: Literal["reserved", "registered"]
    session: str | None = None


class PublishJournal(Record):
    """A publish in progress: who works on it until when, and what is already on the index."""

    attempt: str
    owner: str
    lease_until: datetime
    order: list[str] = Field(description="File ids, wheels first and the sdist last.")
    confirmed: list[str] = Field(default_factory=list, description="Filenames on the index.")
    new_project: bool | None = Field(
        None, description="The index had no file of the project (None: not known yet)."
    )
    published_by: str
    started_at: datetime = Field(
        # To the microsecond, as every audit event's time: events sort by it.
        default_factory=lambda: datetime.now(UTC),
        description="When the attempt began: the time of its audit events, which whichever "
        "replica finishes it records, so that they all write one object.",
    )
    credential: Literal["service", "caller"] = Field(
        "service",
        description="Whose credential reaches the index; a caller's is never stored, so a "
        "publish using one cannot be resumed by another process.",
    )

    @property
    def lease(self) -> Lease:
        return Lease(self.owner, self.lease_until)

    def hold(self, lease: Lease) -> None:
        assert lease.holder is not None
        assert lease.until is not None
        self.owner, self.lease_until = lease.holder, lease.until


class FileSummary(Record):
    """What a session's status shows of one file upload: an entry of its own per change while
    the session is live (``services/session_files.py``, R-W13), folded into the session
    record when it ends. The file record stays the truth: ``revision`` orders the summaries
    of its changes, so a late one never wins."""

    id: str
    filename: str
    status: FileState
    created_at: datetime
    notices: list[str] = Field(default_factory=list)
    revision: int = 0


class SweepLease(Record):
    """The one replica sweeping right now (``sweep/lease.json``)."""

    holder: str
    until: datetime

    @property
    def lease(self) -> Lease:
        return Lease(self.holder, self.until)


class DueIndexed(Record):
    """Marks that every session of the bucket has an entry under ``due/`` (written once, by
    the sweep that indexed sessions created before the index existed)."""

    since: datetime


class PublishingSession(Record):
    id: str = Field(description="Also the session-token and the stage capability.")
    name: str = Field(description="Normalized project name.")
    version: str = Field(description="Normalized version.")
    status: SessionState
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    settled: bool = Field(
        False,
        description="Once ended: its release, name reservation, quota and data have been freed "
        "(until then the sweeper keeps trying).",
    )
    created_by: str
    created_via: CreationPath = Field(
        "upload2",
        description="The path that created the session, fixed for its life: staged legacy "
        "uploads join only sessions they created (R-W6).",
    )
    notices: list[str] = Field(default_factory=list)
    publish: PublishJournal | None = None
    maybe_on_index: list[str] = Field(
        default_factory=list,
        description="Filenames a failed publish of the session put, or may have put, on the "
        "index: their reservations stay when the session ends (R-P8).",
    )
    files: dict[str, FileSummary] | None = Field(
        None,
        description="File id -> summary, canceled ones kept as tombstones: written when the "
        "session ends (a live one's are entries of their own, services/session_files.py). "
        "None in a record written before summaries existed: read from the file records.",
    )
    summaries_beside: bool = Field(
        False,
        description="Created by a gateway that writes its files' summary entries beside the "
        "record (keys.file_summaries): its status lists them there alone. False in a record "
        "an older gateway created or rewrote (it drops the field), whose entries may be where "
        "that gateway wrote them (keys.older_file_summaries).",
    )


class CommittedBytes(Record):
    """The last complete body received through a mechanism."""

    attempt: str
    size: int
    digests: dict[str, str] = Field(description="Algorithm name → hex digest, as computed.")
    metadata: str | None = Field(
        None,
        description="Base64 of the archive's core metadata file, read by the bytes path from "
        "a body that fitted in memory (completion then reads nothing back); None otherwise.",
    )
    metadata_member: str | None = Field(None, description="The archive member it came from.")

    def carried_metadata(self) -> bytes | None:
        """The core metadata file as the bytes path read it, when it did: then this record is
        its only copy (completion stores no METADATA object for it), else None (read the
        METADATA object completion stored)."""
        if self.metadata is None or self.metadata_member is None:
            return None
        return base64.b64decode(self.metadata)


class StoredPart(Record):
    number: int
    etag: str
    size: int


class ResumableProgress(Record):
    """Where a ``vnd-uploadgateway-resumable-v1`` upload stands. Everything up to ``offset`` is
    durable: full parts in the S3 multipart upload, the rest in one small tail object."""

    attempt: str = Field(description="Names the object the bytes become.")
    upload_id: str | None = Field(None, description="The S3 multipart upload, once a part exists.")
    parts: list[StoredPart] = Field(default_factory=list)
    tail: str | None = Field(None, description="Token naming the current tail object.")
    tail_size: int = 0
    writer: str | None = Field(None, description="The append request holding the upload.")
    writer_until: datetime | None = None

    @property
    def offset(self) -> int:
        return sum(part.size for part in self.parts) + self.tail_size

    @property
    def lease(self) -> Lease:
        return Lease(self.writer, self.writer_until)

    def hold(self, lease: Lease) -> None:
        self.writer, self.writer_until = lease.holder, lease.until


class PresignedUpload(Record):
    """A ``vnd-uploadgateway-s3-presigned-v1`` upload: the client PUTs parts straight to S3."""

    attempt: str
    upload_id: str
    part_size: int
    part_count: int


class StoredMetadata(Record):
    member: str
    sha256: str = Field(description="Of the METADATA/PKG-INFO file, for PEP 658.")
    metadata_version: str
    requires_python: str | None = None


class FileUpload(Record):
    id: str
    session_id: str
    filename: str
    size: int
    hashes: dict[str, str]
    mechanism: str
    status: FileState
    created_at: datetime
    notices: list[str] = Field(default_factory=list)
    current_attempt: str | None = Field(
        None, description="The mechanism request allowed to commit bytes (latest wins)."
    )
    committed: CommittedBytes | None = None
    has_attestations: bool = False
    metadata: StoredMetadata | None = None
    processing_deadline: datetime | None = Field(
        None, description="A deferred completion not finished by then is taken over."
    )
    resumable: ResumableProgress | None = None
    presigned: PresignedUpload | None = None
    revision: int = Field(0, description="Counts changes of status or notices (the summary's).")

    def summary(self) -> FileSummary:
        return FileSummary(
            id=self.id,
            filename=self.filename,
            status=self.status,
            created_at=self.created_at,
            notices=list(self.notices),
            revision=self.revision,
        )

    @property
    def processing_lease(self) -> Lease:
        """Held by whichever process validates a deferred completion (it records no name)."""
        return Lease(None, self.processing_deadline)
