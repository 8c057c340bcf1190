"""kill -9 the gateway in the middle of a deferred publish: another process on the same bucket
resumes it from the journal, and every file lands on the index exactly once (R-W1, R-W3)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from tests.distributions import build_platform_wheels, sha256_of
from tests.integration.replicas import (
    HEADERS,
    META,
    create_session,
    upload_all,
    wait_status,
)


async def test_kill_9_mid_publish_then_resume(
    replicas, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    wheels = build_platform_wheels(tmp_path, project_name, "1.0", 6, size=24 << 20)
    names = {w.name for w in wheels}
    packages = servers_dir / "packages"
    prefix = "crash-" + project_name
    first = replicas(prefix)
    async with aiohttp.ClientSession() as http:
        session = await create_session(http, first.api, project_name)
        await upload_all(http, session, wheels)
        async with http.post(
            session["links"]["publish"], json={"meta": META}, headers=HEADERS
        ) as r:
            assert r.status == 202, await r.text()
        for _ in range(600):
            landed = names & {p.name for p in packages.iterdir()}
            if landed:
                break
            await asyncio.sleep(0.02)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        assert landed != names, "the publish finished before the crash; nothing was tested"

        second = replicas(prefix)
        status = await wait_status(
            http, second.on(session["links"]["session"]), {"published", "error"}
        )
        assert status["status"] == "published", status
    on_index = {p.name: sha256_of(p) for p in packages.iterdir() if p.name in names}
    assert on_index == {w.name: sha256_of(w) for w in wheels}
