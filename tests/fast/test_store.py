"""The in-memory record store keeps S3's conditional-write semantics (as tests/integration/
test_store.py checks of SeaweedFS), and the typed store's compare-and-swap loses no update."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from gateway.store.memory import MemoryRecordStore
from gateway.store.record_store import (
    RecordChanged,
    RecordExists,
    RecordMissing,
    UpdateContention,
)
from gateway.store.typed import Records
from tests.fast.conftest import ReadCountingStore


class Counter(BaseModel):
    n: int


async def test_create_if_absent() -> None:
    store = MemoryRecordStore()
    await store.create("a.json", {"n": 1})
    with pytest.raises(RecordExists):
        await store.create("a.json", {"n": 2})
    stored = await store.get("a.json")
    assert stored is not None
    assert stored.data == {"n": 1}


async def test_replace_and_delete_compare_etags() -> None:
    store = MemoryRecordStore()
    etag = await store.create("cas.json", {"v": 1})
    await store.replace("cas.json", {"v": 2}, etag)
    with pytest.raises(RecordChanged):
        await store.replace("cas.json", {"v": 3}, etag)
    with pytest.raises(RecordChanged):
        await store.delete("cas.json", etag)
    await store.delete("cas.json")
    with pytest.raises(RecordMissing):
        await store.replace("cas.json", {"v": 4}, etag)


async def test_a_read_record_cannot_be_changed_by_its_reader() -> None:
    store = MemoryRecordStore()
    await store.create("a.json", {"items": [1]})
    stored = await store.get("a.json")
    assert stored is not None
    stored.data["items"].append(2)
    again = await store.get("a.json")
    assert again is not None
    assert again.data == {"items": [1]}


async def test_keys_by_prefix_and_delimiter() -> None:
    store = MemoryRecordStore()
    for key in ("sessions/b.json", "sessions/a.json", "sessions/a/files/x.json", "other.json"):
        await store.create(key, {})
    assert [k async for k in store.keys("sessions/", delimiter="/")] == [
        "sessions/a.json",
        "sessions/b.json",
    ]
    assert len([k async for k in store.keys("sessions/")]) == 3


async def test_concurrent_typed_updates_lose_none() -> None:
    store = MemoryRecordStore()
    counters = Records(store, Counter)
    await counters.create("c.json", Counter(n=0))

    def increment(counter: Counter) -> Counter:
        counter.n += 1
        return counter

    await asyncio.gather(*(counters.update("c.json", increment) for _ in range(50)))
    assert await counters.load("c.json") == Counter(n=50)


async def test_an_update_that_changes_nothing_writes_nothing() -> None:
    store = MemoryRecordStore()
    counters = Records(store, Counter)
    await counters.create("c.json", Counter(n=0))
    writes = store.writes
    assert await counters.update("c.json", lambda counter: None) == Counter(n=0)
    assert store.writes == writes


async def test_contention_gives_up_after_its_attempts() -> None:
    store = MemoryRecordStore(max_attempts=1)
    counters = Records(store, Counter)
    await counters.create("c.json", Counter(n=0))

    def increment(counter: Counter) -> Counter:
        return Counter(n=counter.n + 1)

    results = await asyncio.gather(
        *(counters.update("c.json", increment) for _ in range(10)), return_exceptions=True
    )
    lost = [r for r in results if isinstance(r, UpdateContention)]
    assert lost, "ten writers with one attempt each cannot all win"
    assert await counters.load("c.json") == Counter(n=10 - len(lost))


async def test_claim_has_one_winner_and_takes_over_a_dead_holder() -> None:
    store = MemoryRecordStore()
    claims = Records(store, Counter)

    async def never(held: Counter) -> bool:
        return False

    results = await asyncio.gather(*(claims.claim("p.json", Counter(n=i), never) for i in range(8)))
    winners = [i for i, held in enumerate(results) if held is None]
    assert len(winners) == 1
    assert await claims.load("p.json") == Counter(n=winners[0])

    async def always(held: Counter) -> bool:
        return True

    assert await claims.claim("p.json", Counter(n=99), always) is None
    assert await claims.load("p.json") == Counter(n=99)


async def test_an_update_from_a_known_version_writes_without_reading() -> None:
    store = ReadCountingStore()
    counters = Records(store, Counter)
    known = await counters.create("c.json", Counter(n=0))

    def increment(counter: Counter) -> Counter:
        counter.n += 1
        return counter

    written = await counters.update_versioned("c.json", increment, known)
    assert (written.value, store.reads) == (Counter(n=1), 0)
    assert known.value == Counter(n=0), "the caller's copy is left as it was"
    # Someone wrote since ``known``: the change is made to the current record instead.
    again = await counters.update_versioned("c.json", increment, known)
    assert (again.value, store.reads) == (Counter(n=2), 1)
    assert await counters.load("c.json") == Counter(n=2)


async def test_an_update_from_a_stale_version_lets_the_current_record_decide() -> None:
    store = MemoryRecordStore()
    counters = Records(store, Counter)
    stale = await counters.create("c.json", Counter(n=0))
    await counters.update("c.json", lambda counter: Counter(n=5))

    def only_from_five(counter: Counter) -> Counter:
        if counter.n != 5:
            raise ValueError("refused")  # as a state check refuses a transition
        return Counter(n=6)

    assert (await counters.update_versioned("c.json", only_from_five, stale)).value.n == 6

    # Kept as it is by the stale version's lights, changed by the current one's.
    def reset(counter: Counter) -> Counter | None:
        return None if counter.n == 0 else Counter(n=0)

    kept = await counters.update_versioned("c.json", reset, stale)
    assert kept.value == Counter(n=0)
    assert await counters.load("c.json") == Counter(n=0)
