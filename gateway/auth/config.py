"""Principals declared in the configuration: Basic (user:password, __token__:token) and Bearer."""

from __future__ import annotations

import base64
import binascii
import hashlib
import time

from aiohttp import web

from gateway.auth.principals import InvalidCredentials, Principal
from gateway.auth.secrets import verify_secret
from gateway.settings import AuthSettings, PrincipalSettings

TOKEN_USERNAME = "__token__"


class ConfigAuthenticator:
    def __init__(self, settings: AuthSettings):
        self._principals = settings.principals
        self._cache_seconds = settings.cache_seconds
        # sha256(credential) → (principal, verified until). The credential itself is never kept.
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        realm = settings.realm.replace('"', "")
        self.scheme_challenges = (f'Basic realm="{realm}"', f'Bearer realm="{realm}"')

    async def authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            username, password = decode_basic(value.strip())
            if username == TOKEN_USERNAME:
                return self._check_token(password)
            return self._check_password(username, password)
        if scheme == "bearer":
            return self._check_token(value.strip())
        return None

    def _cached(self, credential: bytes) -> Principal | None:
        entry = self._verified.get(credential)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        self._verified.pop(credential, None)
        return None

    def _remember(self, credential: bytes, principal: Principal) -> Principal:
        if self._cache_seconds:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[credential] = (principal, time.monotonic() + self._cache_seconds)
        return principal

    def _check_password(self, username: str, password: str) -> Principal | None:
        """A configured user's principal; None for users this configuration does not know
        (another authenticator, e.g. pass-through, may)."""
        credential = hashlib.sha256(f"basic\0{username}\0{password}".encode()).digest()
        if cached := self._cached(credential):
            return cached
        for entry in self._principals:
            if entry.name == username and entry.password_hash:
                if verify_secret(password, entry.password_hash):
                    return self._remember(credential, _principal(entry))
                raise InvalidCredentials
        return None

    def _check_token(self, token: str) -> Principal | None:
        credential = hashlib.sha256(f"token\0{token}".encode()).digest()
        if cached := self._cached(credential):
            return cached
        for entry in self._principals:
            if entry.token_hash and verify_secret(token, entry.token_hash):
                return self._remember(credential, _principal(entry))
        return None


def _principal(entry: PrincipalSettings) -> Principal:
    return Principal(
        id=f"config:{entry.name}", display_name=entry.name, project_patterns=tuple(entry.projects)
    )


def decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidCredentials from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise InvalidCredentials
    return username, password
