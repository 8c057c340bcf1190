"""Approvals (R-W11, python/peps#5070 "an index MAY require extra authorization for
publish"): ``approvals = N`` in a project's policy means N distinct principals allowed to
approve it (``approve`` globs on a principal), none of them the session's creator, must
approve before publish.

An approval is recorded against the release's files as they were (a fingerprint of their
names and sha256): changing any file withdraws every approval given before, without any
write at the change. The record ``sessions/{sid}/approvals.json`` is this service's alone
and goes with the session's data.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel

from gateway.auth.principals import Principal, may_approve
from gateway.domain import clock
from gateway.domain.errors import DomainError, Kind, Pointer
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState, SessionEvent
from gateway.domain.transitions import require
from gateway.gates.policy import ProjectPolicies
from gateway.services.audit import AuditTrail
from gateway.services.session_files import SessionFiles
from gateway.settings import ProjectPolicySettings
from gateway.store.record_store import JsonRecords, RecordExists, RecordMissing

SESSION_APPROVED = "session.approved"


class Approval(BaseModel):
    principal: str
    at: datetime
    files: str  # the fingerprint of the files it approved


class ApprovalRecord(BaseModel):
    approvals: list[Approval] = []


def approvals_key(session_id: str) -> str:
    return f"sessions/{session_id}/approvals.json"


def fingerprint(uploads: list[FileUpload]) -> str:
    """The release's files as approved: every completed file's name and sha256."""
    lines = sorted(
        f"{u.filename} {u.committed.digests['sha256']}"
        for u in uploads
        if u.status == FileState.COMPLETED and u.committed is not None
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class Approvals:
    def __init__(
        self,
        records: JsonRecords,
        files: SessionFiles,
        policies: ProjectPolicies,
        audit: AuditTrail,
    ):
        self._records = records
        self._files = files
        self._policies = policies
        self.audit = audit

    async def approve(self, session: PublishingSession, principal: Principal) -> list[Approval]:
        """Record ``principal``'s approval of the release's current files; the approvals
        that count now. 403 for a principal who may not approve or who created it."""
        if not may_approve(principal, session.name):
            raise _forbidden("not-an-approver", f"You may not approve {session.name} releases.")
        if principal.id == session.created_by:
            raise _forbidden("uploader-cannot-approve", "A release's uploader cannot approve it.")
        require(session, SessionEvent.EDIT_FILES)  # an open release, not one being published
        files = fingerprint(await self._files.records(session.id))
        approval = Approval(principal=principal.id, at=clock.now(), files=files)
        record = await self._write(session.id, approval)
        await self.audit.record(SESSION_APPROVED, session=session, detail=principal.id)
        return [a for a in record.approvals if a.files == files]

    async def _write(self, session_id: str, approval: Approval) -> ApprovalRecord:
        key = approvals_key(session_id)

        def add(data: dict[str, object]) -> dict[str, object]:
            record = ApprovalRecord.model_validate(data)
            others = [a for a in record.approvals if a.principal != approval.principal]
            return ApprovalRecord(approvals=[*others, approval]).model_dump(mode="json")

        for _ in range(2):  # the first approval creates the record; a racing one updates it
            try:
                stored = await self._records.update(key, add)
                return ApprovalRecord.model_validate(stored.data)
            except RecordMissing:
                try:
                    await self._records.create(key, add({}))
                    return ApprovalRecord.model_validate(add({}))
                except RecordExists:
                    continue
        raise DomainError(Kind.UNAVAILABLE, "contention", "Approvals changed meanwhile; retry.")

    def authorize_cancel(self, session: PublishingSession, principal: Principal) -> bool:
        """True when the policy says who may cancel (``cancel_requires = "approver"``) and
        ``principal`` is one; a 403 when it is not; False: the usual upload rights decide."""
        policy = self._policies.for_project(session.name)
        if policy is None or policy.cancel_requires != "approver":
            return False
        if not may_approve(principal, session.name):
            raise _forbidden(
                "cancel-requires-approver", f"Only an approver may cancel {session.name} releases."
            )
        return True

    def policy_for(self, project: str) -> ProjectPolicySettings | None:
        return self._policies.for_project(project)

    async def current(
        self, session: PublishingSession, uploads: list[FileUpload]
    ) -> list[Approval]:
        """The approvals given to the files as they are now (others were withdrawn)."""
        stored = await self._records.get(approvals_key(session.id))
        if stored is None:
            return []
        files = fingerprint(uploads)
        record = ApprovalRecord.model_validate(stored.data)
        return [
            a for a in record.approvals if a.files == files and a.principal != session.created_by
        ]

    async def unmet(
        self,
        session: PublishingSession,
        uploads: list[FileUpload],
        policy: ProjectPolicySettings | None,
    ) -> str | None:
        """What the release still lacks in approvals, or None."""
        if policy is None or policy.approvals == 0:
            return None
        given = await self.current(session, uploads)
        if len(given) >= policy.approvals:
            return None
        by = ", ".join(a.principal for a in given) or "nobody yet"
        return f"{len(given)} of {policy.approvals} approvals (approved by: {by})"


def _forbidden(slug: str, detail: str) -> DomainError:
    return DomainError(Kind.FORBIDDEN, slug, detail, [Pointer("Authorization", detail)])
