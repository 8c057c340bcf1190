"""Attestation verification (R-W11) with real PEP 740 attestations, offline against the
Sigstore trust root sigstore-python ships: each refusal names its reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import ValidationError
from pypi_attestations import GitHubPublisher, GitLabPublisher

from gateway.gates.attestations import (
    AttestationRefused,
    AttestationVerifier,
    Reason,
    sigstore_verifier,
)
from gateway.gates.identity import token_mismatch
from gateway.gates.policy import ProjectPolicies
from gateway.gates.provenance import provenance_document
from gateway.gates.publishers import describe, matches
from gateway.settings import PolicySettings, PublisherSettings
from tests.attestation_assets import (
    OTHER_FILE,
    REPOSITORY,
    SDIST,
    SDIST_SHA256,
    WORKFLOW,
    attestation,
)


@pytest.fixture(scope="module")
def verifier() -> AttestationVerifier:
    return AttestationVerifier(sigstore_verifier(PolicySettings()))


def refusal(verifier: AttestationVerifier, document: Any, filename: str, sha256: str) -> Reason:
    with pytest.raises(AttestationRefused) as caught:
        verifier.verify([document], filename, sha256)
    return caught.value.reason


def test_the_real_attestation_verifies_and_names_its_github_publisher(
    verifier: AttestationVerifier,
) -> None:
    [verified] = verifier.verify([attestation()], SDIST.name, SDIST_SHA256)
    assert verified.predicate_type == "https://docs.pypi.org/attestations/publish/v1"
    assert verified.publisher.kind == "GitHub"
    assert describe(verified.publisher) == f"GitHub {REPOSITORY} workflow {WORKFLOW}"
    wanted = PublisherSettings(kind="GitHub", repository=REPOSITORY, workflow=WORKFLOW)
    assert matches(verified.publisher, wanted)
    other_repo = PublisherSettings(kind="GitHub", repository="acme/widgets", workflow=WORKFLOW)
    other_flow = PublisherSettings(kind="GitHub", repository=REPOSITORY, workflow="ci.yml")
    gitlab = PublisherSettings(kind="GitLab", repository=REPOSITORY, workflow=WORKFLOW)
    assert not any(matches(verified.publisher, p) for p in (other_repo, other_flow, gitlab))


def test_a_different_digest_is_refused_as_digest(verifier: AttestationVerifier) -> None:
    assert refusal(verifier, attestation(), SDIST.name, "0" * 64) == Reason.DIGEST


def test_another_files_attestation_is_refused_as_subject_name(
    verifier: AttestationVerifier,
) -> None:
    assert refusal(verifier, attestation(OTHER_FILE), SDIST.name, SDIST_SHA256) == (
        Reason.SUBJECT_NAME
    )


def test_a_statement_changed_after_signing_is_refused_as_signature(
    verifier: AttestationVerifier,
) -> None:
    document = attestation()
    statement = json.loads(base64.b64decode(document["envelope"]["statement"]))
    statement["subject"][0]["digest"]["sha256"] = "1" * 64
    document["envelope"]["statement"] = base64.b64encode(json.dumps(statement).encode()).decode()
    assert refusal(verifier, document, SDIST.name, "1" * 64) == Reason.SIGNATURE


def test_a_broken_signature_is_refused_as_signature(verifier: AttestationVerifier) -> None:
    document = attestation()
    signature = bytearray(base64.b64decode(document["envelope"]["signature"]))
    signature[-1] ^= 1
    document["envelope"]["signature"] = base64.b64encode(bytes(signature)).decode()
    assert refusal(verifier, document, SDIST.name, SDIST_SHA256) == Reason.SIGNATURE


def test_a_malformed_attestation_is_refused_as_malformed(verifier: AttestationVerifier) -> None:
    document = attestation()
    del document["verification_material"]
    assert refusal(verifier, document, SDIST.name, SDIST_SHA256) == Reason.MALFORMED


def test_the_refusal_says_which_attestation_and_why(verifier: AttestationVerifier) -> None:
    with pytest.raises(AttestationRefused) as caught:
        verifier.verify([attestation(), attestation(OTHER_FILE)], SDIST.name, SDIST_SHA256)
    assert caught.value.index == 1
    assert str(caught.value).startswith("attestation 1: subject name: ")
    assert OTHER_FILE in str(caught.value)


def test_project_policies_match_normalized_globs_first_match_wins() -> None:
    settings = PolicySettings.model_validate(
        {
            "projects": [
                {"match": "Acme_*", "require_attestations": True},
                {"match": "*", "require_attestations": False},
            ]
        }
    )
    policies = ProjectPolicies(settings)
    assert policies.for_project("acme.widgets") is settings.projects[0]
    assert policies.for_project("other") is settings.projects[1]
    assert ProjectPolicies(PolicySettings()).for_project("acme-widgets") is None


def test_a_publisher_must_name_an_identity() -> None:
    with pytest.raises(ValidationError, match="needs repository and workflow"):
        PublisherSettings(kind="GitHub")
    with pytest.raises(ValidationError, match="needs email"):
        PublisherSettings(kind="Google")


def test_a_pinned_trust_root_must_be_a_readable_file() -> None:
    with pytest.raises(ValidationError, match="not a readable file"):
        PolicySettings(trusted_root="/nonexistent/trusted_root.json")


def test_a_gitlab_attestation_names_its_gitlab_publisher(verifier: AttestationVerifier) -> None:
    document = attestation(OTHER_FILE)
    statement = json.loads(base64.b64decode(document["envelope"]["statement"]))
    sha256 = statement["subject"][0]["digest"]["sha256"]
    [verified] = verifier.verify([document], OTHER_FILE, sha256)
    assert describe(verified.publisher) == (
        "GitLab facutuesca/gitlab-oidc-project workflow .gitlab-ci.yml"
    )
    wanted = PublisherSettings(
        kind="GitLab", repository="facutuesca/gitlab-oidc-project", workflow=".gitlab-ci.yml"
    )
    assert matches(verified.publisher, wanted)


def test_the_provenance_built_matches_the_one_pypi_serves(verifier: AttestationVerifier) -> None:
    """PyPI's own provenance of the sdist (tests/assets) and the one the gateway builds from
    the same attestation name the same publisher and hold the same attestation."""
    verified = verifier.verify([attestation()], SDIST.name, SDIST_SHA256)
    ours = json.loads(provenance_document(verified))
    pypi = json.loads((SDIST.parent / f"{SDIST.name}.provenance").read_text())
    [our_bundle], [pypi_bundle] = ours["attestation_bundles"], pypi["attestation_bundles"]
    assert our_bundle["publisher"] == {**pypi_bundle["publisher"], "environment": None}
    assert [a["envelope"] for a in our_bundle["attestations"]] == [
        a["envelope"] for a in pypi_bundle["attestations"]
    ]


# -- trusted publishing: the attestation must come from the token's identity (R-W11) --------

GITHUB_TOKEN = {
    "iss": "https://token.actions.githubusercontent.com",
    "repository": "acme/widgets",
    "workflow_ref": "acme/widgets/.github/workflows/release.yml@refs/tags/v1",
}
GITLAB_CI_FILE = "ci/release.gitlab-ci.yml"
GITLAB_TOKEN = {
    "iss": "https://gitlab.com",
    "project_path": "acme/widgets",
    "ci_config_ref_uri": "gitlab.com/acme/widgets//ci/release.gitlab-ci.yml@refs/heads/main",
}


@pytest.mark.parametrize(
    ("publisher", "claims", "refused"),
    [
        (GitHubPublisher(repository="Acme/Widgets", workflow="release.yml"), GITHUB_TOKEN, False),
        (GitHubPublisher(repository="acme/widgets", workflow="other.yml"), GITHUB_TOKEN, True),
        (GitHubPublisher(repository="acme/gadgets", workflow="release.yml"), GITHUB_TOKEN, True),
        (
            GitLabPublisher(
                repository="acme/widgets", workflow_filepath="ci/release.gitlab-ci.yml"
            ),
            GITLAB_TOKEN,
            False,
        ),
        (
            GitLabPublisher(repository="acme/widgets", workflow_filepath=".gitlab-ci.yml"),
            GITLAB_TOKEN,
            True,
        ),
        (
            GitLabPublisher(
                repository="acme/gadgets", workflow_filepath="ci/release.gitlab-ci.yml"
            ),
            GITLAB_TOKEN,
            True,
        ),
        (GitHubPublisher(repository="acme/widgets", workflow="release.yml"), GITLAB_TOKEN, True),
        (GitHubPublisher(repository="acme/widgets", workflow="x.yml"), {"iss": "https://x"}, False),
    ],
    ids=[
        "github-same",
        "github-other-workflow",
        "github-other-repository",
        "gitlab-same",
        "gitlab-other-ci-file",
        "gitlab-other-project",
        "github-attestation-gitlab-token",
        "other-issuer-not-compared",
    ],
)
def test_an_attestation_must_come_from_the_tokens_identity(
    publisher: GitHubPublisher | GitLabPublisher, claims: dict[str, str], refused: bool
) -> None:
    mismatch = token_mismatch(publisher, claims)
    assert (mismatch is not None) is refused, mismatch
    if refused:
        assert "trusted-publishing token is for" in mismatch
