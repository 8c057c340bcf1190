"""Staged legacy uploads (R-W6, the PEP 694 amendment python/peps#5070 direction).

A legacy upload that is staged goes into the publishing session of its release instead of
onto the index: the first one creates the session, marked as created by the legacy path,
and later ones join it while it is editable. Its file is received and completed at once
through the same FileService methods as an Upload 2.0 file, so the same size limits and
checks apply (declared digests, the filename belongs to the release, the archive's own
metadata names the project and version). Sessions created through the Upload 2.0 API are
never joined (409): a release is assembled by one path only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.distribution.releases import normalize_release
from gateway.domain.errors import DomainError, Kind, Pointer, refused_as_invalid
from gateway.domain.records import CreationPath, FileUpload, PublishingSession
from gateway.domain.states import SessionEvent, is_editable
from gateway.domain.transitions import in_review, require
from gateway.mechanisms.digests import BLAKE2B_256
from gateway.services.files import FileService
from gateway.services.names import NameRegistry
from gateway.services.sessions import SessionService

LEGACY: CreationPath = "legacy"

# Releases whose session this process remembers (a bound on memory, never reached by one).
MAX_REMEMBERED = 1024

# Legacy form field → the algorithm name the ingest pipeline computes it under.
DIGEST_FIELDS = {"sha256_digest": "sha256", "blake2_256_digest": BLAKE2B_256, "md5_digest": "md5"}


@dataclass(frozen=True)
class StagedForm:
    """What a staged legacy upload says about its file, from the form's simple fields."""

    name: str
    version: str
    filename: str
    hashes: dict[str, str]  # ingest algorithm name → lowercase hex digest, as declared
    attestations: list[Any] | None = None  # the form's PEP 740 ``attestations``, parsed


class AttestationCheck(Protocol):
    """The release gates' check of a file's PEP 740 attestations (``gates.service``), as this
    service uses it: a refusal is raised as a problem, what was verified is not needed here.
    Named here, not imported, because the gates stand above the services they ask."""

    async def check(
        self,
        session: PublishingSession,
        filename: str,
        sha256: str | None,
        documents: list[Any],
        claims: Mapping[str, str] | None = None,
    ) -> object: ...


class LegacyStaging:
    def __init__(
        self,
        sessions: SessionService,
        files: FileService,
        names: NameRegistry,
        gate: AttestationCheck,
    ):
        self._sessions = sessions
        self._files = files
        self._names = names
        # (project, version, principal) -> the session its last staged upload went into.
        self._joined: dict[tuple[str, str, str], str] = {}
        self._gate = gate

    async def stage(
        self,
        principal_id: str,
        form: StagedForm,
        chunks: AsyncIterator[bytes | memoryview],
        claims: Mapping[str, str] | None = None,
    ) -> tuple[PublishingSession, FileUpload]:
        """Receive the file into its release's session and complete it, or refuse it and
        leave nothing of it staged. The caller has authorized ``principal_id`` for the
        project already; ``claims`` are its OIDC token's, if it used one."""
        session = await self.session_for(form.name, form.version, principal_id)
        upload = await self._files.receive_unsized(session, form.filename, form.hashes, chunks)
        try:
            await self._attach(session, upload, form, claims)
            upload, _ = await self._files.complete(session, upload.id, defer=False)
            await self._files.claim(session, upload)  # only now: replaces an earlier one
        except BaseException:
            with contextlib.suppress(DomainError):
                await self._files.delete(await self._sessions.get(session.id), upload.id)
            raise
        return session, upload  # its id, name and version: all the answer says of it

    async def _attach(
        self,
        session: PublishingSession,
        upload: FileUpload,
        form: StagedForm,
        claims: Mapping[str, str] | None,
    ) -> None:
        """Verified against the declared sha256 before completion checks the bytes have it."""
        if form.attestations is None:
            return
        sha256 = form.hashes.get("sha256")
        await self._gate.check(session, form.filename, sha256, form.attestations, claims)
        document = json.dumps(form.attestations, separators=(",", ":")).encode()
        await self._files.attach_attestations(session, upload.id, document)

    async def session_for(self, name: str, version: str, principal_id: str) -> PublishingSession:
        """The release's legacy-created session, created now if there is none (reserving a
        first release's name as an Upload 2.0 create does, R-P4)."""
        with refused_as_invalid():
            name, version = normalize_release(name, version)
        remembered = await self._remembered(name, version, principal_id)
        if remembered is not None:
            return remembered
        session = await self._open(name, version, principal_id)
        if len(self._joined) >= MAX_REMEMBERED:
            self._joined.clear()
        self._joined[name, version, principal_id] = session.id
        return session

    async def _remembered(
        self, name: str, version: str, principal_id: str
    ) -> PublishingSession | None:
        """The session this principal's last staged upload of the release went into, while
        it is editable or in review (its next files still arrive): one read, where finding it
        anew costs a session created and dropped and a listing of the index. Only the same
        principal's: another's goes through the name checks of :meth:`_open`."""
        sid = self._joined.get((name, version, principal_id))
        session = None if sid is None else await self._sessions.find(sid)
        joinable = session is not None and (is_editable(session.status) or in_review(session))
        if session is None or session.created_via != LEGACY or not joinable:
            self._joined.pop((name, version, principal_id), None)
            return None
        require(session, SessionEvent.EDIT_FILES)  # a publish under way: 409, as ever
        return session

    async def _open(self, name: str, version: str, principal_id: str) -> PublishingSession:
        first_release = await self._names.is_first_release(name)
        if first_release:
            await self._names.check(name, principal_id)
        session, created = await self._sessions.create(name, version, principal_id, via=LEGACY)
        if created and first_release:
            try:
                await self._names.reserve(name, principal_id, session.id)
            except DomainError:
                await self._sessions.cancel(session.id)  # lost a race for the name
                raise
        if session.created_via != LEGACY:
            raise DomainError(
                Kind.CONFLICT,
                "session-path-mismatch",
                f"{name} {version} is being staged through the Upload 2.0 API; upload its "
                "files there, or publish or cancel that session first.",
                [Pointer("version", "a session created through Upload 2.0 exists")],
            )
        require(session, SessionEvent.EDIT_FILES)
        return session
