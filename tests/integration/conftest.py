"""An API client against the real app, plus helpers that speak the protocol."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from gateway.api.context import SERVICES
from gateway.app import create_app
from gateway.app_keys import S3_CLIENT
from gateway.devstack import Server, free_port
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.settings import Settings
from gateway.store.record_store import RecordStore
from gateway.store.s3 import open_client, open_small_objects
from tests.conftest import ALICE, INDEX_PASSWORD, INDEX_USER, PIP
from tests.consistency import check_bucket
from tests.integration.cli import Cli
from tests.integration.replicas import Replica, start_replica
from tests.wire import META, file_body, session_body


class Api:
    """Thin helper: absolute links from responses are turned back into test-client paths."""

    def __init__(self, client: TestClient, settings: Settings, authorization: str):
        self.client = client
        self.base = settings.server.public_base_url
        self.root = settings.server.api_root
        self.authorization = authorization

    def path(self, url: str) -> str:
        assert url.startswith(self.base), f"{url} is not under the public base {self.base}"
        return url[len(self.base) :]

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": self.authorization, **extra}

    async def post_json(
        self, url: str, body: Any, authorization: str | None = None, **headers: str
    ) -> ClientResponse:
        return await self.client.post(
            self.path(url) if url.startswith("http") else url,
            json=body,
            headers={
                "Authorization": authorization or self.authorization,
                "Content-Type": UPLOAD_V2_JSON,
                **headers,
            },
        )

    async def get(self, url: str, **headers: str) -> ClientResponse:
        return await self.client.get(self.path(url), headers=self.headers(**headers))

    async def delete(self, url: str, **headers: str) -> ClientResponse:
        return await self.client.delete(self.path(url), headers=self.headers(**headers))

    async def create_session(self, name: str, version: str = "1.0") -> dict[str, Any]:
        response = await self.post_json(self.root, session_body(name, version))
        assert response.status == 201, await response.text()
        return await response.json(content_type=UPLOAD_V2_JSON)

    async def status(self, url: str) -> dict[str, Any]:
        response = await self.get(url)
        assert response.status == 200, await response.text()
        return await response.json(content_type=UPLOAD_V2_JSON)

    async def start_file(
        self, session: dict[str, Any], filename: str, data: bytes, **overrides: Any
    ) -> ClientResponse:
        body = file_body(filename, data, **overrides)
        return await self.post_json(session["links"]["upload"], body)

    async def create_file(
        self, session: dict[str, Any], filename: str, data: bytes, **overrides: Any
    ) -> dict[str, Any]:
        response = await self.start_file(session, filename, data, **overrides)
        assert response.status == 202, await response.text()
        return await response.json(content_type=UPLOAD_V2_JSON)

    async def send_bytes(
        self, file: dict[str, Any], data: bytes, content_type: str = "application/octet-stream"
    ) -> ClientResponse:
        return await self.client.post(
            self.path(file["mechanism"]["file_url"]),
            data=data,
            headers=self.headers(**{"Content-Type": content_type}),
        )

    async def complete(self, file: dict[str, Any]) -> ClientResponse:
        return await self.post_json(file["links"]["complete"], {"meta": META})

    async def publish(self, session: dict[str, Any]) -> ClientResponse:
        return await self.post_json(session["links"]["publish"], {"meta": META})

    async def settled(self, url: str, tries: int = 600) -> dict[str, Any]:
        """The status at ``url`` (a session's or a file's) once it is no longer processing."""
        for _ in range(tries):
            status = await self.status(url)
            if status["status"] != "processing":
                return status
            await asyncio.sleep(0.1)
        raise AssertionError(f"{url} stayed processing")

    async def wait_resolved(self, session: dict[str, Any]) -> dict[str, Any]:
        return await self.settled(session["links"]["session"])

    async def upload(self, session: dict[str, Any], path: Path) -> dict[str, Any]:
        """The whole file upload flow for a file that must end up completed."""
        data = path.read_bytes()
        file = await self.create_file(session, path.name, data)
        response = await self.send_bytes(file, data)
        assert response.status == 200, await response.text()
        response = await self.complete(file)
        assert response.status == 201, await response.text()
        return await response.json(content_type=UPLOAD_V2_JSON)


def backend_section(kind: str, index: Server, *, credentials: bool = True) -> dict[str, Any]:
    """The ``[backend]`` settings for the suite's pypiserver or devpi (``index``); without
    ``credentials`` only the caller's own reach the index (passthrough)."""
    if kind == "devpi":
        upload_url = index.extra["index_url"]
        simple_url = upload_url + "+simple/"
    else:
        upload_url, simple_url = index.url + "/", index.url + "/simple/"
    return {
        "kind": kind,
        "upload_url": upload_url,
        "simple_url": simple_url,
        "username": INDEX_USER if credentials else None,
        "password": INDEX_PASSWORD if credentials else None,
    }


async def make_api(  # type: ignore[no-untyped-def]
    aiohttp_client, settings: Settings, authorization: str = ALICE.authorization
) -> Api:
    """An ``Api`` over a fresh app built from ``settings`` (sweeper off: tests drive it)."""
    return Api(
        await aiohttp_client(create_app(settings, run_sweeper=False)), settings, authorization
    )


@pytest.fixture
def replicas(  # type: ignore[no-untyped-def]
    seaweedfs: Server, pypiserver: Server, principal_settings, tmp_path: Path
) -> Iterator[Callable[..., Replica]]:
    """Start gateway processes on a key prefix (``replicas(prefix, extra_toml="")``); those
    still running are stopped after the test."""
    started: list[Replica] = []

    def start(prefix: str, extra: str = "") -> Replica:
        replica = start_replica(tmp_path, seaweedfs, pypiserver, prefix, principal_settings, extra)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.process.poll() is None:
            replica.process.terminate()
            replica.process.wait(30)


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(settings, run_sweeper=False))


@pytest.fixture
def live_gateway(aiohttp_server, aiohttp_client, make_settings):  # type: ignore[no-untyped-def]
    """Start a gateway on a real loopback port whose public base URL is that port, so that
    subprocesses (pip, uv, twine, the CLI) can follow the links it answers with."""

    async def start(**sections: dict[str, object]) -> Api:
        port = free_port()
        server_section = {
            "public_base_url": f"http://127.0.0.1:{port}",
            **sections.pop("server", {}),
        }
        settings = make_settings(server=server_section, **sections)
        server = await aiohttp_server(create_app(settings, run_sweeper=False), port=port)
        return Api(await aiohttp_client(server), settings, ALICE.authorization)

    return start


@pytest.fixture
async def live(live_gateway) -> Api:  # type: ignore[no-untyped-def]
    return await live_gateway()


async def pip(*args: str) -> None:
    """Real pip, run without blocking the event loop that may be serving it."""
    process = await asyncio.create_subprocess_exec(
        *PIP, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, output.decode()


@pytest.fixture
def api(client: TestClient, settings: Settings) -> Api:
    return Api(client, settings, ALICE.authorization)


@pytest.fixture
async def bucket_records(settings: Settings) -> AsyncIterator[RecordStore]:
    """The gateway's records under this test's prefix, as S3 holds them, through S3 clients of
    the test's own: what a test plants or inspects there, it reaches as any S3 client would."""
    config = settings.s3.store_config()
    async with open_client(config) as client, open_small_objects(config, client) as objects:
        yield RecordStore(objects, settings.s3.bucket, settings.s3.prefix)


async def problem(response: ClientResponse, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem document with ``status`` and return it."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json", text
    document = await response.json(content_type=None)
    assert document["status"] == status
    assert document["meta"] == META
    for key in ("type", "title", "detail", "errors"):
        assert key in document, document
    return document


async def assert_consistent(api: Api) -> None:
    """The bucket checker finds nothing wrong under this gateway's prefix, once the work
    this gateway runs in the background (a publish going on after the fault cleared) is done:
    the checker reads the bucket object by object and cannot follow changes under it."""
    services = api.client.app[SERVICES]
    await asyncio.gather(
        *services.publish_worker.tasks, *services.files.validations, return_exceptions=True
    )
    settings: Settings = services.settings
    violations = await check_bucket(
        api.client.app[S3_CLIENT], settings.s3.bucket, settings.s3.prefix
    )
    assert violations == []


async def index_files(pypiserver: Server, project: str) -> dict[str, str]:
    """Filename → sha256 of every file the real index lists for ``project``."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{pypiserver.url}/simple/{project}/") as response,
    ):
        if response.status == 404:
            return {}
        page = await response.text()
    return dict(re.findall(r'href="[^"]*/([^/"#]+)#sha256=([0-9a-f]{64})"', page))


async def put_parts(
    file: dict[str, Any], data: bytes, tamper: int | None = None, skip: int | None = None
) -> None:
    """The file's bytes PUT straight to S3, part by part, as a presigned-mechanism client does
    (optionally with one part changed or left out)."""
    mechanism = file["mechanism"]
    size = mechanism["part_size"]
    async with aiohttp.ClientSession() as http:  # no gateway credentials: the URLs are enough
        for part in mechanism["parts"]:
            number = part["number"]
            if number == skip:
                continue
            chunk = bytearray(data[(number - 1) * size : number * size])
            if number == tamper:
                chunk[0] ^= 0xFF
            async with http.put(part["url"], data=bytes(chunk)) as response:
                assert response.status == 200, await response.text()


# The bundled client's fixtures: a clean environment, the repository URL of ``live``, and
# the runner (``tests/integration/cli.py``).


@pytest.fixture
def root(live: Api) -> str:
    return live.base + live.root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No credentials, repository or state from the developer's environment leak in."""
    cleaned = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWINE_", "UPLOAD_GATEWAY_", "ACTIONS_ID_TOKEN_"))
    }
    home = tmp_path / "home"
    home.mkdir()
    cleaned.update(
        HOME=str(home),
        XDG_STATE_HOME=str(tmp_path / "state"),
        UPLOAD_GATEWAY_STATE_FILE=str(tmp_path / "sessions.json"),
        PYTHONUNBUFFERED="1",
    )
    return cleaned


@pytest.fixture
def cli(env: dict[str, str], root: str) -> Cli:
    return Cli(env, root)
