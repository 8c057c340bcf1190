"""Sessions over the in-memory stores: one live session per release, quota, extend, cancel,
expiry (R-P3, R-P5, R-P10, R-P11)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from gateway.domain import clock
from gateway.domain.errors import DomainError, Kind
from gateway.domain.states import SessionState
from gateway.store import keys
from gateway.store.memory import MemoryRecordStore
from gateway.store.record_store import Listed
from tests.fast.conftest import MakeStack, Stack, build_stack


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


async def test_the_quota_holds_under_concurrent_creates(
    make_stack: MakeStack, project: str
) -> None:
    stack = await make_stack(sessions={"max_open_per_principal": 5})
    results = await asyncio.gather(
        *(stack.sessions.create(project, str(n), "config:alice") for n in range(12)),
        return_exceptions=True,
    )
    created = [result for result in results if isinstance(result, tuple)]
    refused = [result for result in results if isinstance(result, DomainError)]
    assert len(created) == 5, "racing creates of one process see each other"
    assert all(new for _, new in created)
    assert len(refused) == 7
    assert {error.slug for error in refused} == {"too-many-sessions"}
    markers = [k async for k in stack.records.keys(keys.open_sessions("config:alice"))]
    assert len(markers) == 5


async def test_a_reused_count_that_reaches_the_cap_is_counted_again(
    make_stack: MakeStack, project: str
) -> None:
    stack = await make_stack(sessions={"max_open_per_principal": 2, "quota_max_age": 3600})
    first, _ = await stack.sessions.create(project, "1", "config:alice")
    await stack.sessions.create(project, "2", "config:alice")
    await stack.sessions.cancel(first.id)  # the count of a moment ago still holds it
    _, created = await stack.sessions.create(project, "3", "config:alice")
    assert created, "the exact count finds one open session"
    with pytest.raises(DomainError) as refused:
        await stack.sessions.create(project, "4", "config:alice")
    assert refused.value.slug == "too-many-sessions"
    _, created = await stack.sessions.create(project, "3", "config:alice")
    assert not created, "at the cap, a release already held is the usual 409"


async def test_markers_left_by_a_crash_do_not_count_at_the_cap(
    make_stack: MakeStack, project: str
) -> None:
    stack = await make_stack(sessions={"max_open_per_principal": 2, "quota_max_age": 3600})
    crashed, _ = await stack.sessions.create(project, "1", "config:alice")
    await stack.sessions.create(project, "2", "config:alice")

    def end_without_cleanup(data: dict[str, Any]) -> dict[str, Any]:  # the process died
        return {**data, "status": "canceled", "ended_at": data["created_at"]}

    await stack.records.update(keys.session(crashed.id), end_without_cleanup)
    _, created = await stack.sessions.create(project, "3", "config:alice")
    assert created
    markers = [k async for k in stack.records.keys(keys.open_sessions("config:alice"))]
    assert keys.open_session("config:alice", crashed.id) not in markers
    assert len(markers) == 2


async def test_what_other_replicas_opened_counts_once_listed_again(
    make_stack: MakeStack, project: str
) -> None:
    stack = await make_stack(sessions={"max_open_per_principal": 2, "quota_max_age": 3600})
    other = build_stack(stack.settings, stack.index, stack.http, stack.records, stack.blobs)
    await stack.sessions.create(project, "1", "config:alice")
    await other.sessions.create(project, "2", "config:alice")  # lists both: at the cap
    # The first replica's count (1) is younger than quota_max_age and does not see the other
    # replica's session: the soft cap's documented overshoot, at most what others opened.
    _, created = await stack.sessions.create(project, "3", "config:alice")
    assert created
    for replica in (stack, other):
        with pytest.raises(DomainError) as refused:
            await replica.sessions.create(project, "4", "config:alice")
        assert refused.value.slug == "too-many-sessions"
    await other.worker.drain()


async def test_without_reuse_every_create_counts_afresh(
    make_stack: MakeStack, project: str
) -> None:
    stack = await make_stack(sessions={"max_open_per_principal": 2, "quota_max_age": 0})
    other = build_stack(stack.settings, stack.index, stack.http, stack.records, stack.blobs)
    await stack.sessions.create(project, "1", "config:alice")
    await other.sessions.create(project, "2", "config:alice")
    with pytest.raises(DomainError) as refused:
        await stack.sessions.create(project, "3", "config:alice")
    assert refused.value.slug == "too-many-sessions"
    await other.worker.drain()


class FailingListings(MemoryRecordStore):
    """Listing the open-session markers fails ``failures`` times (S3 unavailable)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def listing(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[Listed]:
        if "/open/" in prefix and self.failures:
            self.failures -= 1
            raise ConnectionError("S3 is not answering")
        async for listed in super().listing(prefix, delimiter):
            yield listed


async def test_a_count_that_failed_is_listed_again(stack: Stack, project: str) -> None:
    records = FailingListings(failures=1)
    failing = build_stack(stack.settings, stack.index, stack.http, records, stack.blobs)
    results = await asyncio.gather(
        *(failing.sessions.create(project, str(n), "config:alice") for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(result, ConnectionError) for result in results), "one shared listing"
    _, created = await failing.sessions.create(project, "1", "config:alice")
    assert created
    await failing.worker.drain()


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
