"""Operating the gateway: metrics, several replicas on one bucket, SIGTERM drain (R-W1, R-W5)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.api.context import SERVICES
from tests.distributions import build_platform_wheels, build_wheel, sha256_of
from tests.integration.conftest import Api
from tests.integration.replicas import (
    HEADERS,
    META,
    create_session,
    start_file,
    upload_all,
    wait_status,
)


async def test_metrics_scrape_parses(api: Api, project_name: str, tmp_path: Path) -> None:
    session = await api.create_session(project_name)
    await api.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    await api.client.app[SERVICES].sweeper.sweep()
    response = await api.client.get("/metrics")
    assert response.status == 200
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    created = [
        s
        for s in families["upload_gateway_requests"].samples
        if s.labels.get("route") == "api:create-session" and s.labels.get("status") == "201"
    ]
    assert created
    assert created[0].value >= 1
    received = [
        s
        for s in families["upload_gateway_received_bytes"].samples
        if s.labels.get("route") == "mech:http-post-bytes" and s.name.endswith("_total")
    ]
    assert received[0].value > 0
    assert any(
        s.value > 0
        for s in families["upload_gateway_s3_seconds"].samples
        if s.name.endswith("_count") and s.labels["operation"] == "PutObject"
    )
    open_sessions = [
        s for s in families["upload_gateway_sessions"].samples if s.labels["state"] == "open"
    ]
    assert open_sessions[0].value >= 1
    for name in (
        "upload_gateway_uploads_in_flight",
        "upload_gateway_publish_seconds",
        "upload_gateway_backend_seconds",
        "upload_gateway_request_seconds",
    ):
        assert name in families, name


async def test_two_replicas_behave_as_one(
    replicas, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    prefix = "replicas-" + project_name
    a, b = replicas(prefix), replicas(prefix)
    async with aiohttp.ClientSession() as http:
        # Concurrent duplicate creates split across the replicas: exactly one 201.
        body = {"meta": META, "name": project_name + "-dup", "version": "1.0"}

        async def create_on(replica) -> int:  # type: ignore[no-untyped-def]
            async with http.post(replica.api, json=body, headers=HEADERS) as response:
                return response.status

        statuses = await asyncio.gather(*(create_on(r) for r in [a, b] * 5))
        assert sorted(statuses) == [201] + [409] * 9

        wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"two replicas")
        session = await create_session(http, a.api, project_name)  # create on A
        on_b = {**session, "links": {k: b.on(v) for k, v in session["links"].items()}}
        file = await start_file(http, on_b, wheel)  # upload session on B
        data = wheel.read_bytes()
        octets = {**HEADERS, "Content-Type": "application/octet-stream"}
        async with http.post(b.on(file["mechanism"]["file_url"]), data=data, headers=octets) as r:
            assert r.status == 200
        async with http.post(
            a.on(file["links"]["complete"]), json={"meta": META}, headers=HEADERS
        ) as r:  # complete on A
            assert r.status == 201, await r.text()
        async with http.post(
            on_b["links"]["publish"], json={"meta": META}, headers=HEADERS
        ) as r:  # publish on B
            assert r.status in (201, 202)
        for replica in (a, b):  # status on both
            status = await wait_status(
                http, replica.on(session["links"]["session"]), {"published", "error"}
            )
            assert status["status"] == "published", status
    assert sha256_of(servers_dir / "packages" / wheel.name) == sha256_of(wheel)


async def test_sigterm_drains_uploads_and_hands_publishes_over(
    replicas, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    prefix = "drain-" + project_name
    a, b = replicas(prefix), replicas(prefix)
    packages = servers_dir / "packages"
    async with aiohttp.ClientSession() as http:
        # A publish under way on A...
        wheels = build_platform_wheels(tmp_path, project_name, "1.0", 5, size=24 << 20)
        published = await create_session(http, a.api, project_name)
        await upload_all(http, published, wheels)
        async with http.post(
            published["links"]["publish"], json={"meta": META}, headers=HEADERS
        ) as r:
            assert r.status == 202
        # ...and a large upload in flight on A.
        big = (
            build_wheel(
                tmp_path / "big", project_name + "-big", "1.0", payload=os.urandom(64 << 20)
            )
            if (tmp_path / "big").mkdir() is None
            else None
        )
        assert big is not None
        uploading = await create_session(http, a.api, project_name + "-big")
        file = await start_file(http, uploading, big)
        transfer = asyncio.create_task(send_bytes(http, file, big.read_bytes()))
        await asyncio.sleep(0.3)
        a.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        ready_during_drain = await _readyz(http, a.port)
        assert await transfer == 200  # the upload in flight finishes during the drain
        assert await asyncio.to_thread(a.process.wait, 60) == 0
        assert ready_during_drain in (503, None)  # failing, or no longer listening
        # The client carries on with another replica.
        async with http.post(
            b.on(file["links"]["complete"]), json={"meta": META}, headers=HEADERS
        ) as response:
            assert response.status == 201, await response.text()
        # B takes the publish over from A's released lease.
        status = await wait_status(
            http, b.on(published["links"]["session"]), {"published", "error"}
        )
        assert status["status"] == "published", status
        big_status = await wait_status(
            http, b.on(file["links"]["file-upload-session"]), {"completed"}
        )
        assert big_status["status"] == "completed"
    for wheel in wheels:
        assert sha256_of(packages / wheel.name) == sha256_of(wheel)


async def test_sigterm_fails_readiness_and_serves_writes_for_the_shutdown_grace(
    replicas, project_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """R-W5/R-W12: with `server.shutdown_grace`, readiness flips first and a write arriving
    in the grace is served (not `503 shutting-down`); then the listener closes."""
    monkeypatch.setenv("GATEWAY_SERVER__SHUTDOWN_GRACE", "3")
    a = replicas("grace-" + project_name)
    async with aiohttp.ClientSession() as http:
        assert await _readyz(http, a.port) == 200
        a.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert await _readyz(http, a.port) == 503
        session = await create_session(http, a.api, project_name)  # asserts 201
        assert session["status"] == "open"
        await asyncio.sleep(3)
        assert await _readyz(http, a.port) is None  # no longer listening
        assert await asyncio.to_thread(a.process.wait, 30) == 0


async def _readyz(http: aiohttp.ClientSession, port: int) -> int | None:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return None


async def send_bytes(http: aiohttp.ClientSession, file: dict, data: bytes) -> int:  # type: ignore[type-arg]
    octets = {**HEADERS, "Content-Type": "application/octet-stream"}
    async with http.post(file["mechanism"]["file_url"], data=data, headers=octets) as response:
        return response.status
