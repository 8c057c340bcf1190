"""Principals declared in the configuration: Basic (user:password, __token__:token) and Bearer."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import Callable

from aiohttp import web

from gateway.auth.principals import InvalidCredentials, Principal
from gateway.hashed_secrets import verify_secret
from gateway.settings import AuthSettings, PrincipalSettings

TOKEN_USERNAME = "__token__"


class ConfigAuthenticator:
    def __init__(self, settings: AuthSettings):
        self._principals = settings.principals
        # By name, so a request costs one lookup however many principals are configured.
        self._password_entries: dict[str, PrincipalSettings] = {}
        for entry in settings.principals:
            if entry.password_hash:
                self._password_entries.setdefault(entry.name, entry)
        self._cache_seconds = settings.cache_seconds
        # sha256(Authorization header) → (principal, verified until). The credential itself is
        # never kept.
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        # Verifications under way, so a burst of requests with one credential costs one scrypt.
        self._pending: dict[bytes, asyncio.Future[Principal | None]] = {}
        realm = settings.realm.replace('"', "")
        self.scheme_challenges = (f'Basic realm="{realm}"', f'Bearer realm="{realm}"')

    async def authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization")
        if not header:
            return None
        # Remembered under a hash of the whole header, so that a credential verified lately
        # costs one hash and one lookup, before any decoding.
        credential = hashlib.sha256(header.encode()).digest()
        if cached := self._cached(credential):
            return cached
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            username, password = decode_basic(value.strip())
            if username == TOKEN_USERNAME:
                return await self._check_token(password, credential)
            return await self._check_password(username, password, credential)
        if scheme == "bearer":
            return await self._check_token(value.strip(), credential)
        return None

    async def _verified_once(
        self, credential: bytes, check: Callable[[], Principal | None]
    ) -> Principal | None:
        """Run ``check`` (slow: scrypt) on a worker thread, at most once at a time per
        credential, and remember a success."""
        if cached := self._cached(credential):
            return cached
        pending = self._pending.get(credential)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(check))
            self._pending[credential] = pending
            pending.add_done_callback(lambda _: self._pending.pop(credential, None))
        principal = await asyncio.shield(pending)
        return None if principal is None else self._remember(credential, principal)

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

    async def _check_password(
        self, username: str, password: str, credential: bytes
    ) -> Principal | None:
        """A configured user's principal; None for users this configuration does not know
        (another authenticator, e.g. pass-through, may)."""
        entry = self._password_entries.get(username)
        if entry is None:
            return None
        stored = entry.password_hash or ""

        def check() -> Principal:
            if verify_secret(password, stored):
                return _principal(entry)
            raise InvalidCredentials

        return await self._verified_once(credential, check)

    async def _check_token(self, token: str, credential: bytes) -> Principal | None:
        def check() -> Principal | None:
            for entry in self._principals:
                if entry.token_hash and verify_secret(token, entry.token_hash):
                    return _principal(entry)
            return None

        return await self._verified_once(credential, check)


def _principal(entry: PrincipalSettings) -> Principal:
    return Principal(
        id=f"config:{entry.name}",
        display_name=entry.name,
        project_patterns=tuple(entry.projects),
        audit=entry.audit,
        yank_patterns=tuple(entry.yank),
        approve_patterns=tuple(entry.approve),
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


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value that sends these credentials (:func:`decode_basic` reads it)."""
    # Built by hand: aiohttp.BasicAuth is deprecated in 3.14 and its replacement is not in 3.9.
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def basic_username(request: web.Request) -> str | None:
    """The user a request's Basic credentials name (never its password); None without them."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _ = decode_basic(value.strip())
    except InvalidCredentials:
        return None
    return username
