"""Staged previews against real S3 and real pip (R-S1, R-S2)."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.context import SERVICES
from gateway.devstack import Server
from gateway.store import keys
from gateway.store.record_store import RecordStore
from tests.conftest import twine_upload
from tests.distributions import build_sdist, build_wheel, sha256_of
from tests.integration.conftest import META, Api, pip, problem

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def dependency(pypiserver: Server, project_name: str, tmp_path: Path) -> str:
    """A requirement only the regular index (pypiserver) can satisfy."""
    (tmp_path / "dep").mkdir()
    twine_upload(pypiserver.url + "/", build_wheel(tmp_path / "dep", f"{project_name}-dep", "2.0"))
    return f"{project_name}-dep>=2"


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


async def staged_release(
    api: Api, project: str, tmp_path: Path, **wheel_options: Any
) -> tuple[dict[str, Any], Path]:
    session = await api.create_session(project)
    wheel = build_wheel(tmp_path, project, "1.0", payload=b"staged bytes", **wheel_options)
    await api.upload(session, wheel)
    return session, wheel


async def test_pip_installs_the_staged_release_with_a_dependency_from_the_index(
    live: Api, pypiserver: Server, project_name: str, tmp_path: Path, dependency: str, venv: Path
) -> None:
    session, _ = await staged_release(live, project_name, tmp_path, requires_dist=(dependency,))
    await pip(
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "--index-url",
        pypiserver.url + "/simple/",
        "--extra-index-url",
        session["links"]["stage"],
        f"{project_name}==1.0",
    )
    site = site_packages(venv)
    stem = project_name.replace("-", "_")
    assert (site / stem / "payload.bin").read_bytes() == b"staged bytes"
    assert (site / f"{stem}_dep").is_dir()  # came from the regular index


async def test_pip_download_gets_exactly_the_staged_bytes(
    live: Api, project_name: str, tmp_path: Path
) -> None:
    session, wheel = await staged_release(live, project_name, tmp_path)
    sdist = build_sdist(tmp_path, project_name, "1.0")
    await live.upload(session, sdist)
    target = tmp_path / "downloaded"
    await pip(
        "download",
        "--no-deps",
        "--index-url",
        session["links"]["stage"],
        "--dest",
        str(target),
        f"{project_name}==1.0",
    )
    downloaded = list(target.iterdir())
    assert [p.name for p in downloaded] == [wheel.name]
    assert sha256_of(downloaded[0]) == sha256_of(wheel)


async def test_simple_json_and_html(live: Api, project_name: str, tmp_path: Path) -> None:
    session, wheel = await staged_release(live, project_name, tmp_path)
    stage = session["links"]["stage"]
    async with aiohttp.ClientSession() as http:  # no credentials: the URL is the capability
        async with http.get(stage + project_name + "/", headers={"Accept": JSON}) as response:
            assert response.status == 200
            assert response.content_type == JSON
            assert response.headers["Vary"] == "Accept"
            page = await response.json(content_type=JSON)
        [entry] = page["files"]
        assert entry["filename"] == wheel.name
        assert entry["hashes"] == {"sha256": sha256_of(wheel)}
        assert entry["requires-python"] == ">=3.8"
        assert entry["size"] == wheel.stat().st_size
        async with http.get(entry["url"] + ".metadata") as response:
            metadata = await response.read()
        assert hashlib.sha256(metadata).hexdigest() == entry["core-metadata"]["sha256"]
        assert metadata.startswith(b"Metadata-Version:")
        async with http.get(stage + project_name + "/") as response:
            assert response.content_type == "text/html"
            html = await response.text()
        assert f"#sha256={sha256_of(wheel)}" in html
        assert 'data-requires-python="&gt;=3.8"' in html
        assert f'data-core-metadata="sha256={entry["core-metadata"]["sha256"]}"' in html
        async with http.get(stage, headers={"Accept": JSON}) as response:
            assert (await response.json(content_type=JSON))["projects"] == [{"name": project_name}]
        async with http.get(stage + project_name + "/", headers={"Accept": "text/plain"}) as r:
            assert r.status == 406
        upper = project_name.upper().replace("-", "_")
        async with http.get(stage + upper + "/", allow_redirects=False) as response:
            assert response.status == 301
            assert response.headers["Location"] == stage + project_name + "/"


async def test_downloads_have_etag_and_ranges(live: Api, project_name: str, tmp_path: Path) -> None:
    session, wheel = await staged_release(live, project_name, tmp_path)
    data = wheel.read_bytes()
    url = session["links"]["stage"] + "+files/" + wheel.name
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert await response.read() == data
            assert response.headers["Content-Length"] == str(len(data))
            etag = response.headers["ETag"]
        async with http.get(url, headers={"If-None-Match": etag}) as response:
            assert response.status == 304
        async with http.get(url, headers={"Range": "bytes=10-19"}) as response:
            assert response.status == 206
            assert await response.read() == data[10:20]
            assert response.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        async with http.get(url, headers={"Range": "bytes=-5"}) as response:
            assert await response.read() == data[-5:]
        async with http.get(url, headers={"Range": f"bytes={len(data)}-"}) as response:
            assert response.status == 416
            assert response.headers["Content-Range"] == f"bytes */{len(data)}"


async def test_presigned_redirect_mode(live_gateway, project_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    api = await live_gateway(stage={"redirect_downloads": True})
    settings = api.client.app[SERVICES].settings
    session, wheel = await staged_release(api, project_name, tmp_path)
    async with aiohttp.ClientSession() as http:
        url = session["links"]["stage"] + "+files/" + wheel.name
        async with http.get(url, allow_redirects=False) as response:
            assert response.status == 302
            location = response.headers["Location"]
        assert location.startswith(settings.s3.endpoint_url)
        async with http.get(location) as response:
            assert response.status == 200
            assert await response.read() == wheel.read_bytes()


async def test_only_completed_files_are_listed(
    live: Api, project_name: str, tmp_path: Path
) -> None:
    session, wheel = await staged_release(live, project_name, tmp_path)
    sdist = build_sdist(tmp_path, project_name, "1.0")
    await live.create_file(session, sdist.name, sdist.read_bytes())  # stays pending
    broken = f"{project_name.replace('-', '_')}-1.0-py2-none-any.whl"
    bad = await live.create_file(session, broken, b"not a zip")
    await live.send_bytes(bad, b"not a zip")
    await problem(await live.complete(bad), 400)  # → error
    async with aiohttp.ClientSession() as http:
        url = session["links"]["stage"] + project_name + "/"
        async with http.get(url, headers={"Accept": JSON}) as response:
            page = await response.json(content_type=JSON)
        assert [f["filename"] for f in page["files"]] == [wheel.name]
        async with http.get(session["links"]["stage"] + "+files/" + sdist.name) as response:
            assert response.status == 404


async def test_hostile_requires_python_is_escaped(
    live: Api,
    project_name: str,
    tmp_path: Path,
    bucket_records: RecordStore,
) -> None:
    session, wheel = await staged_release(live, project_name, tmp_path)
    fid = session_file_id(await live.status(session["links"]["session"]), wheel.name)
    # METADATA validation would refuse such a value; plant it in the record to prove the
    # page escapes whatever it is given.
    hostile = '>=3.8"><script>alert(1)</script>'
    await bucket_records.update(
        keys.file_upload(session["session-token"], fid),
        lambda d: {**d, "metadata": {**d["metadata"], "requires_python": hostile}},
    )
    async with (
        aiohttp.ClientSession() as http,
        http.get(session["links"]["stage"] + project_name + "/") as response,
    ):
        html = await response.text()
    assert "<script>" not in html
    assert 'data-requires-python="&gt;=3.8&quot;&gt;&lt;script&gt;' in html


def session_file_id(status: dict[str, Any], filename: str) -> str:
    return status["files"][filename]["link"].rsplit("/", 1)[1]


async def test_stage_is_gone_after_cancel_publish_and_for_wrong_tokens(
    live: Api, project_name: str, tmp_path: Path
) -> None:  # R-S2
    session, wheel = await staged_release(live, project_name, tmp_path)
    stage = session["links"]["stage"]
    async with aiohttp.ClientSession() as http:
        wrong = stage.replace(session["session-token"], "A" * len(session["session-token"]))
        async with http.get(wrong) as response:
            unknown = (response.status, await response.json(content_type=None))
        async with http.get(stage.replace(session["session-token"], "../../etc")) as response:
            assert response.status == 404
        assert (await live.delete(session["links"]["session"])).status == 204
        async with http.get(stage) as response:
            ended = (response.status, await response.json(content_type=None))
        assert unknown == ended  # a probe cannot tell an ended session from a never-issued token
        assert ended[0] == 404
        second = await live.create_session(project_name)
        await live.upload(second, wheel)
        publish = await live.post_json(second["links"]["publish"], {"meta": META})
        assert publish.status == 201, await publish.text()
        async with http.get(second["links"]["stage"]) as response:
            assert response.status == 404


async def test_uv_installs_from_the_stage(
    live: Api, pypiserver: Server, project_name: str, tmp_path: Path, dependency: str, venv: Path
) -> None:
    from gateway.devstack import executable

    session, _ = await staged_release(live, project_name, tmp_path, requires_dist=(dependency,))
    process = await asyncio.create_subprocess_exec(
        executable("uv"),
        "pip",
        "install",
        "--no-cache",
        "--python",
        str(venv / "bin" / "python"),
        "--index-url",
        pypiserver.url + "/simple/",
        "--extra-index-url",
        session["links"]["stage"],
        f"{project_name}==1.0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, output.decode()
    stem = project_name.replace("-", "_")
    assert (site_packages(venv) / stem / "payload.bin").read_bytes() == b"staged bytes"
    assert (site_packages(venv) / f"{stem}_dep").is_dir()
