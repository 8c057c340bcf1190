"""The authenticator chain: the enabled authenticators, in the configured order."""

from __future__ import annotations

import aiohttp

from gateway.auth.config import ConfigAuthenticator
from gateway.auth.oidc import OidcAuthenticator
from gateway.auth.passthrough import PassThroughAuthenticator
from gateway.auth.principals import Authenticator
from gateway.outbound import Hops
from gateway.settings import Settings


def build_chain(
    settings: Settings, http: aiohttp.ClientSession, hops: Hops | None = None
) -> list[Authenticator]:
    auth = settings.auth
    enabled: dict[str, Authenticator] = {}
    if auth.principals:
        enabled["config"] = ConfigAuthenticator(auth)
    if auth.oidc.issuers:
        enabled["oidc"] = OidcAuthenticator(auth, http, hops.oidc if hops else None)
    if auth.passthrough.enabled:
        enabled["passthrough"] = PassThroughAuthenticator(
            auth, settings.backend, http, hops.backend if hops else None
        )
    return [enabled[name] for name in auth.chain if name in enabled]


def challenges(chain: list[Authenticator]) -> str:
    """Every enabled scheme, once each, for ``WWW-Authenticate`` (RFC 7235)."""
    unique = dict.fromkeys(c for authenticator in chain for c in authenticator.scheme_challenges)
    return ", ".join(unique)
