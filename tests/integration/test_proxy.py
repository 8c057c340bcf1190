"""One host name for the whole index: legacy uploads and reads through the gateway (R-W4,
R-P4, R-P8), with real twine and pip."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from gateway.devstack import Server, free_port
from gateway.protocol import multipart
from gateway.publish.backends.base import basic_authorization
from gateway.store import keys
from gateway.store.record_store import RecordStore
from tests.conftest import INDEX_PASSWORD, INDEX_USER, twine_upload_async
from tests.distributions import build_sdist, build_wheel, sha256_of
from tests.integration.conftest import META, Api, make_api, pip


@pytest.fixture
async def front(live_gateway) -> Api:  # type: ignore[no-untyped-def]
    """The gateway on a real port, fronting pypiserver for uploads and reads."""
    return await live_gateway(proxy={"read_proxy": True})


def legacy_url(api: Api) -> str:
    return api.base + "/legacy/"


async def test_twine_through_the_gateway_lands_identical_bytes(
    front: Api, pypiserver: Server, servers_dir: Path, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"through the gateway")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    code, output = await twine_upload_async(legacy_url(front), wheel, sdist)
    assert code == 0, output
    for path in (wheel, sdist):
        assert sha256_of(servers_dir / "packages" / path.name) == sha256_of(path)


async def test_wrong_credentials_are_the_index_s_business(
    front: Api, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    code, output = await twine_upload_async(legacy_url(front), wheel, password="wrong")
    assert code != 0
    assert "403" in output


async def test_the_index_s_refusal_is_relayed_with_what_it_said(
    front: Api, project_name: str, tmp_path: Path
) -> None:
    """pypiserver says why in its body, and devpi in its reason phrase: both reach the client."""
    wheel = build_wheel(tmp_path, project_name, "1.0")
    fields = [(":action", "file_upload"), ("name", project_name), ("version", "1.0")]
    content_type, head, tail = multipart.frame(fields, wheel.name)
    body = head + wheel.read_bytes() + tail
    headers = {
        "Content-Type": content_type,
        "Authorization": basic_authorization(INDEX_USER, INDEX_PASSWORD),
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(legacy_url(front), data=body, headers=headers) as response:
            assert response.status == 200, await response.text()
        async with http.post(legacy_url(front), data=body, headers=headers) as response:
            document = await response.json(content_type="application/problem+json")
    assert response.status == 409  # pypiserver's answer to a filename it already has
    assert document["type"].endswith("index-refused")
    assert "409" in document["detail"]
    assert "already exists" in document["errors"][0]["message"]


async def test_filename_reserved_by_a_publish_is_409(
    front: Api,
    project_name: str,
    tmp_path: Path,
    bucket_records: RecordStore,
) -> None:  # R-P8
    wheel = build_wheel(tmp_path, project_name, "1.0")
    # The reservation an in-flight publish holds (see the publisher), planted directly.
    await bucket_records.create(
        keys.filename_reservation(project_name, wheel.name),
        {"session_id": "in-flight", "state": "publishing"},
    )
    code, output = await twine_upload_async(legacy_url(front), wheel)
    assert code != 0
    assert "409" in output


async def test_name_reserved_by_a_first_release_session_is_409(
    front: Api, project_name: str, tmp_path: Path
) -> None:  # R-P4
    await front.create_session(project_name)  # alice's first release, not published
    wheel = build_wheel(tmp_path, project_name, "0.9")
    code, output = await twine_upload_async(legacy_url(front), wheel)
    assert code != 0
    assert "409" in output


async def test_pip_installs_through_the_read_proxy(
    front: Api, project_name: str, tmp_path: Path
) -> None:
    session = await front.create_session(project_name)
    await front.upload(session, build_wheel(tmp_path, project_name, "1.0", payload=b"proxied"))
    response = await front.post_json(session["links"]["publish"], {"meta": META})
    assert response.status == 201
    target = tmp_path / "site"
    await pip(
        "install",
        "--no-deps",
        "--target",
        str(target),
        "--index-url",
        front.base + "/simple/",
        f"{project_name}==1.0",
    )
    assert (target / project_name.replace("-", "_") / "payload.bin").read_bytes() == b"proxied"


async def test_reads_hide_reserved_projects_rewrite_redirects_and_stay_in_bounds(
    front: Api, project_name: str
) -> None:
    await front.create_session(project_name)  # reserved, never published
    async with aiohttp.ClientSession() as http:
        async with http.get(front.base + f"/simple/{project_name}/") as response:
            assert response.status == 404
        spelled = project_name.upper().replace("-", "_")
        async with http.get(front.base + f"/simple/{spelled}/", allow_redirects=False) as r:
            # pypiserver redirects to the normalized name, with its own address: rewritten.
            assert r.status in (301, 302, 303, 307, 308)
            assert r.headers["Location"].startswith(front.base)
        async with http.get(front.base + "/not-forwarded/anything") as response:
            assert response.status == 404
            assert response.content_type == "application/problem+json"


async def test_limits_and_a_dead_index(
    aiohttp_client, make_settings, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"x" * 5000)
    small = make_settings(uploads={"max_file_size": 1000})
    api = await make_api(aiohttp_client, small)
    fields = [(":action", "file_upload"), ("name", project_name), ("version", "1.0")]
    content_type, head, tail = multipart.frame(fields, wheel.name)
    response = await api.client.post(  # with a Content-Length, as twine sends it
        "/legacy/",
        data=head + wheel.read_bytes() + tail,
        headers={"Content-Type": content_type},
    )
    assert response.status == 413
    assert response.content_type == "application/problem+json"
    dead = f"http://127.0.0.1:{free_port()}"
    down = make_settings(backend={"upload_url": dead + "/", "simple_url": dead + "/simple/"})
    api = await make_api(aiohttp_client, down)
    form = aiohttp.FormData()
    form.add_field(":action", "file_upload")
    form.add_field("name", project_name + "-other")
    form.add_field("version", "1.0")
    form.add_field(
        "content", b"small", filename=f"{project_name.replace('-', '_')}_other-1.0.tar.gz"
    )
    response = await api.client.post("/legacy/", data=form)
    assert response.status == 502
    document = await response.json(content_type="application/problem+json")
    assert document["type"].endswith("index-unreachable")
    response = await api.client.post(
        "/legacy/", data=b"not a form", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 400
