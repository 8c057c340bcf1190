"""Which release-gate policy covers a project: the first ``[[policy.projects]]`` whose glob
matches the normalized name (globs as in a principal's ``projects``)."""

from __future__ import annotations

import fnmatch

from packaging.utils import canonicalize_name

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
