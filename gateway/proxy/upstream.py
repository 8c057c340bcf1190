"""What the two proxies share about talking to the index: where it is, how long to wait, and
the problem a client gets when the index cannot be reached."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from gateway.protocol.problems import Problem
from gateway.settings import BackendSettings, Settings


def upstream_url(settings: Settings) -> str:
    if settings.proxy.upstream:
        return settings.proxy.upstream.rstrip("/")
    parts = urlsplit(settings.backend.simple_url)
    return f"{parts.scheme}://{parts.netloc}"


def streaming_timeout(backend: BackendSettings) -> aiohttp.ClientTimeout:
    # No total: a large file may stream for a long time; only silence counts.
    return aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=backend.timeout)


def unreachable() -> Problem:
    return Problem(
        502,
        "index-unreachable",
        "The backing index could not be reached; retry shortly.",
        headers={"Retry-After": "5"},
    )
