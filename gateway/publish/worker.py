"""The publish worker: replays a journaled publish onto the legacy index (R-P7..P9, R-P12,
R-W2, R-W3).

A legacy index takes one file at a time, so all-or-nothing is the gateway's job: filenames
are reserved for the duration (by the request side), wheels go before the sdist, and each
file confirmed on the index is journaled under the worker's lease. A file already on the
index with the same sha256 counts as done, so a resumed or retried publish never duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from gateway import metrics
from gateway.domain.errors import DomainError, Kind
from gateway.domain.records import FileUpload, PublishingSession, PublishJournal
from gateway.domain.states import SessionState
from gateway.logs import log
from gateway.publish.backends.base import Backend, BackendRefused, BackendUnavailable, Listing
from gateway.publish.failure import PublishFailed, check_conflicts, is_sdist, sha256
from gateway.publish.index_listings import IndexListings
from gateway.publish.journal import Confirmations, Journals
from gateway.publish.posting import BackendCredentials, FilePoster
from gateway.publish.reach import Reach, maybe_on_index
from gateway.services.audit import GATEWAY, AuditTrail
from gateway.services.file_facts import FileFactsService
from gateway.services.names import NameRegistry
from gateway.services.session_files import SessionFiles
from gateway.services.sessions import SessionService
from gateway.settings import BackendSettings, PublishSettings
from gateway.store.blobs import BlobStore
from gateway.store.record_store import RecordChanged, RecordMissing
from gateway.store.typed import Versioned

# Backends known to accept the legacy `attestations` field and silently drop it.
DROPS_ATTESTATIONS = {"pypiserver", "devpi"}


@dataclass(frozen=True)
class Handed:
    """What the publish request starting a run has just read and written, so that the run
    need not read it again."""

    started: Versioned[PublishingSession]  # the session, as the journal was opened in it
    uploads: list[FileUpload]  # its file records (no file changes once the journal is open)
    listing: Listing | None  # the index's listing (None: the index did not answer)


class PublishWorker:
    def __init__(
        self,
        sessions: SessionService,
        files: SessionFiles,
        names: NameRegistry,
        journals: Journals,
        blobs: BlobStore,
        backend: Backend,
        http: aiohttp.ClientSession,
        index: BackendSettings,
        settings: PublishSettings,
        add_file_notice: Callable[[str, str, str], Awaitable[None]],
        audit: AuditTrail,
        file_facts: FileFactsService,
    ):
        self._sessions = sessions
        self._files = files
        self._names = names
        self._journals = journals
        self._index = index
        self._settings = settings
        self._add_file_notice = add_file_notice
        self._audit = audit
        self._listings = IndexListings(backend, settings)
        self._poster = FilePoster(blobs, backend, http, index, settings, file_facts)
        self._reach: dict[str, Reach] = {}  # by publish attempt this process works on
        self.tasks: set[asyncio.Task[PublishingSession]] = set()

    def start(
        self,
        sid: str,
        attempt: str,
        credentials: BackendCredentials | None = None,
        handed: Handed | None = None,
    ) -> asyncio.Task[PublishingSession]:
        """Work on publish ``attempt`` in the background (the task's result: the session,
        published and settled); ``handed``: what the publish request starting it has just
        read and written (None: a run that resumes reads it afresh); ``credentials`` a
        pass-through caller's, kept in memory only."""
        if credentials is not None:
            self._poster.caller_credentials[attempt] = credentials
        # A new attempt posted nothing before this run; a resumed one is known once listed.
        self._reach[attempt] = Reach(complete=handed is not None)
        task = asyncio.create_task(self._work(sid, attempt, handed))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _work(self, sid: str, attempt: str, handed: Handed | None) -> PublishingSession:
        heartbeat = asyncio.create_task(self._journals.keep(sid, attempt))
        started = time.perf_counter()
        outcome = "error"
        try:
            published = await self._replay(sid, attempt, handed)
            outcome = "published"
            return published
        except asyncio.CancelledError:
            outcome = "handed-over"
            # Shutting down: let the next sweep on any replica resume at once, not after
            # the lease would have run out.
            await asyncio.shield(self._journals.hand_over(sid, attempt))
            raise
        except PublishFailed as failure:
            await self._fail(sid, attempt, failure)
            raise
        except BackendRefused as exc:
            refused = PublishFailed(
                Kind.INDEX_REFUSED,
                "backend-refused",
                f"The backend refused the credentials: {exc}",
            )
            await self._fail(sid, attempt, refused)
            raise refused from None
        except BackendUnavailable as exc:
            down = PublishFailed(
                Kind.UNAVAILABLE, "backend-unavailable", f"The backend is not answering: {exc}"
            )
            await self._fail(sid, attempt, down)
            raise down from None
        except Exception:
            # Unforeseen (S3 failing, say): the journal stays, its lease lapses, and the next
            # sweep or publish request resumes it.
            log.exception("publish.worker_failed", session=sid[:8])
            raise
        finally:
            metrics.PUBLISH_SECONDS.labels(self._index.kind, outcome).observe(
                time.perf_counter() - started
            )
            self._poster.caller_credentials.pop(attempt, None)
            self._reach.pop(attempt, None)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self._journals.end(attempt)

    async def _replay(self, sid: str, attempt: str, handed: Handed | None) -> PublishingSession:
        session = await self._begin(sid, attempt, handed)
        journal = _journal(session, attempt)
        # The publish request's own reads when it starts the run (nothing can change a file
        # once the journal is open), fresh ones when a run resumes.
        known = handed.uploads if handed is not None else await self._files.records(sid)
        uploads = {u.id: u for u in known}
        ordered = [uploads[fid] for fid in journal.order]
        # One listing per run, not per file (pypiserver re-hashes every file of the project on
        # each listing): the publish request's own when it starts the run, a fresh one when a
        # run resumes, so that what already landed is skipped.
        listing = handed.listing if handed is not None else None
        if listing is None:
            listing = await self._listings.patiently(session.name)
        reach = self._reach.setdefault(attempt, Reach())
        reach.listed |= set(journal.confirmed) | {u.filename for u in ordered} & set(listing)
        reach.complete = True
        check_conflicts(ordered, listing)
        if handed is None:  # the request reserved them; a resumed run makes sure (R-P8)
            await reserve_filenames(self._names, session, ordered)
        if journal.new_project is None:
            new_project = not listing

            def remember(current: PublishJournal) -> None:
                current.new_project = new_project

            await self._journals.record(sid, attempt, remember)
            journal.new_project = new_project
        await self._put_all(session, attempt, ordered, listing, journal.confirmed)
        await self._listings.confirm(session.name, ordered)
        return await self._succeed(session, attempt, journal, ordered)

    async def _begin(self, sid: str, attempt: str, handed: Handed | None) -> PublishingSession:
        """The session the run starts from: as the publish request has just written it, or
        read afresh by a run that resumes."""
        if handed is not None:
            written = handed.started
        else:
            session, etag = await self._sessions.get_versioned(sid)
            if etag is None:  # it expired as it was read: nothing to start from
                return session
            written = Versioned(session, etag)
        self._journals.begin(attempt, written)
        return written.value

    async def _put_all(
        self,
        session: PublishingSession,
        attempt: str,
        ordered: list[FileUpload],
        listing: Listing,
        confirmed: list[str],
    ) -> None:
        """Upload the wheels, ``publish.parallel`` at a time, then the sdist last (R-W3):
        installers never see a source-only release that gains wheels mid-publish. Files on
        the index are journaled in batches (:class:`Confirmations`)."""
        todo = [upload for upload in ordered if upload.filename not in confirmed]
        wheels = [upload for upload in todo if not is_sdist(upload)]
        journal = Confirmations(self._journals, session.id, attempt, len(todo))
        try:
            await self._put_bounded(session, attempt, wheels, listing, journal)
            for sdist in (upload for upload in todo if is_sdist(upload)):
                await self._put(session, sdist, listing.get(sdist.filename), attempt)
        except BaseException:
            with contextlib.suppress(Exception):  # the failure that stopped the run says more
                await journal.close()
            raise
        await journal.close()

    async def _put_bounded(
        self,
        session: PublishingSession,
        attempt: str,
        uploads: list[FileUpload],
        listing: Listing,
        journal: Confirmations,
    ) -> None:
        """Upload ``uploads`` with at most ``publish.parallel`` under way; the first failure
        stops the rest."""
        slots = asyncio.Semaphore(min(self._settings.parallel, self._index.max_connections))

        async def put(upload: FileUpload) -> None:
            async with slots:
                await self._put(session, upload, listing.get(upload.filename), attempt)
            await journal.add(upload.filename)

        tasks = [asyncio.create_task(put(upload)) for upload in uploads]
        if not tasks:
            return
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # the first failure, raised
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _put(
        self, session: PublishingSession, upload: FileUpload, listed: str | None, attempt: str
    ) -> None:
        """Post one file (unless the index has it), noted in the attempt's :class:`Reach`."""
        reach = self._reach.setdefault(attempt, Reach())
        reach.begun.add(upload.filename)
        try:
            await self._poster.put(session, upload, listed, attempt)
        except PublishFailed as failure:
            if not failure.maybe_landed:  # the index refused it, or never took it
                reach.begun.discard(upload.filename)
            raise

    async def _succeed(
        self,
        session: PublishingSession,
        attempt: str,
        journal: PublishJournal,
        uploads: list[FileUpload],
    ) -> PublishingSession:
        notices: list[str] = []
        if self._index.kind in DROPS_ATTESTATIONS and any(u.has_attestations for u in uploads):
            notices.append(
                f"Attestations were sent, but the {self._index.kind} index drops "
                "them: they are not published."
            )
        # What follows is the holder's alone: make sure the publish was not taken over (a
        # write that fails when it was) unless the lease this process wrote rules that out.
        if not self._journals.surely_held(attempt):
            await self._journals.renew(session.id, attempt)
        # The reservations stay as created: the session saying `published` tells the rest.
        if journal.new_project:
            await self._names.register(session.name, journal.published_by, session.id)
        # Before the session says `published`: a failed write leaves the journal to resume.
        digests = {u.filename: sha256(u) for u in uploads}
        events = [self._audit.published(session, journal, dict(digests))]
        if journal.new_project:
            events.append(self._audit.name_registered(session, journal))
        await asyncio.gather(*events)
        ended = await self._journals.finish(session.id, attempt, True, notices)
        registered = bool(journal.new_project)
        settled = await self._sessions.settle(ended.value, ended.etag, registered)
        log.info("publish.succeeded", session=session.id[:8], files=len(uploads))
        return settled

    async def _fail(self, sid: str, attempt: str, failure: PublishFailed) -> None:
        """A deferred failure moves the session to ``error``; a failure the caller still waits
        for leaves the state alone (R-P7). Either way the reservations of the files that never
        reached the index go; those of the files that did, or may have, stay (R-P8)."""

        notice = f"Publishing failed: {failure.reason}"
        uploads = self._files.visible(await self._files.records(sid))
        # A deferred publish ends in `error`: its files say why before the session does, so
        # whoever sees `error` in the status sees the files' notices with it.
        current = await self._sessions.find(sid)
        asked = None if current is None else current.publish  # who asked, for the audit journal
        noted = current is not None and current.status == SessionState.PROCESSING
        if noted:
            await self._notice_files(sid, uploads, failure)
        reach = self._reach.get(attempt)
        kept = await maybe_on_index(reach, self._listings, current, attempt, list(uploads))
        try:
            session = (await self._journals.finish(sid, attempt, False, [notice], kept)).value
        except (RecordChanged, RecordMissing, DomainError):
            return
        by = asked.published_by if asked is not None else GATEWAY.id
        await self._audit.publish_failed(session, by, failure.reason)
        if session.status == SessionState.ERROR and not noted:  # deferred meanwhile
            await self._notice_files(sid, uploads, failure)
        unposted = [name for name in uploads if name not in session.maybe_on_index]  # noted: kept
        await self._sessions.release_filenames(session.name, unposted, sid)
        log.warning("publish.failed", session=sid[:8], reason=failure.reason)

    async def _notice_files(
        self, sid: str, uploads: dict[str, FileUpload], failure: PublishFailed
    ) -> None:
        for filename, text in failure.files.items():
            if filename in uploads:
                await self._add_file_notice(sid, uploads[filename].id, text)

    async def resume_lapsed(self, session: PublishingSession) -> None:
        """Take over a publish whose worker stopped renewing its lease (crash, restart)."""
        journal = await self._journals.take_over(session)
        if journal is None:
            return
        if journal.credential == "caller":
            await self._fail(
                session.id,
                journal.attempt,
                PublishFailed(
                    Kind.UNAVAILABLE,
                    "publish-interrupted",
                    "The publish was interrupted, and the gateway keeps no copy of your index "
                    "credentials to finish it: publish again, and it resumes where it stopped.",
                ),
            )
            return
        log.info("publish.resumed", session=session.id[:8], confirmed=len(journal.confirmed))
        self.start(session.id, journal.attempt)

    async def drain(self) -> None:
        """On shutdown: stop workers; their leases lapse and another replica resumes them."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def reserve_filenames(
    names: NameRegistry, session: PublishingSession, uploads: list[FileUpload]
) -> None:
    """Reserve the files' names for the session (one conditional create each; one it holds
    already counts), or raise the conflict naming the first another session holds. Kept for
    good once a file reached the index: nothing is written when the publish ends. A resumed
    run reserves again: a publish request that failed as it opened the journal (the write
    landing unanswered) released them."""
    filenames = [upload.filename for upload in uploads]
    reserved = await names.reserve_filenames(session.name, filenames, session.id)
    if reserved.taken is not None:
        raise PublishFailed(
            Kind.CONFLICT,
            "filename-conflict",
            f"{reserved.taken} is being published or was published by another session.",
            {reserved.taken: "reserved by another publish"},
        )


def _journal(session: PublishingSession, attempt: str) -> PublishJournal:
    if session.publish is None or session.publish.attempt != attempt:
        raise RecordChanged(session.id)
    return session.publish
