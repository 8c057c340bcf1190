"""Sessions over the in-memory stores: one live session per release, quota, extend, cancel,
expiry (R-P3, R-P5, R-P10, R-P11)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.sessions import clock
from gateway.sessions.errors import DomainError, Kind
from gateway.sessions.states import SessionState
from gateway.store import keys
from tests.fast.conftest import MakeStack, Stack


async def test_one_live_session_per_release(stack: Stack, project: str) -> None:  # R-P3
    session, created = await stack.sessions.create(project, "1.0", "config:alice")
    assert created
    again, created = await stack.sessions.create(project, "1.0.0", "config:bob")
    assert not created
    assert again.id == session.id
    assert (await stack.sessions.get(session.id)).status == SessionState.OPEN


async def test_racing_creations_agree_on_one_session(stack: Stack, project: str) -> None:
    results = await asyncio.gather(
        *(stack.sessions.create(project, "2.0", f"config:p{i}") for i in range(10))
    )
    assert len({session.id for session, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    records = [k async for k in stack.records.keys(keys.SESSIONS, delimiter="/")]
    assert len(records) == 1, "the losers' records are gone"


async def test_cancel_frees_the_release(stack: Stack, project: str) -> None:  # R-P5
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    canceled = await stack.sessions.cancel(session.id)
    assert canceled.status == SessionState.CANCELED
    assert canceled.settled
    assert await stack.records.get(keys.live_release(project, "1.0")) is None
    with pytest.raises(DomainError) as refused:
        await stack.sessions.cancel(session.id)
    assert refused.value.kind is Kind.NOT_FOUND
    fresh, created = await stack.sessions.create(project, "1.0", "config:alice")
    assert created
    assert fresh.id != session.id


async def test_extend_is_capped_by_the_maximum_lifetime(
    make_stack: MakeStack, project: str
) -> None:  # R-P10
    stack = await make_stack(sessions={"lifetime": 60, "max_lifetime": 600})
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    extended = await stack.sessions.extend(session.id, 120)
    assert extended.expires_at == session.expires_at + timedelta(seconds=120)
    capped = await stack.sessions.extend(session.id, 10_000)
    assert capped.expires_at == session.created_at + timedelta(seconds=600)


async def test_quota_of_open_sessions(make_stack: MakeStack, project: str) -> None:
    stack = await make_stack(sessions={"max_open_per_principal": 2})
    for version in ("1", "2"):
        await stack.sessions.create(project, version, "config:alice")
    with pytest.raises(DomainError) as refused:
        await stack.sessions.create(project, "3", "config:alice")
    assert refused.value.kind is Kind.TOO_MANY
    assert refused.value.slug == "too-many-sessions"
    # The release already held is the usual "exists" answer, not a quota refusal.
    _, created = await stack.sessions.create(project, "1", "config:alice")
    assert not created


async def test_reading_an_expired_session_expires_it(
    stack: Stack, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # R-P11
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    later = session.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    expired = await stack.sessions.get(session.id)
    assert expired.status == SessionState.CANCELED
    assert expired.notices == ["The session expired."]
    assert await stack.records.get(keys.live_release(project, "1.0")) is None


async def test_invalid_release_names_the_field(stack: Stack) -> None:
    with pytest.raises(DomainError) as refused:
        await stack.sessions.create("not a name!", "1.0", "config:alice")
    assert refused.value.kind is Kind.INVALID
    assert refused.value.errors[0].source == "name"
