"""Gateway processes (``python -m gateway serve``) on the shared S3 and index, for tests of
what only separate processes show: crashes, SIGTERM, several replicas on one bucket."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.devstack import Server, free_port, http_status
from tests import wire
from tests.conftest import ALICE, INDEX_PASSWORD, INDEX_USER
from tests.wire import META

HEADERS = wire.json_headers(ALICE.authorization)


@dataclass
class Replica:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/upload/2.0/"

    def on(self, url: str) -> str:
        """The same resource, addressed through this replica."""
        path = url.split("/", 3)[3]
        return f"http://127.0.0.1:{self.port}/{path}"


def write_config(
    path: Path,
    seaweedfs: Server,
    pypiserver: Server,
    prefix: str,
    principals: list[dict[str, Any]],
    port: int,
    extra: str = "",
) -> None:
    alice = next(p for p in principals if p["name"] == "alice")
    path.write_text(
        f"""
[server]
port = {port}
public_base_url = "http://127.0.0.1:{port}"
drain_timeout = 20
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
{extra}
[[auth.principals]]
name = "alice"
password_hash = "{alice["password_hash"]}"
"""
    )


def start_replica(
    workdir: Path,
    seaweedfs: Server,
    pypiserver: Server,
    prefix: str,
    principals: list[dict[str, Any]],
    extra: str = "",
) -> Replica:
    port = free_port()
    config = workdir / f"gateway-{port}.toml"
    write_config(config, seaweedfs, pypiserver, prefix, principals, port, extra)
    log = workdir / f"gateway-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    for _ in range(200):
        if http_status(f"http://127.0.0.1:{port}/healthz") == 200:
            return Replica(port, process)
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError("gateway did not start")


async def create_session(http: aiohttp.ClientSession, api: str, project: str) -> dict[str, Any]:
    return await wire.create_session(http, api, project, "1.0", ALICE.authorization)


async def start_file(
    http: aiohttp.ClientSession,
    session: dict[str, Any],
    wheel: Path,
    mechanism: str = "http-post-bytes",
) -> dict[str, Any]:
    body = wire.file_body(wheel.name, wheel.read_bytes(), mechanism=mechanism)
    return await wire.create_file(http, session, body, ALICE.authorization)


async def send_and_complete(http: aiohttp.ClientSession, file: dict[str, Any], data: bytes) -> None:
    octets = {**HEADERS, "Content-Type": "application/octet-stream"}
    async with http.post(file["mechanism"]["file_url"], data=data, headers=octets) as response:
        assert response.status == 200, await response.text()
    async with http.post(file["links"]["complete"], json={"meta": META}, headers=HEADERS) as r:
        assert r.status == 201, await r.text()


async def upload_all(
    http: aiohttp.ClientSession, session: dict[str, Any], wheels: list[Path]
) -> None:
    async def one(wheel: Path) -> None:
        await send_and_complete(http, await start_file(http, session, wheel), wheel.read_bytes())

    await asyncio.gather(*(one(w) for w in wheels))


async def wait_status(
    http: aiohttp.ClientSession, url: str, until: set[str], seconds: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        async with http.get(url, headers=HEADERS) as response:
            status = await response.json(content_type=None)
        if status.get("status") in until or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)
