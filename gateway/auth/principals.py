"""Principals, the authenticator interface, and the per-project authorizer."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class BackendCredentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Principal:
    id: str
    display_name: str
    project_patterns: tuple[str, ...]
    backend_credentials: BackendCredentials | None = field(default=None, repr=False)
    audit: bool = False  # may read the audit journal
    yank_patterns: tuple[str, ...] = ()  # projects whose releases it may yank (PEP 592)
    # What the audit journal records of an OIDC identity: the issuer and the claims that the
    # trust policies look at (never the token).
    claims: tuple[tuple[str, str], ...] = ()
    approve_patterns: tuple[str, ...] = ()  # projects whose releases it may approve (R-W11)


class Authenticator(Protocol):
    @property
    def scheme_challenges(self) -> tuple[str, ...]:
        """Its ``WWW-Authenticate`` challenges (read-only here, so any tuple of them fits)."""

    async def authenticate(self, request: web.Request) -> Principal | None:
        """The caller's principal, or None when the request carries no credential this
        authenticator understands. Raises :class:`InvalidCredentials` for a wrong one."""


class InvalidCredentials(Exception):
    """Credentials were presented and are wrong (never says which part)."""


def may_approve(principal: Principal, project: str) -> bool:
    """Whether ``principal`` may approve ``project``'s releases (``approve`` globs)."""
    name = canonicalize_name(project)
    return any(
        fnmatch.fnmatchcase(name, canonicalize_name(pattern) if pattern != "*" else "*")
        for pattern in principal.approve_patterns
    )


def may_upload(principal: Principal, project: str) -> bool:
    """Whether ``principal`` may upload to ``project`` right now (checked on every request)."""
    return _matches(principal.project_patterns, project)


def may_yank(principal: Principal, project: str) -> bool:
    """Whether ``principal`` may yank and unyank releases of ``project`` (R-W10)."""
    return _matches(principal.yank_patterns, project)


def _matches(patterns: tuple[str, ...], project: str) -> bool:
    name = canonicalize_name(project)
    return any(
        fnmatch.fnmatchcase(name, canonicalize_name(pattern) if pattern != "*" else "*")
        for pattern in patterns
    )
