"""Pass-through: the caller's Basic credentials for the backing index are the credentials.

They are checked with a legacy upload POST that carries no file: pypiserver and devpi both
answer 401/403 for bad credentials (devpi: or no upload permission on the index) before they
look at the form, and 400 ("no content") for good ones, so the probe never changes the index.
Verified credentials are remembered for ``auth.cache_seconds`` under a hash, never in clear,
and are kept only in memory: they reach the index again when the caller publishes.
"""

from __future__ import annotations

import hashlib
import time

import aiohttp
from aiohttp import web

from gateway.auth.config import basic_authorization, decode_basic
from gateway.auth.principals import BackendCredentials, InvalidCredentials, Principal
from gateway.backend_errors import BackendUnavailable
from gateway.outbound import Hop
from gateway.settings import AuthSettings, BackendSettings

_PROBE = (
    b'--probe\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n'
    b'--probe\r\nContent-Disposition: form-data; name="protocol_version"\r\n\r\n1\r\n'
    b"--probe--\r\n"
)


class PassThroughAuthenticator:
    def __init__(
        self,
        auth: AuthSettings,
        backend: BackendSettings,
        http: aiohttp.ClientSession,
        hop: Hop | None = None,
    ) -> None:
        self._projects = tuple(auth.passthrough.projects)
        self._cache_seconds = auth.cache_seconds
        self._upload_url = backend.upload_url
        self._timeout = backend.timeout
        self._http = http
        self._hop = hop or Hop("backend")
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        self.scheme_challenges = (f'Basic realm="{auth.realm.replace(chr(34), "")}"',)

    async def authenticate(self, request: web.Request) -> Principal | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        username, password = decode_basic(value.strip())
        credential = hashlib.sha256(f"{username}\0{password}".encode()).digest()
        cached = self._verified.get(credential)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        if not await self._index_accepts(username, password):
            raise InvalidCredentials
        principal = Principal(
            id=f"backend:{username}",
            display_name=username,
            project_patterns=self._projects,
            backend_credentials=BackendCredentials(username, password),
        )
        if self._cache_seconds:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[credential] = (principal, time.monotonic() + self._cache_seconds)
        return principal

    async def _index_accepts(self, username: str, password: str) -> bool:
        headers = {
            "Authorization": basic_authorization(username, password),
            "Content-Type": "multipart/form-data; boundary=probe",
        }
        try:
            async with self._http.post(
                self._upload_url,
                data=_PROBE,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                **self._hop.options(self._upload_url),
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"could not check credentials with the index ({type(exc).__name__})"
            ) from None
        if status >= 500:
            raise BackendUnavailable(f"the index answered {status} to a credential check")
        return status not in (401, 403)
