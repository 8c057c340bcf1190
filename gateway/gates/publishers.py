"""PEP 740 publishers: read from a verified signing certificate, matched against a policy.

The certificate's Fulcio extensions say which CI identity signed: the OIDC issuer, the
source repository and the build configuration (the top-level workflow and the ref it ran
at). A GitHub Actions environment is not among them, so an attestation cannot prove it;
``environment`` in a policy is checked against a trusted-publishing token's claims only.
"""

from __future__ import annotations

from cryptography import x509
from pypi_attestations import GitHubPublisher, GitLabPublisher, GooglePublisher

from gateway.settings import PublisherSettings

Publisher = GitHubPublisher | GitLabPublisher | GooglePublisher

FULCIO = "1.3.6.1.4.1.57264.1."
DER_UTF8STRING = 0x0C
ISSUER = "1.3.6.1.4.1.57264.1.8"
SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.12"
BUILD_CONFIG_URI = "1.3.6.1.4.1.57264.1.18"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
GOOGLE_ISSUER = "https://accounts.google.com"


class PublisherCapture:
    """A Sigstore verification policy that accepts any identity and remembers the publisher
    the certificate names. The verifier has checked the certificate against the trust root
    (chain, SCT, transparency log) before it asks a policy; which publishers a project
    accepts is the gate's decision, taken afterwards with the policy's words."""

    def __init__(self) -> None:
        self.publisher: Publisher | None = None

    def verify(self, cert: x509.Certificate) -> None:
        self.publisher = publisher_of(cert)


def publisher_of(certificate: x509.Certificate) -> Publisher | None:
    """The publisher the certificate names, or None for an identity PEP 740 does not know."""
    claims = _claims(certificate)
    issuer = claims.get(ISSUER)
    if issuer == GITHUB_ISSUER:
        return _github(claims)
    if issuer == GITLAB_ISSUER:
        return _gitlab(claims)
    if issuer == GOOGLE_ISSUER:
        return _google(certificate)
    return None


def _claims(certificate: x509.Certificate) -> dict[str, str]:
    """Fulcio's claims (OIDs 1.3.6.1.4.1.57264.1.8 and up): DER UTF8Strings."""
    claims: dict[str, str] = {}
    for extension in certificate.extensions:
        value = extension.value
        if extension.oid.dotted_string.startswith(FULCIO) and isinstance(
            value, x509.UnrecognizedExtension
        ):
            text = _der_utf8(value.value)
            if text is not None:
                claims[extension.oid.dotted_string] = text
    return claims


def _der_utf8(data: bytes) -> str | None:
    if len(data) < 2 or data[0] != DER_UTF8STRING:
        return None  # the older raw-string claims (1.1 to 1.6) are not used here
    length, start = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(data[2 : 2 + count]), 2 + count
    body = data[start : start + length]
    return body.decode("utf-8", errors="replace") if len(body) == length else None


def _repository(claims: dict[str, str], host: str) -> str | None:
    uri = claims.get(SOURCE_REPOSITORY_URI, "")
    prefix = f"https://{host}/"
    return uri.removeprefix(prefix) if uri.startswith(prefix) and len(uri) > len(prefix) else None


def _github(claims: dict[str, str]) -> GitHubPublisher | None:
    # Build Config URI: https://github.com/OWNER/REPO/.github/workflows/FILE.yml@REF
    repository = _repository(claims, "github.com")
    config = claims.get(BUILD_CONFIG_URI, "")
    prefix = f"https://github.com/{repository}/.github/workflows/"
    if repository is None or not config.startswith(prefix) or "@" not in config:
        return None
    workflow = config.removeprefix(prefix).split("@", 1)[0]
    return GitHubPublisher(repository=repository, workflow=workflow) if workflow else None


def _gitlab(claims: dict[str, str]) -> GitLabPublisher | None:
    # Build Config URI: https://gitlab.com/GROUP/PROJECT//PATH/TO/.gitlab-ci.yml@REF
    repository = _repository(claims, "gitlab.com")
    config = claims.get(BUILD_CONFIG_URI, "")
    prefix = f"https://gitlab.com/{repository}//"
    if repository is None or not config.startswith(prefix) or "@" not in config:
        return None
    path = config.removeprefix(prefix).split("@", 1)[0]
    return GitLabPublisher(repository=repository, workflow_filepath=path) if path else None


def _google(certificate: x509.Certificate) -> GooglePublisher | None:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    emails = names.value.get_values_for_type(x509.RFC822Name)
    return GooglePublisher(email=emails[0]) if len(emails) == 1 else None


def matches(publisher: Publisher, wanted: PublisherSettings) -> bool:
    """Does the certificate's publisher satisfy one policy entry? (Environment is not in
    the certificate; see the module docstring.)"""
    if isinstance(publisher, GitHubPublisher):
        return (
            wanted.kind == "GitHub"
            and publisher.repository.lower() == (wanted.repository or "").lower()
            and publisher.workflow == wanted.workflow
        )
    if isinstance(publisher, GitLabPublisher):
        return (
            wanted.kind == "GitLab"
            and publisher.repository.lower() == (wanted.repository or "").lower()
            and publisher.workflow_filepath == wanted.workflow
        )
    return wanted.kind == "Google" and publisher.email == wanted.email


def describe(publisher: Publisher | PublisherSettings) -> str:
    """One line naming a publisher, for problems and pages."""
    if publisher.kind == "Google":
        return f"Google {publisher.email}"
    if isinstance(publisher, GitLabPublisher):
        return f"GitLab {publisher.repository} workflow {publisher.workflow_filepath}"
    workflow = publisher.workflow
    return f"{publisher.kind} {publisher.repository} workflow {workflow}"
