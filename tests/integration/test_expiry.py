"""Expiry and retention (R-P11, R-P6): lazily on access and by the sweeper on every replica."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.api.context import SERVICES
from gateway.domain import clock
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.store import keys
from gateway.store.record_store import RecordStore
from tests.integration.conftest import META, make_api, problem


async def test_expired_session_reads_as_canceled_and_frees_the_release(
    aiohttp_client, make_settings, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(aiohttp_client, make_settings(sessions={"lifetime": 1}))
    created = await api.create_session(project_name)
    await asyncio.sleep(2.1)
    status = await (await api.get(created["links"]["session"])).json(content_type=UPLOAD_V2_JSON)
    assert status["status"] == "canceled"
    assert "The session expired." in status["notices"]
    await problem(
        await api.post_json(created["links"]["extend"], {"meta": META, "extend-for": 1}), 404
    )
    again = await api.create_session(project_name)
    assert again["links"]["session"] != created["links"]["session"]


async def test_sweeper_expires_and_then_forgets(
    aiohttp_client,
    make_settings,
    project_name: str,
    monkeypatch,
    bucket_records: RecordStore,
) -> None:  # type: ignore[no-untyped-def]
    # The clock is steered rather than slept on: timestamps are whole seconds, so real sleeps
    # near a one-second retention decide the outcome by where in the second the test started.
    moment = [clock.now()]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    settings = make_settings(sessions={"lifetime": 60, "retention": 600})
    api = await make_api(aiohttp_client, settings)
    created = await api.create_session(project_name)
    sid = created["session-token"]
    sweeper = api.client.app[SERVICES].sweeper
    moment[0] += timedelta(seconds=60)
    # Two replicas sweeping at once must not trip over each other.
    await asyncio.gather(sweeper.sweep(), sweeper.sweep())
    stored = await bucket_records.get(keys.session(sid))
    assert stored is not None
    assert stored.data["status"] == "canceled"
    assert await bucket_records.get(keys.live_release(project_name, "1.0")) is None
    moment[0] += timedelta(seconds=599)
    await sweeper.sweep()
    assert await bucket_records.get(keys.session(sid)) is not None, "forgotten before its retention"
    moment[0] += timedelta(seconds=1)
    await sweeper.sweep()
    await problem(await api.get(created["links"]["session"]), 404)
