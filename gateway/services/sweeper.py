"""The periodic sweep every replica runs: expiry, purge, retention, stalled work.

Every change it makes is a compare-and-swap, so replicas sweeping at once never conflict.
"""

from __future__ import annotations

from gateway.logs import log
from gateway.protocol.problems import Problem
from gateway.publish.publisher import Publisher
from gateway.services.files import FileService
from gateway.services.sessions import SessionService
from gateway.sessions.states import is_terminal
from gateway.store.records import RecordChanged, RecordMissing


class Sweeper:
    def __init__(self, sessions: SessionService, files: FileService, publisher: Publisher):
        self._sessions = sessions
        self._files = files
        self._publisher = publisher

    async def sweep(self) -> None:
        async for sid in self._sessions.session_ids():
            try:
                await self._sweep_session(sid)
            except (RecordChanged, RecordMissing, Problem):
                continue  # another replica or a request got there first
            except Exception:
                log.exception("sweep.session_failed", session=sid[:8])

    async def _sweep_session(self, sid: str) -> None:
        session = await self._sessions.find(sid)  # expires it when its time is up
        if session is None:
            return
        if is_terminal(session.status):
            await self._sessions.tidy(session)
        elif session.publish is not None:
            await self._publisher.resume_lapsed(session)
        else:
            await self._files.resume_overdue(session)
