"""What a stage URL shows: a live session's completed files (R-S1, R-S2).

The stage token is a capability: it needs no credentials and is not subject to upload
permission. An unknown token and an ended session answer the same 404, so a probe learns
nothing about which tokens ever existed.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from datetime import timedelta

from gateway.domain.errors import not_found
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState, is_terminal
from gateway.services.session_files import SessionFiles
from gateway.services.sessions import SessionService
from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.s3 import S3Client


class StageService:
    def __init__(
        self,
        sessions: SessionService,
        files: SessionFiles,
        blobs: BlobStore,
        client: S3Client,
        bucket: str,
        prefix: str,
    ):
        self._sessions = sessions
        self._files = files
        self._blobs = blobs
        self._client = client
        self._bucket = bucket
        self._prefix = prefix

    async def open(self, token: str) -> tuple[PublishingSession, list[FileUpload]]:
        session = await self._sessions.find(token) if _plausible(token) else None
        # The lookup is by key; the comparison guards against a store that matched loosely.
        if session is None or not hmac.compare_digest(session.id, token):
            raise not_found("stage")
        if is_terminal(session.status):
            raise not_found("stage")
        uploads = await self._files.records(session.id)
        completed = [u for u in uploads if u.status == FileState.COMPLETED]
        return session, completed

    async def staged(self, token: str, filename: str) -> tuple[PublishingSession, FileUpload]:
        session, uploads = await self.open(token)
        for upload in uploads:
            if upload.filename == filename:
                return session, upload
        raise not_found("file")

    def bytes_key(self, session: PublishingSession, upload: FileUpload) -> str:
        assert upload.committed is not None
        return keys.file_bytes(session.id, upload.id, upload.committed.attempt)

    def stream(self, key: str, byte_range: tuple[int, int] | None) -> AsyncIterator[bytes]:
        return self._blobs.stream(key, byte_range=byte_range)

    async def metadata(self, session: PublishingSession, upload: FileUpload) -> bytes:
        carried = upload.committed.carried_metadata() if upload.committed else None
        raw = carried or await self._blobs.get(keys.core_metadata(session.id, upload.id))
        if raw is None:
            raise not_found("metadata")
        return raw

    async def presigned_url(
        self, session: PublishingSession, upload: FileUpload, lifetime: timedelta
    ) -> str:
        return str(
            await self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": self._prefix + self.bytes_key(session, upload),
                    "ResponseContentDisposition": f'attachment; filename="{upload.filename}"',
                },
                ExpiresIn=int(lifetime.total_seconds()),
            )
        )


def _plausible(token: str) -> bool:
    # Session tokens are url-safe base64; anything else cannot name a record (and must not
    # reach S3 as a key with slashes or dots in it).
    return 20 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)
