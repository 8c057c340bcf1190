"""Trusted publishing: a CI provider's OIDC ID token (a JWT) as the credential.

The token is verified with PyJWT against the issuer's JWKS — fetched once, cached, fetched
again when a token names a key id it has not seen (providers rotate keys) — for its
signature, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` (with a small leeway). Trust policies
then map its claims (``repository``, ``workflow_ref``, ``environment``...) to the projects it
may publish; a verified token that no policy matches gets a principal allowed nothing (403).
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from gateway.auth.principals import InvalidCredentials, Principal
from gateway.logs import log
from gateway.outbound import Hop
from gateway.settings import AuthSettings, OidcIssuerSettings

# Asymmetric algorithms only: "none" and shared-secret HMAC can never verify an ID token.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
_REFRESH_AT_MOST_EVERY = 30.0


class _KeySet:
    """One issuer's signing keys."""

    def __init__(
        self, issuer: OidcIssuerSettings, http: aiohttp.ClientSession, ttl: float, hop: Hop
    ):
        self._issuer = issuer
        self._http = http
        self._hop = hop
        self._ttl = ttl
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        if age > self._ttl or (kid not in self._keys and age > _REFRESH_AT_MOST_EVERY):
            await self._refresh()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if kid not in self._keys:
            raise InvalidCredentials
        return self._keys[kid]

    async def _refresh(self) -> None:
        async with self._lock:
            try:
                url = self._issuer.jwks_url or await self._discover()
                document = await self._get_json(url)
                keys = {}
                for entry in document.get("keys", []):
                    try:
                        key = jwt.PyJWK(entry)
                    except (jwt.PyJWKError, jwt.InvalidKeyError):
                        continue  # a key type this build cannot use; others may still verify
                    keys[str(entry.get("kid"))] = key
                self._keys = keys
                self._fetched_at = time.monotonic()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("oidc.jwks_unavailable", issuer=self._issuer.issuer, error=repr(exc))

    async def _discover(self) -> str:
        base = self._issuer.issuer.rstrip("/")
        document = await self._get_json(base + "/.well-known/openid-configuration")
        return str(document["jwks_uri"])

    async def _get_json(self, url: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with self._http.get(url, timeout=timeout, **self._hop.options(url)) as response:
            response.raise_for_status()
            return dict(await response.json(content_type=None))


class OidcAuthenticator:
    def __init__(self, auth: AuthSettings, http: aiohttp.ClientSession, hop: Hop | None = None):
        """``hop``: TLS and proxy for key discovery (default: system CAs, environment proxy)."""
        self._settings = auth.oidc
        self._issuers = {issuer.issuer: issuer for issuer in auth.oidc.issuers}
        hop = hop or Hop("oidc")
        self._keys = {
            name: _KeySet(issuer, http, auth.oidc.jwks_cache_seconds, hop)
            for name, issuer in self._issuers.items()
        }
        self.scheme_challenges = (f'Bearer realm="{auth.realm.replace(chr(34), "")}"',)

    async def authenticate(self, request: web.Request) -> Principal | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return None  # not a JWT: a gateway token, for another authenticator
        claims = await self._verify(token)
        subject = str(claims.get("sub", ""))
        return Principal(
            id=f"oidc:{claims['iss']}:{subject}",
            display_name=str(claims.get("repository") or subject),
            project_patterns=self._projects_for(claims),
            claims=self._audited_claims(claims),
        )

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            issuer_name = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise InvalidCredentials from None
        issuer = self._issuers.get(str(issuer_name))
        if issuer is None or header.get("alg") not in ALGORITHMS:
            raise InvalidCredentials
        key = await self._keys[issuer.issuer].key(header.get("kid"))
        try:
            return dict(
                jwt.decode(
                    token,
                    key=key,
                    algorithms=ALGORITHMS,
                    audience=issuer.audience,
                    issuer=issuer.issuer,
                    leeway=self._settings.leeway,
                    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                )
            )
        except jwt.PyJWTError:
            raise InvalidCredentials from None

    def _audited_claims(self, claims: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """The issuer, the usual CI identity claims and every claim a policy constrains."""
        names = {"iss", "repository", "workflow", "workflow_ref", "ref", "environment"}
        names |= {"project_path", "ci_config_ref_uri"}  # GitLab's, for the attestation gate
        for policy in self._settings.policies:
            if policy.issuer == claims["iss"]:
                names.update(policy.claims)
        return tuple(sorted((n, str(claims[n])) for n in names if n in claims))

    def _projects_for(self, claims: dict[str, Any]) -> tuple[str, ...]:
        patterns: list[str] = []
        for policy in self._settings.policies:
            if policy.issuer == claims["iss"] and all(
                fnmatch.fnmatchcase(str(claims.get(name, "")), expected)
                for name, expected in policy.claims.items()
            ):
                patterns.extend(policy.projects)
        return tuple(patterns)
