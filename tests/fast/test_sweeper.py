"""The sweep over the in-memory stores: expiry, settling, retention, stalled validations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.domain import clock
from gateway.domain.states import FileState, SessionState
from gateway.store import keys
from tests.fast.conftest import ALICE, Stack, chunks, file_request


async def test_the_sweep_expires_settles_and_forgets(
    stack: Stack, project: str, wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # R-P11
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await stack.names.reserve(project, ALICE.id, session.id)
    upload = await stack.files.create(session, file_request(wheel))
    await stack.files.receive(session, upload.id, chunks(wheel.read_bytes()), None)
    moment = [session.expires_at + timedelta(seconds=1)]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    await stack.sweeper.sweep()
    stored = await stack.records.get(keys.session(session.id))
    assert stored is not None
    assert (stored.data["status"], stored.data["settled"]) == ("canceled", True)
    assert await stack.records.get(keys.live_release(project, "1.0")) is None
    assert await stack.records.get(keys.name_registration(project)) is None
    assert not [k for k in stack.blobs.objects if k.startswith(keys.session_data(session.id))]
    moment[0] += timedelta(seconds=stack.settings.sessions.retention)
    await stack.sweeper.sweep()
    assert await stack.records.get(keys.session(session.id)) is None


async def test_a_stalled_validation_is_resumed(
    stack: Stack, project: str, wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    upload = await stack.files.create(session, file_request(wheel))
    await stack.files.receive(session, upload.id, chunks(wheel.read_bytes()), None)
    # As if a replica accepted the completion and died before validating: a deferred
    # completion asks the sweep to look in at its deadline before it marks the file.
    deadline = clock.now() - timedelta(minutes=1)
    await stack.due.wake_at(session.id, deadline)
    await stack.records.update(
        keys.file_upload(session.id, upload.id),
        lambda d: {**d, "status": "processing", "processing_deadline": clock.rfc3339(deadline)},
    )
    await stack.sweeper.sweep()
    await stack.settle()
    assert (await stack.files.get(session.id, upload.id)).status == FileState.COMPLETED


async def test_a_live_validation_is_left_alone(stack: Stack, project: str, wheel: Path) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    upload = await stack.files.create(session, file_request(wheel))
    deadline = clock.rfc3339(clock.now() + timedelta(minutes=5))
    await stack.records.update(
        keys.file_upload(session.id, upload.id),
        lambda d: {**d, "status": "processing", "processing_deadline": deadline},
    )
    await stack.sweeper.sweep()
    await stack.settle()
    assert (await stack.files.get(session.id, upload.id)).status == FileState.PROCESSING
    assert (await stack.sessions.get(session.id)).status == SessionState.OPEN
