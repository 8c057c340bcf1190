"""Fault injection (issue #10): S3 and the index misbehave at the TCP level, through a proxy.

Every test follows the same shape: the fault strikes during one step of the protocol; the
client gets a problem it can act on (503/502 with ``Retry-After``, or ``error`` plus a notice
for deferred work); the bucket checker finds nothing inconsistent; the fault clears and the
same client flow completes with every file on the index exactly once, with the right bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from gateway.api.context import SERVICES
from gateway.devstack import Server
from gateway.domain import clock
from gateway.mechanisms import HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED
from gateway.settings import MiB
from gateway.store import keys
from gateway.store.record_store import RecordStore
from tests.distributions import build_sdist, build_wheel, sha256_of
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


@pytest.fixture
async def s3_fault(seaweedfs: Server) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy(seaweedfs.url).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def index_fault(pypiserver: Server) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy(pypiserver.url).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def api(aiohttp_client, make_settings, s3_fault: FaultProxy, index_fault: FaultProxy) -> Api:  # type: ignore[no-untyped-def]
    settings = make_settings(
        # One try per S3 call: the faults below are meant to reach the gateway's own code.
        s3={"endpoint_url": s3_fault.url, "timeout": 3, "attempts": 1, "part_size": 5 * MiB},
        backend={
            "upload_url": index_fault.url + "/",
            "simple_url": index_fault.url + "/simple/",
            "timeout": 2,
        },
        publish={"sync_wait": 5, "retries": 1, "lease": 2},
        uploads={"mechanisms": [S3_PRESIGNED, RESUMABLE, HTTP_POST_BYTES]},
    )
    return await make_api(aiohttp_client, settings)


async def unavailable(response: ClientResponse, status: int = 503) -> dict[str, Any]:
    document = await problem(response, status)
    assert int(response.headers["Retry-After"]) >= 1
    return document


async def settle(api: Api, session: dict[str, Any]) -> dict[str, Any]:
    """Sweep (as every replica does) until the session is no longer processing."""
    sweeper = api.client.app[SERVICES].sweeper
    for _ in range(120):
        status = await api.status(session["links"]["session"])
        if status["status"] != "processing":
            return status
        await sweeper.sweep()
        await asyncio.sleep(0.25)
    raise AssertionError("the session stayed processing")


async def publish_until_published(api: Api, session: dict[str, Any]) -> None:
    """What a client does after a failure: publish again until the session is published."""
    for _ in range(5):
        response = await api.publish(session)
        if (
            response.status in (201, 202, 409)
            and (await settle(api, session))["status"] == "published"
        ):
            return
        await asyncio.sleep(1)
    raise AssertionError(await api.status(session["links"]["session"]))


@pytest.fixture
def release(tmp_path: Path, project_name: str) -> list[Path]:
    return [
        build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(12 * MiB)),
        build_sdist(tmp_path, project_name, "1.0"),
    ]


async def test_s3_failing_during_a_bytes_upload(
    api: Api, s3_fault: FaultProxy, pypiserver: Server, project_name: str, release: list[Path]
) -> None:
    wheel, sdist = release
    data = wheel.read_bytes()
    session = await api.create_session(project_name)
    file = await api.create_file(session, wheel.name, data)
    s3_fault.cut_after(3 * MiB)  # after the first bytes reached S3, within the first part
    await unavailable(await api.send_bytes(file, data))
    s3_fault.heal()
    await assert_consistent(api)
    assert (await api.status(file["links"]["file-upload-session"]))["status"] == "pending"

    assert (await api.send_bytes(file, data)).status == 200
    assert (await api.complete(file)).status == 201
    await api.upload(session, sdist)
    await publish_until_published(api, session)
    assert await index_files(pypiserver, project_name) == {p.name: sha256_of(p) for p in release}
    await api.client.app[SERVICES].sweeper.sweep()
    await assert_consistent(api)


async def test_s3_failing_during_complete(
    api: Api, s3_fault: FaultProxy, project_name: str, release: list[Path]
) -> None:
    wheel = release[0]
    data = wheel.read_bytes()
    session = await api.create_session(project_name)
    file = await api.create_file(session, wheel.name, data)
    assert (await api.send_bytes(file, data)).status == 200
    s3_fault.reset()
    await unavailable(await api.complete(file))
    s3_fault.heal()
    await assert_consistent(api)
    assert (await api.complete(file)).status == 201
    await assert_consistent(api)


async def test_s3_down_when_publish_is_asked_for(
    api: Api, s3_fault: FaultProxy, pypiserver: Server, project_name: str, release: list[Path]
) -> None:
    session = await api.create_session(project_name)
    for path in release:
        await api.upload(session, path)
    s3_fault.reset()
    await unavailable(await api.publish(session))
    s3_fault.heal()
    await assert_consistent(api)
    await publish_until_published(api, session)
    assert await index_files(pypiserver, project_name) == {p.name: sha256_of(p) for p in release}
    await assert_consistent(api)


async def test_s3_failing_in_the_middle_of_a_publish(
    api: Api,
    s3_fault: FaultProxy,
    index_fault: FaultProxy,
    pypiserver: Server,
    project_name: str,
    release: list[Path],
) -> None:
    session = await api.create_session(project_name)
    for path in release:
        await api.upload(session, path)
    index_fault.heal(latency=0.05)  # slow the index so that the fault lands mid-publish
    before = index_fault.connections
    publishing = asyncio.create_task(api.publish(session))
    while index_fault.connections == before and not publishing.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    s3_fault.reset()
    response = await publishing
    assert response.status in (201, 202, 503), await response.text()
    if response.status == 503:
        await unavailable(response)
    await asyncio.sleep(1)
    s3_fault.heal()
    index_fault.heal()
    await assert_consistent(api)
    if (await settle(api, session))["status"] != "published":
        await publish_until_published(api, session)
    assert await index_files(pypiserver, project_name) == {p.name: sha256_of(p) for p in release}
    await assert_consistent(api)


async def test_index_failing_in_the_middle_of_a_publish(
    api: Api, index_fault: FaultProxy, pypiserver: Server, project_name: str, release: list[Path]
) -> None:
    session = await api.create_session(project_name)
    for path in release:
        await api.upload(session, path)
    index_fault.cut_after(6 * MiB)  # in the middle of the 12 MiB wheel's upload
    response = await api.publish(session)
    if response.status in (502, 503):
        await unavailable(response, response.status)
        assert (await api.status(session["links"]["session"]))["status"] == "open"
    else:
        assert response.status == 202, await response.text()
        status = await settle(api, session)
        assert status["status"] == "error"
        assert status["notices"]
    await assert_consistent(api)
    index_fault.heal()
    await publish_until_published(api, session)
    assert await index_files(pypiserver, project_name) == {p.name: sha256_of(p) for p in release}
    await assert_consistent(api)


async def test_s3_failing_at_every_step_of_the_expiry_sweep(
    api: Api,
    s3_fault: FaultProxy,
    project_name: str,
    monkeypatch: pytest.MonkeyPatch,
    bucket_records: RecordStore,
) -> None:
    """The fault strikes after 0, 1, 2... requests' worth of bytes: whatever the sweep had done
    by then, the bucket is consistent and the next sweep finishes the job."""
    moment = [clock.now()]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    sweeper = api.client.app[SERVICES].sweeper
    session = await api.create_session(project_name)  # a first release: it reserves the name
    moment[0] += timedelta(days=8)
    budget = 0
    while True:
        s3_fault.cut_after(budget)
        with contextlib.suppress(Exception):  # the sweep loop logs it and sweeps again later
            await sweeper.sweep()
        s3_fault.heal()
        await assert_consistent(api)
        # Read the record itself: reading the session through the API would expire it.
        stored = await bucket_records.get(keys.session(session["session-token"]))
        if stored is not None and stored.data.get("settled"):
            break
        budget += 300  # less than any S3 request: every request gets its turn to fail
    assert budget > 3000, "the sweep should have needed many S3 requests"
    assert stored.data["status"] == "canceled"
    # The release and the name are free again.
    assert (await api.create_session(project_name))["status"] == "open"


async def test_s3_not_answering_at_all(api: Api, s3_fault: FaultProxy, project_name: str) -> None:
    s3_fault.blackhole()
    response = await api.post_json(api.root, {"meta": META, "name": project_name, "version": "1.0"})
    await unavailable(response)
    s3_fault.heal()
    await api.create_session(project_name)
    await assert_consistent(api)


async def test_s3_failing_in_the_middle_of_a_resumable_upload(
    api: Api, s3_fault: FaultProxy, project_name: str, release: list[Path]
) -> None:
    """Only what reached S3 counts: after the fault, HEAD reports an offset the upload can
    go on from at once (the failed request's hold on the upload is known dead)."""
    wheel = release[0]
    data = wheel.read_bytes()
    session = await api.create_session(project_name)
    response = await api.post_json(
        session["links"]["upload"],
        {
            "meta": META,
            "filename": wheel.name,
            "size": len(data),
            "hashes": {"sha256": sha256_of(wheel)},
            "mechanism": RESUMABLE,
        },
    )
    file = await response.json(content_type=None)
    url = api.path(file["mechanism"]["upload_url"])

    def append(offset: int, last: bool = True) -> dict[str, str]:
        return api.headers(
            **{
                "Content-Type": "application/partial-upload",
                "Upload-Offset": str(offset),
                "Upload-Complete": "?1" if last else "?0",
            }
        )

    s3_fault.cut_after(7 * MiB)  # after the first 5 MiB part, within the second
    await unavailable(await api.client.patch(url, data=data, headers=append(0)))
    s3_fault.heal()
    await assert_consistent(api)
    head = await api.client.head(url, headers=api.headers())
    offset = int(head.headers["Upload-Offset"])
    assert offset in (0, 5 * MiB)  # whole parts only: the tail could not be saved
    response = await api.client.patch(url, data=data[offset:], headers=append(offset))
    assert response.status == 204, await response.text()
    assert (await api.complete(file)).status == 201
    await assert_consistent(api)


async def test_s3_failing_while_presigned_bytes_are_read_back(
    api: Api, s3_fault: FaultProxy, project_name: str, release: list[Path]
) -> None:
    """Completing a presigned upload reads the object back on a worker thread, outside
    aiobotocore: a response cut short there is the same 503 as any other S3 failure, and the
    next complete reads it again."""
    wheel = release[0]
    data = wheel.read_bytes()
    session = await api.create_session(project_name)
    file = await api.create_file(session, wheel.name, data, mechanism=S3_PRESIGNED)
    await put_parts(file, data)
    s3_fault.cut_after(4 * MiB, once=True, downstream=True)  # in the read-back's body
    await unavailable(await api.complete(file))
    await assert_consistent(api)
    assert (await api.status(file["links"]["file-upload-session"]))["status"] == "pending"
    assert (await api.complete(file)).status == 201
    await assert_consistent(api)


async def test_a_slow_index_gets_no_more_connections_than_configured(
    aiohttp_client, make_settings, index_fault: FaultProxy, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    """Past its connection limit an index's server may stop accepting (waitress does at 100),
    and a request on a connection it has not accepted hangs: the gateway queues instead."""
    settings = make_settings(
        backend={
            "upload_url": index_fault.url + "/",
            "simple_url": index_fault.url + "/simple/",
            "max_connections": 2,
        }
    )
    api = await make_api(aiohttp_client, settings)
    index_fault.heal(latency=0.2)
    # A new project's session asks the index whether the name is taken: 8 at once.
    await asyncio.gather(*(api.create_session(f"{project_name}-{n}") for n in range(8)))
    assert index_fault.most_at_once <= 2
