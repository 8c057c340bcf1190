"""Which release-gate policy covers a project: the first ``[[policy.projects]]`` whose glob
matches the normalized name (globs as in a principal's ``projects``)."""

from __future__ import annotations

import fnmatch

from packaging.utils import canonicalize_name

from gateway.gates.attestations import AttestationRefused, Reason, Verified
from gateway.gates.publishers import describe, matches
from gateway.settings import PolicySettings, ProjectPolicySettings


class ProjectPolicies:
    def __init__(self, settings: PolicySettings):
        self._projects = settings.projects

    def for_project(self, name: str) -> ProjectPolicySettings | None:
        normalized = canonicalize_name(name)
        for policy in self._projects:
            pattern = "*" if policy.match == "*" else canonicalize_name(policy.match)
            if fnmatch.fnmatchcase(normalized, pattern):
                return policy
        return None


def refuse_unlisted(
    project: str, policy: ProjectPolicySettings | None, verified: list[Verified]
) -> None:
    """Every attestation must come from a publisher the project's policy lists (if any)."""
    if policy is None or not policy.publishers:
        return
    for index, one in enumerate(verified):
        if not any(matches(one.publisher, wanted) for wanted in policy.publishers):
            allowed = "; ".join(describe(wanted) for wanted in policy.publishers)
            raise AttestationRefused(
                index,
                Reason.PUBLISHER,
                f"signed by {describe(one.publisher)}, but {project} accepts only: {allowed}",
            )
