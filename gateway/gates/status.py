"""What a session's status says of its release gates (R-W11): who approved the files as they
are, and what is still missing before publish (the publish problem's list, without
re-verifying attestations: that is the publish's work)."""

from __future__ import annotations

from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState
from gateway.gates.approvals import Approvals
from gateway.gates.policy import ProjectPolicies
from gateway.gates.reviews import Reviews
from gateway.protocol.models import GateApproval, GateGap, ReleaseGates


class GateStatus:
    def __init__(self, policies: ProjectPolicies, approvals: Approvals, reviews: Reviews):
        self._policies = policies
        self._approvals = approvals
        self._reviews = reviews

    def covers(self, project: str) -> bool:
        return self._policies.for_project(project) is not None

    async def describe(
        self, session: PublishingSession, uploads: list[FileUpload]
    ) -> ReleaseGates | None:
        """None when no policy covers the project."""
        policy = self._policies.for_project(session.name)
        if policy is None:
            return None
        completed = [u for u in uploads if u.status == FileState.COMPLETED]
        given = await self._approvals.current(session, completed)
        missing: list[GateGap] = []
        if policy.require_attestations:
            missing += [
                GateGap(
                    source=f"files.{u.filename}", message="no attestation (the policy requires one)"
                )
                for u in completed
                if not u.has_attestations
            ]
        for filename, why in await self._reviews.unmet(session, completed):
            missing.append(GateGap(source=f"files.{filename}", message=why))
        approvals = await self._approvals.unmet(session, completed, policy)
        if approvals is not None:
            missing.append(GateGap(source="approvals", message=approvals))
        return ReleaseGates(
            approvals_required=policy.approvals,
            approved_by=[GateApproval(principal=a.principal, at=a.at.isoformat()) for a in given],
            missing=missing,
        )
