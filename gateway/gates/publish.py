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
from gateway.services.audit import AuditTrail
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
        audit: AuditTrail,
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
        verified = [(u.filename, v) for u, (_, v) in zip(uploads, found, strict=True)]
        await self._keep_provenance(session, verified)

    async def _keep_provenance(
        self, session: PublishingSession, files: list[tuple[str, list[Verified]]]
    ) -> None:
        """Each attested file's provenance written; a stale one (an earlier publish attempt
        of the same filename with attestations) removed for a file without. Which ones exist
        is one listing of the version's provenance, made only when some file has none: a
        release without attestations costs one request, not a DELETE per file."""
        name, version = session.name, session.version
        unattested = [filename for filename, verified in files if not verified]
        stale = await self._provenance.kept(name, version) if unattested else set()
        await asyncio.gather(
            *(self._provenance.keep(name, version, f, v) for f, v in files if v),
            *(self._provenance.forget(name, version, f) for f in unattested if f in stale),
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
