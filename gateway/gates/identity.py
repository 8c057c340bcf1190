"""An attestation uploaded with an OIDC trusted-publishing token must come from the identity
the token names (R-W11): the same CI repository and workflow. Only GitHub Actions tokens carry
the claims to compare (``repository``, ``workflow_ref``, ``environment``); for other issuers
the attestation's own verification and the project's publishers decide."""

from __future__ import annotations

from collections.abc import Mapping

from pypi_attestations import GitHubPublisher

from gateway.gates.publishers import GITHUB_ISSUER, Publisher, describe
from gateway.settings import ProjectPolicySettings


def token_mismatch(publisher: Publisher, claims: Mapping[str, str]) -> str | None:
    """Why the attestation's publisher is not the token's identity, or None when it is (or
    when the caller did not use a GitHub Actions token)."""
    if claims.get("iss") != GITHUB_ISSUER:
        return None
    repository = claims.get("repository", "")
    # workflow_ref: OWNER/REPO/.github/workflows/FILE.yml@REF
    workflow = claims.get("workflow_ref", "").split("@", 1)[0].rsplit("/", 1)[-1]
    if (
        isinstance(publisher, GitHubPublisher)
        and publisher.repository.lower() == repository.lower()
        and publisher.workflow == workflow
    ):
        return None
    return (
        f"signed by {describe(publisher)}, but the upload's trusted-publishing token is for "
        f"GitHub {repository} workflow {workflow}"
    )


def environment_mismatch(
    policy: ProjectPolicySettings | None, claims: Mapping[str, str]
) -> str | None:
    """A policy's GitHub ``environment`` holds only for a token that names it: the
    attestation's certificate does not carry the environment."""
    if policy is None or claims.get("iss") != GITHUB_ISSUER:
        return None
    wanted = {p.environment for p in policy.publishers if p.kind == "GitHub" and p.environment}
    if not wanted or claims.get("environment") in wanted:
        return None
    return (
        f"the trusted-publishing token's environment is {claims.get('environment')!r}, "
        f"the policy requires {' or '.join(sorted(wanted))}"
    )
