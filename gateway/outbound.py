"""Outbound connections: the TLS context and the proxy of each hop the gateway dials.

The hops are the backing index, S3 (and its presigned read-back), the read proxy's upstream
and OIDC key discovery. This module only uses the standard library so that every layer, the
store at the bottom included, can use it.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class TlsConfig:
    """Whom a hop trusts and who it says it is."""

    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    def trusted(self) -> str | None:
        """The CA file to trust: the configured one, else the one the environment names
        (``SSL_CERT_FILE``, then ``REQUESTS_CA_BUNDLE``), else None for the system store."""
        return (
            self.ca_bundle
            or os.environ.get("SSL_CERT_FILE")
            or os.environ.get("REQUESTS_CA_BUNDLE")
            or None
        )

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.trusted())
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


def proxy_for(url: str, explicit: str | None) -> str | None:
    """The proxy to reach ``url`` through, or None for a direct connection.

    ``explicit`` is the hop's own setting: a URL, or "" for "always direct"; None defers to
    the environment (``HTTP_PROXY``/``HTTPS_PROXY``, with ``NO_PROXY`` exempting hosts).
    """
    if explicit is not None:
        return explicit or None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme) or None


_ORIGINS_KEPT = 256  # origins whose proxy a hop remembers (redirects may name many)


class Hop:
    """One outbound destination's TLS context (built once) and proxy choice."""

    def __init__(self, name: str, tls: TlsConfig | None = None, proxy: str | None = None):
        self.name = name
        self.tls = tls or TlsConfig()
        self.proxy = proxy
        self.ssl = self.tls.context()
        self._proxies: dict[tuple[str, str], str | None] = {}

    def proxy_for(self, url: str) -> str | None:
        # Per origin, once: reading the environment's proxies walks every variable (~0.2 ms,
        # a third of a record read's CPU), and the environment does not change under us.
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        if origin not in self._proxies:
            if len(self._proxies) >= _ORIGINS_KEPT:
                self._proxies.clear()
            self._proxies[origin] = proxy_for(url, self.proxy)
        return self._proxies[origin]

    def options(self, url: str) -> dict[str, Any]:
        """Keyword arguments for an aiohttp request to ``url`` on this hop."""
        return {"ssl": self.ssl, "proxy": self.proxy_for(url)}


@dataclass(frozen=True)
class Hops:
    backend: Hop
    s3: Hop
    upstream: Hop
    oidc: Hop


def tls_failure(exc: BaseException) -> str | None:
    """What went wrong in the TLS handshake behind ``exc`` (walking its causes), if anything."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        described = str(seen)
        if isinstance(seen, ssl.SSLError):  # aiohttp's own TLS errors are ones too
            reason = getattr(seen, "verify_message", None) or getattr(seen, "reason", None)
            return str(reason or described)
        for marker in ("CERTIFICATE_VERIFY_FAILED", "SSLV3_ALERT", "TLSV13_ALERT", "SSL:"):
            if marker in described:
                return described
        seen = seen.__cause__ or seen.__context__
    return None
