"""What completing a file checks (R-F10): its size, every declared hash, then the archive's
own core metadata, which must name the session's project and version. The bytes path's
digests and, for a small body, its core metadata are used as they are; presigned bytes,
which the gateway never saw, are read back once."""

from __future__ import annotations

import hashlib

from gateway.distribution.archive import (
    DistributionError,
    ExtractedMetadata,
    check_identity,
    extract_metadata,
    parsed,
)
from gateway.distribution.checks import index_refusals
from gateway.domain.records import CommittedBytes, FileUpload, PublishingSession, StoredMetadata
from gateway.mechanisms.readback import digest_object
from gateway.services.uploads import UploadRecords
from gateway.settings import UploadSettings
from gateway.store import keys
from gateway.store.blobs import BlobStore


class ValidationFailed(Exception):
    def __init__(self, slug: str, source: str, message: str):
        super().__init__(message)
        self.slug = slug
        self.source = source
        self.message = message


class FileValidator:
    def __init__(
        self,
        records: UploadRecords,
        blobs: BlobStore,
        settings: UploadSettings,
        index_checks: bool = False,
    ):
        self._records = records
        self._blobs = blobs
        self._settings = settings
        self._checks_like_pypi = index_checks

    async def validate(self, session: PublishingSession, upload: FileUpload) -> StoredMetadata:
        """Size, every declared hash, then the archive's own metadata (R-F10); raises
        :class:`ValidationFailed`."""
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
        if committed.carried_metadata() is None:  # else the file record is its copy
            await self._blobs.put(keys.core_metadata(session.id, upload.id), extracted.raw)
        metadata = extracted.metadata
        return StoredMetadata(
            member=extracted.member,
            sha256=hashlib.sha256(extracted.raw).hexdigest(),
            metadata_version=str(metadata.metadata_version),
            requires_python=str(metadata.requires_python) if metadata.requires_python else None,
        )

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

    async def _extracted(
        self, sid: str, upload: FileUpload, committed: CommittedBytes
    ) -> ExtractedMetadata:
        """The archive's core metadata: as the bytes path read it, else read back."""
        raw = committed.carried_metadata()
        if raw is not None and committed.metadata_member is not None:
            return parsed(raw, upload.filename, committed.metadata_member)
        reader = self._blobs.range_reader(
            keys.file_bytes(sid, upload.id, committed.attempt), committed.size
        )
        return await extract_metadata(
            reader, upload.filename, max_metadata_bytes=self._settings.max_metadata_size
        )
