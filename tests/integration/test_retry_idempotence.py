"""Retries whose first answer was lost (R-W12): the retry finds what its first attempt did,
on whichever replica it lands, and the client carries on instead of failing the release."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gateway.client.api import UploadClient
from tests.conftest import ALICE
from tests.distributions import build_wheel
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
