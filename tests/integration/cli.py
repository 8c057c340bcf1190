"""The bundled client (``python -m gateway publish`` / ``session``) as a real subprocess, and
what its tests read back: its JSON lines, the index's folder, the sessions it left."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.api.context import SERVICES
from gateway.app_keys import S3_CLIENT
from gateway.store import keys
from tests.distributions import sha256_of

if TYPE_CHECKING:  # the conftest imports this module for its fixtures
    from tests.integration.conftest import Api


class Cli:
    def __init__(self, env: dict[str, str], root: str) -> None:
        self.env = env
        self.root = root

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )

    async def run(self, *args: str) -> tuple[int, str, str]:
        process = await self.start(*args)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert b"Traceback" not in err, err.decode()
        return process.returncode or 0, out.decode(), err.decode()

    async def publish(self, *args: str, user: str = "alice", password: str = "alice-password"):  # type: ignore[no-untyped-def]
        return await self.run(
            "publish", "--repository-url", self.root, "-u", user, "-p", password, *args
        )

    async def session(self, action: str, sid: str, *args: str) -> tuple[int, str, str]:
        # No --repository-url: the state file remembers where the session lives.
        return await self.run("session", action, sid, "-u", "alice", "-p", "alice-password", *args)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def on_index(servers_dir: Path, path: Path) -> bool:
    stored = servers_dir / "packages" / path.name
    return stored.is_file() and sha256_of(stored) == sha256_of(path)


async def sessions_of(api: Api, project: str) -> list[Any]:
    """Every session of ``project`` the gateway keeps, read from the bucket's own listing."""
    app = api.client.server.app
    services = app[SERVICES]
    prefix = services.settings.s3.prefix
    listing = await app[S3_CLIENT].list_objects_v2(
        Bucket=services.settings.s3.bucket, Prefix=prefix + keys.SESSIONS, Delimiter="/"
    )
    found = []
    for item in listing.get("Contents", []):
        key = item["Key"].removeprefix(prefix)
        if keys.is_session_record(key):
            session = await services.sessions.find(keys.session_id_of(key))
            if session is not None and session.name == project:
                found.append(session)
    return found
