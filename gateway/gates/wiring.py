"""The gates built from ``[policy]``, sharing one Sigstore verifier; provenance links are
under ``server.public_base_url``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.domain.records import PublishingSession
from gateway.gates.approvals import Approvals
from gateway.gates.attestations import AttestationVerifier, sigstore_verifier
from gateway.gates.auto_publish import AutoPublisher
from gateway.gates.policy import ProjectPolicies
from gateway.gates.provenance import ProvenanceStore
from gateway.gates.publish import PublishGate
from gateway.gates.review_runner import ReviewRunner
from gateway.gates.reviews import AddNotice, ReviewedSessions, Reviews, Wakeups
from gateway.gates.service import AttestationGate
from gateway.gates.status import GateStatus
from gateway.services.audit import AuditTrail
from gateway.services.session_files import SessionFiles
from gateway.settings import Settings
from gateway.store.blobs import BlobStore
from gateway.store.record_store import JsonRecords


@dataclass
class Gates:
    attestations: AttestationGate  # when an attestation is attached
    publish: PublishGate  # when the release is published
    provenance: ProvenanceStore  # what it keeps of published files' attestations
    approvals: Approvals
    reviews: Reviews  # the review step, started when a file completes
    policies: ProjectPolicies
    status: GateStatus  # what a session's status says of them


@dataclass(frozen=True)
class Around:
    """What the gates need of the services around them (the session's owner, the due index,
    the file records' notices)."""

    sessions: ReviewedSessions
    due: Wakeups
    add_notice: AddNotice


def build_gates(
    settings: Settings,
    records: JsonRecords,
    blobs: BlobStore,
    files: SessionFiles,
    audit: AuditTrail,
    around: Around,
) -> Gates:
    verifier = AttestationVerifier(sigstore_verifier(settings.policy))
    policies = ProjectPolicies(settings.policy)
    base = settings.server.public_base_url.rstrip("/")
    provenance = ProvenanceStore(blobs, lambda path: base + path, verifier)
    approvals = Approvals(records, files, policies, audit)
    runner = ReviewRunner(settings.policy)
    reviews = Reviews(
        records,
        blobs,
        files,
        around.sessions,
        around.due,
        policies,
        runner,
        around.add_notice,
        audit,
    )
    return Gates(
        attestations=AttestationGate(verifier, policies, audit),
        publish=PublishGate(verifier, policies, blobs, provenance, approvals, reviews, audit),
        provenance=provenance,
        approvals=approvals,
        reviews=reviews,
        policies=policies,
        status=GateStatus(policies, approvals, reviews),
    )


class PendingGateWork:
    """What the sweep resumes of the gates: reviews a vanished replica left, auto-publishes
    whose time came."""

    def __init__(self, reviews: Reviews, auto_publish: AutoPublisher):
        self._reviews = reviews
        self._auto_publish = auto_publish

    async def resume(self, session: PublishingSession) -> datetime | None:
        moments = (
            await self._reviews.resume(session),
            await self._auto_publish.consider(session),
        )
        return min((m for m in moments if m is not None), default=None)
