"""Legacy uploads (``/legacy/``) in the integration tier: the staging URL, a publishing tool as
a subprocess, and a legacy upload framed by hand as twine frames it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from gateway.protocol import multipart
from tests.conftest import ALICE, User
from tests.distributions import sha256_of
from tests.integration.conftest import Api


def stage_url(api: Api) -> str:
    return api.base + "/legacy/+stage/"


async def run(*argv: str, cwd: Path | None = None, **env: str) -> tuple[int, str]:
    """A tool as a subprocess that leaves the event loop (serving the gateway) free. The
    developer's own tool settings never leak in: a fresh HOME, no TWINE_/UV_/FLIT_/HATCH_."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWINE_", "UV_", "FLIT_", "HATCH_", "PIP_"))
    }
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**inherited, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 180)
    return process.returncode or 0, output.decode(errors="replace")


def legacy_form(name: str, version: str, path: Path, **extra: str) -> list[tuple[str, str]]:
    fields = [(":action", "file_upload"), ("protocol_version", "1")]
    fields += [("name", name), ("version", version), ("sha256_digest", sha256_of(path))]
    return fields + list(extra.items())


async def post_form(
    url: str, fields: list[tuple[str, str]], path: Path, user: User = ALICE
) -> aiohttp.ClientResponse:
    """A legacy upload by hand, as twine frames it."""
    content_type, head, tail = multipart.frame(fields, path.name)
    body = head + path.read_bytes() + tail
    headers = {"Content-Type": content_type, "Authorization": user.authorization}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers) as response,
    ):
        await response.read()
        return response
