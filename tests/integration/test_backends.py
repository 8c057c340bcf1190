"""Backend profiles against real pypiserver and devpi-server, fed by real twine uploads.

One project is uploaded per module and shared; every test only reads. A few failure modes
no real index can be made to show on demand (5xx, a huge page, a hang, a redirect to
another host) use a small aiohttp server of the test's own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.devstack import Server, free_port, start_pypiserver
from gateway.publish.backends import (
    BackendInvalidResponse,
    BackendRefused,
    BackendUnavailable,
    DevpiBackend,
    PypiserverBackend,
    WarehouseBackend,
    backend_for,
)
from gateway.publish.backends.base import basic_authorization
from gateway.publish.backends.devpi import parse_devpi_project
from gateway.publish.backends.warehouse import SIMPLE_ACCEPT
from gateway.settings import BackendSettings
from tests.conftest import INDEX_PASSWORD, INDEX_USER, twine_upload
from tests.distributions import build_sdist, build_wheel, sha256_of

MakeSettings = Callable[..., BackendSettings]


@dataclass(frozen=True)
class Published:
    project: str
    files: dict[str, str]  # filename -> sha256 hex
    paths: tuple[Path, ...]


@pytest.fixture(scope="module")
def published(
    pypiserver: Server, devpi: Server, tmp_path_factory: pytest.TempPathFactory
) -> Published:
    """A wheel and an sdist of a fresh project, uploaded to both indexes."""
    project = "bk-" + secrets.token_hex(4)
    directory = tmp_path_factory.mktemp("dists")
    paths = (
        build_wheel(directory, project, "1.0", payload=b"wheel bytes"),
        build_sdist(directory, project, "1.0", payload=b"sdist bytes"),
    )
    twine_upload(pypiserver.url + "/", *paths)
    twine_upload(devpi.extra["index_url"], *paths)
    return Published(project, {path.name: sha256_of(path) for path in paths}, paths)


@pytest.fixture
def make_backend_settings() -> MakeSettings:
    def make(
        kind: str, simple_url: str, upload_url: str = "", **overrides: object
    ) -> BackendSettings:
        values: dict[str, object] = {
            "kind": kind,
            "upload_url": upload_url or simple_url,
            "simple_url": simple_url,
            "username": INDEX_USER,
            "password": INDEX_PASSWORD,
            **overrides,
        }
        return BackendSettings.model_validate(values)

    return make


@pytest.fixture
def pypiserver_simple(pypiserver: Server) -> str:
    return pypiserver.url + "/simple/"


@pytest.fixture
def devpi_simple(devpi: Server) -> str:
    return devpi.extra["index_url"] + "+simple/"


@pytest.fixture
def pypiserver_settings(
    make_backend_settings: MakeSettings, pypiserver: Server, pypiserver_simple: str
) -> BackendSettings:
    return make_backend_settings("pypiserver", pypiserver_simple, pypiserver.url + "/")


@pytest.fixture
def devpi_settings(
    make_backend_settings: MakeSettings, devpi: Server, devpi_simple: str
) -> BackendSettings:
    return make_backend_settings("devpi", devpi_simple, devpi.extra["index_url"])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- pypiserver -------------------------------------------------------------------


async def test_pypiserver_lists_the_uploaded_files_with_sha256(
    published: Published, pypiserver_settings: BackendSettings, http: aiohttp.ClientSession
) -> None:
    backend = backend_for(pypiserver_settings, http)
    assert isinstance(backend, PypiserverBackend)
    assert await backend.published_files(published.project) == published.files


async def test_pypiserver_normalizes_the_project_name(
    published: Published, pypiserver_settings: BackendSettings, http: aiohttp.ClientSession
) -> None:
    spelled_differently = published.project.upper().replace("-", "_")
    backend = backend_for(pypiserver_settings, http)
    assert await backend.published_files(spelled_differently) == published.files

    # Asked for the name as spelled, pypiserver redirects to the normalized page.
    document = await backend.fetch(
        f"{pypiserver_settings.simple_url}{spelled_differently}/", accept="text/html"
    )
    assert document is not None
    assert document.url == backend.listing_url(published.project)


async def test_pypiserver_reads_need_no_credentials_with_authenticate_update(
    published: Published, pypiserver_settings: BackendSettings, http: aiohttp.ClientSession
) -> None:
    anonymous = pypiserver_settings.model_copy(update={"username": None, "password": None})
    assert await backend_for(anonymous, http).published_files(published.project) == published.files


async def test_pypiserver_unknown_project_is_empty(
    pypiserver_settings: BackendSettings, http: aiohttp.ClientSession
) -> None:
    assert await backend_for(pypiserver_settings, http).published_files("bk-never-uploaded") == {}


@pytest.fixture(scope="module")
def private_pypiserver(
    published: Published,
    pypiserver: Server,
    servers_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """pypiserver guarding reads too, and with its default fallback to pypi.org left on."""
    directory = tmp_path_factory.mktemp("private-pypiserver")
    packages = directory / "packages"
    packages.mkdir()
    for path in published.paths:
        shutil.copy(path, packages)
    # The htpasswd the shared pypiserver fixture wrote: hashing anew would cost a second.
    htpasswd = servers_dir / "htpasswd"
    server = start_pypiserver(
        packages, htpasswd, directory / "pypiserver.log", authenticate="update,list,download"
    )
    yield server
    server.stop()


@pytest.fixture
def private_settings(
    make_backend_settings: MakeSettings, private_pypiserver: Server
) -> BackendSettings:
    url = private_pypiserver.url
    return make_backend_settings("pypiserver", url + "/simple/", url + "/")


async def test_pypiserver_guarding_reads_lists_with_the_right_credentials(
    published: Published, private_settings: BackendSettings, http: aiohttp.ClientSession
) -> None:
    assert await backend_for(private_settings, http).published_files(published.project) == (
        published.files
    )


@pytest.mark.parametrize(
    "overrides",
    [{"password": "wrong-password"}, {"username": None, "password": None}],
    ids=["wrong-password", "no-credentials"],
)
async def test_pypiserver_guarding_reads_refuses_other_credentials(
    published: Published,
    private_pypiserver: Server,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
    overrides: dict[str, object],
) -> None:
    settings = make_backend_settings("pypiserver", private_pypiserver.url + "/simple/", **overrides)
    with pytest.raises(BackendRefused) as caught:
        await backend_for(settings, http).published_files(published.project)
    assert "wrong-password" not in str(caught.value)


async def test_pypiserver_fallback_redirect_means_unknown(
    private_settings: BackendSettings, http: aiohttp.ClientSession
) -> None:
    # pypiserver answers 303 to https://pypi.org/simple/<project>/: what is there is not here.
    assert await backend_for(private_settings, http).published_files("requests") == {}


# --- devpi ------------------------------------------------------------------------


async def test_devpi_lists_the_uploaded_files_with_sha256(
    published: Published, devpi_settings: BackendSettings, http: aiohttp.ClientSession
) -> None:
    backend = backend_for(devpi_settings, http)
    assert isinstance(backend, DevpiBackend)
    assert backend.listing_url(published.project) == (
        f"{devpi_settings.upload_url}{published.project}"
    )
    assert await backend.published_files(published.project) == published.files


async def test_devpi_unknown_project_is_empty(
    devpi_settings: BackendSettings, http: aiohttp.ClientSession
) -> None:
    assert await backend_for(devpi_settings, http).published_files("bk-never-uploaded") == {}


@pytest.mark.parametrize(
    "overrides",
    [{"password": "wrong-password"}, {"username": None, "password": None}],
    ids=["wrong-password", "no-credentials"],
)
async def test_devpi_does_not_guard_reads(
    published: Published,
    devpi_simple: str,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
    overrides: dict[str, object],
) -> None:
    settings = make_backend_settings("devpi", devpi_simple, **overrides)
    assert await backend_for(settings, http).published_files(published.project) == (published.files)


@dataclass(frozen=True)
class DerivedIndexes:
    with_own_release: str  # index URL
    own_files: dict[str, str]
    without_own_release: str


def devpi_call(
    url: str, method: str, body: dict[str, object], token: str | None = None
) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    if token:
        request.add_header("X-Devpi-Auth", token)
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
    return answer


def devpi_login(devpi: Server) -> str:
    """An X-Devpi-Auth token for the index user."""
    login = devpi_call(
        devpi.url + "/+login", "POST", {"user": INDEX_USER, "password": INDEX_PASSWORD}
    )
    return base64.b64encode(f"{INDEX_USER}:{login['result']['password']}".encode()).decode()


def create_derived_index(devpi: Server, token: str) -> str:
    """A new index of the index user, based on the shared ``indexer/dev``; its URL."""
    index_url = f"{devpi.url}/{INDEX_USER}/derived-{secrets.token_hex(3)}/"
    body: dict[str, object] = {
        "type": "stage",
        "bases": [f"{INDEX_USER}/dev"],
        "volatile": False,
        "acl_upload": [INDEX_USER],
    }
    devpi_call(index_url.rstrip("/"), "PUT", body, token)
    return index_url


@pytest.fixture(scope="module")
def derived_indexes(
    published: Published, devpi: Server, tmp_path_factory: pytest.TempPathFactory
) -> DerivedIndexes:
    """Two devpi indexes based on the shared one; one holds a release of its own."""
    token = devpi_login(devpi)
    with_own, without_own = create_derived_index(devpi, token), create_derived_index(devpi, token)
    wheel = build_wheel(tmp_path_factory.mktemp("derived"), published.project, "1.1")
    twine_upload(with_own, wheel)
    return DerivedIndexes(with_own, {wheel.name: sha256_of(wheel)}, without_own)


async def test_devpi_lists_only_the_index_own_files_not_inherited_ones(
    published: Published,
    derived_indexes: DerivedIndexes,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
) -> None:
    simple_url = derived_indexes.with_own_release + "+simple/"
    devpi_profile = backend_for(make_backend_settings("devpi", simple_url), http)
    simple_profile = backend_for(make_backend_settings("warehouse", simple_url), http)

    assert await devpi_profile.published_files(published.project) == derived_indexes.own_files
    # The simple page mixes in the base index's files: why devpi has a profile of its own.
    assert await simple_profile.published_files(published.project) == {
        **published.files,
        **derived_indexes.own_files,
    }


async def test_devpi_project_known_only_through_a_base_is_empty(
    published: Published,
    derived_indexes: DerivedIndexes,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
) -> None:
    simple_url = derived_indexes.without_own_release + "+simple/"
    backend = backend_for(make_backend_settings("devpi", simple_url), http)
    assert await backend.published_files(published.project) == {}


async def test_devpi_keeps_ignore_bases_across_its_name_redirect(
    published: Published,
    derived_indexes: DerivedIndexes,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
) -> None:
    # devpi redirects a non-normalized name and drops the query on the way.
    simple_url = derived_indexes.with_own_release + "+simple/"
    backend = backend_for(make_backend_settings("devpi", simple_url), http)
    spelled_differently = published.project.upper().replace("-", "_")
    document = await backend.fetch(
        derived_indexes.with_own_release + spelled_differently,
        accept="application/json",
        query="ignore_bases",
    )
    assert document is not None
    assert document.url == backend.listing_url(published.project) + "?ignore_bases"
    assert parse_devpi_project(json.loads(document.body)) == derived_indexes.own_files


# --- warehouse (the standard simple API) ------------------------------------------


async def test_warehouse_reads_pep691_json(
    published: Published,
    devpi_simple: str,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
) -> None:
    backend = backend_for(make_backend_settings("warehouse", devpi_simple), http)
    assert isinstance(backend, WarehouseBackend)
    document = await backend.fetch(backend.listing_url(published.project), accept=SIMPLE_ACCEPT)
    assert document is not None
    assert document.content_type == "application/vnd.pypi.simple.v1+json"
    assert await backend.published_files(published.project) == published.files


async def test_warehouse_falls_back_to_pep503_html(
    published: Published,
    pypiserver_simple: str,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
) -> None:
    backend = backend_for(make_backend_settings("warehouse", pypiserver_simple), http)
    assert await backend.published_files(published.project) == published.files


@pytest.mark.parametrize("simple_url_fixture", ["pypiserver_simple", "devpi_simple"])
async def test_warehouse_unknown_project_is_empty(
    request: pytest.FixtureRequest,
    simple_url_fixture: str,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
) -> None:
    simple_url: str = request.getfixturevalue(simple_url_fixture)
    backend = backend_for(make_backend_settings("warehouse", simple_url), http)
    assert await backend.published_files("bk-never-uploaded") == {}


# --- failures ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pypiserver", "devpi", "warehouse"])
async def test_a_dead_port_is_unavailable_and_the_message_has_no_credentials(
    kind: str, make_backend_settings: MakeSettings, http: aiohttp.ClientSession
) -> None:
    simple_url = f"http://127.0.0.1:{free_port()}/indexer/dev/+simple/"
    settings = make_backend_settings(kind, simple_url, password="s3cret-password")
    with pytest.raises(BackendUnavailable) as caught:
        await backend_for(settings, http).published_files("anything")
    message = str(caught.value)
    assert "127.0.0.1" in message
    assert "s3cret-password" not in message


async def test_credentials_in_the_url_are_used_but_never_shown(
    published: Published,
    private_pypiserver: Server,
    make_backend_settings: MakeSettings,
    http: aiohttp.ClientSession,
) -> None:
    host = private_pypiserver.url.removeprefix("http://")
    good = make_backend_settings(
        "pypiserver", f"http://{INDEX_USER}:{INDEX_PASSWORD}@{host}/simple/", username=None
    )
    assert await backend_for(good, http).published_files(published.project) == published.files

    bad = make_backend_settings(
        "pypiserver", f"http://{INDEX_USER}:s3cret-password@{host}/simple/", username=None
    )
    with pytest.raises(BackendRefused) as caught:
        await backend_for(bad, http).published_files(published.project)
    assert "s3cret-password" not in str(caught.value)


async def serve(routes: web.RouteTableDef) -> TestServer:
    app = web.Application()
    app.add_routes(routes)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def servers() -> AsyncIterator[list[TestServer]]:
    started: list[TestServer] = []
    yield started
    for server in started:
        await server.close()


async def test_server_errors_are_unavailable(
    servers: list[TestServer], make_backend_settings: MakeSettings, http: aiohttp.ClientSession
) -> None:
    routes = web.RouteTableDef()

    @routes.get("/simple/{project}/")
    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=502, text="bad gateway")

    server = await serve(routes)
    servers.append(server)
    settings = make_backend_settings("warehouse", str(server.make_url("/simple/")))
    with pytest.raises(BackendUnavailable, match="502"):
        await backend_for(settings, http).published_files("demo")


async def test_an_oversized_listing_is_refused_before_it_is_all_read(
    servers: list[TestServer], make_backend_settings: MakeSettings, http: aiohttp.ClientSession
) -> None:
    routes = web.RouteTableDef()

    @routes.get("/simple/{project}/")
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for _ in range(1000):  # 64 MiB, without a Content-Length
            await response.write(b"<a href='x'>" * 5592)
        return response

    server = await serve(routes)
    servers.append(server)
    settings = make_backend_settings("warehouse", str(server.make_url("/simple/")))
    backend = WarehouseBackend(settings, http, max_listing_bytes=1024 * 1024)
    with pytest.raises(BackendInvalidResponse, match="larger than"):
        await backend.published_files("demo")


async def test_a_hanging_index_times_out(
    servers: list[TestServer], make_backend_settings: MakeSettings, http: aiohttp.ClientSession
) -> None:
    routes = web.RouteTableDef()

    @routes.get("/simple/{project}/")
    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text="")

    server = await serve(routes)
    servers.append(server)
    settings = make_backend_settings("warehouse", str(server.make_url("/simple/")), timeout=1)
    with pytest.raises(BackendUnavailable, match="did not answer"):
        await backend_for(settings, http).published_files("demo")


async def test_credentials_are_not_sent_to_another_host_on_redirect(
    servers: list[TestServer], make_backend_settings: MakeSettings, http: aiohttp.ClientSession
) -> None:
    seen: list[str | None] = []
    elsewhere_routes = web.RouteTableDef()

    @elsewhere_routes.get("/simple/{project}/")
    async def listing(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(
            text="<a href='/f/demo-1.0.tar.gz#sha256=" + "ab" * 32 + "'>x</a>",
            content_type="text/html",
        )

    elsewhere = await serve(elsewhere_routes)
    servers.append(elsewhere)
    index_routes = web.RouteTableDef()

    @index_routes.get("/simple/{project}/")
    async def redirect(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        raise web.HTTPFound(str(elsewhere.make_url(request.path)))

    index = await serve(index_routes)
    servers.append(index)
    settings = make_backend_settings("warehouse", str(index.make_url("/simple/")))
    assert await backend_for(settings, http).published_files("demo") == {
        "demo-1.0.tar.gz": "ab" * 32
    }
    assert seen == [basic_authorization(INDEX_USER, INDEX_PASSWORD), None]
