"""Publishing sessions: create (one live session per release), read, extend, cancel, expire."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from packaging.utils import InvalidName, canonicalize_name, is_normalized_name
from packaging.version import InvalidVersion, Version

from gateway.logs import log
from gateway.protocol.problems import Problem, bad_request, conflict, not_found
from gateway.services.names import NameRegistry
from gateway.sessions import clock
from gateway.sessions.records import FileUpload, PublishingSession
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
from gateway.store.records import RecordChanged, RecordExists, RecordMissing, RecordStore

MAX_NAME_LENGTH = 200
MAX_VERSION_LENGTH = 100
TOKEN_BYTES = 32  # 256 bits from `secrets`: the session id doubles as the stage capability


def normalize_release(name: str, version: str) -> tuple[str, str]:
    """PEP 503-normalized name and PEP 440-normalized version, or a 400 naming the field."""
    # Both end up in S3 keys (at most 1024 bytes); no real project comes near these bounds.
    if len(name) > MAX_NAME_LENGTH:
        raise bad_request(
            "invalid-name",
            f"a project name has at most {MAX_NAME_LENGTH} characters",
            source="name",
        )
    if len(version) > MAX_VERSION_LENGTH:
        raise bad_request(
            "invalid-version",
            f"a version has at most {MAX_VERSION_LENGTH} characters",
            source="version",
        )
    try:
        normalized = canonicalize_name(name, validate=True)
    except InvalidName:
        raise bad_request(
            "invalid-name", f"{name!r} is not a valid project name", source="name"
        ) from None
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise bad_request(
            "invalid-version", f"{version!r} is not a valid PEP 440 version", source="version"
        ) from None
    assert is_normalized_name(normalized)
    return normalized, str(parsed)


async def _nothing(session: PublishingSession) -> None:
    return None


class SessionService:
    def __init__(
        self,
        records: RecordStore,
        blobs: BlobStore,
        settings: SessionSettings,
        names: NameRegistry,
    ):
        self._records = records
        self._blobs = blobs
        self._settings = settings
        self._names = names
        # Set by the application to the audit journal's (services/audit.py).
        self.before_expiry: Callable[[PublishingSession], Awaitable[None]] = _nothing

    async def create(self, name: str, version: str, creator: str) -> tuple[PublishingSession, bool]:
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
        )
        # The record exists before the pointer, so a pointer whose session is missing can only
        # be left over from a crash and may be taken over.
        await self._records.create(keys.session(session.id), session.model_dump(mode="json"))
        pointer_key = keys.live_release(name, version)
        for _ in range(8):
            try:
                await self._records.create(pointer_key, {"session_id": session.id})
                await self._count_against_quota(session)
                log.info("session.created", session=session.id[:8], project=name, version=version)
                return session, True
            except RecordExists:
                pass
            pointer = await self._records.get(pointer_key)
            if pointer is None:
                continue
            existing = await self.find(pointer.data["session_id"])
            if existing is not None and not is_terminal(existing.status):
                await self._records.delete(keys.session(session.id))
                return existing, False
            try:
                await self._records.replace(pointer_key, {"session_id": session.id}, pointer.etag)
                await self._count_against_quota(session)
                return session, True
            except (RecordChanged, RecordMissing):
                continue
        await self._records.delete(keys.session(session.id))
        raise Problem(503, "contention", "Too many concurrent session creations; retry.")

    async def _refuse_over_quota(self, creator: str, pointer_key: str) -> None:
        """429 when ``creator`` already holds ``max_open_per_principal`` open sessions, unless
        the release asked for is one of them (that is the usual 409, not a new session).

        A soft cap: creations racing each other may overshoot it by their number.
        """
        cap = self._settings.max_open_per_principal
        markers = [key async for key in self._records.keys(keys.open_sessions(creator))]
        if len(markers) < cap:
            return
        # A marker outlives its session only after a crash; such markers must not count.
        still_open = 0
        for key in markers:
            session = await self.find(key.rsplit("/", 1)[1].removesuffix(".json"))
            if session is None or is_terminal(session.status):
                await self._records.delete(key)
            else:
                still_open += 1
        pointer = await self._records.get(pointer_key)
        if pointer is not None:
            live = await self.find(pointer.data["session_id"])
            if live is not None and not is_terminal(live.status):
                return
        if still_open >= cap:
            raise Problem(
                429,
                "too-many-sessions",
                f"You hold {still_open} open sessions, the most allowed: publish or cancel "
                "one before creating another.",
            )

    async def _count_against_quota(self, session: PublishingSession) -> None:
        with contextlib.suppress(RecordExists):
            await self._records.create(
                keys.open_session(session.created_by, session.id), {"session_id": session.id}
            )

    async def find(self, sid: str) -> PublishingSession | None:
        """The session as stored, expiring it first when its time is up (R-P11)."""
        stored = await self._records.get(keys.session(sid))
        if stored is None:
            return None
        session = PublishingSession.model_validate(stored.data)
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
        record_keys = [
            key
            async for key in self._records.keys(keys.file_records(sid), delimiter="/")
            if key.endswith(".json")
        ]
        stored = await asyncio.gather(*(self._records.get(key) for key in record_keys))
        uploads = [FileUpload.model_validate(s.data) for s in stored if s is not None]
        return sorted(uploads, key=lambda upload: upload.created_at)

    @staticmethod
    def visible_files(uploads: list[FileUpload]) -> dict[str, FileUpload]:
        """The session's ``files`` mapping: canceled uploads never appear (R-F14)."""
        return {u.filename: u for u in uploads if u.status != FileState.CANCELED}

    async def extend(self, sid: str, extend_for: int) -> PublishingSession:
        def mutate(data: dict) -> dict:
            session = PublishingSession.model_validate(data)
            _refuse(session, SessionEvent.EXTEND)
            session.expires_at = clock.extended_expiry(
                session.expires_at, session.created_at, extend_for, self._settings.max_lifetime
            )
            return session.model_dump(mode="json")

        stored = await self._update(sid, mutate)
        return PublishingSession.model_validate(stored)

    async def cancel(self, sid: str) -> PublishingSession:
        return await self._end(sid, SessionEvent.CANCEL, None)

    async def _end(self, sid: str, event: SessionEvent, notice: str | None) -> PublishingSession:
        def mutate(data: dict) -> dict:
            session = PublishingSession.model_validate(data)
            if event is SessionEvent.EXPIRE and session.status == SessionState.CANCELED:
                return data  # another replica expired it first
            session.status = _refuse(session, event)
            session.ended_at = clock.now()
            if notice:
                session.notices.append(notice)
            return session.model_dump(mode="json")

        session = PublishingSession.model_validate(await self._update(sid, mutate))
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

        def mark(data: dict) -> dict:
            return {**data, "settled": True}

        return PublishingSession.model_validate(await self._update(session.id, mark))

    async def release_filenames(self, project: str, filenames: list[str], sid: str) -> None:
        """Drop this session's reservations of ``filenames``, except of those it published."""
        for filename in filenames:
            key = keys.filename_reservation(project, filename)
            holder = await self._records.get(key)
            if (
                holder
                and holder.data.get("session_id") == sid
                and holder.data.get("state") != "published"
            ):
                with contextlib.suppress(RecordChanged):
                    await self._records.delete(key, holder.etag)

    async def _release(self, session: PublishingSession) -> None:
        """Free the release for a new session, unless the pointer already moved on, and take
        the ended session off its creator's quota."""
        await self._records.delete(keys.open_session(session.created_by, session.id))
        pointer_key = keys.live_release(session.name, session.version)
        pointer = await self._records.get(pointer_key)
        if pointer is not None and pointer.data.get("session_id") == session.id:
            with contextlib.suppress(RecordChanged):
                await self._records.delete(pointer_key, pointer.etag)

    async def _update(self, sid: str, mutate) -> dict:  # type: ignore[no-untyped-def]
        try:
            stored = await self._records.update(keys.session(sid), mutate)
        except RecordMissing:
            raise not_found("session") from None
        return stored.data

    async def session_ids(self) -> AsyncIterator[str]:
        async for key in self._records.keys(keys.SESSIONS, delimiter="/"):
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
            await self._records.delete(keys.session(session.id))
            log.info("session.forgotten", session=session.id[:8])


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
