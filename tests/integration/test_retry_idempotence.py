"""Retries whose first answer was lost (R-W12): the retry finds what its first attempt did,
on whichever replica it lands, and the client carries on instead of failing the release."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from gateway.client.api import UploadClient
from gateway.devstack import Server
from tests.conftest import ALICE
from tests.distributions import build_wheel
from tests.faults import FaultProxy
from tests.integration.conftest import Api, problem


async def test_a_create_declared_again_points_at_the_pending_upload(
    live: Api, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    data = wheel.read_bytes()
    session = await live.create_session(project_name)
    first = await live.start_file(session, wheel.name, data)
    assert first.status == 202, await first.text()
    again = await live.start_file(session, wheel.name, data)
    await problem(again, 409)
    assert again.headers["Location"] == first.headers["Location"]
    # Another declaration of the name is another file: no Location, delete the pending first.
    other = await live.start_file(session, wheel.name, data + b"x")
    await problem(other, 409)
    assert "Location" not in other.headers


async def test_the_client_continues_a_create_whose_answer_was_lost(
    live: Api, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    data = wheel.read_bytes()
    hashes = {"sha256": hashlib.sha256(data).hexdigest()}
    retried: list[str] = []
    async with UploadClient(
        live.base + live.root, authorization=ALICE.authorization, on_retry=retried.append
    ) as client:
        session, _ = await client.create_session(project_name, "1.0")
        lost = await client.create_file(session, wheel.name, len(data), hashes)
        # The retry of that create, as if its 202 never arrived.
        again = await client.upload_file(session, wheel, size=len(data), hashes=hashes)
        assert again.url == lost.url
        assert again.status == "completed"
        published = await client.publish(session)
        # A publish retried after its answer was lost: the session already says so.
        assert (await client.publish(session)).status == published.status == "published"
    assert len(retried) == 2, retried


async def test_a_publish_retried_while_the_first_attempt_holds_it_waits_for_it(
    live_gateway, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The short chaos run: a publish whose answer was lost (its replica was killed) is
    retried while the first attempt still holds the publish, the session still `open`: the
    `409 publish-in-progress` is waited out, not a failed release (R-W12)."""
    index = await FaultProxy(pypiserver.url).start()
    try:
        index.heal(latency=0.05)  # the first attempt is still sending when the retry arrives
        api = await live_gateway(
            backend={"upload_url": index.url + "/", "simple_url": index.url + "/simple/"},
            publish={"sync_wait": 20},
        )
        wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(12 << 20))
        retried: list[str] = []
        async with UploadClient(
            api.base + api.root, authorization=ALICE.authorization, on_retry=retried.append
        ) as client:
            session, _ = await client.create_session(project_name, "1.0")
            data = wheel.read_bytes()
            hashes = {"sha256": hashlib.sha256(data).hexdigest()}
            await client.upload_file(session, wheel, size=len(data), hashes=hashes)
            first = asyncio.create_task(client.publish(session))
            await asyncio.sleep(1)
            assert (await client.get_session(session.url)).status == "open"
            assert not first.done()
            again = await client.publish(session)
            assert again.status == "published"
            assert (await first).status == "published"
        assert "publish: an earlier attempt is under way; waiting for it" in retried, retried
    finally:
        await index.close()
