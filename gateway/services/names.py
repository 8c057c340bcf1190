"""Reservations: project names for first releases (R-P4, R-P12) and filenames being or
having been published (R-P8). This service is the one writer of both record kinds.

A session for a project the index has never seen reserves the name for the principal that
opened it, so two publishers racing to claim a new name cannot both win at publish time.
Canceling or expiring that session releases the name; publishing it (even empty) turns the
reservation into a registration. While the index has no file of the project, another
principal's first-release session for the name is refused with 403 (which also keeps the
name's existence from anyone not entitled to it).

A publish reserves each of its filenames (one conditional create per file, R-W13), and the
reservation names only the session holding it: whether its file was published is told by
the session (``published``) or by the index (the file is there), so publishing writes
nothing more per file. A reservation is released only for a file that never reached the
index (a publish that failed or was canceled before posting it); the callers pass only
those, and keep any they are unsure of. So no other session and no legacy upload can replace
a published file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gateway.domain.errors import DomainError, Kind, Pointer
from gateway.domain.records import FilenameReservation, NameRegistration, PublishingSession
from gateway.services.listings import PublishedFiles, RecentReads
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordExists
from gateway.store.typed import Records

RESERVED: Final[Literal["reserved"]] = "reserved"
REGISTERED: Final[Literal["registered"]] = "registered"
# How long a session's listing of its release's reservations serves its creates. Never stale
# for that session (``reserved_against``): a bound on memory, and on how many sessions' listings
# are kept at once.
RESERVATIONS_MAX_AGE = 60.0


class NameRegistry:
    def __init__(self, records: JsonRecords, published_files: PublishedFiles):
        self._names = Records(records, NameRegistration)
        self._filenames = Records(records, FilenameReservation)
        self._published_files = published_files
        # A session's creates share one listing of its release's reservations.
        self._reserved = RecentReads(self._reserved_from, RESERVATIONS_MAX_AGE)

    # -- project names -----------------------------------------------------------------

    async def is_first_release(self, project: str) -> bool:
        return not await self._published_files(project)

    async def check(self, project: str, principal_id: str) -> None:
        """Refuse a principal another principal's reserved or registered name."""
        held = await self._names.load(keys.name_registration(project))
        if held is not None and held.principal != principal_id:
            raise _taken(project)

    async def reserve(self, project: str, principal_id: str, session_id: str) -> None:
        record = NameRegistration(
            project=project, principal=principal_id, state=RESERVED, session=session_id
        )
        try:
            await self._names.create(keys.name_registration(project), record)
        except RecordExists:
            await self.check(project, principal_id)

    async def release(self, project: str, session_id: str) -> None:
        """Forget a reservation made by this session; registrations stay."""
        await self._names.delete_if(
            keys.name_registration(project),
            lambda held: held.state == RESERVED and held.session == session_id,
        )

    async def register(self, project: str, principal_id: str, session_id: str) -> None:
        record = NameRegistration(
            project=project, principal=principal_id, state=REGISTERED, session=session_id
        )

        def registered(held: NameRegistration) -> NameRegistration | None:
            if held.principal != principal_id:
                return None
            held.state = REGISTERED
            return held

        try:
            await self._names.create(keys.name_registration(project), record)
        except RecordExists:
            await self._names.update(keys.name_registration(project), registered)

    async def refuse_legacy_upload(
        self, project: str, filename: str | None, caller_id: str | None
    ) -> None:
        """409 for a legacy upload that a reservation forbids, whichever path it took."""
        if filename and await self.is_filename_reserved(project, filename):
            raise DomainError(
                Kind.CONFLICT,
                "filename-reserved",
                f"{filename} is being published (or was published) through Upload 2.0.",
                [Pointer("content", filename)],
            )
        held = await self._names.load(keys.name_registration(project))
        if held is None:
            return
        if held.state == RESERVED or (
            held.state == REGISTERED
            and held.principal != caller_id
            and await self.is_first_release(project)
        ):
            raise DomainError(
                Kind.CONFLICT,
                "name-reserved",
                f"The name {project} is reserved for another publisher's first release.",
                [Pointer("name", project)],
            )

    # -- filenames (R-P8) --------------------------------------------------------------

    async def is_filename_reserved(self, project: str, filename: str) -> bool:
        return await self._filenames.get(keys.filename_reservation(project, filename)) is not None

    async def reserved_against(self, session: PublishingSession, filename: str) -> bool:
        """Whether a reservation holds ``filename`` against a file create in ``session``
        (R-F5, R-P8). Its own are in its record: the files a failed publish kept reserved,
        as they may be on the index (``maybe_on_index``). Other sessions' come from one
        listing of the release's reservations, shared by the session's creates and complete
        for its whole life, however old: a reservation is made by a publish, a publishing
        session is its release's live one, and a release has one live session at a time
        (R-P3), so every other session's reservation of the release was made before this
        one began."""
        if filename in session.maybe_on_index:
            return True
        scope = (session.id, session.name, _release_start(filename))
        return filename in await self._reserved(scope)

    async def _reserved_from(self, scope: tuple[str, str, str]) -> frozenset[str]:
        _, project, start = scope
        prefix = keys.filename_reservations(project)
        listed = self._filenames.keys(keys.filename_reservations(project, start))
        return frozenset([key[len(prefix) :].removesuffix(".json") async for key in listed])

    async def reserve_filenames(
        self, project: str, filenames: list[str], sid: str
    ) -> FilenamesReserved:
        """Reserve every filename for session ``sid``, or none (then ``taken`` names the
        first one another session holds). A reservation ``sid`` already holds (a publish of
        its that failed, or an interrupted attempt) counts as made, and stays in either
        case: its file may be on the index."""
        created: list[str] = []
        for filename in filenames:
            key = keys.filename_reservation(project, filename)
            try:
                await self._filenames.create(key, FilenameReservation(session_id=sid))
                created.append(filename)
            except RecordExists:
                holder = await self._filenames.load(key)
                if holder is None or holder.session_id != sid:
                    await self.release_filenames(project, created, sid)
                    return FilenamesReserved(taken=filename)
        return FilenamesReserved()

    async def release_filenames(self, project: str, filenames: list[str], sid: str) -> None:
        """Drop this session's reservations of ``filenames``: the caller passes only files
        that never reached the index. One written as "published" (by an older gateway)
        stays whatever the caller says."""
        for filename in filenames:
            await self._filenames.delete_if(
                keys.filename_reservation(project, filename),
                lambda held: held.session_id == sid and held.state != "published",
            )


@dataclass(frozen=True)
class FilenamesReserved:
    """The outcome of :meth:`NameRegistry.reserve_filenames`."""

    taken: str | None = None  # the first filename another session holds: none was reserved


def _taken(project: str) -> DomainError:
    detail = f"The name {project} is reserved for another publisher's first release."
    return DomainError(Kind.FORBIDDEN, "name-reserved", detail, [Pointer("name", detail)])


def _release_start(filename: str) -> str:
    """The start that a release's filenames share: ``{name}-{version}`` of a wheel or a
    modern sdist (their name has no dash). An older sdist's dashed name gives a shorter
    start, which lists more keys but answers the same."""
    name, _, rest = filename.partition("-")
    version = rest.split("-", 1)[0].removesuffix(".tar.gz").removesuffix(".zip")
    return f"{name}-{version}"
