"""The gates built from ``[policy]``."""

from __future__ import annotations

from gateway.gates.attestations import AttestationVerifier, sigstore_verifier
from gateway.gates.policy import ProjectPolicies
from gateway.gates.service import AttestationGate
from gateway.services.audit import NO_AUDIT, AuditTrail
from gateway.settings import PolicySettings


def attestation_gate(settings: PolicySettings, audit: AuditTrail = NO_AUDIT) -> AttestationGate:
    verifier = AttestationVerifier(sigstore_verifier(settings))
    return AttestationGate(verifier, ProjectPolicies(settings), audit)
