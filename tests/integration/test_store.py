"""The record store's atomic primitives against real SeaweedFS (R-W1)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.exceptions import ClientError

from gateway.settings import Settings
from gateway.store.blobs import SEND_SLICE, BlobStore, PartBuffer
from gateway.store.record_store import RecordChanged, RecordExists, RecordStore
from gateway.store.s3 import (
    S3Client,
    ensure_bucket,
    is_not_found,
    open_client,
    open_small_objects,
)


@pytest.fixture
async def s3(settings: Settings) -> AsyncIterator[S3Client]:
    async with open_client(settings.s3.store_config()) as client:
        await ensure_bucket(client, settings.s3.bucket, create=True)
        yield client


@pytest.fixture
async def records(s3: S3Client, settings: Settings) -> AsyncIterator[RecordStore]:
    config = settings.s3.store_config()
    async with open_small_objects(config, s3) as objects:
        yield RecordStore(objects, settings.s3.bucket, settings.s3.prefix)


async def test_create_if_absent_refuses_second_create(records: RecordStore) -> None:
    await records.create("a.json", {"n": 1})
    with pytest.raises(RecordExists):
        await records.create("a.json", {"n": 2})
    stored = await records.get("a.json")
    assert stored is not None
    assert stored.data == {"n": 1}


async def test_concurrent_creates_have_exactly_one_winner(records: RecordStore) -> None:
    async def attempt(i: int) -> bool:
        try:
            await records.create("race.json", {"winner": i})
        except RecordExists:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(24)))
    assert sum(results) == 1
    stored = await records.get("race.json")
    assert stored is not None
    assert stored.data["winner"] == results.index(True)


async def test_concurrent_cas_increments_lose_no_update(records: RecordStore) -> None:
    await records.create("counter.json", {"n": 0})

    def increment(data: dict) -> dict:
        return {"n": data["n"] + 1}

    await asyncio.gather(*(records.update("counter.json", increment) for _ in range(20)))
    stored = await records.get("counter.json")
    assert stored is not None
    assert stored.data == {"n": 20}


async def test_replace_with_stale_etag_is_refused(records: RecordStore) -> None:
    etag = await records.create("cas.json", {"v": 1})
    await records.replace("cas.json", {"v": 2}, etag)
    with pytest.raises(RecordChanged):
        await records.replace("cas.json", {"v": 3}, etag)


async def test_conditional_delete(records: RecordStore) -> None:
    etag = await records.create("d.json", {"v": 1})
    await records.replace("d.json", {"v": 2}, etag)
    with pytest.raises(RecordChanged):
        await records.delete("d.json", etag)
    await records.delete("d.json")
    assert await records.get("d.json") is None


async def test_keys_with_delimiter_stay_at_one_level(records: RecordStore) -> None:
    await records.create("sessions/x.json", {})
    await records.create("sessions/x/files/y.json", {})
    found = [key async for key in records.keys("sessions/", delimiter="/")]
    assert found == ["sessions/x.json"]


async def test_keys_come_back_whole_page_after_page(records: RecordStore) -> None:
    # Filenames of summary entries hold "+", "~" and "%"; S3 pages a listing by 1,000 keys.
    odd = ["listed/a+b~c%20d é.json", "listed/x&y<z>.json", "listed/q=1&r=2.json"]
    plain = [f"listed/n{number:04d}.json" for number in range(1_100)]
    await asyncio.gather(*(records.create(key, {}) for key in odd + plain))
    found = [key async for key in records.keys("listed/")]
    assert sorted(found) == sorted(odd + plain)
    assert len(found) == len(set(found))


async def test_missing_bucket_is_created(settings: Settings) -> None:
    bucket = "created-" + secrets.token_hex(4)
    async with open_client(settings.s3.store_config()) as client:
        await ensure_bucket(client, bucket, create=True)
        await client.head_bucket(Bucket=bucket)
        await client.delete_bucket(Bucket=bucket)


async def test_part_buffers_arrive_whole(s3: S3Client, settings: Settings) -> None:
    """Parts sent slice by slice (``PartBuffer``) make the object byte for byte, a part
    that is not a whole number of slices and a single ``PutObject`` included."""
    blobs = BlobStore(s3, settings.s3.bucket, settings.s3.prefix)
    first, last = os.urandom(5 * SEND_SLICE + 123), os.urandom(1000)
    writer = blobs.multipart("sliced.bin")
    for part in (first, last):
        await writer.add_part(PartBuffer(part))
    await writer.complete()
    assert await blobs.get("sliced.bin") == first + last
    await blobs.put("small.bin", PartBuffer(last))
    assert await blobs.get("small.bin") == last


async def test_a_small_object_streams_in_one_request_as_botocore_reads_it(
    s3: S3Client, settings: Settings
) -> None:
    """A stream told the object's size reads a small one without botocore (the bytes of a
    small file posted at publish): the same bytes, and a missing object the same 404."""
    config = settings.s3.store_config()
    async with open_small_objects(config, s3) as objects:
        blobs = BlobStore(s3, settings.s3.bucket, settings.s3.prefix, objects=objects)
        data = os.urandom(70_000)
        await blobs.put("small-stream.bin", data)
        streamed = blobs.stream("small-stream.bin", chunk_size=4096, size=len(data))
        assert [chunk async for chunk in streamed] == [data]  # one request, one chunk
        read = [chunk async for chunk in blobs.stream("small-stream.bin", chunk_size=4096)]
        assert len(read) > 1  # botocore's, chunk by chunk
        assert b"".join(read) == data
        for size in (10, None):  # without botocore, then with it
            with pytest.raises(ClientError) as missing:
                _ = [c async for c in blobs.stream("never-written.bin", size=size)]
            assert is_not_found(missing.value)


async def test_part_buffer_goes_out_in_slices() -> None:
    """aiohttp hands a ``PartBuffer`` body to the connection a slice at a time, never as
    one write of the whole part (which asyncio would copy into its transport buffer)."""
    received: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response()

    app = web.Application(client_max_size=8 * SEND_SLICE)
    app.router.add_put("/", handler)
    written: list[int] = []

    async def chunk_sent(
        _: object, __: object, params: aiohttp.TraceRequestChunkSentParams
    ) -> None:
        written.append(len(params.chunk))

    tracing = aiohttp.TraceConfig()
    tracing.on_request_chunk_sent.append(chunk_sent)
    body = os.urandom(3 * SEND_SLICE + 7)
    async with (
        TestServer(app) as server,
        aiohttp.ClientSession(trace_configs=[tracing]) as http,
        http.put(server.make_url("/"), data=PartBuffer(body)) as response,
    ):
        assert response.status == 200
    assert received == [body]
    assert written == [SEND_SLICE, SEND_SLICE, SEND_SLICE, 7]


async def test_a_listing_shows_each_record_at_the_etag_its_write_answered(
    records: RecordStore,
) -> None:
    # What lets a record this process wrote be taken from its cache when a listing names it
    # (store/record_cache.py): odd keys, a rewrite, more than one page.
    odd = ["tagged/a+b~c%20d é.json", "tagged/x&y<z>.json", "tagged/q=1&r=2.json"]
    plain = [f"tagged/n{number:04d}.json" for number in range(1_050)]
    written = dict(
        zip(
            odd + plain,
            await asyncio.gather(*(records.create(key, {"k": key}) for key in odd + plain)),
            strict=True,
        )
    )
    written[odd[0]] = await records.replace(odd[0], {"k": "again"}, written[odd[0]])
    listed = {entry.key: entry.etag async for entry in records.listing("tagged/")}
    assert listed == written
    assert len(set(listed.values())) > 1, "each etag names its record's bytes"
    read = await records.get(odd[0])
    assert read is not None
    assert read.etag == listed[odd[0]]
