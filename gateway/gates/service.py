"""The attestation gate: an attestation is verified when it is attached, or refused with
nothing stored (R-W11). Each decision is an audit event."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from gateway.domain.errors import DomainError, Kind, Pointer
from gateway.domain.records import PublishingSession
from gateway.gates.attestations import AttestationRefused, AttestationVerifier, Reason, Verified
from gateway.gates.identity import environment_mismatch, token_mismatch
from gateway.gates.policy import ProjectPolicies, refuse_unlisted
from gateway.gates.publishers import describe
from gateway.protocol.audit import AuditFile
from gateway.services.audit import AuditTrail

ATTESTATION_VERIFIED = "attestation.verified"
ATTESTATION_REFUSED = "attestation.refused"


class AttestationGate:
    def __init__(
        self,
        verifier: AttestationVerifier,
        policies: ProjectPolicies,
        audit: AuditTrail,
    ):
        self._verifier = verifier
        self._policies = policies
        self.audit = audit

    async def check(
        self,
        session: PublishingSession,
        filename: str,
        sha256: str | None,
        documents: list[Any],
        claims: Mapping[str, str] | None = None,
    ) -> list[Verified]:
        """The attestations verified for the file and allowed by the project's policy, or a
        400 ``invalid-attestation`` saying why (the file's sha256 must be known). ``claims``:
        the uploader's OIDC token claims, when it used trusted publishing."""
        claims = claims or {}
        if sha256 is None:
            raise DomainError(
                Kind.INVALID,
                "attestation-needs-digest",
                f"Attestations for {filename} can only be checked against a declared sha256: "
                "declare hashes.sha256 when creating the file (sha256_digest in a legacy form).",
                [Pointer("hashes.sha256", "required with attestations")],
            )
        try:
            verified = await asyncio.to_thread(self._verifier.verify, documents, filename, sha256)
            self._check_identity(session.name, verified, claims)
        except AttestationRefused as refused:
            await self._record(session, filename, sha256, refused.reason.value, str(refused))
            raise _problem(filename, refused) from None
        publishers = ", ".join(sorted({describe(v.publisher) for v in verified}))
        await self._record(session, filename, sha256, None, f"publisher: {publishers}")
        return verified

    def _check_identity(
        self, project: str, verified: list[Verified], claims: Mapping[str, str]
    ) -> None:
        policy = self._policies.for_project(project)
        refuse_unlisted(project, policy, verified)
        for index, one in enumerate(verified):
            mismatch = token_mismatch(one.publisher, claims)
            if mismatch is not None:
                raise AttestationRefused(index, Reason.TOKEN_IDENTITY, mismatch)
        environment = environment_mismatch(policy, claims)
        if environment is not None:
            raise AttestationRefused(0, Reason.TOKEN_IDENTITY, environment)

    async def _record(
        self,
        session: PublishingSession,
        filename: str,
        sha256: str,
        refused: str | None,
        detail: str,
    ) -> None:
        await self.audit.record(
            ATTESTATION_REFUSED if refused else ATTESTATION_VERIFIED,
            session=session,
            files=[AuditFile(filename=filename, sha256=sha256)],
            outcome="refused" if refused else "ok",
            detail=detail,
        )


def _problem(filename: str, refused: AttestationRefused) -> DomainError:
    detail = (
        f"The attestation for {filename} was refused: {refused.reason.value}: {refused.message}"
    )
    return DomainError(
        Kind.INVALID,
        "invalid-attestation",
        detail,
        [Pointer(f"attestations[{refused.index}]", f"{refused.reason.value}: {refused.message}")],
    )
