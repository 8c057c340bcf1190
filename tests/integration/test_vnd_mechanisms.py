"""The server-specific mechanisms (issue #11): ``vnd-uploadgateway-resumable-v1`` and
``vnd-uploadgateway-s3-presigned-v1``, against real SeaweedFS."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse

from gateway.app import create_app
from gateway.client.api import RESUMABLE_ABOVE, UploadClient, choose_mechanism
from gateway.devstack import Server, free_port
from gateway.mechanisms import HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED
from gateway.settings import MiB, Settings
from tests.conftest import ALICE
from tests.distributions import build_wheel
from tests.faults import FaultProxy
from tests.integration.conftest import (
    META,
    Api,
    assert_consistent,
    index_files,
    make_api,
    problem,
    put_parts,
)
from tests.integration.replicas import create_session
from tests.integration.replicas import start_file as start_replica_file

PART = 5 * MiB  # the smallest S3 part: several parts without big files


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(
        s3={"part_size": PART},
        uploads={"mechanisms": [S3_PRESIGNED, RESUMABLE, HTTP_POST_BYTES]},
    )


@pytest.fixture
async def api(aiohttp_client, settings: Settings) -> Api:  # type: ignore[no-untyped-def]
    return await make_api(aiohttp_client, settings)


@pytest.fixture
def wheel_bytes(tmp_path: Path, project_name: str) -> tuple[str, bytes]:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(12 * MiB + 12345))
    return wheel.name, wheel.read_bytes()


async def new_file(
    api: Api, project: str, name: str, data: bytes, mechanism: str
) -> dict[str, Any]:
    """A publishing session for ``project`` with one file upload session in it."""
    return await api.create_file(await api.create_session(project), name, data, mechanism=mechanism)


async def offset_of(api: Api, file: dict[str, Any]) -> tuple[int, str]:
    response = await api.client.head(
        api.path(file["mechanism"]["upload_url"]), headers=api.headers()
    )
    assert response.status == 204
    assert response.headers["Cache-Control"] == "no-store"
    return int(response.headers["Upload-Offset"]), response.headers["Upload-Complete"]


async def append(
    api: Api, file: dict[str, Any], offset: int, data: bytes, last: bool
) -> ClientResponse:
    return await api.client.patch(
        api.path(file["mechanism"]["upload_url"]),
        data=data,
        headers=api.headers(
            **{
                "Content-Type": "application/partial-upload",
                "Upload-Offset": str(offset),
                "Upload-Complete": "?1" if last else "?0",
            }
        ),
    )


async def completed(api: Api, file: dict[str, Any]) -> dict[str, Any]:
    response = await api.complete(file)
    assert response.status == 201, await response.text()
    return await response.json(content_type=None)


async def append_the_rest_and_complete(
    api: Api, file: dict[str, Any], offset: int, data: bytes
) -> None:
    """The last append: the upload is whole, ``HEAD`` says so, and it completes."""
    response = await append(api, file, offset, data[offset:], last=True)
    assert response.status == 204, await response.text()
    assert response.headers["Upload-Complete"] == "?1"
    assert await offset_of(api, file) == (len(data), "?1")
    assert (await completed(api, file))["status"] == "completed"


async def test_the_session_lists_the_enabled_mechanisms_in_server_order(
    api: Api, project_name: str
) -> None:
    session = await api.create_session(project_name)
    assert session["mechanisms"] == [S3_PRESIGNED, RESUMABLE, HTTP_POST_BYTES]


async def test_resumable_upload_in_pieces(
    api: Api, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:
    name, data = wheel_bytes
    file = await new_file(api, project_name, name, data, RESUMABLE)
    assert file["mechanism"]["identifier"] == RESUMABLE
    assert await offset_of(api, file) == (0, "?0")

    first = 3 * MiB + 7  # less than a part: it waits in the tail object
    response = await append(api, file, 0, data[:first], last=False)
    assert response.status == 204, await response.text()
    assert response.headers["Upload-Offset"] == str(first)
    assert await offset_of(api, file) == (first, "?0")

    # Completing before every byte arrived is refused and changes nothing.
    await problem(await api.complete(file), 409)
    assert (await api.status(file["links"]["file-upload-session"]))["status"] == "pending"

    second = first + 6 * MiB  # crosses a part boundary
    assert (await append(api, file, first, data[first:second], last=False)).status == 204
    assert await offset_of(api, file) == (second, "?0")

    await append_the_rest_and_complete(api, file, second, data)
    await assert_consistent(api)


async def test_a_file_smaller_than_a_part_in_two_pieces(
    api: Api, project_name: str, tmp_path: Path
) -> None:
    """The last append lands no part: the whole file goes from the tail object plus the last
    piece to S3 in one write."""
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(PART // 2))
    data = wheel.read_bytes()
    file = await new_file(api, project_name, wheel.name, data, RESUMABLE)
    half = len(data) // 2
    assert (await append(api, file, 0, data[:half], last=False)).status == 204
    await append_the_rest_and_complete(api, file, half, data)
    await assert_consistent(api)


async def test_one_append_of_many_parts_keeps_its_digests(
    api: Api, project_name: str, tmp_path: Path
) -> None:
    """Parts are hashed on a thread while the next one fills: in order, or the digest is
    wrong and completion says so."""
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(6 * PART + 1234))
    data = wheel.read_bytes()
    file = await new_file(api, project_name, wheel.name, data, RESUMABLE)
    assert (await append(api, file, 0, data, last=True)).status == 204
    assert (await completed(api, file))["status"] == "completed"


async def test_wrong_offset_is_409_with_the_right_one(
    api: Api, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:
    name, data = wheel_bytes
    file = await new_file(api, project_name, name, data, RESUMABLE)
    assert (await append(api, file, 0, data[:1000], last=False)).status == 204
    for wrong in (0, 999, 1001, len(data)):
        response = await append(api, file, wrong, data[wrong : wrong + 10], last=False)
        document = await problem(response, 409)
        assert document["type"].endswith("mismatching-upload-offset")
        assert response.headers["Upload-Offset"] == "1000"
    assert await offset_of(api, file) == (1000, "?0")


async def test_bad_append_requests_are_problems(
    api: Api, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:
    name, data = wheel_bytes
    file = await new_file(api, project_name, name, data, RESUMABLE)
    url = api.path(file["mechanism"]["upload_url"])
    headers = {"Content-Type": "application/partial-upload", "Upload-Complete": "?0"}
    for broken in (
        {**headers, "Upload-Offset": "-1"},
        {**headers, "Upload-Offset": "x"},
        {"Content-Type": "application/partial-upload", "Upload-Offset": "0"},
        {**headers, "Upload-Offset": "0", "Upload-Complete": "yes"},
    ):
        await problem(await api.client.patch(url, data=b"x", headers=api.headers(**broken)), 400)
    wrong_type = {**headers, "Upload-Offset": "0", "Content-Type": "application/zip"}
    await problem(await api.client.patch(url, data=b"x", headers=api.headers(**wrong_type)), 415)
    await problem(await append(api, file, 0, data + b"more", last=True), 413)
    # http-post-bytes is not this file's mechanism.
    content_url = file["mechanism"]["upload_url"].replace("/resumable", "/content")
    await problem(await api.send_bytes({"mechanism": {"file_url": content_url}}, data), 409)
    assert await offset_of(api, file) == (0, "?0")


async def test_a_cut_connection_resumes_from_the_reported_offset(
    api: Api, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:
    name, data = wheel_bytes
    file = await new_file(api, project_name, name, data, RESUMABLE)
    _, writer = await asyncio.open_connection(api.client.host, api.client.port)
    writer.write(
        (
            f"PATCH {api.path(file['mechanism']['upload_url'])} HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: {ALICE.authorization}\r\n"
            "Content-Type: application/partial-upload\r\n"
            f"Upload-Offset: 0\r\nUpload-Complete: ?1\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        + data[: 8 * MiB + 3]
    )
    await writer.drain()
    await asyncio.sleep(1)  # time for the gateway to take in what was sent
    writer.transport.abort()  # the network drops, mid-body

    # The server keeps every byte that arrived, and says where to go on from.
    offset, complete = await offset_of(api, file)
    for _ in range(50):
        if offset > PART:
            break
        await asyncio.sleep(0.1)
        offset, complete = await offset_of(api, file)
    assert PART < offset <= 8 * MiB + 3
    assert complete == "?0"
    response = await append(api, file, offset, data[offset:], last=True)
    assert response.status == 204, await response.text()
    assert (await completed(api, file))["status"] == "completed"
    await assert_consistent(api)


async def test_a_restarted_gateway_resumes_the_upload(
    aiohttp_client, settings: Settings, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:  # type: ignore[no-untyped-def]
    """The second half goes to a fresh process: nothing of the first survives but S3, so the
    digests are computed again from the finished object, and must still match."""
    name, data = wheel_bytes
    first = await make_api(aiohttp_client, settings)
    file = await new_file(first, project_name, name, data, RESUMABLE)
    half = len(data) // 2
    assert (await append(first, file, 0, data[:half], last=False)).status == 204
    await first.client.close()

    second = await make_api(aiohttp_client, settings)
    assert await offset_of(second, file) == (half, "?0")
    assert (await append(second, file, half, data[half:], last=True)).status == 204
    assert (await completed(second, file))["status"] == "completed"


async def test_a_killed_gateway_process_is_replaced_and_the_upload_goes_on(
    replicas, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Between two appends the gateway process is killed (SIGKILL); a new process on the same
    bucket reports the offset and takes the rest."""
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(12 * MiB))
    data = wheel.read_bytes()
    prefix = "restart-" + project_name
    first = replicas(prefix)
    async with aiohttp.ClientSession() as http:
        session = await create_session(http, first.api, project_name)
        file = await start_replica_file(http, session, wheel, RESUMABLE)
        url = file["mechanism"]["upload_url"]
        headers = {
            "Authorization": ALICE.authorization,
            "Content-Type": "application/partial-upload",
        }
        half = 7 * MiB + 5
        async with http.patch(
            url,
            data=data[:half],
            headers={**headers, "Upload-Offset": "0", "Upload-Complete": "?0"},
        ) as response:
            assert response.status == 204, await response.text()
        first.process.kill()
        first.process.wait(10)

        second = replicas(prefix)
        auth = {"Authorization": ALICE.authorization}
        async with http.head(second.on(url), headers=auth) as response:
            assert response.headers["Upload-Offset"] == str(half)
        async with http.patch(
            second.on(url),
            data=data[half:],
            headers={**headers, "Upload-Offset": str(half), "Upload-Complete": "?1"},
        ) as response:
            assert response.status == 204, await response.text()
        async with http.post(
            second.on(file["links"]["complete"]),
            json={"meta": META},
            headers={**auth, "Content-Type": "application/vnd.pypi.upload.v2+json"},
        ) as response:
            assert response.status == 201, await response.text()


async def test_resumed_bytes_that_differ_are_caught_at_completion(
    api: Api, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:
    name, data = wheel_bytes
    file = await new_file(api, project_name, name, data, RESUMABLE)
    assert (await append(api, file, 0, data[: PART + 10], last=False)).status == 204
    tampered = bytearray(data)
    tampered[-100] ^= 0xFF
    assert (
        await append(api, file, PART + 10, bytes(tampered[PART + 10 :]), last=True)
    ).status == 204
    document = await problem(await api.complete(file), 400)
    assert document["type"].endswith("hash-mismatch")
    assert (await api.status(file["links"]["file-upload-session"]))["status"] == "error"


async def test_presigned_upload_of_100_mib_straight_to_s3(
    api: Api, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(100 * MiB))
    data = wheel.read_bytes()
    file = await new_file(api, project_name, wheel.name, data, S3_PRESIGNED)
    mechanism = file["mechanism"]
    assert mechanism["identifier"] == S3_PRESIGNED
    assert len(mechanism["parts"]) == -(-len(data) // mechanism["part_size"])
    assert mechanism["parts_url"] == file["links"]["file-upload-session"]
    await put_parts(file, data)
    body = await completed(api, file)
    assert body["status"] == "completed"
    assert body["mechanism"]["parts"] == []  # nothing left to upload
    await assert_consistent(api)
    # The read-back bypasses botocore, so it is timed by hand; operators still see it.
    scrape = await (await api.client.get("/metrics")).text()
    assert 'upload_gateway_s3_seconds_count{operation="GetObjectReadThrough"}' in scrape


async def test_presigned_tampered_part_ends_in_error(
    api: Api, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:
    name, data = wheel_bytes
    file = await new_file(api, project_name, name, data, S3_PRESIGNED)
    await put_parts(file, data, tamper=2)
    document = await problem(await api.complete(file), 400)
    assert document["type"].endswith("hash-mismatch")
    status = await api.status(file["links"]["file-upload-session"])
    assert status["status"] == "error"
    assert status["notices"]


async def test_presigned_missing_part_is_409_and_can_be_fixed(
    api: Api, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:
    name, data = wheel_bytes
    file = await new_file(api, project_name, name, data, S3_PRESIGNED)
    await put_parts(file, data, skip=2)
    document = await problem(await api.complete(file), 409)
    assert document["type"].endswith("upload-incomplete")
    assert [e["source"] for e in document["errors"]] == ["parts.2"]
    # Fresh URLs from the file upload session, then the missing part, then complete.
    fresh = await api.status(file["mechanism"]["parts_url"])
    await put_parts(fresh, data)
    assert (await completed(api, file))["status"] == "completed"


async def test_mechanisms_not_enabled_are_422(
    aiohttp_client, make_settings, project_name: str, wheel_bytes: tuple[str, bytes]
) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(aiohttp_client, make_settings())  # the default: no presigned
    name, data = wheel_bytes
    session = await api.create_session(project_name)
    assert session["mechanisms"] == [RESUMABLE, HTTP_POST_BYTES]
    response = await api.post_json(
        session["links"]["upload"],
        {
            "meta": META,
            "filename": name,
            "size": len(data),
            "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
            "mechanism": S3_PRESIGNED,
        },
    )
    await problem(response, 422)


# -- the client ----------------------------------------------------------------------


def test_the_client_picks_by_size_then_server_order() -> None:
    big = RESUMABLE_ABOVE
    assert choose_mechanism([S3_PRESIGNED, RESUMABLE, HTTP_POST_BYTES], 10) == HTTP_POST_BYTES
    assert choose_mechanism([S3_PRESIGNED, RESUMABLE, HTTP_POST_BYTES], big) == S3_PRESIGNED
    assert choose_mechanism([RESUMABLE, S3_PRESIGNED, HTTP_POST_BYTES], big) == RESUMABLE
    assert choose_mechanism(["vnd-other-thing", HTTP_POST_BYTES], big) == HTTP_POST_BYTES
    assert choose_mechanism([], big) == S3_PRESIGNED  # no preference stated: the client's


@pytest.fixture
async def behind_a_flaky_network(
    aiohttp_server, make_settings
) -> AsyncIterator[tuple[Settings, FaultProxy]]:  # type: ignore[no-untyped-def]
    """A gateway on a real port, reached (links included) through a fault proxy."""
    port = free_port()
    proxy = await FaultProxy(f"http://127.0.0.1:{port}").start()
    settings = make_settings(
        server={"public_base_url": proxy.url.rstrip("/")},
        s3={"part_size": PART},
        uploads={"mechanisms": [RESUMABLE, HTTP_POST_BYTES]},
    )
    await aiohttp_server(create_app(settings, run_sweeper=False), port=port)
    yield settings, proxy
    await proxy.close()


async def test_the_client_resumes_after_the_connection_drops(
    behind_a_flaky_network: tuple[Settings, FaultProxy],
    pypiserver: Server,
    project_name: str,
    tmp_path: Path,
) -> None:
    settings, proxy = behind_a_flaky_network
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(20 * MiB))
    data = wheel.read_bytes()
    resumed: list[int] = []
    sent = [0]
    async with UploadClient(
        settings.server.public_base_url + settings.server.api_root,
        authorization=ALICE.authorization,
        resumable_above=1 << 20,
    ) as client:
        session, _ = await client.create_session(project_name, "1.0")
        proxy.cut_after(9 * MiB, once=True)  # a blip in the middle of the file
        before = proxy.forwarded
        file = await client.upload_file(
            session,
            wheel,
            size=len(data),
            hashes={"sha256": hashlib.sha256(data).hexdigest()},
            progress=lambda n: sent.__setitem__(0, sent[0] + n),
            on_resume=lambda _name, offset: resumed.append(offset),
        )
        assert file.status == "completed"
        assert file.mechanism_identifier == RESUMABLE
        assert (await client.publish(session)).status == "published"
    assert await index_files(pypiserver, project_name) == {
        wheel.name: hashlib.sha256(data).hexdigest()
    }
    assert len(resumed) == 1
    assert 0 < resumed[0] <= 9 * MiB
    assert sent[0] == len(data)  # progress rewound the bytes that did not land
    # Confirmed bytes were not sent again: the file once, plus what was lost in the cut.
    assert proxy.forwarded - before < len(data) + (9 * MiB - resumed[0]) + (1 << 20)


async def test_the_client_uploads_presigned_parts_straight_to_s3(
    live_gateway, pypiserver, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    api = await live_gateway(
        s3={"part_size": PART}, uploads={"mechanisms": [S3_PRESIGNED, HTTP_POST_BYTES]}
    )
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(18 * MiB))
    data = wheel.read_bytes()
    base = api.base + api.root
    async with UploadClient(base, authorization=ALICE.authorization) as client:
        session, _ = await client.create_session(project_name, "1.0")
        file = await client.upload_file(
            session, wheel, size=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
        )
        assert file.status == "completed"
        assert file.mechanism_identifier == S3_PRESIGNED
        # Published without a blake2_256_digest (the gateway never saw the bytes to hash them).
        assert (await client.publish(session)).status == "published"
    assert await index_files(pypiserver, project_name) == {
        wheel.name: hashlib.sha256(data).hexdigest()
    }
