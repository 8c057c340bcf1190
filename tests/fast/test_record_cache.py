"""The cache of record bodies by key and etag (``store/record_cache.py``): bounded by bytes,
least recently used dropped first, answering a listed record only at the etag it holds."""

from __future__ import annotations

from pydantic import BaseModel

from gateway.store.memory import MemoryRecordStore
from gateway.store.record_cache import BodyCache, CachedRecords
from gateway.store.record_store import Listed
from gateway.store.typed import Records
from tests.fast.conftest import ReadCountingStore


class Counter(BaseModel):
    n: int


async def listed(store: CachedRecords, prefix: str = "") -> list[Listed]:
    return [entry async for entry in store.listing(prefix)]


def test_the_cache_is_bounded_by_bytes_and_drops_the_least_recently_used() -> None:
    cache = BodyCache(max_bytes=10)
    cache.put("a", '"1"', b"aaaa")
    cache.put("b", '"2"', b"bbbb")
    assert cache.get("a", '"1"') == b"aaaa"  # now b is the least recently used
    cache.put("c", '"3"', b"cccc")
    assert (cache.get("a", '"1"'), cache.get("b", '"2"'), cache.get("c", '"3"')) == (
        b"aaaa",
        None,
        b"cccc",
    )
    assert cache.size == 8
    cache.put("a", '"4"', b"a")  # a new version replaces the one held
    assert (cache.get("a", '"1"'), cache.get("a", '"4"'), cache.size) == (None, b"a", 5)
    cache.put("big", '"5"', b"x" * 11)  # larger than the whole cache: not held
    assert (cache.get("big", '"5"'), cache.size) == (None, 5)


async def test_a_listed_record_held_at_its_etag_is_not_read() -> None:
    inner = ReadCountingStore()
    store = CachedRecords(inner)
    await store.create("a.json", {"n": 1})
    [entry] = await listed(store)
    found = await store.get_listed(entry)
    assert (found is not None, inner.reads) == (True, 0)
    assert found is not None
    assert found.data == {"n": 1}


async def test_an_etag_mismatch_reads_the_record() -> None:
    inner = ReadCountingStore()
    store = CachedRecords(inner)
    etag = await store.create("a.json", {"n": 1})
    await inner.replace("a.json", {"n": 2}, etag)  # another replica's write
    [entry] = await listed(store)
    found = await store.get_listed(entry)
    assert found is not None
    assert (found.data, inner.reads) == ({"n": 2}, 1)
    # Read once, held from then on.
    again = await store.get_listed(entry)
    assert again is not None
    assert (again.data, inner.reads) == ({"n": 2}, 1)


async def test_a_get_always_reads() -> None:
    inner = ReadCountingStore()
    store = CachedRecords(inner)
    await store.create("a.json", {"n": 1})
    await store.get("a.json")
    await store.get("a.json")
    assert inner.reads == 2, "a read that may decide a write is never answered from the cache"


async def test_a_delete_forgets() -> None:
    inner = ReadCountingStore()
    store = CachedRecords(inner)
    await store.create("a.json", {"n": 1})
    [entry] = await listed(store)
    await store.delete("a.json")
    assert await store.get_listed(entry) is None
    assert inner.reads == 1


async def test_each_caller_gets_a_model_of_its_own() -> None:
    store = CachedRecords(MemoryRecordStore())
    counters = Records(store, Counter)
    await counters.create("c/a.json", Counter(n=1))
    entries = await listed(store, "c/")
    first, second = await counters.load_listed(entries), await counters.load_listed(entries)
    first[0].n = 99
    assert second == [Counter(n=1)]
    assert await counters.load_listed(entries) == [Counter(n=1)]
