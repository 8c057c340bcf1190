"""Auto-publish (R-W11, python/peps#5070: an index may publish a session created for a legacy
client once review passes): ``auto_publish = "when-gates-pass"`` publishes a session that
staged legacy uploads created once every gate passed and no file arrived for
``auto_publish_quiet`` seconds, so that ``twine upload dist/*`` needs no second command.

A file completing starts a timer in this process; the sweep looks too (the due index is
told), so a restart loses nothing. Publishing goes through the ordinary publish, with its
gates: what they refuse waits for the next look.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gateway.domain import clock
from gateway.domain.errors import DomainError
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState, SessionState
from gateway.gates.policy import ProjectPolicies
from gateway.logs import log
from gateway.services.audit import AuditTrail
from gateway.services.session_files import SessionFiles
from gateway.settings import ProjectPolicySettings

AUTO_PUBLISHED = "session.auto-published"
WHEN_GATES_PASS = "when-gates-pass"
# While a review runs, the timer looks this often (the review's own end is not announced).
POLL = timedelta(seconds=1)


@dataclass(frozen=True)
class SessionCreator:
    """Who the auto-publish acts for: the session's creator, with the gateway's own index
    credential (a caller's is never stored)."""

    id: str
    backend_credentials: None = None


class Publishes(Protocol):
    async def publish(
        self, session: PublishingSession, principal: SessionCreator, etag: str | None = None
    ) -> PublishingSession: ...


class Sessions(Protocol):
    async def find(self, sid: str) -> PublishingSession | None: ...


class Wakeups(Protocol):
    async def wake_at(self, sid: str, when: datetime) -> None: ...


class AutoPublisher:
    def __init__(
        self,
        policies: ProjectPolicies,
        sessions: Sessions,
        files: SessionFiles,
        publisher: Publishes,
        due: Wakeups,
        audit: AuditTrail,
    ):
        self._policies = policies
        self._sessions = sessions
        self._files = files
        self._publisher = publisher
        self._due = due
        self._audit = audit
        self._timers: dict[str, asyncio.Task[None]] = {}  # session id -> its timer

    def _policy(self, session: PublishingSession) -> ProjectPolicySettings | None:
        policy = self._policies.for_project(session.name)
        wanted = policy is not None and policy.auto_publish == WHEN_GATES_PASS
        return policy if wanted and session.created_via == "legacy" else None

    async def file_completed(self, session: PublishingSession, upload: FileUpload) -> None:
        """A file arrived: (re)start the session's quiet period."""
        policy = self._policy(session)
        if policy is None:
            return
        quiet = timedelta(seconds=policy.auto_publish_quiet)
        await self._due.wake_at(session.id, clock.now() + quiet)
        earlier = self._timers.pop(session.id, None)
        if earlier is not None:
            earlier.cancel()
        timer = asyncio.create_task(self._after(session.id, quiet))
        self._timers[session.id] = timer
        timer.add_done_callback(lambda done: self._forget(session.id, done))

    def _forget(self, sid: str, timer: asyncio.Task[None]) -> None:
        if self._timers.get(sid) is timer:
            del self._timers[sid]

    async def _after(self, sid: str, wait: timedelta) -> None:
        try:
            while True:
                await asyncio.sleep(wait.total_seconds())
                session = await self._sessions.find(sid)
                following = None if session is None else await self.consider(session)
                if following is None:
                    return
                wait = max(following - clock.now(), POLL)
        except Exception:
            log.exception("auto_publish.failed", session=sid[:8])  # the sweep looks again

    async def consider(self, session: PublishingSession) -> datetime | None:
        """Publish the session if its time has come; when to look again (None: never)."""
        policy = self._policy(session)
        if policy is None or session.publish is not None:
            return None
        if session.status == SessionState.PROCESSING:
            return clock.now() + POLL  # a review runs
        if session.status != SessionState.OPEN:
            return None  # a failed review or publish waits for a person
        uploads = list(self._files.visible(await self._files.records(session.id)).values())
        if not uploads or any(u.status != FileState.COMPLETED for u in uploads):
            return clock.now() + timedelta(seconds=policy.auto_publish_quiet)
        quiet_from = max(u.created_at for u in uploads) + timedelta(
            seconds=policy.auto_publish_quiet
        )
        if quiet_from > clock.now():
            return quiet_from
        return await self._publish(session, policy)

    async def _publish(
        self, session: PublishingSession, policy: ProjectPolicySettings
    ) -> datetime | None:
        try:
            published = await self._publisher.publish(session, SessionCreator(session.created_by))
        except DomainError as refused:
            # Gates not met yet (approvals, say): look again after another quiet period.
            log.info("auto_publish.waiting", session=session.id[:8], why=refused.detail)
            return clock.now() + timedelta(seconds=policy.auto_publish_quiet)
        log.info("auto_publish.done", session=session.id[:8], status=published.status.value)
        await self._audit.record(AUTO_PUBLISHED, session=session, detail=published.status.value)
        return None

    def stop(self) -> None:
        """On shutdown: the sweep of whichever replica runs it takes over."""
        for timer in self._timers.values():
            timer.cancel()
