"""Slow clients cannot pin connections or handlers (issue #10, hostile input).

The gateway is started the way ``upload-gateway serve`` starts it (``serve.make_runner``), so
the slowloris guard under test is the production one.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from gateway.devstack import free_port
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.serve import make_runner
from gateway.settings import Settings
from tests.conftest import ALICE
from tests.distributions import build_wheel
from tests.integration.conftest import META

GIVE_UP = 20.0  # seconds: far beyond the one-second timeouts configured below


@pytest.fixture
async def gateway(make_settings) -> AsyncIterator[Settings]:  # type: ignore[no-untyped-def]
    port = free_port()
    settings = make_settings(
        server={
            "public_base_url": f"http://127.0.0.1:{port}",
            "port": port,
            "idle_timeout": 1,
            "client_timeout": 1,
        }
    )
    runner = make_runner(settings)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield settings
    finally:
        await runner.cleanup()


@pytest.fixture
async def http(gateway: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        gateway.server.public_base_url, headers={"Authorization": ALICE.authorization}
    ) as session:
        yield session


async def closed_within(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Trickle a header byte every 200 ms until the server hangs up; what it said."""
    answer = b""
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        try:
            writer.write(b"X")
            await writer.drain()
            chunk = await asyncio.wait_for(reader.read(65536), 0.2)
        except TimeoutError:
            continue
        except ConnectionError:
            return answer
        if not chunk:
            return answer
        answer += chunk
    pytest.fail("the server kept a trickling connection open")


async def first_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """What the gateway answers to the bytes written so far (the client then hangs up)."""
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), GIVE_UP)
    finally:
        writer.close()


async def test_a_request_head_trickling_in_is_cut_off(gateway: Settings) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    writer.write(b"GET /upload/2.0/openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        assert await closed_within(reader, writer) == b""
    finally:
        writer.close()


async def test_an_idle_connection_after_a_response_is_cut_off(gateway: Settings) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        assert b"HTTP/1.1" not in await closed_within(reader, writer)
    finally:
        writer.close()


async def test_a_stalled_json_body_is_a_408(gateway: Settings, project_name: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    body = b'{"meta": {"api-version": "2.0"}, "name": "' + project_name.encode()
    writer.write(
        b"POST /upload/2.0/ HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: {ALICE.authorization}\r\n".encode()
        + b"Content-Type: application/vnd.pypi.upload.v2+json\r\n"
        + f"Content-Length: {len(body) + 100}\r\n\r\n".encode()
        + body
    )
    answer = await first_answer(reader, writer)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"application/problem+json" in answer
    assert b"client-too-slow" in answer


async def test_a_stalled_upload_is_a_408_and_can_be_sent_again(
    gateway: Settings, http: aiohttp.ClientSession, project_name: str, tmp_path: Path
) -> None:
    data = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(3 << 20)).read_bytes()
    filename = f"{project_name.replace('-', '_')}-1.0-py3-none-any.whl"
    json_headers = {"Content-Type": UPLOAD_V2_JSON}
    created = await http.post(
        "/upload/2.0/",
        json={"meta": META, "name": project_name, "version": "1.0"},
        headers=json_headers,
    )
    session = await created.json(content_type=UPLOAD_V2_JSON)
    started = await http.post(
        session["links"]["upload"],
        json={
            "meta": META,
            "filename": filename,
            "size": len(data),
            "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
            "mechanism": "http-post-bytes",
        },
        headers=json_headers,
    )
    file = await started.json(content_type=UPLOAD_V2_JSON)
    file_url = URL(file["mechanism"]["file_url"])

    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    writer.write(
        f"POST {file_url.path_qs} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {ALICE.authorization}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data[: 2 << 20]
    )
    answer = await first_answer(reader, writer)
    assert answer.startswith(b"HTTP/1.1 408"), answer

    status = await (await http.get(file["links"]["file-upload-session"])).json(
        content_type=UPLOAD_V2_JSON
    )
    assert status["status"] == "pending"
    sent = await http.post(
        file_url, data=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert sent.status == 200, await sent.text()
    completed = await http.post(
        file["links"]["complete"], json={"meta": META}, headers=json_headers
    )
    assert completed.status == 201, await completed.text()


async def test_an_oversized_header_is_refused_before_the_application(
    gateway: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp refuses a header line over 8 KiB while parsing, before any middleware runs:
    the answer is its own plain-text 400 (not a problem document), the connection closes, and
    the bytes it quotes in its exception never reach the logs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    writer.write(
        b"GET /upload/2.0/openapi.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + b"secret" * 4000
        + b"\r\n\r\n"
    )
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), GIVE_UP)
    finally:
        writer.close()
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:200]
    assert caplog.records, "aiohttp logs the refusal"
    assert "secret" not in caplog.text
