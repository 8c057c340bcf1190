"""The audit journal (docs/audit.md): who did what to which release, when, from where.

Every event is written to S3 before the action is answered; an event that cannot be written
raises (the caller answers 503 ``storage-unavailable``), and is logged at error level with its
content, so that it is never lost silently. What a request knows about its caller (address,
user agent, request id, principal) travels in a context variable that the API layer sets, so
services record an event without being handed the request.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from gateway.domain.records import FileUpload, PublishingSession, PublishJournal
from gateway.logs import log
from gateway.protocol import audit
from gateway.protocol.audit import AuditEvent, AuditFile, AuditPage, AuditPrincipal
from gateway.store import keys
from gateway.store.audit import AuditStore, day_of, event_id, moment_of

GATEWAY = AuditPrincipal(id="gateway", name="upload-gateway", kind="gateway")


@dataclass
class RequestFacts:
    """The request being answered, as the journal records it."""

    client_address: str | None
    user_agent: str | None
    request_id: str | None
    principal: AuditPrincipal | None = None
    # Set where a refusal is raised, so the API layer can record it on the way out.
    # action (None: by the answer's status, 401 or 403), project, detail
    refusal: tuple[str | None, str | None, str] | None = None


REQUEST: ContextVar[RequestFacts | None] = ContextVar("audit_request", default=None)


def refused(action: str | None, project: str | None, detail: str) -> None:
    """Access control is about to refuse the request: the API layer records it on the way out."""
    facts = REQUEST.get()
    if facts is not None:
        facts.refusal = (action, project, detail)


def _who(principal_id: str) -> AuditPrincipal:
    """The request's principal when it is ``principal_id`` (it has the OIDC claims), else
    what the id tells: deferred and resumed work records the principal that asked for it."""
    facts = REQUEST.get()
    if facts is not None and facts.principal is not None and facts.principal.id == principal_id:
        return facts.principal
    kind, _, name = principal_id.partition(":")
    return AuditPrincipal(id=principal_id, name=name, kind=kind)


def files_of(uploads: dict[str, str | None]) -> list[AuditFile]:
    return [AuditFile(filename=name, sha256=sha) for name, sha in sorted(uploads.items())]


class AuditTrail:
    """Writes and reads the journal; ``store`` None means auditing is switched off."""

    def __init__(self, store: AuditStore | None, retention_days: int = 0):
        self._store = store
        self._retention_days = retention_days

    @property
    def enabled(self) -> bool:
        return self._store is not None

    async def record(
        self,
        action: str,
        *,
        project: str | None = None,
        version: str | None = None,
        files: list[AuditFile] | None = None,
        outcome: str = audit.OK,
        session: PublishingSession | None = None,
        principal: AuditPrincipal | None = None,
        detail: str | None = None,
        moment: datetime | None = None,
        once_per: str | None = None,
    ) -> None:
        """Record an event now. ``once_per`` (with ``moment``) names an occurrence that
        several replicas or retries may record: they all write the same object."""
        if self._store is None:
            return
        facts = REQUEST.get()
        moment = moment or datetime.now(UTC)
        event = AuditEvent(
            id=event_id(moment, once_per),
            time=moment,
            action=action,
            outcome=outcome,
            project=project or (session.name if session else None),
            version=version or (session.version if session else None),
            files=files or [],
            principal=principal or (facts.principal if facts else None),
            client_address=facts.client_address if facts else None,
            user_agent=facts.user_agent if facts else None,
            request_id=facts.request_id if facts else None,
            session=session.id[:8] if session else None,
            detail=detail,
        )
        await self._write(event)

    async def _write(self, event: AuditEvent) -> None:
        assert self._store is not None
        data = event.model_dump(mode="json", exclude_none=True)
        day = day_of(event.time)
        scopes = [None] if event.project is None else [None, event.project]
        try:
            await asyncio.gather(
                *(self._store.append(keys.audit_event(day, s, event.id), data) for s in scopes)
            )
        except Exception:
            log.error("audit.write_failed", audit_event=data)
            raise

    async def file_event(
        self, session: PublishingSession, upload: FileUpload, detail: str | None = None
    ) -> None:
        """A file completed (``detail`` None) or failed its validation (``detail`` says why)."""
        digest = upload.committed.digests.get("sha256") if upload.committed else None
        digest = digest or upload.hashes.get("sha256")
        await self.record(
            audit.FILE_FAILED if detail else audit.FILE_COMPLETED,
            session=session,
            files=[AuditFile(filename=upload.filename, sha256=digest)],
            outcome=audit.FAILED if detail else audit.OK,
            detail=detail,
        )

    async def published(
        self, session: PublishingSession, journal: PublishJournal, files: dict[str, str | None]
    ) -> None:
        """Once per publish attempt, whichever replica finishes it (a holder whose lease
        lapsed under load may finish it too: both write the same object)."""
        await self.record(
            audit.SESSION_PUBLISHED,
            session=session,
            files=files_of(files),
            principal=_who(journal.published_by),
            moment=journal.started_at,
            once_per=f"published:{session.id}:{journal.attempt}",
        )

    async def publish_failed(self, session: PublishingSession, by: str, reason: str) -> None:
        await self.record(
            audit.PUBLISH_FAILED,
            session=session,
            outcome=audit.FAILED,
            principal=_who(by),
            detail=reason,
        )

    async def name_registered(self, session: PublishingSession, journal: PublishJournal) -> None:
        await self.record(
            audit.NAME_REGISTERED,
            session=session,
            principal=_who(journal.published_by),
            moment=journal.started_at,
            once_per=f"registered:{session.id}:{journal.attempt}",
        )

    async def session_expired(self, session: PublishingSession) -> None:
        """Recorded before the expiry is, by whichever replica or request sees it first."""
        await self.record(
            audit.SESSION_EXPIRED,
            session=session,
            principal=GATEWAY,
            detail=f"created by {session.created_by}",
            moment=session.expires_at,
            once_per=f"expired:{session.id}",
        )

    async def read(
        self, project: str | None, since: datetime | None, cursor: str | None, limit: int
    ) -> AuditPage:
        """A page of events, newest first; ``cursor`` is a previous page's ``next``."""
        if self._store is None:
            return AuditPage(events=[], next=None)
        found = await self._newest_ids(project, since, cursor, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        events = await asyncio.gather(
            *(self._store.get(keys.audit_event(day, project, eid)) for day, eid in found)
        )
        page = [AuditEvent.model_validate(e) for e in events if e is not None]
        return AuditPage(events=page, next=f"{found[-1][0]}/{found[-1][1]}" if more else None)

    async def _newest_ids(
        self, project: str | None, since: datetime | None, cursor: str | None, wanted: int
    ) -> list[tuple[str, str]]:
        assert self._store is not None
        start_day, after = cursor.split("/") if cursor else (None, None)
        found: list[tuple[str, str]] = []
        for day in reversed(await self._store.days()):
            if start_day is not None and day > start_day:
                continue
            if since is not None and day < day_of(since):
                break
            scope = keys.audit_scope(day, project)
            async for eid in self._store.event_ids(scope, after if day == start_day else None):
                if since is not None and moment_of(day, eid) < since:
                    return found
                found.append((day, eid))
                if len(found) == wanted:
                    return found
        return found

    async def expire(self, today: date | None = None) -> None:
        """Delete the days past retention: one listing of the day prefixes, then only the
        expired days' objects."""
        if self._store is None or not self._retention_days:
            return
        today = today or datetime.now(UTC).date()
        cutoff = (today - timedelta(days=self._retention_days)).isoformat()
        for day in await self._store.days():
            if day >= cutoff:
                break
            await self._store.delete_day(day)
            log.info("audit.day_expired", day=day)


NO_AUDIT = AuditTrail(None)  # auditing switched off (the fast tier, tools)
