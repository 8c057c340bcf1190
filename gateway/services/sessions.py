"""Publishing sessions: create (one live session per release), read, extend, cancel, expire."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

from gateway.distribution.releases import normalize_release
from gateway.domain import clock
from gateway.domain.errors import (
    DomainError,
    Kind,
    contention,
    not_found,
    refused_as_invalid,
)
from gateway.domain.records import (
    CreationPath,
    PublishingSession,
    ReleasePointer,
)
from gateway.domain.states import (
    SessionEvent,
    SessionState,
    is_editable,
    is_terminal,
)
from gateway.domain.transitions import apply_review, next_state
from gateway.logs import log
from gateway.services.due_index import DueIndex
from gateway.services.names import NameRegistry
from gateway.services.quota import OpenSessionCounts
from gateway.services.session_files import SessionFiles, fold
from gateway.settings import SessionSettings
from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.record_store import JsonRecords, RecordExists, RecordMissing
from gateway.store.typed import ClaimContention, Records, Versioned

# Told of a session about to expire, before it does (the audit journal records it).
BeforeExpiry = Callable[[PublishingSession], Awaitable[None]]

# A change to a session record: the new record, or None to keep it.
SessionChange = Callable[[PublishingSession], PublishingSession | None]

TOKEN_BYTES = 32  # 256 bits from `secrets`: the session id doubles as the stage capability


class SessionService:
    """The one writer of session records (but for the publish journal in them, which
    ``publish/journal.py`` writes), live-release pointers and quota markers."""

    def __init__(
        self,
        records: JsonRecords,
        blobs: BlobStore,
        settings: SessionSettings,
        names: NameRegistry,
        files: SessionFiles,
        due: DueIndex,
        before_expiry: BeforeExpiry,
    ):
        self._sessions = Records(records, PublishingSession)
        self._pointers = Records(records, ReleasePointer)
        self._files = files  # the summaries folded into the record when it ends
        self._due = due
        self._blobs = blobs
        self._settings = settings
        self._names = names
        self._open_sessions = OpenSessionCounts(self._count_open, settings.quota_max_age)
        self._before_expiry = before_expiry  # the audit journal's (services/audit.py)

    async def create(
        self, name: str, version: str, creator: str, via: CreationPath = "upload2"
    ) -> tuple[PublishingSession, bool]:
        """A new session, or (existing, False) when the release already has a live one."""
        with refused_as_invalid():
            name, version = normalize_release(name, version)
        await self._refuse_over_quota(creator, keys.live_release(name, version))
        created = True  # unless it certainly wrote no quota marker (a failure may have)
        try:
            session, created = await self._open(name, version, creator, via)
        finally:
            self._open_sessions.concluded(creator, marker_written=created)
        return session, created

    async def _open(
        self, name: str, version: str, creator: str, via: CreationPath
    ) -> tuple[PublishingSession, bool]:
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
            files={},
            summaries_beside=True,
        )
        # The sweep's entry exists before the record, so no session is ever left unswept.
        await self._due.wake_at(session.id, session.expires_at)
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
        the release asked for is one of them (that is the usual 409, not a new session); else
        admit the creation, counted at once against the quota.

        A soft cap: the count comes from an estimate (``services/quota.py``) that sees every
        session this process opened but, for ``sessions.quota_max_age`` seconds, none that
        other replicas opened; it may be overshot by those, and by creations racing each
        other on different replicas. Reaching the cap, it counts exactly.
        """
        cap = self._settings.max_open_per_principal
        if await self._open_sessions.estimate(creator) >= cap:
            await self._refuse_at_cap(creator, pointer_key, cap)
        self._open_sessions.admit(creator)  # no wait since the count: racing creates see it

    async def _refuse_at_cap(self, creator: str, pointer_key: str, cap: int) -> None:
        """The exact count: every marker listed, those left behind by a crash discounted."""
        listing = self._open_sessions.begin(creator)
        markers = await self._markers(creator)
        still_open = len(markers)
        if listing.estimate(still_open) >= cap:
            still_open = await self._discount_ended(markers)
            if await self._is_live(pointer_key):
                self._open_sessions.counted(listing, still_open)
                return
        held = self._open_sessions.counted(listing, still_open)
        if held >= cap:
            raise DomainError(
                Kind.TOO_MANY,
                "too-many-sessions",
                f"You hold {held} open sessions, the most allowed: publish or cancel "
                "one before creating another.",
            )

    async def _discount_ended(self, markers: list[str]) -> int:
        """How many of ``markers`` name an open session. A marker outlives its session only
        after a crash: such markers are dropped, and must not count."""
        still_open = 0
        for key in markers:
            session = await self.find(key.rsplit("/", 1)[1].removesuffix(".json"))
            if session is None or is_terminal(session.status):
                await self._pointers.delete(key)
            else:
                still_open += 1
        return still_open

    async def _is_live(self, pointer_key: str) -> bool:
        """Whether the release of ``pointer_key`` has a live session."""
        pointer = await self._pointers.load(pointer_key)
        live = None if pointer is None else await self.find(pointer.session_id)
        return live is not None and not is_terminal(live.status)

    async def _markers(self, creator: str) -> list[str]:
        """The keys of the creator's open-session markers (a listing request per thousand)."""
        return [key async for key in self._pointers.keys(keys.open_sessions(creator))]

    async def _count_open(self, creator: str) -> int:
        return len(await self._markers(creator))

    async def _count_against_quota(self, session: PublishingSession) -> None:
        with contextlib.suppress(RecordExists):
            await self._pointers.create(
                keys.open_session(session.created_by, session.id),
                ReleasePointer(session_id=session.id),
            )

    async def find(self, sid: str) -> PublishingSession | None:
        """The session as stored, expiring it first when its time is up (R-P11)."""
        session = await self._sessions.load(keys.session(sid))
        return None if session is None else await self.expire_if_due(session)

    async def expire_if_due(self, session: PublishingSession) -> PublishingSession:
        """``session`` as just read, or as expired now when its time is up (R-P11)."""
        if not _expires_now(session):
            return session
        await self._before_expiry(session)  # the audit journal: recorded before it happens
        return await self._end(session.id, SessionEvent.EXPIRE, "The session expired.")

    async def of_release(self, name: str, version: str) -> PublishingSession:
        """The release's live session, for an approver who may not create one (R-W11)."""
        with refused_as_invalid():
            name, version = normalize_release(name, version)
        pointer = await self._pointers.load(keys.live_release(name, version))
        session = None if pointer is None else await self.find(pointer.session_id)
        if session is None or is_terminal(session.status):
            raise not_found("session")
        return session

    async def get(self, sid: str) -> PublishingSession:
        session = await self.find(sid)
        if session is None:
            raise not_found("session")
        return session

    async def get_versioned(self, sid: str) -> tuple[PublishingSession, str | None]:
        """:meth:`get`, with the etag of the session as read (None when reading it expired
        it), for a caller that changes it next (the publish journal opened in it)."""
        found = await self._sessions.get(keys.session(sid))
        if found is None or _expires_now(found.value):
            return await self.get(sid), None  # gone, or expires now: as any read does
        return found.value, found.etag

    async def extend(self, sid: str, extend_for: int) -> PublishingSession:
        def extend(session: PublishingSession) -> PublishingSession:
            next_state(session, SessionEvent.EXTEND)
            session.expires_at = clock.extended_expiry(
                session.expires_at, session.created_at, extend_for, self._settings.max_lifetime
            )
            return session

        session = await self._update(sid, extend)
        # The entry of the earlier expiry stays until the sweep visits it and finds the
        # session not due: it then keeps only the next visit.
        await self._due.wake_at(sid, session.expires_at)
        return session

    async def reviewed(self, sid: str, event: SessionEvent, notice: str | None = None) -> None:
        """Move the session as the review step says (R-W11, :func:`apply_review`)."""

        def move(session: PublishingSession) -> PublishingSession | None:
            return session if apply_review(session, event, notice) else None

        await self._update(sid, move)
        log.info("session.reviewed", session=sid[:8], review=event.value)

    async def cancel(self, sid: str) -> PublishingSession:
        return await self._end(sid, SessionEvent.CANCEL, None)

    async def _end(self, sid: str, event: SessionEvent, notice: str | None) -> PublishingSession:
        shown = await self._files.entries(sid)

        def end(session: PublishingSession) -> PublishingSession | None:
            if event is SessionEvent.EXPIRE and session.status == SessionState.CANCELED:
                return None  # another replica expired it first
            session.status = next_state(session, event)
            session.ended_at = clock.now()
            session.files = fold(session.files or {}, shown)  # its data is purged next
            if notice:
                session.notices.append(notice)
            return session

        session = await self._update(sid, end)
        await self._due.wake_at(sid, clock.now())  # the sweep purges again, then keeps it retained
        log.info("session.ended", session=sid[:8], status=session.status.value, why=event.value)
        return await self.settle(session)

    async def settle(
        self, session: PublishingSession, etag: str | None = None, registered: bool = False
    ) -> PublishingSession:
        """Free what an ended session held: its release, its name reservation, its place in
        its creator's quota, its staged data. Each step is idempotent, and the record only
        says ``settled`` once all are done, so the sweeper retries after a failure midway.

        ``etag``: of ``session`` as the caller has just written it (saves reading it again).
        ``registered``: the caller has just registered the project's name for the session's
        publish, so no reservation of the name is left to release."""
        assert is_terminal(session.status)
        await self._release(session)
        if not registered:
            await self._names.release(session.name, session.id)
        if session.status != SessionState.PUBLISHED:  # a published one's stay, all of them
            # Left by a failing publish; those of files maybe on the index stay (R-P8).
            records = await self._files.records(session.id)
            filenames = [u.filename for u in records if u.filename not in session.maybe_on_index]
            await self.release_filenames(session.name, filenames, session.id)
        await _purge(self._blobs, session.id)

        def settled(current: PublishingSession) -> PublishingSession:
            current.settled = True
            return current

        known = None if etag is None else Versioned(session, etag)
        return (await self._write(session.id, settled, known)).value

    async def release_filenames(self, project: str, filenames: list[str], sid: str) -> None:
        """Drop this session's reservations of ``filenames``, files not on the index."""
        await self._names.release_filenames(project, filenames, sid)

    async def _release(self, session: PublishingSession) -> None:
        """Free the release for a new session, unless the pointer already moved on, and take
        the ended session off its creator's quota."""
        await self._pointers.delete(keys.open_session(session.created_by, session.id))
        await self._pointers.delete_if(
            keys.live_release(session.name, session.version),
            lambda pointer: pointer.session_id == session.id,
        )

    async def _update(self, sid: str, change: SessionChange) -> PublishingSession:
        return (await self._write(sid, change)).value

    async def _write(
        self,
        sid: str,
        change: SessionChange,
        known: Versioned[PublishingSession] | None = None,
    ) -> Versioned[PublishingSession]:
        """Compare-and-swap of the session record; ``known``: the record as the caller has
        just read or written it (:meth:`Records.update_versioned`)."""
        try:
            return await self._sessions.update_versioned(keys.session(sid), change, known)
        except RecordMissing:
            raise not_found("session") from None

    async def live_count(self) -> int:
        """Sessions holding their release (open, processing or error): one listing request
        per thousand."""
        return len([key async for key in self._pointers.keys(keys.LIVE)])

    async def tidy(self, session: PublishingSession) -> None:
        """Purge an ended session's data; forget the session once its retention is over.
        Purging again is cheap and catches bytes that a racing upload wrote after the first
        purge."""
        if not session.settled:
            session = await self.settle(session)
        else:
            await _purge(self._blobs, session.id)
        retention = timedelta(seconds=self._settings.retention)
        if session.ended_at and session.ended_at + retention <= clock.now():
            await self._sessions.delete(keys.session(session.id))
            log.info("session.forgotten", session=session.id[:8])


async def _purge(blobs: BlobStore, sid: str) -> None:
    """Delete an ended session's data and summary entries; its record, beside them, stays
    (never purge ``keys.session_listing``)."""
    await blobs.purge(keys.session_data(sid))  # entries of the older layout included
    await blobs.purge(keys.file_summaries(sid), multipart=False)  # records only


def _expires_now(session: PublishingSession) -> bool:
    return is_editable(session.status) and session.expires_at <= clock.now()
