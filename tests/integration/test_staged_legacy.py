"""Staged legacy uploads (R-W6, PEP 694 amendment python/peps#5070 direction): real twine,
uv, hatch and flit stage releases into publishing sessions, which are then installed from
the stage and published, against real SeaweedFS and pypiserver (and devpi once)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.context import SERVICES
from gateway.app_keys import S3_CLIENT
from gateway.devstack import Server, executable
from gateway.protocol import multipart
from gateway.store import keys
from tests.conftest import ALICE, BOB, INDEX_PASSWORD, INDEX_USER, User
from tests.distributions import build_many_with_pypa_build, build_sdist, build_wheel, sha256_of
from tests.integration.conftest import (
    META,
    Api,
    assert_consistent,
    backend_section,
    index_files,
    pip,
)
from tests.integration.legacy import legacy_form, post_form, run, stage_url

TOOLS = ("twine", "uv", "hatch", "flit")


def plain_url(api: Api) -> str:
    return api.base + "/legacy/"


# -- driving the tools ---------------------------------------------------------------------


async def upload_with(
    tool: str, url: str, user: str, password: str, dists: Sequence[Path], home: Path
) -> tuple[int, str]:
    """``tool`` uploading ``dists`` to the legacy URL ``url``. flit builds its own
    distributions from the project the dists were built from (their parent's sibling)."""
    home.mkdir(exist_ok=True)
    files = [str(path) for path in dists]
    if tool == "twine":
        return await run(
            *(sys.executable, "-m", "twine", "upload", "--repository-url", url),
            *("-u", user, "-p", password, "--non-interactive", "--disable-progress-bar"),
            *files,
            HOME=str(home),
        )
    if tool == "uv":
        return await run(
            *(executable("uv"), "publish", "--publish-url", url, "--no-cache"),
            *("--username", user, "--password", password, "--trusted-publishing", "never"),
            *files,
            HOME=str(home),
        )
    if tool == "hatch":
        return await run(
            *(executable("hatch"), "publish", "--no-prompt", "-r", url, "-u", user, "-a"),
            password,
            *files,
            HOME=str(home),
            cwd=home,
        )
    assert tool == "flit"
    project = dists[0].parent.parent / dists[0].parent.name.replace("-dist", "-src")
    return await run(
        executable("flit"),
        "publish",
        cwd=project,
        HOME=str(home),
        FLIT_INDEX_URL=url,
        FLIT_USERNAME=user,
        FLIT_PASSWORD=password,
    )


def built(tool: str, dists: list[Path]) -> list[Path]:
    """The files the tool uploaded: flit's own build, else the ``python -m build`` ones."""
    if tool != "flit":
        return dists
    out = dists[0].parent.parent / dists[0].parent.name.replace("-dist", "-src") / "dist"
    return [*sorted(out.glob("*.whl")), *sorted(out.glob("*.tar.gz"))]


POOL_SIZE = 12  # the tests below that take a `built` release


@pytest.fixture(scope="session")
def release_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Path]]]:
    """Releases (a wheel and an sdist each) of projects made here, built by pypa/build, all
    in one go on first use: one interpreter's start-up instead of one per test."""
    names = [f"staged-{secrets.token_hex(4)}-{i}" for i in range(POOL_SIZE)]
    built_dists = build_many_with_pypa_build(tmp_path_factory.mktemp("releases"), names, "1.0")
    return iter(built_dists.items())


@pytest.fixture
def pooled(release_pool: Iterator[tuple[str, list[Path]]]) -> tuple[str, list[Path]]:
    """A project name and its wheel and sdist (1.0) built by a real build frontend."""
    return next(release_pool)


@pytest.fixture
def release(tmp_path: Path, project_name: str) -> list[Path]:
    """A wheel and an sdist of ``project_name`` 1.0, for tests about the gateway's answers
    rather than a tool's (tests.distributions writes these without a build frontend)."""
    return [build_wheel(tmp_path, project_name, "1.0"), build_sdist(tmp_path, project_name, "1.0")]


# -- reading what the gateway holds --------------------------------------------------------


async def release_session(api: Api, name: str, version: str = "1.0") -> dict[str, Any]:
    """The release's live session, found as a PEP 694 client finds it: create → 409 + Location."""
    response = await api.post_json(api.root, {"meta": META, "name": name, "version": version})
    assert response.status == 409, await response.text()
    return await api.status(response.headers["Location"])


async def staged_objects(api: Api, session: dict[str, Any]) -> list[str]:
    services = api.client.app[SERVICES]
    sid = session["links"]["session"].rsplit("/", 1)[1]
    prefix = f"{services.settings.s3.prefix}/{keys.session_data(sid)}"
    s3 = api.client.app[S3_CLIENT]  # the gateway's own S3 client
    listing = await s3.list_objects_v2(Bucket=services.settings.s3.bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def files_of(session: dict[str, Any]) -> dict[str, str]:
    return {name: entry["status"] for name, entry in session["files"].items()}


# -- every tool, staged then published -----------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
async def test_a_tool_stages_a_release_that_installs_from_the_stage_and_publishes_whole(
    tool: str,
    live: Api,
    pypiserver: Server,
    servers_dir: Path,
    pooled: tuple[str, list[Path]],
    tmp_path: Path,
) -> None:  # R-W6, R-P7, R-W3
    project_name, release = pooled
    code, output = await upload_with(
        tool, stage_url(live), ALICE.name, ALICE.password, release, tmp_path / "home"
    )
    assert code == 0, output
    dists = built(tool, release)
    wheel, sdist = dists
    session = await release_session(live, project_name)
    assert files_of(session) == {wheel.name: "completed", sdist.name: "completed"}
    assert await index_files(pypiserver, project_name) == {}  # nothing public while staged
    await install_from_stage(tool, session["links"]["stage"], project_name, tmp_path)
    if tool in ("twine", "uv"):
        response = await live.post_json(session["links"]["publish"], {"meta": META})
        assert response.status == 201, await response.text()
    else:
        code, output = await cli_session(live, "publish", project_name, tmp_path)
        assert code == 0, output
        assert "published" in output
    assert await index_files(pypiserver, project_name) == {p.name: sha256_of(p) for p in dists}
    landed = [servers_dir / "packages" / path.name for path in (wheel, sdist)]
    assert landed[0].stat().st_mtime_ns <= landed[1].stat().st_mtime_ns  # wheels first


async def install_from_stage(tool: str, stage: str, project: str, tmp_path: Path) -> None:
    """pip (for twine and hatch) or uv pip (for uv and flit) installs the staged wheel."""
    target = tmp_path / "target"
    requirement = f"{project}==1.0"
    if tool in ("twine", "hatch"):
        await pip(
            "install", "--no-deps", "--index-url", stage, "--target", str(target), requirement
        )
    else:
        code, output = await run(
            *(executable("uv"), "pip", "install", "--no-cache", "--no-deps"),
            *("--python", sys.executable, "--index-url", stage),
            *("--target", str(target), requirement),
        )
        assert code == 0, output
    assert (target / project.replace("-", "_") / "__init__.py").is_file()


async def cli_session(
    api: Api, action: str, project: str, tmp_path: Path, *options: str
) -> tuple[int, str]:
    """``upload-gateway session ACTION NAME==1.0``: addressed by release, no session id."""
    return await run(
        *(sys.executable, "-m", "gateway.client.cli", "session", action, f"{project}==1.0"),
        *options,
        *("--repository-url", api.base + api.root, "-u", ALICE.name, "-p", ALICE.password),
        *("--state-file", str(tmp_path / "state.json")),
        HOME=str(tmp_path),
        PYTHONPATH=os.environ.get("PYTHONPATH", ""),
    )


@pytest.mark.parametrize("tool", TOOLS)
async def test_a_tool_still_passes_through_the_plain_url(
    tool: str, live: Api, pypiserver: Server, pooled: tuple[str, list[Path]], tmp_path: Path
) -> None:  # R-W4
    project_name, release = pooled
    code, output = await upload_with(
        tool, plain_url(live), INDEX_USER, INDEX_PASSWORD, release, tmp_path / "home"
    )
    assert code == 0, output
    dists = built(tool, release)
    assert await index_files(pypiserver, project_name) == {p.name: sha256_of(p) for p in dists}


# -- the three ways in ---------------------------------------------------------------------


async def test_the_staged_field_stages_and_never_publishes(
    live: Api, pypiserver: Server, release: list[Path], project_name: str, tmp_path: Path
) -> None:  # R-W6: "true"/"1" before the file stages it; after it, too late, it is refused
    wheel, sdist = release
    response = await post_form(
        plain_url(live), legacy_form(project_name, "1.0", wheel, staged="1"), wheel
    )
    assert response.status == 200
    assert response.content_type == "text/plain"
    response = await post_form(stage_url(live), legacy_form(project_name, "1.0", sdist), sdist)
    assert response.status == 200
    session = await release_session(live, project_name)
    assert files_of(session) == {wheel.name: "completed", sdist.name: "completed"}
    assert await index_files(pypiserver, project_name) == {}
    other = project_name + "-late"
    late_wheel = build_wheel(tmp_path, other, "1.0")
    late_sdist = build_sdist(tmp_path, other, "1.0")
    response = await post_form_after(plain_url(live), other, late_wheel, "staged", "true")
    assert response.status == 400
    assert "before the content part" in (response.reason or "")
    response = await post_form_after(plain_url(live), other, late_sdist, "comment", "fine")
    assert response.status == 200  # a field after the file is no reason to refuse
    # The index never saw the late-staged wheel whole, and took the other as it was.
    assert set(await index_files(pypiserver, other)) == {late_sdist.name}


async def post_form_after(
    url: str, project: str, path: Path, name: str, value: str
) -> aiohttp.ClientResponse:
    """A legacy upload through the index's credentials, with one more field after the file."""
    content_type, head, _ = multipart.frame(legacy_form(project, "1.0", path), path.name)
    mark = content_type.rsplit("=", 1)[1]
    body = head + path.read_bytes() + b"\r\n" + multipart.field(mark, name, value.encode())
    body += multipart.end(mark)
    index_user = User(INDEX_USER, INDEX_PASSWORD, ())
    headers = {"Content-Type": content_type, "Authorization": index_user.authorization}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers) as response,
    ):
        await response.read()
        return response


async def test_the_staged_policy_stages_every_legacy_upload(
    live_gateway: Any, pypiserver: Server, pooled: tuple[str, list[Path]], tmp_path: Path
) -> None:  # R-W6: no client can bypass staging
    project_name, release = pooled
    api = await live_gateway(proxy={"legacy_uploads": "staged"})
    form = legacy_form(project_name, "1.0", release[0], staged="false")
    response = await post_form(plain_url(api), form, release[0])
    assert response.status == 200
    code, output = await upload_with(
        "twine", plain_url(api), ALICE.name, ALICE.password, release[1:], tmp_path / "home"
    )
    assert code == 0, output
    session = await release_session(api, project_name)
    assert set(files_of(session)) == {path.name for path in release}
    assert await index_files(pypiserver, project_name) == {}


# -- refusals ------------------------------------------------------------------------------


async def test_paths_do_not_mix(live: Api, release: list[Path], project_name: str) -> None:
    """An API session is not joined by staged uploads, and a legacy-created one answers an
    API create with 409 + Location (R-W6, R-P3)."""
    wheel = release[0]
    api_session = await live.create_session(project_name)
    response = await post_form(stage_url(live), legacy_form(project_name, "1.0", wheel), wheel)
    assert response.status == 409
    assert "Upload 2.0" in (response.reason or "")
    assert files_of(await live.status(api_session["links"]["session"])) == {}
    other = project_name + "-legacy"
    other_wheel = build_wheel(wheel.parent, other, "1.0")
    response = await post_form(stage_url(live), legacy_form(other, "1.0", other_wheel), other_wheel)
    assert response.status == 200
    create = await live.post_json(live.root, {"meta": META, "name": other, "version": "1.0"})
    assert create.status == 409
    session = await live.status(create.headers["Location"])
    assert files_of(session) == {other_wheel.name: "completed"}
    sdist = build_sdist(wheel.parent, other, "1.0")
    add = await live.post_json(
        session["links"]["upload"],
        {
            "meta": META,
            "filename": sdist.name,
            "size": sdist.stat().st_size,
            "hashes": {"sha256": sha256_of(sdist)},
            "mechanism": "http-post-bytes",
        },
    )
    assert add.status == 409
    assert (await add.json())["type"].endswith("session-path-mismatch")
    assert files_of(await live.status(session["links"]["session"])) == files_of(session)


async def test_a_digest_mismatch_and_a_foreign_file_are_refused_and_nothing_is_staged(
    live: Api, release: list[Path], project_name: str, tmp_path: Path
) -> None:
    """Refused, and nothing of them stays staged: not even a bad replacement displaces the
    good file of the same name (R-F10, R-W6)."""
    wheel, sdist = release
    for path in release:
        await post_form(stage_url(live), legacy_form(project_name, "1.0", path), path)
    session = await release_session(live, project_name)
    before = await staged_objects(live, session)
    wrong = legacy_form(project_name, "1.0", wheel)
    wrong[4] = ("sha256_digest", "0" * 64)
    response = await post_form(stage_url(live), wrong, wheel)
    assert response.status == 400
    assert "sha256" in (response.reason or "")
    foreign = build_wheel(tmp_path, project_name + "-other", "1.0")
    response = await post_form(stage_url(live), legacy_form(project_name, "1.0", foreign), foreign)
    assert response.status == 400
    # A wheel named for the release whose METADATA names another project.
    impostor = tmp_path / "impostor"
    impostor.mkdir()
    renamed = impostor / wheel.name
    renamed.write_bytes(foreign.read_bytes())
    response = await post_form(stage_url(live), legacy_form(project_name, "1.0", renamed), renamed)
    assert response.status == 400
    assert "metadata" in (response.reason or "").lower() or "name" in (response.reason or "")
    after = await live.status(session["links"]["session"])
    assert files_of(after) == {wheel.name: "completed", sdist.name: "completed"}
    assert after["files"][wheel.name] == session["files"][wheel.name]
    assert await staged_objects(live, session) == before
    await assert_consistent(live)


async def test_an_unauthorized_project_is_403(live: Api, release: list[Path]) -> None:
    wheel = release[0]
    name = wheel.name.split("-")[0].replace("_", "-")
    response = await post_form(
        stage_url(live), legacy_form(name, "1.0", wheel), wheel, user=BOB
    )  # bob may upload bob-* only
    assert response.status == 403
    assert "may not upload" in (response.reason or "")
    response = await post_form(
        stage_url(live), legacy_form(name, "1.0", wheel), wheel, user=User("alice", "wrong", ())
    )
    assert response.status == 401


async def test_a_client_that_disconnects_mid_file_leaves_nothing(
    live: Api, release: list[Path], project_name: str
) -> None:
    """Parts of the file are in S3 when the client goes: they are aborted, and the session
    is as it was (R-F8, R-W6)."""
    wheel, sdist = release
    await post_form(stage_url(live), legacy_form(project_name, "1.0", sdist), sdist)
    session = await release_session(live, project_name)
    before = await staged_objects(live, session)
    payload = os.urandom(20 * 1024 * 1024)  # beyond two 8 MiB parts
    content_type, head, _ = multipart.frame(legacy_form(project_name, "1.0", wheel), wheel.name)
    port = int(live.base.rsplit(":", 1)[1])
    request = (
        f"POST /legacy/+stage/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: {ALICE.authorization}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(head) + 2 * len(payload)}\r\n\r\n"
    ).encode()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request + head + payload)
    await writer.drain()
    await until(lambda uploads: uploads != [], live)  # the file is on its way into S3
    writer.transport.abort()  # gone, half-way through the file
    await until(lambda uploads: uploads == [], live)
    after = await live.status(session["links"]["session"])
    assert after == session
    assert await staged_objects(live, session) == before
    await assert_consistent(live)


async def until(condition: Any, api: Api) -> None:
    """Wait (10 s at most) for the S3 multipart uploads under the gateway's prefix to meet
    ``condition``."""
    services = api.client.app[SERVICES]
    for _ in range(100):
        listing = await api.client.app[S3_CLIENT].list_multipart_uploads(
            Bucket=services.settings.s3.bucket, Prefix=services.settings.s3.prefix
        )
        if condition(listing.get("Uploads", [])):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("S3 multipart uploads never reached the expected state")


async def test_two_tools_staging_one_release_at_once_share_one_session(
    live: Api, pooled: tuple[str, list[Path]], tmp_path: Path
) -> None:
    project_name, release = pooled
    wheel, sdist = release
    results = await asyncio.gather(
        upload_with("twine", stage_url(live), ALICE.name, ALICE.password, [wheel], tmp_path / "a"),
        upload_with("uv", stage_url(live), ALICE.name, ALICE.password, [sdist], tmp_path / "b"),
    )
    for code, output in results:
        assert code == 0, output
    session = await release_session(live, project_name)
    assert files_of(session) == {wheel.name: "completed", sdist.name: "completed"}


async def test_reuploading_a_staged_filename_replaces_it_and_cancel_by_release(
    live: Api, release: list[Path], project_name: str, tmp_path: Path
) -> None:
    wheel = release[0]
    for _ in range(2):
        response = await post_form(stage_url(live), legacy_form(project_name, "1.0", wheel), wheel)
        assert response.status == 200
    session = await release_session(live, project_name)
    assert files_of(session) == {wheel.name: "completed"}
    code, output = await cli_session(live, "status", project_name, tmp_path, "--json")
    assert code == 0, output
    status = json.loads(output.splitlines()[-1])
    assert status["status"] == "open"
    assert status["stage_url"] == session["links"]["stage"]
    code, output = await cli_session(live, "cancel", project_name, tmp_path)
    assert code == 0, output
    assert "canceled" in output
    assert await staged_objects(live, session) == []


async def test_a_published_filename_is_409(
    live: Api, release: list[Path], project_name: str
) -> None:
    wheel = release[0]
    code, output = await upload_with(
        "twine", plain_url(live), INDEX_USER, INDEX_PASSWORD, [wheel], wheel.parent / "home"
    )
    assert code == 0, output
    response = await post_form(stage_url(live), legacy_form(project_name, "1.0", wheel), wheel)
    assert response.status == 409
    assert "already published" in (response.reason or "")


async def test_devpi_release_staged_by_twine_publishes_whole(
    live_gateway: Any, devpi: Server, pooled: tuple[str, list[Path]], tmp_path: Path
) -> None:
    project_name, release = pooled
    api = await live_gateway(backend=backend_section("devpi", devpi))
    code, output = await upload_with(
        "twine", stage_url(api), ALICE.name, ALICE.password, release, tmp_path / "home"
    )
    assert code == 0, output
    session = await release_session(api, project_name)
    response = await api.post_json(session["links"]["publish"], {"meta": META})
    assert response.status == 201, await response.text()
    async with aiohttp.ClientSession() as http:
        url = devpi.extra["index_url"] + f"+simple/{project_name}/"
        async with http.get(url) as answer:
            page = await answer.text()
    for path in release:
        assert f"{path.name}#sha256={sha256_of(path)}" in page
