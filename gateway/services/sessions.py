"""Publishing sessions: create (one live session per release), read, extend, cancel, expire."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from packaging.utils import InvalidName, canonicalize_name, is_normalized_name
from packaging.version import InvalidVersion, Version

from gateway.logs import log
from gateway.services.names import NameRegistry
from gateway.services.uploads import UploadRecords
from gateway.sessions import clock
from gateway.sessions.errors import DomainError, Kind, conflict, contention, invalid, not_found
from gateway.sessions.lease import Lease
from gateway.sessions.records import (
    CreationPath,
    FileUpload,
    PublishingSession,
    PublishJournal,
    ReleasePointer,
)
from gateway.sessions.states import (
    FileState,
    SessionEvent,
    SessionState,
    TransitionRefused,
    is_editable,
    is_terminal,
    next_session_state,
)
from gateway.settings import SessionSettings
from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.records import JsonRecords, RecordChanged, RecordExists, RecordMissing
from gateway.store.typed import ClaimContention, Records

MAX_NAME_LENGTH = 200
MAX_VERSION_LENGTH = 100
TOKEN_BYTES = 32  # 256 bits from `secrets`: the session id doubles as the stage capability


def normalize_release(name: str, version: str) -> tuple[str, str]:
    """PEP 503-normalized name and PEP 440-normalized version, or the field that is not."""
    # Both end up in S3 keys (at most 1024 bytes); no real project comes near these bounds.
    if len(name) > MAX_NAME_LENGTH:
        raise invalid(
            "invalid-name",
            f"a project name has at most {MAX_NAME_LENGTH} characters",
            source="name",
        )
    if len(version) > MAX_VERSION_LENGTH:
        raise invalid(
            "invalid-version",
            f"a version has at most {MAX_VERSION_LENGTH} characters",
            source="version",
        )
    try:
        normalized = canonicalize_name(name, validate=True)
    except InvalidName:
        raise invalid(
            "invalid-name", f"{name!r} is not a valid project name", source="name"
        ) from None
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise invalid(
            "invalid-version", f"{version!r} is not a valid PEP 440 version", source="version"
        ) from None
    assert is_normalized_name(normalized)
    return normalized, str(parsed)


async def _nothing(session: PublishingSession) -> None:
    return None


class SessionService:
    """The one writer of session records, live-release pointers and quota markers."""

    def __init__(
        self,
        records: JsonRecords,
        blobs: BlobStore,
        settings: SessionSettings,
        names: NameRegistry,
        uploads: UploadRecords | None = None,
    ):
        self._records = records  # raw, for tests that plant records
        self._sessions = Records(records, PublishingSession)
        self._pointers = Records(records, ReleasePointer)
        self._uploads = uploads or UploadRecords(records)
        self._blobs = blobs
        self._settings = settings
        self._names = names
        # Set by the application to the audit journal's (services/audit.py).
        self.before_expiry: Callable[[PublishingSession], Awaitable[None]] = _nothing

    async def create(
        self, name: str, version: str, creator: str, via: CreationPath = "upload2"
    ) -> tuple[PublishingSession, bool]:
        """A new session, or (existing, False) when the release already has a live one."""
        name, version = normalize_release(name, version)
        await self._refuse_over_quota(creator, keys.live_release(name, version))
        created = clock.now()
        session = PublishingSession(
            id=secrets.token_urlsafe(TOKEN_BYTES),
            name=name,
            version=version,
            status=SessionState.OPEN,
            created_at=created,
            expires_at=created + timedelta(seconds=self._settings.lifetime),
            created_by=creator,
            created_via=via,
        )
        # The record exists before the pointer, so a pointer whose session is missing can only
        # be left over from a crash and may be taken over.
        await self._sessions.create(keys.session(session.id), session)
        live: list[PublishingSession] = []

        async def is_over(pointer: ReleasePointer) -> bool:
            holder = await self.find(pointer.session_id)
            live[:] = [] if holder is None or is_terminal(holder.status) else [holder]
            return not live

        pointer = ReleasePointer(session_id=session.id)
        try:
            held = await self._pointers.claim(keys.live_release(name, version), pointer, is_over)
        except ClaimContention:
            await self._sessions.delete(keys.session(session.id))
            raise contention("Too many concurrent session creations; retry.") from None
        if held is not None:
            await self._sessions.delete(keys.session(session.id))
            return live[0], False
        await self._count_against_quota(session)
        log.info("session.created", session=session.id[:8], project=name, version=version)
        return session, True

    async def _refuse_over_quota(self, creator: str, pointer_key: str) -> None:
        """429 when ``creator`` already holds ``max_open_per_principal`` open sessions, unless
        the release asked for is one of them (that is the usual 409, not a new session).

        A soft cap: creations racing each other may overshoot it by their number.
        """
        cap = self._settings.max_open_per_principal
        markers = [key async for key in self._pointers.keys(keys.open_sessions(creator))]
        if len(markers) < cap:
            return
        # A marker outlives its session only after a crash; such markers must not count.
        still_open = 0
        for key in markers:
            session = await self.find(key.rsplit("/", 1)[1].removesuffix(".json"))
            if session is None or is_terminal(session.status):
                await self._pointers.delete(key)
            else:
                still_open += 1
        pointer = await self._pointers.load(pointer_key)
        if pointer is not None:
            live = await self.find(pointer.session_id)
            if live is not None and not is_terminal(live.status):
                return
        if still_open >= cap:
            raise DomainError(
                Kind.TOO_MANY,
                "too-many-sessions",
                f"You hold {still_open} open sessions, the most allowed: publish or cancel "
                "one before creating another.",
            )

    async def _count_against_quota(self, session: PublishingSession) -> None:
        with contextlib.suppress(RecordExists):
            await self._pointers.create(
                keys.open_session(session.created_by, session.id),
                ReleasePointer(session_id=session.id),
            )

    async def find(self, sid: str) -> PublishingSession | None:
        """The session as stored, expiring it first when its time is up (R-P11)."""
        session = await self._sessions.load(keys.session(sid))
        if session is None:
            return None
        if is_editable(session.status) and session.expires_at <= clock.now():
            await self.before_expiry(session)  # the audit journal: recorded before it happens
            session = await self._end(sid, SessionEvent.EXPIRE, "The session expired.")
        return session

    async def get(self, sid: str) -> PublishingSession:
        session = await self.find(sid)
        if session is None:
            raise not_found("session")
        return session

    async def files(self, sid: str) -> list[FileUpload]:
        """Every file upload of the session, canceled ones included, oldest first."""
        return await self._uploads.of_session(sid)

    @staticmethod
    def visible_files(uploads: list[FileUpload]) -> dict[str, FileUpload]:
        """The session's ``files`` mapping: canceled uploads never appear (R-F14)."""
        return {u.filename: u for u in uploads if u.status != FileState.CANCELED}

    async def extend(self, sid: str, extend_for: int) -> PublishingSession:
        def extend(session: PublishingSession) -> PublishingSession:
            _refuse(session, SessionEvent.EXTEND)
            session.expires_at = clock.extended_expiry(
                session.expires_at, session.created_at, extend_for, self._settings.max_lifetime
            )
            return session

        return await self._update(sid, extend)

    async def cancel(self, sid: str) -> PublishingSession:
        return await self._end(sid, SessionEvent.CANCEL, None)

    async def _end(self, sid: str, event: SessionEvent, notice: str | None) -> PublishingSession:
        def end(session: PublishingSession) -> PublishingSession | None:
            if event is SessionEvent.EXPIRE and session.status == SessionState.CANCELED:
                return None  # another replica expired it first
            session.status = _refuse(session, event)
            session.ended_at = clock.now()
            if notice:
                session.notices.append(notice)
            return session

        session = await self._update(sid, end)
        log.info("session.ended", session=sid[:8], status=session.status.value, why=event.value)
        return await self.settle(session)

    async def settle(self, session: PublishingSession) -> PublishingSession:
        """Free what an ended session held: its release, its name reservation, its place in
        its creator's quota, its staged data. Each step is idempotent, and the record only
        says ``settled`` once all are done, so the sweeper retries after a failure midway."""
        assert is_terminal(session.status)
        await self._release(session)
        await self._names.release(session.name, session.id)
        # Left behind only when a failing publish could not release them (R-P8).
        filenames = [upload.filename for upload in await self.files(session.id)]
        await self.release_filenames(session.name, filenames, session.id)
        await self._blobs.purge(keys.session_data(session.id))

        def settled(current: PublishingSession) -> PublishingSession:
            current.settled = True
            return current

        return await self._update(session.id, settled)

    async def release_filenames(self, project: str, filenames: list[str], sid: str) -> None:
        """Drop this session's reservations of ``filenames``, except of those it published."""
        await self._names.release_filenames(project, filenames, sid)

    async def _release(self, session: PublishingSession) -> None:
        """Free the release for a new session, unless the pointer already moved on, and take
        the ended session off its creator's quota."""
        await self._pointers.delete(keys.open_session(session.created_by, session.id))
        await self._pointers.delete_if(
            keys.live_release(session.name, session.version),
            lambda pointer: pointer.session_id == session.id,
        )

    async def _update(
        self, sid: str, change: Callable[[PublishingSession], PublishingSession | None]
    ) -> PublishingSession:
        try:
            return await self._sessions.update(keys.session(sid), change)
        except RecordMissing:
            raise not_found("session") from None

    async def session_ids(self) -> AsyncIterator[str]:
        async for key in self._sessions.keys(keys.SESSIONS, delimiter="/"):
            if keys.is_session_record(key):
                yield keys.session_id_of(key)

    async def tidy(self, session: PublishingSession) -> None:
        """Purge an ended session's data; forget the session once its retention is over.

        Purging again is cheap and catches bytes that a racing upload wrote after the first
        purge.
        """
        if not session.settled:
            session = await self.settle(session)
        else:
            await self._blobs.purge(keys.session_data(session.id))
        retention = timedelta(seconds=self._settings.retention)
        if session.ended_at and session.ended_at + retention <= clock.now():
            await self._sessions.delete(keys.session(session.id))
            log.info("session.forgotten", session=session.id[:8])

    # -- the publish journal: written here, on behalf of the publish worker holding it ----

    async def start_publish(self, sid: str, journal: PublishJournal) -> PublishingSession:
        def start(session: PublishingSession) -> PublishingSession:
            _refuse(session, SessionEvent.PUBLISH_NOW)  # also refuses a publish under way
            session.publish = journal
            return session

        return await self._update(sid, start)

    async def defer_publish(self, sid: str, attempt: str) -> PublishingSession:
        """The publish goes on in the background: ``processing``. :class:`RecordChanged` when
        it ended meanwhile."""

        def defer(session: PublishingSession) -> PublishingSession:
            _journal(session, attempt)
            if is_editable(session.status):
                session.status = next_session_state(session.status, SessionEvent.PUBLISH_DEFERRED)
            return session

        return await self._update(sid, defer)

    async def update_journal(
        self, sid: str, attempt: str, holder: str, change: Callable[[PublishJournal], None]
    ) -> PublishingSession:
        """Change the journal of publish ``attempt``; :class:`RecordChanged` unless ``holder``
        still holds it (another replica may have taken it over)."""

        def update(session: PublishingSession) -> PublishingSession:
            change(_held_journal(session, attempt, holder))
            return session

        return await self._update(sid, update)

    async def take_over_publish(self, sid: str, lease: Lease) -> PublishingSession:
        """Hold a publish whose lease lapsed; :class:`RecordChanged` when it has not."""

        def take_over(session: PublishingSession) -> PublishingSession:
            if session.publish is None or session.publish.lease.is_live():
                raise RecordChanged(sid)
            session.publish.hold(lease)
            if is_editable(session.status):  # its caller is gone: report by polling
                session.status = next_session_state(session.status, SessionEvent.PUBLISH_DEFERRED)
            return session

        return await self._update(sid, take_over)

    async def finish_publish(
        self, sid: str, attempt: str, holder: str, succeeded: bool, notices: list[str]
    ) -> PublishingSession:
        """End publish ``attempt``: ``published``, or back to where it was for a caller still
        waiting (R-P7), ``error`` with ``notices`` for one that is not."""

        def finish(session: PublishingSession) -> PublishingSession:
            _held_journal(session, attempt, holder)
            session.publish = None
            if succeeded:
                editable = is_editable(session.status)
                event = SessionEvent.PUBLISH_NOW if editable else SessionEvent.PUBLISH_SUCCEEDED
                session.status = next_session_state(session.status, event)
                session.ended_at = clock.now()
                session.notices.extend(notices)
            elif session.status == SessionState.PROCESSING:
                session.status = next_session_state(session.status, SessionEvent.PUBLISH_FAILED)
                session.notices.extend(notices)
            return session

        return await self._update(sid, finish)


def _journal(session: PublishingSession, attempt: str) -> PublishJournal:
    if session.publish is None or session.publish.attempt != attempt:
        raise RecordChanged(session.id)
    return session.publish


def _held_journal(session: PublishingSession, attempt: str, holder: str) -> PublishJournal:
    journal = _journal(session, attempt)
    if journal.owner != holder:
        raise RecordChanged(session.id)  # another replica took the publish over
    return journal


def _refuse(session: PublishingSession, event: SessionEvent) -> SessionState:
    """The next state, or the problem that explains why the event is not allowed now."""
    if session.status == SessionState.CANCELED:
        raise not_found("session")
    if session.publish is not None and event in (
        SessionEvent.EDIT_FILES,
        SessionEvent.CANCEL,
        SessionEvent.PUBLISH_NOW,
        SessionEvent.PUBLISH_DEFERRED,
    ):
        raise conflict(
            "publish-in-progress",
            "A publish of this session is under way: wait for it to resolve.",
            source="status",
        )
    try:
        return next_session_state(session.status, event)
    except TransitionRefused as exc:
        raise conflict(
            "invalid-session-state",
            f"The session is {session.status.value}: cannot {event.value}.",
            source="status",
        ) from exc


def require(session: PublishingSession, event: SessionEvent) -> None:
    """Check, without changing anything, that ``event`` is allowed on ``session`` now."""
    _refuse(session, event)
