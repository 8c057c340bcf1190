"""Posting one file to the legacy index (R-W2, R-W3): skipped when the index already lists
these exact bytes, retried with backoff while the index fails for now, judged by the index's
own listing when its answer is ambiguous (duplicates look different on every index). The
credentials are the configured ones, or a pass-through caller's, kept in memory only."""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp

from gateway import metrics
from gateway.domain.errors import Kind
from gateway.domain.records import FileUpload, PublishingSession
from gateway.logs import log
from gateway.mechanisms.digests import BLAKE2B_256
from gateway.protocol.legacy_upload_form import (
    LegacyFileInfo,
    LegacyFormError,
    filetype_and_pyversion,
    legacy_form_fields,
)
from gateway.publish.backends.base import Backend
from gateway.publish.failure import PublishFailed, backoff, sha256
from gateway.publish.legacy_upload import UploadAnswer, post_file
from gateway.services.file_facts import FileFactsService
from gateway.settings import BackendSettings, PublishSettings
from gateway.store import keys
from gateway.store.blobs import BlobStore


class BackendCredentials(Protocol):
    """A caller's own credential for the index (pass-through authentication)."""

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str: ...


class FilePoster:
    def __init__(
        self,
        blobs: BlobStore,
        backend: Backend,
        http: aiohttp.ClientSession,
        index: BackendSettings,
        settings: PublishSettings,
        file_facts: FileFactsService,
    ):
        self._blobs = blobs
        self._backend = backend
        self._http = http
        self._index = index
        self._settings = settings
        self._file_facts = file_facts  # the read path's records (R-W10)
        # Pass-through callers' index credentials, by publish attempt: memory only, never S3.
        self.caller_credentials: dict[str, BackendCredentials] = {}

    async def put(
        self, session: PublishingSession, upload: FileUpload, listed: str | None, attempt_id: str
    ) -> None:
        """Upload one file unless the index already has these exact bytes (R-W3)."""
        retries = self._settings.retries
        unanswered = False  # the last post got no answer: it may have landed all the same
        for attempt_number in range(retries + 1):
            if attempt_number:  # a failed attempt may still have landed
                listed = (await self._backend.published_files(session.name)).get(upload.filename)
            if listed is not None:
                if listed == sha256(upload):
                    return  # already there: a resumed or retried publish
                raise PublishFailed(
                    Kind.CONFLICT,
                    "filename-conflict",
                    f"{upload.filename} is already on the index with other contents.",
                    {upload.filename: "already on the index with another sha256"},
                )
            unanswered = False
            try:
                answer = await self._post(session, upload, attempt_id)
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason: str | None = f"the index could not be reached ({type(exc).__name__})"
                unanswered = True
            else:
                reason = await self._judge(session, upload, answer)
            if reason is None:
                return
            if attempt_number < retries:
                log.warning("publish.retry", filename=upload.filename, reason=reason)
                await asyncio.sleep(backoff(attempt_number))
        raise PublishFailed(
            Kind.UNAVAILABLE,
            "backend-unavailable",
            f"Giving up on {upload.filename}: {reason}.",
            {upload.filename: str(reason)},
            maybe_landed=unanswered,
        )

    async def _judge(
        self, session: PublishingSession, upload: FileUpload, answer: UploadAnswer
    ) -> str | None:
        """None when the index took the file; why to retry when it failed for now; raises
        when it refused for good."""
        if answer.status < 300:
            return None
        if answer.status in (401, 403):
            raise PublishFailed(
                Kind.INDEX_REFUSED,
                "backend-refused",
                f"The backend refused the credentials ({answer.status} {answer.reason}).",
                {upload.filename: "refused by the index: credentials"},
            )
        if answer.status >= 500:
            return f"the index answered {answer.status} {answer.reason}"
        # Duplicates look different on every index (409, 400, even 200); only the index's
        # own listing says whether these bytes are there.
        listed = (await self._backend.published_files(session.name)).get(upload.filename)
        if listed == sha256(upload):
            return None
        detail = f"{answer.status} {answer.reason}".strip()
        raise PublishFailed(
            Kind.CONFLICT if answer.status == 409 else Kind.INDEX_REFUSED,
            "backend-rejected",
            f"The index rejected {upload.filename}: {detail}",
            {upload.filename: f"rejected by the index: {detail}"},
        )

    async def _post(
        self, session: PublishingSession, upload: FileUpload, attempt: str
    ) -> UploadAnswer:
        assert upload.committed is not None
        sid, fid = session.id, upload.id
        raw = upload.committed.carried_metadata() or await self._blobs.get(
            keys.core_metadata(sid, fid)
        )
        await self._file_facts.published(upload, raw)
        attestations = (
            (await self._blobs.get(keys.attestations(sid, fid)) or b"").decode() or None
            if upload.has_attestations
            else None
        )
        filetype, pyversion = filetype_and_pyversion(upload.filename)
        info = LegacyFileInfo(
            filename=upload.filename,
            filetype=filetype,
            pyversion=pyversion,
            sha256=sha256(upload),
            blake2_256=upload.committed.digests.get(BLAKE2B_256),  # known when declared
            md5=upload.committed.digests.get("md5"),
        )
        try:
            fields = legacy_form_fields(raw or b"", info, attestations=attestations)
        except LegacyFormError as exc:
            raise PublishFailed(
                Kind.INVALID, "invalid-distribution", str(exc), {upload.filename: str(exc)}
            ) from None
        backend = self._index
        key = keys.file_bytes(sid, fid, upload.committed.attempt)
        content = self._blobs.stream(key, size=upload.committed.size)
        log.info("publish.upload", session=sid[:8], filename=upload.filename)
        with metrics.backend_call(backend.kind, "upload"):
            return await post_file(
                self._http,
                backend.upload_url,
                fields,
                upload.filename,
                upload.committed.size,
                content,
                self._credentials(attempt),
                backend.timeout,
                self._backend.hop,
            )

    def _credentials(self, attempt: str) -> tuple[str, str] | None:
        """The pass-through caller's, else the configured ones, else none."""
        caller = self.caller_credentials.get(attempt)
        if caller is not None:
            return caller.username, caller.password
        backend = self._index
        if backend.username and backend.password:
            return backend.username, backend.password.get_secret_value()
        return None
