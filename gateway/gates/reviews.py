"""The review step (R-W11, python/peps#5070): ``review = ["command", "{file}"]`` in a
project's policy runs on every completed file before the release may publish.

While a review runs the session is ``processing`` (its files stay editable); a failing one
puts it in ``error`` with the command's output as the notice, and replacing the file reviews
the new one. Each review is recorded in ``sessions/{sid}/reviews.json`` (this service's
alone; it goes with the session's data) under a lease: a replica that dies mid-review leaves
a lease that lapses, and the sweep, visiting when it does, runs the review again (the due
index is told). A verdict counts for the file's sha256 only.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel

from gateway.domain import clock
from gateway.domain.lease import Lease, granted
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState, SessionEvent
from gateway.domain.transitions import in_review
from gateway.gates.policy import ProjectPolicies
from gateway.gates.review_runner import ReviewRunner, Verdict
from gateway.logs import log
from gateway.protocol import audit
from gateway.protocol.audit import AuditFile
from gateway.services.audit import AuditTrail
from gateway.services.session_files import SessionFiles
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordChanged, RecordExists, RecordMissing
from gateway.store.typed import Records

REVIEW_PASSED = "review.passed"
REVIEW_FAILED = "review.failed"
# A lease outlives the command's timeout by this much: the holder never needs to renew it.
LEASE_MARGIN = timedelta(seconds=2)


class Review(BaseModel):
    filename: str
    sha256: str
    state: Literal["running", "passed", "failed"]
    output: str = ""
    holder: str | None = None
    until: datetime | None = None

    @property
    def lease(self) -> Lease:
        return Lease(self.holder, self.until)


class ReviewRecord(BaseModel):
    reviews: dict[str, Review] = {}  # file id -> its latest review


def reviews_key(session_id: str) -> str:
    return f"sessions/{session_id}/reviews.json"


class ReviewedSessions(Protocol):
    """The session's owner, which moves it through the review events."""

    async def reviewed(self, sid: str, event: SessionEvent, notice: str | None = None) -> None: ...


class FileBytes(Protocol):
    def stream(self, key: str) -> AsyncIterator[bytes]: ...


class Wakeups(Protocol):
    async def wake_at(self, sid: str, when: datetime) -> None: ...


AddNotice = Callable[[str, str, str], Awaitable[None]]


class Reviews:
    def __init__(
        self,
        records: JsonRecords,
        blobs: FileBytes,
        files: SessionFiles,
        sessions: ReviewedSessions,
        due: Wakeups,
        policies: ProjectPolicies,
        runner: ReviewRunner,
        add_notice: AddNotice,
        audit: AuditTrail,
    ):
        self._records = Records(records, ReviewRecord)
        self._blobs = blobs
        self._files = files
        self._sessions = sessions
        self._due = due
        self._policies = policies
        self._runner = runner
        self._add_notice = add_notice
        self._audit = audit
        self.holder = secrets.token_hex(8)
        self.running: set[asyncio.Task[None]] = set()

    # -- starting a review -----------------------------------------------------------------

    async def file_completed(self, session: PublishingSession, upload: FileUpload) -> None:
        """A file completed: review it if the project's policy says so (in the background)."""
        command = self._command(session.name)
        if command is not None and upload.committed is not None:
            await self._begin(session, upload, command)

    def _command(self, project: str) -> list[str] | None:
        policy = self._policies.for_project(project)
        return None if policy is None or not policy.review else list(policy.review)

    async def _begin(
        self,
        session: PublishingSession,
        upload: FileUpload,
        command: list[str],
        only_if: Callable[[Review | None], bool] | None = None,
    ) -> bool:
        """Hold the file's review and run it in the background (False: ``only_if`` did not
        hold of the review recorded: another replica got there first)."""
        assert upload.committed is not None
        lease = granted(self.holder, timedelta(seconds=self._runner.timeout) + LEASE_MARGIN)
        assert lease.until is not None
        review = Review(
            filename=upload.filename,
            sha256=upload.committed.digests["sha256"],
            state="running",
            holder=lease.holder,
            until=lease.until,
        )
        await self._due.wake_at(session.id, lease.until)  # first: a crash leaves it visited
        if not await self._put(session.id, upload.id, review, only_if):
            return False
        await self._sessions.reviewed(session.id, SessionEvent.REVIEW_STARTED)
        self._spawn(self._review(session, upload, command))
        return True

    async def _put(
        self,
        sid: str,
        fid: str,
        review: Review,
        only_if: Callable[[Review | None], bool] | None = None,
    ) -> bool:
        """Write ``review`` for the file, if ``only_if`` holds of the one recorded."""
        key = reviews_key(sid)

        def change(record: ReviewRecord) -> ReviewRecord | None:
            if only_if is not None and not only_if(record.reviews.get(fid)):
                return None
            record.reviews[fid] = review
            return record

        for _ in range(3):  # the first review creates the record; a racing one updates it
            try:
                stored = await self._records.update(key, change)
                return stored.reviews.get(fid) == review
            except RecordMissing:
                if only_if is not None and not only_if(None):
                    return False
                try:
                    await self._records.create(key, ReviewRecord(reviews={fid: review}))
                    return True
                except RecordExists:
                    continue
        raise RecordChanged(key)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                # The lease lapses and the sweep reviews the file again.
                log.exception("review.crashed")

        task = asyncio.create_task(guarded())
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    # -- running it ------------------------------------------------------------------------

    async def _review(
        self, session: PublishingSession, upload: FileUpload, command: list[str]
    ) -> None:
        assert upload.committed is not None
        key = keys.file_bytes(session.id, upload.id, upload.committed.attempt)
        verdict = await self._runner.run(command, upload.filename, self._blobs.stream(key))
        sha256 = upload.committed.digests["sha256"]
        done = Review(
            filename=upload.filename,
            sha256=sha256,
            state="passed" if verdict.passed else "failed",
            output=verdict.output,
        )

        def still_ours(current: Review | None) -> bool:
            return (
                current is not None
                and current.state == "running"
                and current.sha256 == sha256
                and current.lease.is_held_by(self.holder)
            )

        if not await self._put(session.id, upload.id, done, still_ours):
            return  # another replica took it over (this one was too slow): its verdict counts
        await self._record(session, upload, sha256, verdict)
        await self.settle(session.id)

    async def _record(
        self, session: PublishingSession, upload: FileUpload, sha256: str, verdict: Verdict
    ) -> None:
        log.info(
            "review.done", session=session.id[:8], filename=upload.filename, passed=verdict.passed
        )
        if not verdict.passed:
            await self._add_notice(session.id, upload.id, _finding(upload.filename, verdict.output))
        await self._audit.record(
            REVIEW_PASSED if verdict.passed else REVIEW_FAILED,
            session=session,
            files=[AuditFile(filename=upload.filename, sha256=sha256)],
            outcome=audit.OK if verdict.passed else audit.REFUSED,
            detail=verdict.output[:2000] or None,
        )

    async def settle(self, sid: str) -> None:
        """Move the session to what its files' reviews say: ``processing`` while one runs,
        else ``error`` when one failed, else ``open``. Read again until the reviews did not
        change meanwhile, so that the last of two racing verdicts decides."""
        for _ in range(5):
            before = await self._records.get(reviews_key(sid))
            if before is None:
                return
            uploads = await self._files.records(sid)
            event, notice = _outcome(before.value, _completed(uploads))
            await self._sessions.reviewed(sid, event, notice)
            after = await self._records.get(reviews_key(sid))
            if after is not None and after.etag == before.etag:
                return

    # -- what publish and the sweep ask ----------------------------------------------------

    async def unmet(
        self, session: PublishingSession, uploads: list[FileUpload]
    ) -> list[tuple[str, str]]:
        """(filename, why) for each file whose review has not passed for its bytes."""
        if self._command(session.name) is None:
            return []
        stored = await self._records.load(reviews_key(session.id))
        reviews = stored.reviews if stored is not None else {}
        gaps = []
        for upload in uploads:
            review = reviews.get(upload.id)
            sha256 = upload.committed.digests["sha256"] if upload.committed else None
            if review is None or review.sha256 != sha256:
                gaps.append((upload.filename, "not reviewed yet"))
            elif review.state == "running":
                gaps.append((upload.filename, "its review is under way"))
            elif review.state == "failed":
                gaps.append((upload.filename, _finding(upload.filename, review.output)))
        return gaps

    async def resume(self, session: PublishingSession) -> datetime | None:
        """Review again what a vanished replica left running (its lease lapsed) or never
        started (it died between completion and review); when to look again."""
        command = self._command(session.name)
        if command is None:
            return None
        stored = await self._records.load(reviews_key(session.id))
        reviews = stored.reviews if stored is not None else {}
        deadlines: list[datetime] = []
        for upload in _completed(await self._files.records(session.id)).values():
            review = reviews.get(upload.id)
            if review is not None and _current(review, upload):
                if review.state != "running":
                    continue
                if review.lease.is_live() and review.until is not None:
                    deadlines.append(review.until)
                    continue
            if await self._take_over(session, upload, review, command):
                deadlines.append(clock.now() + timedelta(seconds=self._runner.timeout))
        if not deadlines and in_review(session):
            await self.settle(session.id)  # the file under review was deleted meanwhile
        return min(deadlines, default=None)

    async def _take_over(
        self,
        session: PublishingSession,
        upload: FileUpload,
        seen: Review | None,
        command: list[str],
    ) -> bool:
        def unchanged(current: Review | None) -> bool:
            return current == seen

        taken = await self._begin(session, upload, command, unchanged)
        if taken:
            log.info("review.resumed", session=session.id[:8], filename=upload.filename)
        return taken


def _completed(uploads: list[FileUpload]) -> dict[str, FileUpload]:
    """The session's completed files, by id (replaced and deleted ones no longer count)."""
    return {u.id: u for u in uploads if u.status == FileState.COMPLETED and u.committed}


def _current(review: Review | None, upload: FileUpload) -> bool:
    return (
        review is not None
        and upload.committed is not None
        and review.sha256 == upload.committed.digests["sha256"]
    )


def _outcome(
    record: ReviewRecord, completed: dict[str, FileUpload]
) -> tuple[SessionEvent, str | None]:
    reviews = [r for fid, r in record.reviews.items() if fid in completed]
    if any(r.state == "running" for r in reviews):
        return SessionEvent.REVIEW_STARTED, None
    failed = [r for r in reviews if r.state == "failed"]
    if failed:
        return SessionEvent.REVIEW_FAILED, _finding(failed[0].filename, failed[0].output)
    return SessionEvent.REVIEW_PASSED, None


def _finding(filename: str, output: str) -> str:
    return f"The review of {filename} failed: {output}"
