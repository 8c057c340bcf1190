"""An attestation uploaded with an OIDC trusted-publishing token must come from the identity
the token names (R-W11): the same CI repository and workflow. GitHub Actions tokens name them
in ``repository`` and ``workflow_ref`` (and ``environment``), GitLab CI/CD ID tokens in
``project_path`` and ``ci_config_ref_uri``; for other issuers (Google) the attestation's own
verification and the project's publishers decide."""

from __future__ import annotations

from collections.abc import Mapping

from pypi_attestations import GitHubPublisher, GitLabPublisher

from gateway.gates.publishers import GITHUB_ISSUER, GITLAB_ISSUER, Publisher, describe
from gateway.settings import ProjectPolicySettings


def token_mismatch(publisher: Publisher, claims: Mapping[str, str]) -> str | None:
    """Why the attestation's publisher is not the token's identity, or None when it is (or
    when the caller did not use a GitHub or GitLab trusted-publishing token)."""
    issuer = claims.get("iss")
    if issuer == GITHUB_ISSUER:
        token = _github_identity(claims)
        same = isinstance(publisher, GitHubPublisher) and (
            publisher.repository.lower(),
            publisher.workflow,
        ) == (token[0].lower(), token[1])
        kind = "GitHub"
    elif issuer == GITLAB_ISSUER:
        token = _gitlab_identity(claims)
        same = isinstance(publisher, GitLabPublisher) and (
            publisher.repository.lower(),
            publisher.workflow_filepath,
        ) == (token[0].lower(), token[1])
        kind = "GitLab"
    else:
        return None
    if same:
        return None
    return (
        f"signed by {describe(publisher)}, but the upload's trusted-publishing token is for "
        f"{kind} {token[0]} workflow {token[1]}"
    )


def _github_identity(claims: Mapping[str, str]) -> tuple[str, str]:
    # workflow_ref: OWNER/REPO/.github/workflows/FILE.yml@REF
    workflow = claims.get("workflow_ref", "").split("@", 1)[0].rsplit("/", 1)[-1]
    return claims.get("repository", ""), workflow


def _gitlab_identity(claims: Mapping[str, str]) -> tuple[str, str]:
    # ci_config_ref_uri: gitlab.com/GROUP/PROJECT//PATH/TO/.gitlab-ci.yml@REF
    config = claims.get("ci_config_ref_uri", "").split("@", 1)[0]
    return claims.get("project_path", ""), config.partition("//")[2]


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
