"""The publish gate (R-W11): a covered project's release publishes only when every file has
an attestation that verifies for it and comes from a publisher the policy lists. Publish is
refused with one problem naming each file and what it lacks (a review not passed for its
bytes among it, :mod:`gateway.gates.reviews`); the check reads each attested
file's stored attestations once (flat per file) and re-verifies them offline, so a policy
changed since they were attached still holds. A release that passes has each file's PEP 740
provenance kept (:mod:`gateway.gates.provenance`)."""

from __future__ import annotations

import asyncio
import json

from gateway.domain.errors import DomainError, Kind, Pointer
from gateway.domain.records import FileUpload, PublishingSession
from gateway.gates.approvals import Approvals
from gateway.gates.attestations import AttestationRefused, AttestationVerifier, Verified
from gateway.gates.policy import ProjectPolicies, refuse_unlisted
from gateway.gates.provenance import ProvenanceStore
from gateway.gates.reviews import Reviews
from gateway.protocol import audit
from gateway.protocol.audit import AuditFile
from gateway.services.audit import NO_AUDIT, AuditTrail
from gateway.settings import ProjectPolicySettings
from gateway.store import keys
from gateway.store.blobs import BlobStore

GATES_UNMET = "session.gates-unmet"


class PublishGate:
    def __init__(
        self,
        verifier: AttestationVerifier,
        policies: ProjectPolicies,
        blobs: BlobStore,
        provenance: ProvenanceStore,
        approvals: Approvals,
        reviews: Reviews,
        audit: AuditTrail = NO_AUDIT,
    ):
        self._verifier = verifier
        self._policies = policies
        self._blobs = blobs
        self._provenance = provenance
        self._approvals = approvals
        self._reviews = reviews
        self.audit = audit

    async def check(self, session: PublishingSession, uploads: list[FileUpload]) -> None:
        """Nothing (and each file's provenance kept), or a 409 ``release-gates-unmet``
        listing every file's unmet gate."""
        policy = self._policies.for_project(session.name)
        found = await asyncio.gather(*(self._attested(session, u, policy) for u in uploads))
        unmet = {u.filename: why for u, (why, _) in zip(uploads, found, strict=True) if why}
        for filename, why in await self._reviews.unmet(session, uploads):
            unmet[filename] = f"{unmet[filename]}; {why}" if filename in unmet else why
        gaps = [Pointer(f"files.{name}", why) for name, why in sorted(unmet.items())]
        approvals = await self._approvals.unmet(session, uploads, policy)
        if approvals is not None:
            gaps.append(Pointer("approvals", approvals))
        if gaps:
            await self._refuse(session, gaps)
        await asyncio.gather(
            *(
                self._provenance.keep(session.name, session.version, u.filename, verified)
                if verified
                else self._provenance.forget(session.name, session.version, u.filename)
                for u, (_, verified) in zip(uploads, found, strict=True)
            )
        )

    async def _refuse(self, session: PublishingSession, gaps: list[Pointer]) -> None:
        listed = "; ".join(f"{gap.source.removeprefix('files.')}: {gap.message}" for gap in gaps)
        files = [g.source.removeprefix("files.") for g in gaps if g.source.startswith("files.")]
        await self.audit.record(
            GATES_UNMET,
            session=session,
            files=[AuditFile(filename=name) for name in files],
            outcome=audit.REFUSED,
            detail=listed,
        )
        raise DomainError(
            Kind.CONFLICT,
            "release-gates-unmet",
            f"{session.name} {session.version} cannot be published yet: {listed}",
            gaps,
        )

    async def _attested(
        self,
        session: PublishingSession,
        upload: FileUpload,
        policy: ProjectPolicySettings | None,
    ) -> tuple[str | None, list[Verified]]:
        """(what the file lacks or None, its attestations verified again)."""
        if not upload.has_attestations:
            required = policy is not None and policy.require_attestations
            return ("no attestation (the policy requires one)" if required else None), []
        stored = await self._blobs.get(keys.attestations(session.id, upload.id))
        if stored is None:
            return "its attestations are not in storage", []
        assert upload.committed is not None  # publish checked every file is completed
        sha256 = upload.committed.digests["sha256"]
        try:
            verified = await asyncio.to_thread(
                self._verifier.verify, json.loads(stored), upload.filename, sha256
            )
            refuse_unlisted(session.name, policy, verified)
        except AttestationRefused as refused:
            return f"{refused.reason.value}: {refused.message}", []
        return None, verified
