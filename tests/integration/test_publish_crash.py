"""kill -9 the gateway in the middle of a deferred publish: another process on the same bucket
resumes it from the journal, and every file lands on the index exactly once (R-W1, R-W3)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from gateway.devstack import Server, free_port, http_status
from gateway.protocol.media import UPLOAD_V2_JSON
from tests.conftest import ALICE, INDEX_PASSWORD, INDEX_USER
from tests.distributions import build_wheel, sha256_of

META = {"api-version": "2.0"}
HEADERS = {"Authorization": ALICE.authorization, "Content-Type": UPLOAD_V2_JSON}


def write_config(
    path: Path,
    port: int,
    seaweedfs: Server,
    pypiserver: Server,
    prefix: str,
    principals: list[dict[str, Any]],
) -> None:
    alice = next(p for p in principals if p["name"] == "alice")
    path.write_text(
        f"""
[server]
port = {port}
public_base_url = "http://127.0.0.1:{port}"
[s3]
endpoint_url = "{seaweedfs.url}"
bucket = "gateway-tests"
prefix = "{prefix}"
access_key_id = "test"
secret_access_key = "test-secret"
[backend]
kind = "pypiserver"
upload_url = "{pypiserver.url}/"
simple_url = "{pypiserver.url}/simple/"
username = "{INDEX_USER}"
password = "{INDEX_PASSWORD}"
[sessions]
sweep_interval = 1
[publish]
sync_wait = 0
lease = 3
[[auth.principals]]
name = "alice"
password_hash = "{alice["password_hash"]}"
"""
    )


def start_gateway(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    for _ in range(200):
        if http_status(f"http://127.0.0.1:{port}/healthz") == 200:
            return process
        assert process.poll() is None, log.read_text()
        import time

        time.sleep(0.1)
    raise AssertionError("gateway did not start")


async def upload_all(
    http: aiohttp.ClientSession, api: str, project: str, wheels: list[Path]
) -> dict[str, Any]:
    async with http.post(
        api, json={"meta": META, "name": project, "version": "1.0"}, headers=HEADERS
    ) as response:
        session = await response.json(content_type=None)
        assert response.status == 201, session

    async def one(wheel: Path) -> None:
        data = wheel.read_bytes()
        body = {
            "meta": META,
            "filename": wheel.name,
            "size": len(data),
            "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
            "mechanism": "http-post-bytes",
        }
        async with http.post(session["links"]["upload"], json=body, headers=HEADERS) as response:
            file = await response.json(content_type=None)
        octets = {**HEADERS, "Content-Type": "application/octet-stream"}
        async with http.post(file["mechanism"]["file_url"], data=data, headers=octets) as response:
            assert response.status == 200
        async with http.post(
            file["links"]["complete"], json={"meta": META}, headers=HEADERS
        ) as response:
            assert response.status == 201, await response.text()

    await asyncio.gather(*(one(w) for w in wheels))
    return session


async def test_kill_9_mid_publish_then_resume(
    seaweedfs: Server,
    pypiserver: Server,
    principal_settings,
    project_name: str,
    tmp_path: Path,
    servers_dir: Path,
) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    config = tmp_path / "gateway.toml"
    write_config(config, port, seaweedfs, pypiserver, "crash-" + project_name, principal_settings)
    api = f"http://127.0.0.1:{port}/upload/2.0/"
    wheels = [
        build_wheel(
            tmp_path,
            project_name,
            "1.0",
            tag=f"cp3{m}-cp3{m}-manylinux_2_28_x86_64",
            payload=os.urandom(24 << 20),
        )
        for m in range(8, 14)
    ]
    packages = servers_dir / "packages"
    log = tmp_path / "gateway.log"
    first = start_gateway(config, port, log)
    try:
        async with aiohttp.ClientSession() as http:
            session = await upload_all(http, api, project_name, wheels)
            async with http.post(
                session["links"]["publish"], json={"meta": META}, headers=HEADERS
            ) as response:
                assert response.status == 202, await response.text()
            names = {w.name for w in wheels}
            for _ in range(600):
                landed = names & {p.name for p in packages.iterdir()}
                if landed:
                    break
                await asyncio.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            first.wait()
            assert landed != names, "the publish finished before the crash; nothing was tested"

            second = start_gateway(config, port, log)
            try:
                for _ in range(300):
                    async with http.get(session["links"]["session"], headers=HEADERS) as response:
                        status = await response.json(content_type=None)
                    if status["status"] != "processing":
                        break
                    await asyncio.sleep(0.1)
                assert status["status"] == "published", status
            finally:
                second.terminate()
                second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    on_index = {p.name: sha256_of(p) for p in packages.iterdir() if p.name in names}
    assert on_index == {w.name: sha256_of(w) for w in wheels}
