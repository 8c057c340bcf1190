"""A publish request: check, reserve, journal, then wait a little for the worker (R-P7, R-P8).

Everything is checked before the first upload and the filenames are reserved; the journal in
the session record then hands the work to :class:`gateway.publish.worker.PublishWorker`. The
request waits ``sync_wait`` for it (201 ``published``) before answering 202 ``processing``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from gateway.domain.records import PublishingSession
from gateway.domain.states import SessionEvent
from gateway.domain.transitions import require
from gateway.gates.publish import PublishGate
from gateway.logs import log
from gateway.publish.backends.base import Backend, BackendUnavailable, Listing
from gateway.publish.failure import (
    PublishFailed,
    check_conflicts,
    publish_order,
    require_completed,
)
from gateway.publish.journal import Journals
from gateway.publish.posting import BackendCredentials
from gateway.publish.worker import Handed, PublishWorker, reserve_filenames
from gateway.services.names import NameRegistry
from gateway.services.session_files import SessionFiles
from gateway.services.sessions import SessionService
from gateway.settings import PublishSettings
from gateway.store.record_store import RecordChanged
from gateway.store.typed import Versioned


class Publishing(Protocol):
    """Who asks for the publish (an authenticated principal)."""

    @property
    def id(self) -> str: ...

    @property
    def backend_credentials(self) -> BackendCredentials | None: ...


class Publisher:
    def __init__(
        self,
        sessions: SessionService,
        files: SessionFiles,
        names: NameRegistry,
        backend: Backend,
        journals: Journals,
        worker: PublishWorker,
        settings: PublishSettings,
        gate: PublishGate,
    ):
        self._sessions = sessions
        self._files = files
        self._names = names
        self._backend = backend
        self._journals = journals
        self._worker = worker
        self._settings = settings
        self._gate = gate  # release gates (R-W11)

    async def publish(
        self, session: PublishingSession, principal: Publishing, etag: str | None = None
    ) -> PublishingSession:
        """Publish now (the answer is ``published``) or in the background (``processing``).
        ``etag``: of ``session`` as the caller read it, if it knows it.

        A failure while the caller still waits is raised as a domain error and leaves the
        session as it was; a later one moves the session to ``error``.
        """
        if session.publish is not None and not session.publish.lease.is_live():
            # An earlier publish stopped without clearing its journal (its worker died, or
            # S3 failed as it was giving up) and nobody renews its lease: go on with it now
            # rather than answer "under way" until a sweep notices.
            await self.resume_lapsed(session)
            return await self._sessions.get(session.id)
        require(session, SessionEvent.PUBLISH_NOW)
        everything = await self._files.records(session.id)
        uploads = list(self._files.visible(everything).values())
        require_completed(uploads)
        await self._gate.check(session, uploads)
        listing = await self._listing_if_up(session.name)
        if listing is not None:
            try:
                check_conflicts(uploads, listing)
            except PublishFailed as failure:
                raise failure.error() from None
        try:
            await reserve_filenames(self._names, session, uploads)
        except PublishFailed as failure:
            raise failure.error() from None
        journal = self._journals.new_attempt(
            order=[u.id for u in publish_order(uploads)],
            new_project=None if listing is None else not listing,
            published_by=principal.id,
            credential="caller" if principal.backend_credentials else "service",
        )
        known = None if etag is None else Versioned(session, etag)
        try:
            # Summaries a crash left behind are written; one that knows of a change made
            # since the records were read refuses the publish (it would not publish that).
            await self._files.check_as_read(session, everything)
            started = await self._journals.open_in_session(session.id, journal, known)
        except BaseException:
            # Nothing of this attempt was posted; a failed attempt before it may have.
            kept = set(session.maybe_on_index)
            filenames = [u.filename for u in uploads if u.filename not in kept]
            await self._names.release_filenames(session.name, filenames, session.id)
            raise
        log.info("publish.started", session=session.id[:8], files=len(uploads), by=principal.id)
        handed = Handed(started, uploads, listing)
        worker = self._worker.start(
            session.id, journal.attempt, principal.backend_credentials, handed
        )
        done, _ = await asyncio.wait({worker}, timeout=self._settings.sync_wait)
        if not done:
            return await self._defer(session.id, journal.attempt, worker)
        return _outcome(worker)

    async def _listing_if_up(self, project: str) -> Listing | None:
        try:
            return await self._backend.published_files(project)
        except BackendUnavailable:
            # An index that is down right now may be back in a moment: the worker retries
            # (and checks conflicts) with backoff, and a lasting outage ends in `error`.
            return None

    async def _defer(
        self, sid: str, attempt: str, worker: asyncio.Task[PublishingSession]
    ) -> PublishingSession:
        """The caller stops waiting: ``processing`` from now on, failures become ``error``."""
        try:
            return await self._journals.defer(sid, attempt)
        except RecordChanged:  # the worker finished meanwhile
            await asyncio.wait({worker})
            return _outcome(worker)

    async def resume_lapsed(self, session: PublishingSession) -> None:
        """Take over a publish whose worker stopped renewing its lease (crash, restart)."""
        await self._worker.resume_lapsed(session)

    async def drain(self) -> None:
        """On shutdown: stop workers; their leases lapse and another replica resumes them."""
        await self._worker.drain()


def _outcome(worker: asyncio.Task[PublishingSession]) -> PublishingSession:
    """The session as the finished worker left it (published and settled), or why not."""
    failure = worker.exception()
    if isinstance(failure, PublishFailed):
        raise failure.error()
    if failure is not None:
        raise failure
    return worker.result()
