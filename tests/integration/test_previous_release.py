"""Reading a released file's metadata from an index: PEP 658 hints, HTTP ranges, and an
index that ignores ranges (docs/preview.md, "How the comparison reads the index")."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from packaging.version import Version

from gateway.distribution.archive import extract_metadata
from gateway.publish.backends import backend_for
from gateway.publish.backends.base import Document
from gateway.publish.backends.remote import open_remote
from gateway.publish.backends.warehouse import parse_release_files
from gateway.settings import BackendSettings
from gateway.stage.compare import latest_release
from tests.distributions import build_wheel


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def index_serving(wheel: Path, *, ranges: bool) -> tuple[TestServer, list[str]]:
    """An index with one file; it honours Range (aiohttp's FileResponse) or ignores it."""
    seen: list[str] = []

    async def download(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Range", "-"))
        if ranges:
            return web.FileResponse(wheel)
        return web.Response(body=wheel.read_bytes(), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get(f"/files/{wheel.name}", download)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, seen


def settings_for(server: TestServer) -> BackendSettings:
    url = str(server.make_url("/simple/"))
    return BackendSettings(kind="warehouse", upload_url=url, simple_url=url)


@pytest.mark.parametrize("ranges", [True, False])
async def test_a_wheels_metadata_is_read_by_ranges_or_whole(
    tmp_path: Path, http: aiohttp.ClientSession, ranges: bool
) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0", payload=os.urandom(3 << 20))
    server, seen = await index_serving(wheel, ranges=ranges)
    try:
        backend = backend_for(settings_for(server), http)
        reader = await open_remote(backend, str(server.make_url(f"/files/{wheel.name}")))
        assert reader.size == wheel.stat().st_size
        extracted = await extract_metadata(reader, wheel.name)
    finally:
        await server.close()
    assert extracted.metadata.name == "demo"
    assert str(extracted.metadata.version) == "1.0"
    if ranges:  # the tail, then the METADATA member: never the 3 MiB payload
        assert len(seen) <= 3
        assert all(header.startswith("bytes=") for header in seen)
    else:
        assert len(seen) == 1  # the whole file came with the first answer and was kept


def test_release_files_carry_urls_and_pep_658_hints() -> None:
    page = {
        "meta": {"api-version": "1.1"},
        "files": [
            {
                "filename": "demo-1.0-py3-none-any.whl",
                "url": "../../files/demo-1.0-py3-none-any.whl",
                "hashes": {"sha256": "AB" * 32},
                "core-metadata": {"sha256": "cd" * 32},
            },
            {"filename": "demo-1.0.tar.gz", "url": "/files/demo-1.0.tar.gz", "hashes": {}},
        ],
    }
    document = Document(
        "https://index.test/simple/demo/",
        "application/vnd.pypi.simple.v1+json",
        None,
        json.dumps(page).encode(),
    )
    wheel, sdist = parse_release_files(document)
    assert wheel.url == "https://index.test/files/demo-1.0-py3-none-any.whl"
    assert wheel.sha256 == "ab" * 32
    assert wheel.metadata_url == wheel.url + ".metadata"
    assert sdist.metadata_url is None
    html = (
        '<a href="/f/demo-0.9.tar.gz#sha256=' + "ef" * 32 + '" data-dist-info-metadata="true">'
        "demo-0.9.tar.gz</a><a href='/f/demo-0.8.tar.gz' data-core-metadata='false'>x</a>"
    )
    hinted, plain = parse_release_files(
        Document("https://index.test/simple/demo/", "text/html", "utf-8", html.encode())
    )
    assert hinted.metadata_url == "https://index.test/f/demo-0.9.tar.gz.metadata"
    assert hinted.sha256 == "ef" * 32
    assert plain.metadata_url is None


def test_the_latest_release_is_the_highest_other_version() -> None:
    names = [
        "demo-0.9.tar.gz",
        "demo-1.1rc1-py3-none-any.whl",
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
        "demo-2.0.tar.gz",  # the staged version itself
        "demo-0.1.zip",  # not a distribution the gateway reads
    ]
    assert latest_release(names, Version("2.0")) == (
        Version("1.1rc1"),
        ["demo-1.1rc1-py3-none-any.whl"],
    )
    assert latest_release(["demo-2.0.tar.gz"], Version("2.0")) is None
