"""Publishing onto real pypiserver and devpi-server, checked with real pip (R-P7..P9, P12,
R-W2, R-W3)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.api.context import SERVICES
from gateway.app_keys import HTTP_CLIENT
from gateway.devstack import Server, start_pypiserver
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.publish.backends import backend_for
from gateway.store import keys
from gateway.store.record_store import RecordStore
from tests.conftest import twine_upload
from tests.distributions import build_sdist, build_wheel, sha256_of
from tests.integration.conftest import META, Api, backend_section, make_api, pip, problem


async def listing(api: Api, project: str) -> dict[str, str | None]:
    app = api.client.app
    backend = backend_for(app[SERVICES].settings.backend, app[HTTP_CLIENT])
    return await backend.published_files(project)


@pytest.fixture(params=["pypiserver", "devpi"])
async def backend_api(request, aiohttp_client, make_settings, pypiserver, devpi) -> tuple[Api, str]:  # type: ignore[no-untyped-def]
    if request.param == "devpi":
        settings = make_settings(backend=backend_section("devpi", devpi))
        return await make_api(aiohttp_client, settings), devpi.extra["index_url"] + "+simple/"
    settings = make_settings()
    return await make_api(aiohttp_client, settings), pypiserver.url + "/simple/"


async def test_publish_release_and_pip_install_it(
    backend_api: tuple[Api, str], project_name: str, tmp_path: Path
) -> None:
    api, simple = backend_api
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"wheel")
    sdist = build_sdist(tmp_path, project_name, "1.0", payload=b"sdist")
    session = await api.create_session(project_name)
    await api.upload(session, sdist)
    await api.upload(session, wheel)
    response = await api.publish(session)
    assert response.status == 201, await response.text()
    assert response.headers["Location"] == session["links"]["session"]
    body = await response.json(content_type=UPLOAD_V2_JSON)
    assert body["status"] == "published"
    assert await listing(api, project_name) == {
        wheel.name: sha256_of(wheel),
        sdist.name: sha256_of(sdist),
    }
    await pip(
        "install",
        "--no-deps",
        "--target",
        str(tmp_path / "site"),
        "--index-url",
        simple,
        f"{project_name}==1.0",
    )
    assert (
        tmp_path / "site" / project_name.replace("-", "_") / "payload.bin"
    ).read_bytes() == b"wheel"
    # The release is free for a new session (e.g. more wheels), whose duplicate is refused.
    again = await api.create_session(project_name)
    await problem(await api.start_file(again, wheel.name, wheel.read_bytes()), 409)


async def test_publish_refuses_unfinished_files(
    api: Api, project_name: str, tmp_path: Path
) -> None:  # R-P7
    wheel = build_wheel(tmp_path, project_name, "1.0")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    session = await api.create_session(project_name)
    await api.upload(session, wheel)
    await api.create_file(session, sdist.name, sdist.read_bytes())
    document = await problem(await api.publish(session), 409)
    assert document["errors"] == [{"source": f"files.{sdist.name}", "message": "pending"}]
    assert (await api.status(session["links"]["session"]))["status"] == "open"
    assert await listing(api, project_name) == {}


async def test_conflict_with_other_bytes_on_the_index(
    api: Api,
    pypiserver: Server,
    project_name: str,
    tmp_path: Path,
    bucket_records: RecordStore,
) -> None:  # R-P9
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"staged")
    session = await api.create_session(project_name)
    await api.upload(session, wheel)
    other = tmp_path / "other"
    other.mkdir()
    twine_upload(pypiserver.url + "/", build_wheel(other, project_name, "1.0", payload=b"legacy"))
    document = await problem(await api.publish(session), 409)
    assert wheel.name in document["detail"]
    status = await api.status(session["links"]["session"])
    assert status["status"] == "open"  # a synchronous failure changes nothing
    assert await bucket_records.get(keys.filename_reservation(project_name, wheel.name)) is None


async def test_same_bytes_already_on_the_index_count_as_done(
    api: Api, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:  # R-W3
    wheel = build_wheel(tmp_path, project_name, "1.0")
    session = await api.create_session(project_name)
    await api.upload(session, wheel)
    twine_upload(pypiserver.url + "/", wheel)
    response = await api.publish(session)
    assert response.status == 201, await response.text()
    assert await listing(api, project_name) == {wheel.name: sha256_of(wheel)}


async def test_ten_parallel_uploads_then_publish(
    api: Api, project_name: str, tmp_path: Path
) -> None:
    wheels = [
        build_wheel(
            tmp_path, project_name, "1.0", tag=f"cp3{minor}-cp3{minor}-manylinux_2_28_x86_64"
        )
        for minor in range(8, 18)
    ]
    session = await api.create_session(project_name)
    await asyncio.gather(*(api.upload(session, wheel) for wheel in wheels))
    response = await api.publish(session)
    assert response.status in (201, 202)
    assert (await api.wait_resolved(session))["status"] == "published"
    assert await listing(api, project_name) == {w.name: sha256_of(w) for w in wheels}


async def test_deferred_publish(
    aiohttp_client, make_settings, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(aiohttp_client, make_settings(publish={"sync_wait": 0}))
    wheel = build_wheel(tmp_path, project_name, "1.0")
    session = await api.create_session(project_name)
    await api.upload(session, wheel)
    response = await api.publish(session)
    assert response.status == 202
    assert response.headers["Location"] == session["links"]["session"]
    assert (await response.json(content_type=UPLOAD_V2_JSON))["status"] == "processing"
    await problem(await api.delete(session["links"]["session"]), 409)  # R-P6
    assert (await api.wait_resolved(session))["status"] == "published"
    status = await api.status(session["links"]["session"])
    assert status["status"] == "published"


async def test_empty_session_registers_the_name(
    api: Api, project_name: str, bucket_records: RecordStore
) -> None:  # R-P12
    session = await api.create_session(project_name)
    response = await api.publish(session)
    assert response.status == 201
    registration = await bucket_records.get(keys.name_registration(project_name))
    assert registration is not None
    assert registration.data["principal"] == "config:alice"
    assert registration.data["state"] == "registered"


async def test_attestations_dropped_by_the_index_are_reported(  # type: ignore[no-untyped-def]
    aiohttp_client, make_settings, tmp_path: Path, servers_dir: Path
) -> None:
    """A real (verified, R-W11) attestation, published to an index of this test's own: the
    real pypi-attestations 0.0.19 on the shared index would conflict with other tests."""
    from tests import attestation_assets as assets

    index = start_pypiserver(tmp_path / "packages", servers_dir / "htpasswd", tmp_path / "pypi.log")
    try:
        backend = {"upload_url": index.url + "/", "simple_url": index.url + "/simple/"}
        api = await make_api(aiohttp_client, make_settings(backend=backend))
        session = await api.create_session(assets.PROJECT, assets.VERSION)
        data = assets.SDIST.read_bytes()
        file = await api.create_file(session, assets.SDIST.name, data)
        response = await api.client.post(
            api.path(file["mechanism"]["attestations_url"]),
            json=[assets.attestation()],
            headers=api.headers(**{"Content-Type": "application/json"}),
        )
        assert response.status == 200, await response.text()
        await api.send_bytes(file, data)
        await api.complete(file)
        body = await (await api.publish(session)).json(content_type=UPLOAD_V2_JSON)
        assert body["status"] == "published"
        assert any("drops" in notice for notice in body["notices"])
    finally:
        index.stop()


async def test_index_down_then_up_again(
    aiohttp_client,
    make_settings,
    project_name: str,
    tmp_path: Path,
    servers_dir: Path,
    bucket_records: RecordStore,
) -> None:  # type: ignore[no-untyped-def]
    """Backend down at publish → error with a notice → back up → publish again → published,
    each file once."""
    from gateway.devstack import free_port

    port = free_port()
    packages = tmp_path / "packages"
    index = start_pypiserver(packages, servers_dir / "htpasswd", tmp_path / "pypi.log", port=port)
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        backend={"upload_url": url + "/", "simple_url": url + "/simple/"},
        publish={"sync_wait": 0, "retries": 1},
    )
    api = await make_api(aiohttp_client, settings)
    wheel = build_wheel(tmp_path, project_name, "1.0")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    session = await api.create_session(project_name)
    await api.upload(session, wheel)
    await api.upload(session, sdist)
    index.stop()
    response = await api.publish(session)
    assert response.status == 202, await response.text()
    status = await api.wait_resolved(session)
    assert status["status"] == "error"
    assert any("not answering" in notice for notice in status["notices"]), status
    assert await bucket_records.get(keys.filename_reservation(project_name, wheel.name)) is None
    # `error` is editable: the session can still be extended, edited, published again.
    extend = await api.post_json(session["links"]["extend"], {"meta": META, "extend-for": 60})
    assert extend.status == 200
    index = start_pypiserver(packages, servers_dir / "htpasswd", tmp_path / "pypi.log", port=port)
    try:
        response = await api.publish(session)
        assert response.status in (201, 202), await response.text()
        assert (await api.wait_resolved(session))["status"] == "published"
        assert sorted(p.name for p in packages.iterdir()) == sorted([wheel.name, sdist.name])
    finally:
        index.stop()


async def test_deferred_conflict_ends_in_error_naming_the_file(
    aiohttp_client, make_settings, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:  # type: ignore[no-untyped-def]  # R-P9 found during processing
    """The index is down when publish is requested, so the request cannot check conflicts;
    it comes back holding other bytes under the sdist's name: the worker finds the conflict,
    the session goes to `error` naming the file, in its own notices too."""
    from gateway.devstack import free_port

    port = free_port()
    packages = tmp_path / "packages"
    packages.mkdir()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        backend={"upload_url": url + "/", "simple_url": url + "/simple/"},
        publish={"sync_wait": 0, "retries": 4},
    )
    api = await make_api(aiohttp_client, settings)
    wheel = build_wheel(tmp_path, project_name, "1.0")
    sdist = build_sdist(tmp_path, project_name, "1.0", payload=b"staged")
    index = start_pypiserver(packages, servers_dir / "htpasswd", tmp_path / "pypi.log", port=port)
    session = await api.create_session(project_name)
    await api.upload(session, wheel)
    await api.upload(session, sdist)
    index.stop()
    assert (await api.publish(session)).status == 202
    other = tmp_path / "other"
    other.mkdir()
    build_sdist(other, project_name, "1.0", payload=b"different").rename(packages / sdist.name)
    index = start_pypiserver(packages, servers_dir / "htpasswd", tmp_path / "pypi.log", port=port)
    try:
        status = await api.wait_resolved(session)
    finally:
        index.stop()
    assert status["status"] == "error"
    assert sdist.name in " ".join(status["notices"])
    assert status["files"][sdist.name]["notices"]
    assert not (packages / wheel.name).exists()  # nothing was uploaded before the check


async def test_publishing_again_takes_over_a_journal_nobody_renews(
    api: Api,
    project_name: str,
    tmp_path: Path,
    bucket_records: RecordStore,
) -> None:  # R-W2
    """A publish that stopped without clearing its journal (its process died, or S3 failed as
    it gave up) does not block the session until a sweep: the next publish request goes on
    with it."""
    wheel = build_wheel(tmp_path, project_name, "1.0")
    session = await api.create_session(project_name)
    file = await api.upload(session, wheel)
    fid = file["links"]["file-upload-session"].rsplit("/", 1)[1]

    def abandoned_publish(data: dict[str, Any]) -> dict[str, Any]:
        journal = {
            "attempt": "abandoned",
            "owner": "a-replica-that-died",
            "lease_until": "2000-01-01T00:00:00Z",
            "order": [fid],
            "published_by": "config:alice",
        }
        return {**data, "publish": journal}

    await bucket_records.update(keys.session(session["session-token"]), abandoned_publish)
    response = await api.publish(session)
    assert response.status in (201, 202), await response.text()
    assert (await api.wait_resolved(session))["status"] == "published"
    assert await listing(api, project_name) == {wheel.name: sha256_of(wheel)}
