"""The periodic sweep every replica runs: expiry, purge, retention, stalled work.

Every change it makes is a compare-and-swap, so replicas sweeping at once never conflict.
"""

from __future__ import annotations

from typing import Protocol

from gateway import metrics
from gateway.logs import log
from gateway.services.audit import NO_AUDIT
from gateway.services.files import FileService
from gateway.services.sessions import SessionService
from gateway.sessions.errors import DomainError
from gateway.sessions.records import PublishingSession
from gateway.sessions.states import SessionState, is_terminal
from gateway.store.records import RecordChanged, RecordMissing


class LapsedPublishes(Protocol):
    """The publish side, which resumes a publish whose worker stopped (the publisher)."""

    async def resume_lapsed(self, session: PublishingSession) -> None: ...


class Sweeper:
    def __init__(self, sessions: SessionService, files: FileService, publisher: LapsedPublishes):
        self._sessions = sessions
        self._files = files
        self._publisher = publisher
        self.audit = NO_AUDIT  # set by the application

    async def sweep(self) -> None:
        counts = dict.fromkeys(SessionState, 0)
        async for sid in self._sessions.session_ids():
            try:
                state = await self._sweep_session(sid)
            except (RecordChanged, RecordMissing, DomainError):
                continue  # another replica or a request got there first
            except Exception:
                log.exception("sweep.session_failed", session=sid[:8])
                continue
            if state is not None:
                counts[state] += 1
        for state, count in counts.items():
            metrics.SESSIONS.labels(state.value).set(count)
        await self.audit.expire()  # audit days past retention

    async def _sweep_session(self, sid: str) -> SessionState | None:
        session = await self._sessions.find(sid)  # expires it when its time is up
        if session is None:
            return None
        if is_terminal(session.status):
            await self._sessions.tidy(session)
        elif session.publish is not None:
            await self._publisher.resume_lapsed(session)
        else:
            await self._files.resume_overdue(session)
        return session.status
