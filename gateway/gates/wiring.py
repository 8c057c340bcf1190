"""The gates built from ``[policy]``, sharing one Sigstore verifier; provenance links are
under ``server.public_base_url``."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.gates.approvals import Approvals
from gateway.gates.attestations import AttestationVerifier, sigstore_verifier
from gateway.gates.policy import ProjectPolicies
from gateway.gates.provenance import ProvenanceStore
from gateway.gates.publish import PublishGate
from gateway.gates.service import AttestationGate
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


def build_gates(
    settings: Settings,
    records: JsonRecords,
    blobs: BlobStore,
    files: SessionFiles,
    audit: AuditTrail,
) -> Gates:
    verifier = AttestationVerifier(sigstore_verifier(settings.policy))
    policies = ProjectPolicies(settings.policy)
    base = settings.server.public_base_url.rstrip("/")
    provenance = ProvenanceStore(blobs, lambda path: base + path, verifier)
    approvals = Approvals(records, files, policies, audit)
    return Gates(
        attestations=AttestationGate(verifier, policies, audit),
        publish=PublishGate(verifier, policies, blobs, provenance, approvals, audit),
        provenance=provenance,
        approvals=approvals,
    )
