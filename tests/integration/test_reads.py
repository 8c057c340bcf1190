"""The read path as a modern index (R-W10): real pip and uv installing through the gateway in
front of pypiserver, which serves bare PEP 503 HTML, with releases put on the index directly
by twine (so the gateway learns of them only by reading them)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.api.context import SERVICES
from gateway.devstack import Server
from tests.conftest import ALICE, BOB, User, twine_upload_async
from tests.distributions import build_sdist, build_wheel, sha256_of
from tests.integration.conftest import Api, backend_section

UV = str(Path(sys.executable).with_name("uv"))
JSON_V1 = "application/vnd.pypi.simple.v1+json"


class Recorder:
    """A reverse proxy that records every path asked of ``target``: what an installer
    fetched, whether it talks to the index or to the gateway."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.paths: list[str] = []
        # path -> (status, content type, body): the index misbehaving for that path.
        self.answers: dict[str, tuple[int, str, bytes]] = {}
        self.authorizations: list[str | None] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        self.authorizations.append(request.headers.get("Authorization"))
        if request.path in self.answers:
            status, content_type, body = self.answers[request.path]
            return web.Response(status=status, body=body, content_type=content_type)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as http,
            http.get(self.target + request.path_qs, headers=headers, allow_redirects=False) as up,
        ):
            body = await up.read()
            keep = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            return web.Response(status=up.status, body=body, headers=keep)

    def files(self, version: str) -> list[str]:
        return [p for p in self.paths if f"-{version}-" in p or f"-{version}.tar" in p]


_HOP = {"transfer-encoding", "connection", "content-length", "keep-alive"}


@pytest.fixture
async def recorder(aiohttp_server):  # type: ignore[no-untyped-def]
    async def start(target: str) -> tuple[Recorder, str]:
        recorder = Recorder(target)
        app = web.Application()
        app.router.add_get("/{tail:.*}", recorder.handle)
        server = await aiohttp_server(app)
        return recorder, str(server.make_url("")).rstrip("/")

    return start


@pytest.fixture
async def two_releases(pypiserver: Server, project_name: str, tmp_path: Path) -> dict[str, Path]:
    """1.0 for Python >= 3.8 and 2.0 for >= 3.99, uploaded straight to the index."""
    old = build_wheel(tmp_path, project_name, "1.0", requires_python=">=3.8")
    new = build_wheel(tmp_path, project_name, "2.0", requires_python=">=3.99")
    code, output = await twine_upload_async(pypiserver.url + "/", old, new)
    assert code == 0, output
    return {"1.0": old, "2.0": new}


@pytest.fixture
async def front(live_gateway) -> Api:  # type: ignore[no-untyped-def]
    return await live_gateway(proxy={"read_proxy": True})


async def run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def pip_install(index: str, requirement: str, target: Path) -> str:
    return await run(
        sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir",
        "install", "--no-deps", "--target", str(target), "--index-url", index, requirement,
    )  # fmt: skip


async def uv_install(index: str, requirement: str, target: Path) -> str:
    return await run(
        UV, "pip", "install", "--no-cache", "--no-deps", "--python", sys.executable,
        "--target", str(target), "--index-url", index, requirement,
    )  # fmt: skip


def installed_version(target: Path) -> str:
    [metadata] = target.glob("*.dist-info/METADATA")
    [version] = [line for line in metadata.read_text().splitlines() if line.startswith("Version:")]
    return version.split(":", 1)[1].strip()


@pytest.mark.parametrize("installer", [pip_install, uv_install], ids=["pip", "uv"])
async def test_installers_skip_a_release_for_another_python_without_fetching_it(
    installer, front: Api, pypiserver: Server, two_releases: dict[str, Path], recorder,
    project_name: str, tmp_path: Path,
) -> None:  # fmt: skip
    """Through the gateway, Requires-Python is on the page, so 2.0 is never fetched; straight
    from pypiserver the installer downloads 2.0 first (R-W10)."""
    through, through_url = await recorder(front.base)
    await installer(through_url + "/simple/", project_name, tmp_path / "via-gateway")
    assert installed_version(tmp_path / "via-gateway") == "1.0"
    assert through.files("2.0") == []
    # The wheel once, and (pip) its PEP 658 metadata file before it.
    assert [p for p in through.files("1.0") if p.endswith(".whl")] == [
        f"/packages/{two_releases['1.0'].name}"
    ]

    direct, direct_url = await recorder(pypiserver.url)
    await installer(direct_url + "/simple/", project_name, tmp_path / "direct")
    assert direct.files("2.0"), direct.paths
    if installer is pip_install:
        # pip backtracks to 1.0 once it has read 2.0's METADATA. uv (0.9 here) installs 2.0
        # into --target without that check, worse still for the user on Python 3.11.
        assert installed_version(tmp_path / "direct") == "1.0"


async def test_json_and_html_list_the_same_files_with_the_same_facts(
    front: Api, two_releases: dict[str, Path], project_name: str
) -> None:
    page_url = front.base + f"/simple/{project_name}/"
    async with aiohttp.ClientSession() as http:
        async with http.get(page_url, headers={"Accept": JSON_V1}) as response:
            assert response.status == 200
            assert response.content_type == JSON_V1
            page = json.loads(await response.read())
        async with http.get(page_url + "?format=html") as response:
            assert response.content_type == "application/vnd.pypi.simple.v1+html"
            html = await response.text()
    assert page["meta"]["api-version"] == "1.1"
    assert sorted(page["versions"]) == ["1.0", "2.0"]
    for entry in page["files"]:
        wheel = two_releases[entry["filename"].split("-")[1]]
        assert entry["size"] == wheel.stat().st_size
        assert entry["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert entry["requires-python"] in html.replace("&gt;", ">")
        assert f'data-core-metadata="sha256={entry["core-metadata"]["sha256"]}"' in html
        assert entry["dist-info-metadata"] == entry["core-metadata"]
        assert entry["upload-time"].endswith("Z")
    assert {e["requires-python"] for e in page["files"]} == {">=3.8", ">=3.99"}


async def test_metadata_file_is_the_wheel_s_metadata(
    front: Api, two_releases: dict[str, Path], project_name: str
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            front.base + f"/simple/{project_name}/", headers={"Accept": JSON_V1}
        ) as response:
            page = json.loads(await response.read())
        for entry in page["files"]:
            async with http.get(front.base + entry["url"] + ".metadata") as response:
                assert response.status == 200
                served = await response.read()
            wheel = two_releases[entry["filename"].split("-")[1]]
            with zipfile.ZipFile(wheel) as archive:
                [member] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
                assert served == archive.read(member)
            assert hashlib.sha256(served).hexdigest() == entry["core-metadata"]["sha256"]


@pytest.mark.parametrize(
    ("headers", "query", "status", "content_type"),
    [
        ({"Accept": JSON_V1}, "", 200, JSON_V1),
        ({"Accept": "application/vnd.pypi.simple.latest+json"}, "", 200, JSON_V1),
        ({"Accept": "text/html"}, "", 200, "text/html"),
        ({}, "", 200, "text/html"),
        ({"Accept": "text/html"}, "?format=json", 200, JSON_V1),
        ({"Accept": "image/png"}, "", 406, "application/problem+json"),
        ({}, "?format=xml", 406, "application/problem+json"),
    ],
)
async def test_negotiation(
    front: Api, two_releases: dict[str, Path], project_name: str,
    headers: dict[str, str], query: str, status: int, content_type: str,
) -> None:  # fmt: skip
    async with aiohttp.ClientSession() as http:
        for path in (f"/simple/{project_name}/", "/simple/"):
            async with http.get(front.base + path + query, headers=headers) as response:
                assert response.status == status, await response.text()
                assert response.content_type == content_type


async def test_root_index_as_json(
    front: Api, two_releases: dict[str, Path], project_name: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(front.base + "/simple/", headers={"Accept": JSON_V1}) as response,
    ):
        page = json.loads(await response.read())
    assert {"name": project_name} in page["projects"]


async def test_odd_names_and_unknown_projects(
    front: Api, two_releases: dict[str, Path], project_name: str
) -> None:
    async with aiohttp.ClientSession() as http:
        spelled = project_name.upper().replace("-", "_")
        async with http.get(front.base + f"/simple/{spelled}/", allow_redirects=False) as r:
            assert r.status == 301
            assert r.headers["Location"] == front.base + f"/simple/{project_name}/"
        async with http.get(front.base + "/simple/-not-a-name-/") as r:
            assert r.status == 404
            assert r.content_type == "application/problem+json"
        async with http.get(front.base + "/elsewhere/x.whl.metadata") as r:
            assert r.status == 404


async def get_page(url: str, accept: str = JSON_V1) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Accept": accept}) as response,
    ):
        return response.status, response.content_type, await response.read()


async def test_an_index_that_fails_or_answers_garbage(
    live_gateway, pypiserver: Server, two_releases: dict[str, Path], recorder,
    project_name: str,
) -> None:  # fmt: skip
    """The index's own status for its errors, a problem for what is not a page, and nothing
    kept from either: the next good answer is served whole."""
    index, index_url = await recorder(pypiserver.url)
    front = await live_gateway(proxy={"read_proxy": True, "upstream": index_url})
    page = f"/simple/{project_name}/"
    index.answers[page] = (500, "text/plain", b"boom")
    assert (await get_page(front.base + page))[0] == 500
    index.answers[page] = (200, "text/plain", b"not a page")
    status, content_type, body = await get_page(front.base + page)
    assert (status, content_type) == (502, "application/problem+json")
    assert json.loads(body)["type"].endswith("index-invalid-page")
    del index.answers[page]
    status, _, body = await get_page(front.base + page)
    assert status == 200
    assert len(json.loads(body)["files"]) == 2


async def test_a_file_the_gateway_cannot_read_is_listed_as_the_index_lists_it(
    live_gateway, pypiserver: Server, recorder, project_name: str
) -> None:
    index, index_url = await recorder(pypiserver.url)
    front = await live_gateway(proxy={"read_proxy": True, "upstream": index_url})
    gone = f"{project_name.replace('-', '_')}-1.0-py3-none-any.whl"
    listing = f'<a href="/packages/{gone}#sha256={"ab" * 32}" data-requires-python="&gt;=3.9">x</a>'
    index.answers[f"/simple/{project_name}/"] = (200, "text/html", listing.encode())
    status, _, body = await get_page(front.base + f"/simple/{project_name}/")
    assert status == 200
    page = json.loads(body)
    assert page["meta"]["api-version"] == "1.0"  # no size known: PEP 700 cannot be claimed
    assert page["files"] == [
        {
            "filename": gone,
            "url": f"/packages/{gone}",
            "hashes": {"sha256": "ab" * 32},
            "requires-python": ">=3.9",
        }
    ]


async def test_a_release_published_through_the_gateway_is_known_at_once(
    front: Api, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", requires_python=">=3.10")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    session = await front.create_session(project_name)
    await front.upload(session, wheel)
    await front.upload(session, sdist)
    assert (await front.publish(session)).status in (201, 202)
    assert (await front.wait_resolved(session))["status"] == "published"
    facts = front.client.app[SERVICES].reads.facts
    for path in (wheel, sdist):
        record = await facts.get(sha256_of(path))
        assert record is not None
        assert record.learned_from == "publish"
    _, _, body = await get_page(front.base + f"/simple/{project_name}/")
    entries = {e["filename"]: e for e in json.loads(body)["files"]}
    assert entries[wheel.name]["requires-python"] == ">=3.10"
    assert "core-metadata" in entries[wheel.name]
    assert "core-metadata" not in entries[sdist.name]


@pytest.fixture
async def yanker(live_gateway, principal_settings) -> Api:  # type: ignore[no-untyped-def]
    """The read path, with alice allowed to yank anything and bob nothing."""
    principals = [
        {**p, "yank": ["*"]} if p["name"] == ALICE.name else p for p in principal_settings
    ]
    return await live_gateway(
        proxy={"read_proxy": True}, auth={"principals": principals}, audit={"enabled": True}
    )


async def cli(api: Api, *args: str, user: User = ALICE) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, "--no-keyring", "--repository-url",
        api.base + api.root, "-u", user.name, "-p", user.password,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


@pytest.mark.parametrize("installer", [pip_install, uv_install], ids=["pip", "uv"])
async def test_yank_skips_a_release_unless_pinned_and_unyank_restores_it(
    installer, yanker: Api, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:  # R-W10, PEP 592
    old = build_wheel(tmp_path, project_name, "1.0")
    new = build_wheel(tmp_path, project_name, "1.1")
    code, output = await twine_upload_async(pypiserver.url + "/", old, new)
    assert code == 0, output
    simple = yanker.base + "/simple/"
    code, output = await cli(yanker, "yank", f"{project_name}==1.1", "--reason", "broken import")
    assert code == 0, output
    assert f"yanked {project_name} 1.1 (broken import)" in output
    _, _, body = await get_page(yanker.base + f"/simple/{project_name}/")
    yanked = {e["filename"]: e.get("yanked") for e in json.loads(body)["files"]}
    assert yanked == {old.name: None, new.name: "broken import"}
    await installer(simple, project_name, tmp_path / "unpinned")
    assert installed_version(tmp_path / "unpinned") == "1.0"
    await installer(simple, f"{project_name}==1.1", tmp_path / "pinned")
    assert installed_version(tmp_path / "pinned") == "1.1"
    code, output = await cli(yanker, "unyank", f"{project_name}==1.1")
    assert code == 0, output
    await installer(simple, project_name, tmp_path / "restored")
    assert installed_version(tmp_path / "restored") == "1.1"
    events = await yanker.client.app[SERVICES].audit.read(project_name, None, None, 10)
    actions = [e.action for e in events.events]
    assert actions[:2] == ["release.unyanked", "release.yanked"]


async def test_yank_needs_the_permission_and_a_release_the_index_holds(
    yanker: Api, two_releases: dict[str, Path], project_name: str
) -> None:
    code, output = await cli(yanker, "yank", f"{project_name}==2.0", user=BOB)
    assert code == 1
    assert "403" in output
    code, output = await cli(yanker, "yank", f"{project_name}==3.0")
    assert code == 1
    assert "404" in output
    code, output = await cli(yanker, "yank", "not a name==1")
    assert code == 2


@pytest.fixture
async def devpi_front(live_gateway, devpi: Server) -> tuple[Api, str]:  # type: ignore[no-untyped-def]
    """The read path in front of devpi, which serves PEP 691 JSON and Requires-Python itself."""
    index = devpi.extra["index_url"]
    index_path = index.removeprefix(devpi.url)
    api = await live_gateway(
        backend=backend_section("devpi", devpi),
        proxy={"read_proxy": True, "read_prefixes": [index_path]},
    )
    return api, index_path


@pytest.mark.parametrize("installer", [pip_install, uv_install], ids=["pip", "uv"])
async def test_devpi_through_the_gateway_agrees_with_devpi(
    installer, devpi_front: tuple[Api, str], devpi: Server, recorder, project_name: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    api, index_path = devpi_front
    old = build_wheel(tmp_path, project_name, "1.0", requires_python=">=3.8")
    new = build_wheel(tmp_path, project_name, "2.0", requires_python=">=3.99")
    code, output = await twine_upload_async(devpi.extra["index_url"], old, new)
    assert code == 0, output
    page = f"{index_path}+simple/{project_name}/"
    _, _, ours = await get_page(api.base + page)
    _, content_type, theirs = await get_page(devpi.url + page)
    assert content_type == JSON_V1
    theirs_by_name = {e["filename"]: e for e in json.loads(theirs)["files"]}
    for entry in json.loads(ours)["files"]:
        index_entry = theirs_by_name[entry["filename"]]
        # Every fact devpi gives, the gateway gives the same.
        assert entry["hashes"]["sha256"] == index_entry["hashes"]["sha256"]
        assert entry["requires-python"] == index_entry["requires-python"]
        assert entry.get("yanked", False) == index_entry.get("yanked", False)
        assert entry["size"] == (old if "-1.0-" in entry["filename"] else new).stat().st_size
        assert entry["url"].startswith(index_path)
    through, through_url = await recorder(api.base)
    await installer(through_url + f"{index_path}+simple/", project_name, tmp_path / "site")
    assert installed_version(tmp_path / "site") == "1.0"
    assert through.files("2.0") == []


async def test_a_publish_through_the_gateway_shows_at_once_despite_the_page_cache(
    live_gateway, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    front = await live_gateway(proxy={"read_proxy": True, "page_max_age": 600})
    page = front.base + f"/simple/{project_name}/"
    first = build_wheel(tmp_path, project_name, "1.0")
    code, output = await twine_upload_async(pypiserver.url + "/", first)
    assert code == 0, output
    assert len(json.loads((await get_page(page))[2])["files"]) == 1
    # Straight onto the index: the cached page is served for page_max_age.
    around = build_wheel(tmp_path, project_name, "1.1")
    code, output = await twine_upload_async(pypiserver.url + "/", around)
    assert code == 0, output
    assert len(json.loads((await get_page(page))[2])["files"]) == 1
    # Through the gateway: its page is asked of the index again at once.
    session = await front.create_session(project_name, "1.2")
    await front.upload(session, build_wheel(tmp_path, project_name, "1.2"))
    assert (await front.publish(session)).status in (201, 202)
    assert (await front.wait_resolved(session))["status"] == "published"
    versions = json.loads((await get_page(page))[2])["versions"]
    assert sorted(versions) == ["1.0", "1.1", "1.2"]


async def test_credentials_never_follow_a_link_to_another_host(
    live_gateway, pypiserver: Server, two_releases: dict[str, Path], recorder, project_name: str
) -> None:
    index, index_url = await recorder(pypiserver.url)
    elsewhere, elsewhere_url = await recorder(pypiserver.url)
    front = await live_gateway(proxy={"read_proxy": True, "upstream": index_url})
    wheel = two_releases["1.0"].name
    link = f'<a href="{elsewhere_url}/packages/{wheel}#sha256={sha256_of(two_releases["1.0"])}">'
    index.answers[f"/simple/{project_name}/"] = (200, "text/html", link.encode())
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            front.base + f"/simple/{project_name}/",
            headers={"Accept": JSON_V1, "Authorization": "Basic c2VjcmV0OnNlY3JldA=="},
        ) as response,
    ):
        [entry] = json.loads(await response.read())["files"]
    assert entry["url"] == f"{elsewhere_url}/packages/{wheel}"  # not the index's: kept as is
    assert entry["requires-python"] == ">=3.8"  # learned from the other host...
    assert elsewhere.authorizations == [None]  # ...without the caller's credentials
    assert index.authorizations == ["Basic c2VjcmV0OnNlY3JldA=="]


async def test_an_index_s_own_yank_stands_unless_the_gateway_yanked(
    live_gateway, principal_settings, pypiserver: Server, two_releases: dict[str, Path],
    recorder, project_name: str,
) -> None:  # fmt: skip
    """devpi 6 yanks only on mirror stages, so an index that marks 1.0 yanked itself is
    played by the recorder in front of pypiserver; the gateway's yank wins while it is set."""
    index, index_url = await recorder(pypiserver.url)
    principals = [{**p, "yank": ["*"]} for p in principal_settings]
    front = await live_gateway(
        proxy={"read_proxy": True, "upstream": index_url, "page_max_age": 0},
        auth={"principals": principals},
    )
    links = "".join(
        f'<a href="/packages/{w.name}#sha256={sha256_of(w)}"'
        + (' data-yanked="the index says so"' if version == "1.0" else "")
        + f">{w.name}</a>"
        for version, w in two_releases.items()
    )
    index.answers[f"/simple/{project_name}/"] = (200, "text/html", links.encode())

    async def yanked() -> dict[str, object]:
        _, _, body = await get_page(front.base + f"/simple/{project_name}/")
        return {e["filename"].split("-")[1]: e.get("yanked") for e in json.loads(body)["files"]}

    assert await yanked() == {"1.0": "the index says so", "2.0": None}
    code, output = await cli(front, "yank", f"{project_name}==1.0", "--reason", "ours")
    assert code == 0, output
    assert await yanked() == {"1.0": "ours", "2.0": None}
    code, output = await cli(front, "unyank", f"{project_name}==1.0")
    assert code == 0, output
    assert await yanked() == {"1.0": "the index says so", "2.0": None}


def metadata_in_the_middle(wheel: Path) -> Path:
    """The same wheel rewritten with its METADATA between two 400 KiB members: neither in
    the first nor in the last 256 KiB of the archive."""
    rewritten = wheel.with_name(wheel.name.replace("-py3-", "-py2.py3-"))
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(rewritten, "w") as target:
        for info in source.infolist():
            if info.filename.endswith(".dist-info/METADATA"):
                target.writestr("before.bin", os.urandom(400 << 10))
                target.writestr(info, source.read(info))
                target.writestr("after.bin", os.urandom(400 << 10))
            else:
                target.writestr(info, source.read(info))
    return rewritten


async def test_a_legacy_upload_through_the_gateway_records_facts_from_its_bytes(
    front: Api, project_name: str, tmp_path: Path
) -> None:
    """R-W10: twine through the legacy pass-through; the facts are taken from the bytes as
    they go by when their start and end hold the core metadata, else learned on first read."""
    wheel = build_wheel(
        tmp_path, project_name, "1.0", requires_python=">=3.9", payload=os.urandom(2 << 20)
    )
    sdist = build_sdist(tmp_path, project_name, "1.0")
    middle = metadata_in_the_middle(wheel)
    code, output = await twine_upload_async(front.base + "/legacy/", wheel, sdist, middle)
    assert code == 0, output
    facts = front.client.app[SERVICES].file_facts
    assert facts is not None
    record = await facts.get(sha256_of(wheel))
    assert record is not None
    assert record.learned_from == "legacy-upload"
    assert record.requires_python == ">=3.9"
    assert record.size == wheel.stat().st_size
    with zipfile.ZipFile(wheel) as archive:
        [member] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(member)
    assert await facts.metadata(sha256_of(wheel)) == metadata
    assert record.metadata_sha256 == hashlib.sha256(metadata).hexdigest()
    sdist_record = await facts.get(sha256_of(sdist))
    assert sdist_record is not None
    assert sdist_record.learned_from == "legacy-upload"
    # No record without its METADATA: the read path learns that one from the index.
    assert await facts.get(sha256_of(middle)) is None
    _, _, body = await get_page(front.base + f"/simple/{project_name}/")
    entries = {e["filename"]: e for e in json.loads(body)["files"]}
    assert "core-metadata" in entries[middle.name]
    learned = await facts.get(sha256_of(middle))
    assert learned is not None
    assert learned.learned_from == "index"


async def test_a_metadata_file_does_not_ask_the_index_for_the_listing_again(
    live_gateway, recorder, pypiserver: Server, two_releases: dict[str, Path], project_name: str
) -> None:  # type: ignore[no-untyped-def]
    """Even revalidating every page (page_max_age 0), the `.metadata` an installer asks for
    right after the page uses the listing just confirmed: the index is read once, not twice."""
    index, index_url = await recorder(pypiserver.url)
    front = await live_gateway(proxy={"read_proxy": True, "upstream": index_url, "page_max_age": 0})
    page_path = f"/simple/{project_name}/"
    _, _, body = await get_page(front.base + page_path)
    [entry] = [e for e in json.loads(body)["files"] if "-1.0-" in e["filename"]]
    async with (
        aiohttp.ClientSession() as http,
        http.get(front.base + entry["url"] + ".metadata") as response,
    ):
        assert response.status == 200
    assert index.paths.count(page_path) == 1, index.paths
    await get_page(front.base + page_path)  # a page itself still asks the index every time
    assert index.paths.count(page_path) == 2, index.paths
