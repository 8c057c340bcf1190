"""A release's file creates share the index's listing (services/listings.py, R-F5)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.services.listings import RecentListings


class CountingIndex:
    """Answers a listing after a short wait, counting the reads; fails while ``down``."""

    def __init__(self) -> None:
        self.reads = 0
        self.files: dict[str, str | None] = {}
        self.down = False

    async def __call__(self, project: str) -> dict[str, str | None]:
        self.reads += 1
        await asyncio.sleep(0.01)
        if self.down:
            raise ConnectionError("index down")
        return dict(self.files)


async def test_creates_arriving_together_share_one_read() -> None:
    index = CountingIndex()
    index.files = {"a-1.0-py3-none-any.whl": "00"}
    listings = RecentListings(index, max_age=10)
    seen = await asyncio.gather(*(listings("a") for _ in range(10)))
    assert index.reads == 1
    assert all("a-1.0-py3-none-any.whl" in listing for listing in seen)
    await listings("b")  # another project has its own
    assert index.reads == 2


async def test_a_listing_older_than_max_age_is_read_again() -> None:
    index = CountingIndex()
    listings = RecentListings(index, max_age=0.05)
    assert "a-1.0.tar.gz" not in await listings("a")
    index.files = {"a-1.0.tar.gz": None}
    assert "a-1.0.tar.gz" not in await listings("a")  # still the recent one
    await asyncio.sleep(0.06)
    assert "a-1.0.tar.gz" in await listings("a")
    assert index.reads == 2


async def test_max_age_zero_reads_every_time() -> None:
    index = CountingIndex()
    listings = RecentListings(index, max_age=0)
    await asyncio.gather(listings("a"), listings("a"))
    assert index.reads == 2


async def test_a_failed_read_is_not_kept() -> None:
    index = CountingIndex()
    listings = RecentListings(index, max_age=10)
    index.down = True
    results = await asyncio.gather(listings("a"), listings("a"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert index.reads == 1
    index.down = False
    assert await listings("a") == {}
    assert index.reads == 2


async def test_a_caller_that_gives_up_does_not_cancel_the_read_for_the_others() -> None:
    index = CountingIndex()
    listings = RecentListings(index, max_age=10)
    first = asyncio.ensure_future(listings("a"))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(listings("a"))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == {}
    with pytest.raises(asyncio.CancelledError):
        await first
    assert index.reads == 1
