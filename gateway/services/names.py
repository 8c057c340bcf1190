"""Project-name reservation for first releases (R-P4) and registration (R-P12).

A session for a project the index has never seen reserves the name for the principal that
opened it, so two publishers racing to claim a new name cannot both win at publish time.
Canceling or expiring that session releases the name; publishing it (even empty) turns the
reservation into a registration. While the index has no file of the project, another
principal's first-release session for the name is refused with 403 (which also keeps the
name's existence from anyone not entitled to it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.protocol.problems import ErrorItem, Problem
from gateway.store import keys
from gateway.store.records import RecordChanged, RecordExists, RecordStore

PublishedFiles = Callable[[str], Awaitable[dict[str, str | None]]]

RESERVED = "reserved"
REGISTERED = "registered"


class NameRegistry:
    def __init__(self, records: RecordStore, published_files: PublishedFiles):
        self._records = records
        self._published_files = published_files

    async def is_first_release(self, project: str) -> bool:
        return not await self._published_files(project)

    async def check(self, project: str, principal_id: str) -> None:
        """Refuse a principal another principal's reserved or registered name."""
        stored = await self._records.get(keys.name_registration(project))
        if stored is not None and stored.data.get("principal") != principal_id:
            raise _taken(project)

    async def reserve(self, project: str, principal_id: str, session_id: str) -> None:
        record = {"project": project, "principal": principal_id, "state": RESERVED}
        try:
            await self._records.create(
                keys.name_registration(project), {**record, "session": session_id}
            )
        except RecordExists:
            await self.check(project, principal_id)

    async def release(self, project: str, session_id: str) -> None:
        """Forget a reservation made by this session; registrations stay."""
        stored = await self._records.get(keys.name_registration(project))
        if (
            stored is not None
            and stored.data.get("state") == RESERVED
            and stored.data.get("session") == session_id
        ):
            with contextlib.suppress(RecordChanged):
                await self._records.delete(keys.name_registration(project), stored.etag)

    async def register(self, project: str, principal_id: str, session_id: str) -> None:
        record = {
            "project": project,
            "principal": principal_id,
            "state": REGISTERED,
            "session": session_id,
        }

        def mutate(data: dict[str, Any]) -> dict[str, Any]:
            return {**data, "state": REGISTERED} if data.get("principal") == principal_id else data

        try:
            await self._records.create(keys.name_registration(project), record)
        except RecordExists:
            await self._records.update(keys.name_registration(project), mutate)

    async def refuse_legacy_upload(
        self, project: str, filename: str | None, caller_id: str | None
    ) -> None:
        """409 for a legacy upload that a reservation forbids, whichever path it took."""
        if filename and await self._records.get(keys.filename_reservation(project, filename)):
            raise Problem(
                409,
                "filename-reserved",
                f"{filename} is being published (or was published) through Upload 2.0.",
                [ErrorItem("content", filename)],
            )
        stored = await self._records.get(keys.name_registration(project))
        if stored is None:
            return
        state = stored.data.get("state")
        if state == RESERVED or (
            state == REGISTERED
            and stored.data.get("principal") != caller_id
            and await self.is_first_release(project)
        ):
            raise Problem(
                409,
                "name-reserved",
                f"The name {project} is reserved for another publisher's first release.",
                [ErrorItem("name", project)],
            )


def _taken(project: str) -> Problem:
    detail = f"The name {project} is reserved for another publisher's first release."
    return Problem(403, "name-reserved", detail, [ErrorItem("name", detail)])
