"""Publishing a session onto the legacy index: validate, reserve, replay, confirm (R-P7..P9,
R-P12, R-W2, R-W3).

A legacy index takes one file at a time, so all-or-nothing is the gateway's job: everything
is checked before the first upload, filenames are reserved for the duration, wheels go
before the sdist, and progress is journaled in the session record under a lease. Whoever
holds the lease works; a replica that finds a lapsed lease resumes from the journal. A file
already on the index with the same sha256 counts as done, so a retry never duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp

from gateway import metrics
from gateway.auth.principals import BackendCredentials, Principal
from gateway.logs import log
from gateway.protocol.problems import ErrorItem, Problem, retry_soon
from gateway.publish.backends.base import Backend, BackendRefused, BackendUnavailable, Listing
from gateway.publish.legacy_form import (
    LegacyFileInfo,
    LegacyFormError,
    filetype_and_pyversion,
    legacy_form_fields,
)
from gateway.publish.legacy_upload import post_file
from gateway.services.audit import NO_AUDIT
from gateway.services.names import NameRegistry
from gateway.services.sessions import SessionService, require
from gateway.sessions import clock
from gateway.sessions.records import FileUpload, PublishingSession, PublishJournal
from gateway.sessions.states import (
    FileState,
    SessionEvent,
    SessionState,
    is_editable,
    next_session_state,
)
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.records import RecordChanged, RecordExists, RecordMissing, RecordStore

# Backends known to accept the legacy `attestations` field and silently drop it.
DROPS_ATTESTATIONS = {"pypiserver", "devpi"}


@dataclass
class PublishFailed(Exception):
    """Why a publish stopped; ``files`` maps a filename to the part of the reason about it."""

    status: int
    slug: str
    reason: str
    files: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.reason)

    def problem(self) -> Problem:
        errors = [ErrorItem(f"files.{name}", text) for name, text in self.files.items()]
        # 503: the index was not answering, so asking again later is the remedy.
        headers = retry_soon() if self.status == 503 else {}
        return Problem(
            self.status,
            self.slug,
            self.reason,
            errors or [ErrorItem("session", self.reason)],
            headers=headers,
        )


class Publisher:
    def __init__(
        self,
        records: RecordStore,
        blobs: BlobStore,
        sessions: SessionService,
        backend: Backend,
        http: aiohttp.ClientSession,
        settings: Settings,
        add_file_notice: Callable[[str, str, str], Awaitable[None]],
        names: NameRegistry,
    ):
        self._records = records
        self._blobs = blobs
        self._sessions = sessions
        self._backend = backend
        self._http = http
        self._settings = settings
        self._add_file_notice = add_file_notice
        self._names = names
        self._replica = secrets.token_hex(4)
        self._workers: set[asyncio.Task[None]] = set()
        # Pass-through callers' index credentials, by publish attempt: memory only, never S3.
        self._caller_credentials: dict[str, BackendCredentials] = {}
        self.audit = NO_AUDIT  # set by the application

    # -- the request -------------------------------------------------------------------

    async def publish(self, session: PublishingSession, principal: Principal) -> PublishingSession:
        """Publish now (the answer is ``published``) or in the background (``processing``).

        A failure while the caller still waits is raised as a :class:`Problem` and leaves the
        session as it was; a later one moves the session to ``error``.
        """
        if session.publish is not None and session.publish.lease_until <= clock.now():
            # An earlier publish stopped without clearing its journal (its worker died, or
            # S3 failed as it was giving up) and nobody renews its lease: go on with it now
            # rather than answer "under way" until a sweep notices.
            await self.resume_lapsed(session)
            return await self._sessions.get(session.id)
        require(session, SessionEvent.PUBLISH_NOW)
        uploads = list(
            self._sessions.visible_files(await self._sessions.files(session.id)).values()
        )
        _require_completed(uploads)
        try:
            listing: Listing | None = await self._backend.published_files(session.name)
        except BackendUnavailable:
            # An index that is down right now may be back in a moment: the worker retries
            # (and checks conflicts) with backoff, and a lasting outage ends in `error`.
            listing = None
        if listing is not None:
            try:
                _check_conflicts(uploads, listing)
            except PublishFailed as failure:
                raise failure.problem() from None
        await self._reserve(session, uploads)
        journal = PublishJournal(
            attempt=secrets.token_hex(8),
            owner=self._replica,
            lease_until=self._lease_end(),
            order=[u.id for u in _publish_order(uploads)],
            new_project=None if listing is None else not listing,
            published_by=principal.id,
            credential="caller" if principal.backend_credentials else "service",
        )
        try:
            session = await self._start(session.id, journal)
        except BaseException:
            await self._sessions.release_filenames(
                session.name, [u.filename for u in uploads], session.id
            )
            raise
        log.info("publish.started", session=session.id[:8], files=len(uploads), by=principal.id)
        if principal.backend_credentials:
            self._caller_credentials[journal.attempt] = principal.backend_credentials
        worker = self._spawn(session.id, journal.attempt, listing)
        done, _ = await asyncio.wait({worker}, timeout=self._settings.publish.sync_wait)
        if not done:
            return await self._defer(session.id, journal.attempt, worker)
        return await self._outcome(session.id, worker)

    async def _start(self, sid: str, journal: PublishJournal) -> PublishingSession:
        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            session = PublishingSession.model_validate(data)
            require(session, SessionEvent.PUBLISH_NOW)  # also refuses a publish under way
            session.publish = journal
            return session.model_dump(mode="json")

        return PublishingSession.model_validate(
            (await self._records.update(keys.session(sid), mutate)).data
        )

    async def _defer(self, sid: str, attempt: str, worker: asyncio.Task[None]) -> PublishingSession:
        """The caller stops waiting: ``processing`` from now on, failures become ``error``."""

        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            session = PublishingSession.model_validate(data)
            if session.publish is None or session.publish.attempt != attempt:
                raise RecordChanged(sid)  # the worker finished meanwhile
            if is_editable(session.status):
                session.status = next_session_state(session.status, SessionEvent.PUBLISH_DEFERRED)
            return session.model_dump(mode="json")

        try:
            stored = await self._records.update(keys.session(sid), mutate)
        except RecordChanged:
            await asyncio.wait({worker})
            return await self._outcome(sid, worker)
        return PublishingSession.model_validate(stored.data)

    async def _outcome(self, sid: str, worker: asyncio.Task[None]) -> PublishingSession:
        failure = worker.exception()
        if isinstance(failure, PublishFailed):
            raise failure.problem()
        if failure is not None:
            raise failure
        return await self._sessions.get(sid)

    # -- the worker --------------------------------------------------------------------

    def _spawn(self, sid: str, attempt: str, listing: Listing | None = None) -> asyncio.Task[None]:
        task = asyncio.create_task(self._work(sid, attempt, listing))
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)
        return task

    async def _work(self, sid: str, attempt: str, listing: Listing | None) -> None:
        heartbeat = asyncio.create_task(self._keep_lease(sid, attempt))
        started = time.perf_counter()
        outcome = "error"
        try:
            await self._replay(sid, attempt, listing)
            outcome = "published"
        except asyncio.CancelledError:
            outcome = "handed-over"
            # Shutting down: let the next sweep on any replica resume at once, not after
            # the lease would have run out.
            await asyncio.shield(self._hand_over(sid, attempt))
            raise
        except PublishFailed as failure:
            await self._fail(sid, attempt, failure)
            raise
        except BackendRefused as exc:
            failure = PublishFailed(
                502, "backend-refused", f"The backend refused the credentials: {exc}"
            )
            await self._fail(sid, attempt, failure)
            raise failure from None
        except BackendUnavailable as exc:
            failure = PublishFailed(
                503, "backend-unavailable", f"The backend is not answering: {exc}"
            )
            await self._fail(sid, attempt, failure)
            raise failure from None
        except Exception:
            # Unforeseen (S3 failing, say): the journal stays, its lease lapses, and the next
            # sweep or publish request resumes it.
            log.exception("publish.worker_failed", session=sid[:8])
            raise
        finally:
            metrics.PUBLISH_SECONDS.labels(self._settings.backend.kind, outcome).observe(
                time.perf_counter() - started
            )
            self._caller_credentials.pop(attempt, None)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _replay(self, sid: str, attempt: str, listing: Listing | None) -> None:
        session = await self._sessions.get(sid)
        journal = _journal(session, attempt)
        uploads = {u.id: u for u in await self._sessions.files(sid)}
        ordered = [uploads[fid] for fid in journal.order]
        # One listing per run, not per file (pypiserver re-hashes every file of the project on
        # each listing): the publish request's own when it starts the run, a fresh one when a
        # run resumes, so that what already landed is skipped.
        if listing is None:
            listing = await self._list_patiently(session.name)
        _check_conflicts(ordered, listing)
        if journal.new_project is None:
            new_project = not listing

            def remember(current: PublishingSession) -> None:
                assert current.publish is not None
                current.publish.new_project = new_project

            await self._journaled(sid, attempt, remember)
        for upload in ordered:
            if upload.filename not in journal.confirmed:
                await self._put_on_backend(session, upload, listing.get(upload.filename), attempt)
                journal = await self._confirm(sid, attempt, upload.filename)
        listing = await self._backend.published_files(session.name)
        missing = {
            u.filename: "not listed by the index with the expected sha256 after upload"
            for u in ordered
            if u.filename not in listing or listing[u.filename] not in (None, _sha256(u))
        }
        if missing:
            raise PublishFailed(
                502, "publish-unconfirmed", "The index did not confirm every file.", missing
            )
        await self._succeed(session, attempt, ordered)

    async def _list_patiently(self, project: str) -> Listing:
        retries = self._settings.publish.retries
        for attempt_number in range(retries + 1):
            try:
                return await self._backend.published_files(project)
            except BackendUnavailable as exc:
                if attempt_number == retries:
                    raise PublishFailed(
                        503, "backend-unavailable", f"The backend is not answering: {exc}"
                    ) from None
                await asyncio.sleep(_backoff(attempt_number))
        raise AssertionError("unreachable")

    async def _put_on_backend(
        self, session: PublishingSession, upload: FileUpload, listed: str | None, attempt_id: str
    ) -> None:
        """Upload one file unless the index already has these exact bytes (R-W3)."""
        settings = self._settings.publish
        for attempt_number in range(settings.retries + 1):
            if attempt_number:  # a failed attempt may still have landed
                listed = (await self._backend.published_files(session.name)).get(upload.filename)
            if listed is not None:
                if listed == _sha256(upload):
                    return  # already there: a resumed or retried publish
                raise PublishFailed(
                    409,
                    "filename-conflict",
                    f"{upload.filename} is already on the index with other contents.",
                    {upload.filename: "already on the index with another sha256"},
                )
            try:
                answer = await self._post(session, upload, attempt_id)
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"the index could not be reached ({type(exc).__name__})"
            else:
                if answer.status < 300:
                    return
                if answer.status in (401, 403):
                    raise PublishFailed(
                        502,
                        "backend-refused",
                        f"The backend refused the credentials ({answer.status} {answer.reason}).",
                        {upload.filename: "refused by the index: credentials"},
                    )
                if answer.status < 500:
                    # Duplicates look different on every index (409, 400, even 200); only the
                    # index's own listing says whether these bytes are there.
                    listed = (await self._backend.published_files(session.name)).get(
                        upload.filename
                    )
                    if listed == _sha256(upload):
                        return
                    detail = f"{answer.status} {answer.reason}".strip()
                    raise PublishFailed(
                        409 if answer.status == 409 else 502,
                        "backend-rejected",
                        f"The index rejected {upload.filename}: {detail}",
                        {upload.filename: f"rejected by the index: {detail}"},
                    )
                reason = f"the index answered {answer.status} {answer.reason}"
            if attempt_number < settings.retries:
                log.warning("publish.retry", filename=upload.filename, reason=reason)
                await asyncio.sleep(_backoff(attempt_number))
        raise PublishFailed(
            503,
            "backend-unavailable",
            f"Giving up on {upload.filename}: {reason}.",
            {upload.filename: reason},
        )

    async def _post(self, session: PublishingSession, upload: FileUpload, attempt: str) -> Any:
        assert upload.committed is not None
        sid, fid = session.id, upload.id
        raw = await self._blobs.get(keys.core_metadata(sid, fid))
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
            sha256=_sha256(upload),
            blake2_256=upload.committed.digests.get("blake2b_256"),
            md5=upload.committed.digests.get("md5"),
        )
        try:
            fields = legacy_form_fields(raw or b"", info, attestations=attestations)
        except LegacyFormError as exc:
            raise PublishFailed(
                400, "invalid-distribution", str(exc), {upload.filename: str(exc)}
            ) from None
        backend = self._settings.backend
        caller = self._caller_credentials.get(attempt)
        credentials = (
            (caller.username, caller.password)
            if caller
            else (backend.username, backend.password.get_secret_value())
            if backend.username and backend.password
            else None
        )
        content = self._blobs.stream(keys.file_bytes(sid, fid, upload.committed.attempt))
        log.info("publish.upload", session=sid[:8], filename=upload.filename)
        with metrics.backend_call(backend.kind, "upload"):
            return await post_file(
                self._http,
                backend.upload_url,
                fields,
                upload.filename,
                upload.committed.size,
                content,
                credentials,
                backend.timeout,
            )

    # -- journal, lease and endings -----------------------------------------------------

    def _lease_end(self):  # type: ignore[no-untyped-def]
        return clock.now() + timedelta(seconds=self._settings.publish.lease)

    async def _journaled(
        self, sid: str, attempt: str, change: Callable[[PublishingSession], None]
    ) -> PublishingSession:
        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            session = PublishingSession.model_validate(data)
            journal = _journal(session, attempt)
            if journal.owner != self._replica:
                raise RecordChanged(sid)  # another replica took the publish over
            change(session)
            return session.model_dump(mode="json")

        return PublishingSession.model_validate(
            (await self._records.update(keys.session(sid), mutate)).data
        )

    async def _hand_over(self, sid: str, attempt: str) -> None:
        def expire(session: PublishingSession) -> None:
            assert session.publish is not None
            session.publish.lease_until = clock.now() - timedelta(seconds=1)

        try:
            await self._journaled(sid, attempt, expire)
            log.info("publish.handed_over", session=sid[:8])
        except Exception:  # the lease then simply runs out; nothing is lost
            log.exception("publish.hand_over_failed", session=sid[:8])

    async def _confirm(self, sid: str, attempt: str, filename: str) -> PublishJournal:
        def change(session: PublishingSession) -> None:
            assert session.publish is not None
            session.publish.confirmed.append(filename)
            session.publish.lease_until = self._lease_end()

        session = await self._journaled(sid, attempt, change)
        assert session.publish is not None
        return session.publish

    async def _keep_lease(self, sid: str, attempt: str) -> None:
        def renew(session: PublishingSession) -> None:
            assert session.publish is not None
            session.publish.lease_until = self._lease_end()

        while True:
            await asyncio.sleep(self._settings.publish.lease / 3)
            try:
                await self._journaled(sid, attempt, renew)
            except (RecordChanged, RecordMissing, Problem):
                return
            except Exception:  # a missed renewal is retried; the lease has slack for it
                log.exception("publish.lease_renewal_failed", session=sid[:8])

    async def _succeed(
        self, session: PublishingSession, attempt: str, uploads: list[FileUpload]
    ) -> None:
        notices = []
        if self._settings.backend.kind in DROPS_ATTESTATIONS and any(
            u.has_attestations for u in uploads
        ):
            notices.append(
                f"Attestations were sent, but the {self._settings.backend.kind} index drops "
                "them: they are not published."
            )

        def change(current: PublishingSession) -> None:
            event = (
                SessionEvent.PUBLISH_NOW
                if is_editable(current.status)
                else SessionEvent.PUBLISH_SUCCEEDED
            )
            current.status = next_session_state(current.status, event)
            current.ended_at = clock.now()
            current.notices.extend(notices)
            current.publish = None

        journal = _journal(await self._sessions.get(session.id), attempt)
        await self._mark_published(session, [u.filename for u in uploads])
        if journal.new_project:
            await self._names.register(session.name, journal.published_by, session.id)
        # Before the session says `published`: a failed write leaves the journal to resume.
        events = [self.audit.published(session, journal.published_by, _digests(uploads))]
        if journal.new_project:
            events.append(self.audit.name_registered(session, journal.published_by))
        await asyncio.gather(*events)
        ended = await self._journaled(session.id, attempt, change)
        await self._sessions.settle(ended)
        log.info("publish.succeeded", session=session.id[:8], files=len(uploads))

    async def _fail(self, sid: str, attempt: str, failure: PublishFailed) -> None:
        """A deferred failure moves the session to ``error``; a failure the caller still waits
        for leaves the state alone (R-P7). Either way the reservations go (R-P8)."""

        asked_by: list[str] = []  # for the audit journal: the journal goes below

        def change(session: PublishingSession) -> None:
            asked_by[:] = [_journal(session, attempt).published_by]
            if session.status == SessionState.PROCESSING:
                session.status = next_session_state(session.status, SessionEvent.PUBLISH_FAILED)
                session.notices.append(f"Publishing failed: {failure.reason}")
            session.publish = None

        try:
            session = await self._journaled(sid, attempt, change)
        except (RecordChanged, RecordMissing):
            return
        await self.audit.publish_failed(session, asked_by[0], failure.reason)
        uploads = self._sessions.visible_files(await self._sessions.files(sid))
        if session.status == SessionState.ERROR:
            for filename, text in failure.files.items():
                if filename in uploads:
                    await self._add_file_notice(sid, uploads[filename].id, text)
        await self._sessions.release_filenames(session.name, list(uploads), sid)
        log.warning("publish.failed", session=sid[:8], reason=failure.reason)

    async def resume_lapsed(self, session: PublishingSession) -> None:
        """Take over a publish whose worker stopped renewing its lease (crash, restart)."""
        journal = session.publish
        if journal is None or journal.lease_until > clock.now():
            return
        new_owner = self._replica

        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            current = PublishingSession.model_validate(data)
            if current.publish is None or current.publish.lease_until > clock.now():
                raise RecordChanged(session.id)
            current.publish.owner = new_owner
            current.publish.lease_until = self._lease_end()
            if is_editable(current.status):  # its caller is gone: report by polling
                current.status = next_session_state(current.status, SessionEvent.PUBLISH_DEFERRED)
            return current.model_dump(mode="json")

        await self._records.update(keys.session(session.id), mutate)
        if journal.credential == "caller":
            await self._fail(
                session.id,
                journal.attempt,
                PublishFailed(
                    503,
                    "publish-interrupted",
                    "The publish was interrupted, and the gateway keeps no copy of your index "
                    "credentials to finish it: publish again, and it resumes where it stopped.",
                ),
            )
            return
        log.info("publish.resumed", session=session.id[:8], confirmed=len(journal.confirmed))
        self._spawn(session.id, journal.attempt)

    # -- reservations (R-P8) -----------------------------------------------------------

    async def _reserve(self, session: PublishingSession, uploads: list[FileUpload]) -> None:
        taken: list[str] = []
        for upload in uploads:
            key = keys.filename_reservation(session.name, upload.filename)
            try:
                await self._records.create(key, {"session_id": session.id, "state": "publishing"})
                taken.append(upload.filename)
            except RecordExists:
                holder = await self._records.get(key)
                if holder is not None and holder.data.get("session_id") == session.id:
                    taken.append(upload.filename)  # left by an interrupted attempt of ours
                    continue
                await self._sessions.release_filenames(session.name, taken, session.id)
                raise PublishFailed(
                    409,
                    "filename-conflict",
                    f"{upload.filename} is being published or was published by another session.",
                    {upload.filename: "reserved by another publish"},
                ).problem() from None

    async def _mark_published(self, session: PublishingSession, filenames: list[str]) -> None:
        """Turn the reservations into lasting ones; one that went missing (a resumed journal
        whose reservations were already released) is made anew."""
        for filename in filenames:
            key = keys.filename_reservation(session.name, filename)
            try:
                await self._records.update(key, lambda data: {**data, "state": "published"})
            except RecordMissing:
                with contextlib.suppress(RecordExists):
                    await self._records.create(
                        key, {"session_id": session.id, "state": "published"}
                    )

    async def drain(self) -> None:
        """On shutdown: stop workers; their leases lapse and another replica resumes them."""
        for task in list(self._workers):
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


def _journal(session: PublishingSession, attempt: str) -> PublishJournal:
    if session.publish is None or session.publish.attempt != attempt:
        raise RecordChanged(session.id)
    return session.publish


def _digests(uploads: list[FileUpload]) -> dict[str, str | None]:
    return {u.filename: _sha256(u) for u in uploads}


def _sha256(upload: FileUpload) -> str:
    assert upload.committed is not None
    return upload.committed.digests["sha256"]


def _publish_order(uploads: list[FileUpload]) -> list[FileUpload]:
    """Wheels first, the sdist last (R-W3): installers never see a source-only release that
    later gains wheels mid-publish."""
    return sorted(uploads, key=lambda u: (u.filename.endswith(".tar.gz"), u.filename))


def _require_completed(uploads: list[FileUpload]) -> None:
    offending = {u.filename: u.status.value for u in uploads if u.status != FileState.COMPLETED}
    if offending:
        raise Problem(
            409,
            "files-not-completed",
            "Every file must be completed before publishing: "
            + ", ".join(f"{name} is {state}" for name, state in offending.items()),
            [ErrorItem(f"files.{name}", state) for name, state in offending.items()],
        )


def _backoff(attempt_number: int) -> float:
    return min(0.5 * 2**attempt_number, 10.0)


def _check_conflicts(uploads: list[FileUpload], listing: Listing) -> None:
    """A filename already on the index with other bytes can never be published (R-P9)."""
    conflicting = {
        u.filename: "already on the index with another sha256"
        for u in uploads
        if u.filename in listing and listing[u.filename] not in (None, _sha256(u))
    }
    if conflicting:
        raise PublishFailed(
            409,
            "filename-conflict",
            "Already published with other contents: " + ", ".join(conflicting),
            conflicting,
        )
