"""S3 round trips per operation (R-W9): a request costs the same number of record reads and
writes whatever the number of files already in its session, and a sweep costs what is due,
not what the bucket keeps; each step of a file also reads and writes the same record bytes
with 1 file in its session or 400 (R-W13). Counted through a store that tallies every request
it would send and the bytes of every record read or written.

The counts asserted here are the ones documented in ``docs/performance.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.domain import clock
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState, SessionState
from gateway.gates.provenance import provenance_key
from gateway.protocol.models import FileCreateRequest
from gateway.publish.journal import MOST_ENTRIES
from gateway.store import keys
from gateway.store.memory import MemoryBlobStore, MemoryRecordStore
from gateway.store.record_store import Document, Listed, Stored, encode
from tests.distributions import build_sdist, build_wheel
from tests.fast.conftest import ALICE, Stack, build_stack, chunks, file_request, upload

LIST_PAGE = 1000  # keys per ListObjectsV2 answer, as S3 pages them


class CountingRecordStore(MemoryRecordStore):
    """The in-memory store, counting the S3 requests each call stands for."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: Counter[str] = Counter()
        self.read = 0  # bytes of records read, and of keys listed
        self.written = 0  # bytes of records written
        self.session_writes = 0  # of them, writes of session records
        self.session_written = 0  # and their bytes

    def reset(self) -> None:
        self.requests.clear()
        self.read = self.written = self.session_writes = self.session_written = 0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    async def create(self, key: str, data: Document) -> str:
        self.requests["PUT"] += 1
        self.written += len(encode(data))
        return await super().create(key, data)

    async def get(self, key: str) -> Stored | None:
        self.requests["GET"] += 1
        found = await super().get(key)
        self.read += 0 if found is None else len(self.objects[key][0])
        return found

    async def replace(self, key: str, data: Document, etag: str) -> str:
        self.requests["PUT"] += 1
        self.written += len(encode(data))
        if keys.is_session_record(key):
            self.session_writes += 1
            self.session_written += len(encode(data))
        return await super().replace(key, data, etag)

    async def delete(self, key: str, etag: str | None = None) -> None:
        self.requests["DELETE"] += 1
        await super().delete(key, etag)

    async def listing(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[Listed]:
        self.requests["LIST"] += 1
        count = 0
        async for listed in super().listing(prefix, delimiter):
            count += 1
            if count > LIST_PAGE and count % LIST_PAGE == 1:
                self.requests["LIST"] += 1  # the next page
            self.read += len(listed.key)
            yield listed


@pytest.fixture
async def counted(stack: Stack) -> AsyncIterator[Stack]:
    """A stack like ``stack`` (same index and settings) over a counting record store. A
    count of a principal's open sessions serves for the whole test, so that what is counted
    never depends on how fast the test runs, nor does a publish answer before it ends."""
    sessions = stack.settings.sessions.model_copy(update={"quota_max_age": 3600})
    # Publishes are waited for, however slow the machine: a deferred one counts other steps.
    publish = stack.settings.publish.model_copy(update={"sync_wait": 600.0})
    settings = stack.settings.model_copy(update={"sessions": sessions, "publish": publish})
    counting = build_stack(
        settings, stack.index, stack.http, CountingRecordStore(), MemoryBlobStore()
    )
    yield counting
    await counting.worker.drain()


def store(stack: Stack) -> CountingRecordStore:
    assert isinstance(stack.records, CountingRecordStore)
    return stack.records


def pending_request(project: str, number: int) -> FileCreateRequest:
    """A file upload session for a wheel whose bytes never come (enough to fill a session)."""
    stem = project.replace("-", "_")
    return FileCreateRequest.model_validate(
        {
            "meta": {"api-version": "2.0"},
            "filename": f"{stem}-1.0-py3-none-manylinux_2_{number}_x86_64.whl",
            "size": 1000,
            "hashes": {"sha256": hashlib.sha256(str(number).encode()).hexdigest()},
            "mechanism": "http-post-bytes",
        }
    )


async def session_with(stack: Stack, project: str, files: int) -> PublishingSession:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    for number in range(files):
        await stack.files.create(session, pending_request(project, number))
    return await stack.sessions.get(session.id)


async def status(stack: Stack, sid: str, files: int) -> Counter[str]:
    """What ``GET /upload/{sid}`` asks of the store, checking that it shows ``files``."""
    store(stack).reset()
    found = await stack.status.read(sid)
    assert len(await stack.status.files(found)) == files
    return Counter(store(stack).requests)


Cost = tuple[Counter[str], int, int]  # requests, record bytes read, record bytes written


def cost(stack: Stack) -> Cost:
    records = store(stack)
    return Counter(records.requests), records.read, records.written


def alike(small: Cost, large: Cost) -> bool:
    """The same requests, and the same record bytes within a few (the filenames' numbers)."""
    (calls, read, written), (calls_large, read_large, written_large) = small, large
    return calls == calls_large and abs(read - read_large) <= 16 >= abs(written - written_large)


async def file_create(stack: Stack, sid: str, project: str, number: int) -> Cost:
    store(stack).reset()
    session = await stack.sessions.get(sid)  # the handler's read
    await stack.files.create(session, pending_request(project, number))
    return cost(stack)


async def test_status_costs_one_listing_whatever_the_number_of_files(
    counted: Stack, project: str
) -> None:  # R-W9
    one = await session_with(counted, project, 1)
    many = await session_with(counted, project + "-b", 400)
    # One page listing the session record with its etag, and its files' summary entries:
    # the record is the one this replica last read or wrote, at that etag.
    listed = Counter(LIST=1)
    assert await status(counted, one.id, 1) == await status(counted, many.id, 400) == listed
    # Another replica, which never read them: the listing, and the record read once.
    other = build_stack(
        counted.settings, counted.index, counted.http, store(counted), counted.blobs
    )
    read = Counter(LIST=1, GET=1)
    assert await status(other, one.id, 1) == await status(other, many.id, 400) == read
    assert await status(other, many.id, 400) == listed
    # Changed by the first replica: read again by the other, not by the one that wrote it.
    await counted.sessions.extend(many.id, 60)
    assert await status(other, many.id, 400) == read
    assert await status(counted, many.id, 400) == listed
    await other.worker.drain()


async def test_file_create_costs_the_same_with_1_or_400_files(
    counted: Stack, project: str
) -> None:  # R-W9, R-W13
    one = await session_with(counted, project, 1)
    many = await session_with(counted, project + "-b", 400)
    small = await file_create(counted, one.id, project, 500)
    large = await file_create(counted, many.id, project + "-b", 500)
    assert alike(small, large), (small, large)
    # Read session; write file record, filename claim, summary entry. The reservations, as
    # the index's listing, come from the listing shared by the release's creates before.
    # The per-session cap counts from the listing of the creates before (COUNT_MAX_AGE).
    assert small[0] == Counter(GET=1, PUT=3)
    assert small[1] < 1_000, "no record read holds every file's summary"
    assert small[2] < 1_000, "no record written holds every file's summary"


async def test_complete_and_bytes_cost_the_same_with_1_or_400_files(
    counted: Stack, project: str, tmp_path: Path
) -> None:  # R-W9, R-W13
    costs = []
    for files in (1, 400):
        name = f"{project}-{files}"
        wheel = build_wheel(tmp_path, name, "1.0")
        session = await session_with(counted, name, files)
        created = await counted.files.create(session, file_request(wheel))
        session = await counted.sessions.get(session.id)
        store(counted).reset()
        data = wheel.read_bytes()  # with its Content-Length, as every client sends it
        await counted.files.receive(session, created.id, chunks(data), len(data))
        sent = cost(counted)
        store(counted).reset()
        _, done = await counted.files.complete(session, created.id)
        assert done
        costs.append((sent, cost(counted)))
    (sent_1, completed_1), (sent_400, completed_400) = costs
    assert alike(sent_1, sent_400), costs
    assert alike(completed_1, completed_400), costs
    # Bytes (one part, its length declared): read the file; compare-and-swap from that read
    # (commit), no attempt marker first. Complete: read the file; compare-and-swap from that
    # read; summary entry.
    assert sent_1[0] == Counter(GET=1, PUT=1)
    assert completed_1[0] == Counter(GET=1, PUT=2)


async def test_bytes_of_unknown_length_mark_their_attempt_first(
    counted: Stack, project: str, wheel: Path
) -> None:  # a chunked body may be of any size: the latest POST wins, as it began
    session, _ = await counted.sessions.create(project, "1.0", ALICE.id)
    created = await counted.files.create(session, file_request(wheel))
    store(counted).reset()
    await counted.files.receive(session, created.id, chunks(wheel.read_bytes()), None)
    # Read the file; compare-and-swap from that read (attempt), then from that write (commit).
    assert store(counted).requests == Counter(GET=1, PUT=2)


async def test_session_create_costs(counted: Stack, project: str) -> None:
    store(counted).reset()
    await counted.sessions.create(project, "1.0", ALICE.id)
    # Quota markers listed; due entry, session record, live pointer, quota marker written.
    assert store(counted).requests == Counter(LIST=1, PUT=4)
    for version in ("2.0", "3.0"):
        store(counted).reset()
        await counted.sessions.create(project, version, ALICE.id)
        # The creator's count is reused, with this process's own creations added.
        assert store(counted).requests == Counter(PUT=4)


async def test_creates_of_one_principal_share_one_listing_whatever_it_holds(
    counted: Stack, project: str
) -> None:  # R-W9
    for number in range(50):
        await counted.sessions.create(project, f"0.{number}", ALICE.id)
    fresh = build_stack(
        counted.settings, counted.index, counted.http, store(counted), counted.blobs
    )
    store(counted).reset()
    await asyncio.gather(*(fresh.sessions.create(project, f"1.{n}", ALICE.id) for n in range(20)))
    # One listing (of the 50 open sessions) for the 20 racing creates of a fresh process.
    assert store(counted).requests == Counter(LIST=1, PUT=80)
    await fresh.worker.drain()


async def test_publish_costs_a_constant_per_file(
    counted: Stack, project: str, tmp_path: Path
) -> None:  # R-W9, R-W13
    calls, other_bytes, session_writes = [], [], []
    for wheels in (1, 101, 201):
        name = f"{project}-{wheels}"
        session, _ = await counted.sessions.create(name, "1.0", ALICE.id)
        await upload(counted, session, build_sdist(tmp_path, name, "1.0"))
        for number in range(wheels):
            tag = f"py3-none-manylinux_2_{number}_x86_64"
            await upload(counted, session, build_wheel(tmp_path, name, "1.0", tag=tag))
        store(counted).reset()
        session, etag = await counted.sessions.get_versioned(session.id)  # the handler's read
        published = await counted.publisher.publish(session, ALICE, etag)
        assert published.status == SessionState.PUBLISHED
        records = store(counted)
        entries = records.session_writes - 3  # the journal opened, the end, settled
        calls.append(records.total - entries)
        session_writes.append(records.session_writes)
        other_bytes.append(records.written - records.session_written)
    # Per file: its reservation created (the session saying `published` tells it was
    # published: nothing more per file), its read-path facts record (R-W10, created once per
    # content); its record is not read: the listing shows it at the version this replica
    # wrote when it completed it. Once: the handler's read, the listing of the file records,
    # the listings of the summary entries (where they are, and where an older gateway wrote
    # them: checked against the records read), the lease's due entry, the journal opened,
    # the name registered, the entries listed again (both places) and the session ended
    # with them, the quota marker and the live pointer (read + delete) dropped, the session
    # settled.
    assert calls == [14 + 2 * 2, 14 + 2 * 102, 14 + 2 * 202]
    # The session record (its journal and, at the end, its summaries grow with the release)
    # is written a bounded number of times: journal entries come in at most MOST_ENTRIES
    # batches. Everything else written is the same per file with 2 files or 202.
    assert max(session_writes) <= 3 + MOST_ENTRIES
    first, second = (other_bytes[1] - other_bytes[0]) / 100, (other_bytes[2] - other_bytes[1]) / 100
    assert abs(first - second) <= 0.05 * first, other_bytes


async def test_a_publish_on_another_replica_reads_each_file_record(
    counted: Stack, project: str, tmp_path: Path
) -> None:  # the file records come from the listing only at a version this replica holds
    session, _ = await counted.sessions.create(project, "1.0", ALICE.id)
    await upload(counted, session, build_sdist(tmp_path, project, "1.0"))
    await upload(counted, session, build_wheel(tmp_path, project, "1.0"))
    other = build_stack(
        counted.settings, counted.index, counted.http, store(counted), counted.blobs
    )
    records = store(counted)
    records.reset()
    session, etag = await other.sessions.get_versioned(session.id)
    published = await other.publisher.publish(session, ALICE, etag)
    assert published.status == SessionState.PUBLISHED
    # As on the replica that completed them, and each file record read: 3 per file.
    assert records.total - (records.session_writes - 3) == 14 + 3 * 2
    await other.worker.drain()


class CountingBlobStore(MemoryBlobStore):
    """The in-memory blob store, counting the S3 requests for blobs (bytes, METADATA,
    attestations, provenance) each call stands for, by key prefix and operation."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: Counter[str] = Counter()

    async def put(self, key: str, data: bytes | bytearray, content_type: str | None = None) -> None:
        self.requests["PUT " + _kind(key)] += 1
        await super().put(key, data, content_type)

    async def get(self, key: str) -> bytes | None:
        self.requests["GET " + _kind(key)] += 1
        return await super().get(key)

    async def stream(
        self,
        key: str,
        chunk_size: int = 1 << 20,
        byte_range: tuple[int, int] | None = None,
        size: int | None = None,
    ) -> AsyncIterator[bytes]:
        self.requests["GET " + _kind(key)] += 1
        async for chunk in super().stream(key, chunk_size, byte_range, size):
            yield chunk

    async def delete(self, key: str) -> None:
        self.requests["DELETE " + _kind(key)] += 1
        await super().delete(key)

    async def keys(self, prefix: str) -> list[str]:
        self.requests["LIST " + _kind(prefix)] += 1
        return await super().keys(prefix)


def _kind(key: str) -> str:
    """``provenance``, ``METADATA``, or the last part of the key (``….data``)."""
    if key.startswith("provenance/"):
        return "provenance"
    return key.rsplit("/", 1)[-1].rsplit(".", 1)[-1]


async def test_small_files_cost_no_metadata_object_and_publish_no_provenance_delete(
    stack: Stack, project: str, tmp_path: Path
) -> None:  # R-W13, R-W11
    blobs = CountingBlobStore()
    counting = build_stack(stack.settings, stack.index, stack.http, stack.records, blobs)
    session, _ = await counting.sessions.create(project, "1.0", ALICE.id)
    await upload(counting, session, build_sdist(tmp_path, project, "1.0"))
    for number in range(20):
        tag = f"py3-none-manylinux_2_{number}_x86_64"
        await upload(counting, session, build_wheel(tmp_path, project, "1.0", tag=tag))
    # Per small file, the bytes are the only blob: its METADATA travels in the file record
    # from the bytes path (CommittedBytes.carried_metadata), so completion writes none.
    assert blobs.requests == Counter({"PUT data": 21})
    blobs.requests.clear()
    session, etag = await counting.sessions.get_versioned(session.id)
    published = await counting.publisher.publish(session, ALICE, etag)
    assert published.status == SessionState.PUBLISHED
    # Per file: its bytes streamed to the index, nothing else (the METADATA is the record's).
    # Once: the listing of the version's provenance (a stale one would be deleted; none is,
    # and no file has attestations, so no DELETE per file), and the session's data purged.
    assert blobs.requests["GET data"] == 21
    assert blobs.requests["LIST provenance"] == 1
    assert not [r for r in blobs.requests if r.startswith(("DELETE", "PUT", "GET METADATA"))]
    await counting.worker.drain()


async def test_a_stale_provenance_is_removed_at_publish(
    stack: Stack, project: str, tmp_path: Path
) -> None:  # R-W11: the provenance describes the bytes last published under the filename
    wheel, other = (
        build_wheel(tmp_path, project, "1.0", tag=f"py3-none-manylinux_2_{n}_x86_64")
        for n in (1, 2)
    )
    stale = provenance_key(project, "1.0", wheel.name)
    unrelated = provenance_key(project, "1.01", other.name)  # another version, same prefix
    stack.blobs.objects[stale] = stack.blobs.objects[unrelated] = b"{}"
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    await upload(stack, session, other)
    published = await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    assert published.status == SessionState.PUBLISHED
    assert stale not in stack.blobs.objects
    assert unrelated in stack.blobs.objects


async def test_a_sweep_with_nothing_due_costs_what_is_due_not_what_is_kept(
    counted: Stack, project: str
) -> None:  # R-W9
    await counted.sweeper.sweep()  # indexes the (empty) bucket, takes the lease
    later = clock.now() + timedelta(days=7)
    records = store(counted)
    for number in range(10_000):  # retained sessions, planted directly: not due for a week
        sid = f"retained-{number:05d}"
        records.objects[keys.session(sid)] = (b"{}", '"planted"')
        records.objects[keys.due(later, sid)] = (b'{"session_id": "%s"}' % sid.encode(), '"x"')
    records.reset()
    assert await counted.sweeper.sweep()
    # Lease: create refused, read, replace; the index marker; one page of due/; one page of
    # live/ for the gauge.
    assert records.requests == Counter(PUT=2, GET=2, LIST=2)
    assert records.total <= 10


async def test_one_replica_sweeps_at_a_time(stack: Stack, project: str) -> None:
    other = build_stack(stack.settings, stack.index, stack.http, stack.records, stack.blobs)
    assert await stack.sweeper.sweep()
    assert not await other.sweeper.sweep(), "the lease is held by the first replica"
    assert await stack.sweeper.sweep(), "its holder renews it"
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    moment = session.expires_at + timedelta(seconds=1)  # the first replica's lease lapsed too
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock, "now", lambda: moment)
        assert await other.sweeper.sweep(), "a lapsed lease is taken over"
        assert not await stack.sweeper.sweep()
        expired = await other.sessions.find(session.id)
        assert expired is not None
        assert expired.status == SessionState.CANCELED
    await other.worker.drain()


async def test_sessions_from_before_the_index_are_indexed_once_and_migrated(
    stack: Stack, project: str, wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    created = await upload(stack, session, wheel)
    # As an older gateway wrote it: no summary, no due/ entry, the bucket never indexed.
    await stack.records.update(
        keys.session(session.id), lambda d: {k: v for k, v in d.items() if k != "files"}
    )
    for key in [k for k in stack.records.objects if k.startswith(keys.DUE)]:
        del stack.records.objects[key]
    old = await stack.sessions.get(session.id)
    assert old.files is None
    listed = await stack.session_files.listed(old)
    assert [(s.id, s.status) for s in listed.values()] == [(created.id, FileState.COMPLETED)]
    assert await stack.sweeper.sweep()
    assert await stack.due.is_indexed()
    assert [k for k in stack.records.objects if k.startswith(keys.DUE)]
    monkeypatch.setattr(clock, "now", lambda: session.expires_at + timedelta(seconds=1))
    await stack.sweeper.sweep()
    expired = await stack.sessions.get(session.id)
    assert (expired.status, expired.settled) == (SessionState.CANCELED, True)


async def _received(
    stack: Stack, project: str, wheel: Path
) -> tuple[PublishingSession, FileUpload]:
    """A session with ``wheel``'s bytes received, not completed yet."""
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    created = await stack.files.create(session, file_request(wheel))
    await stack.files.receive(session, created.id, chunks(wheel.read_bytes()), None)
    return session, created


async def _dies_before_its_summary(stack: Stack, work: Awaitable[object]) -> None:
    """Run ``work`` as if the process died right after writing the file record, before the
    session's summary of it: the in-memory store fails the write of any summary entry."""
    create = stack.records.create

    async def dies_on_a_summary(key: str, data: Document) -> str:
        if keys.file_summary_fields(key) is not None:
            raise ConnectionError("the process died")
        return await create(key, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stack.records, "create", dies_on_a_summary)
        with pytest.raises(ConnectionError):
            await work


async def test_a_crash_between_file_record_and_summary_converges(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, created = await _received(stack, project, wheel)
    await _dies_before_its_summary(stack, stack.files.complete(session, created.id))
    session = await stack.sessions.get(session.id)
    [shown] = (await stack.session_files.listed(session)).values()
    assert shown.status == FileState.PENDING, "the summary lags behind the file record"
    # The client retries: the request that meets the file brings its summary up to date,
    # and is answered with what the first attempt did (R-W12).
    retried, done = await stack.files.complete(session, created.id)
    assert (retried.status, done) == (FileState.COMPLETED, True)
    session = await stack.sessions.get(session.id)
    [shown] = (await stack.session_files.listed(session)).values()
    assert shown.status == FileState.COMPLETED


async def test_a_create_that_died_before_its_summary_shows_on_retry(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await _dies_before_its_summary(stack, stack.files.create(session, file_request(wheel)))
    assert await stack.session_files.listed(await stack.sessions.get(session.id)) == {}
    with pytest.raises(Exception, match="pending upload"):
        await stack.files.create(session, file_request(wheel))
    listed = await stack.session_files.listed(await stack.sessions.get(session.id))
    assert list(listed) == [wheel.name], "now the client sees it, and can delete it"


async def test_publish_brings_a_lagging_summary_up_to_date(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, created = await _received(stack, project, wheel)
    await _dies_before_its_summary(stack, stack.files.complete(session, created.id))
    published = await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    assert published.status == SessionState.PUBLISHED
    [shown] = (await stack.session_files.listed(published)).values()
    assert shown.status == FileState.COMPLETED


async def test_parallel_completions_all_show(
    stack: Stack, project: str, tmp_path: Path
) -> None:  # the summary's compare-and-swap retries when completions race
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    wheels = [
        build_wheel(tmp_path, project, "1.0", tag=f"py3-none-manylinux_2_{n}_x86_64")
        for n in range(8)
    ]
    await asyncio.gather(*(upload(stack, session, wheel) for wheel in wheels))
    listed = await stack.session_files.listed(await stack.sessions.get(session.id))
    assert sorted(listed) == sorted(wheel.name for wheel in wheels)
    assert {s.status for s in listed.values()} == {FileState.COMPLETED}


async def test_a_summary_without_its_record_goes_once_a_request_meets_it(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    created = await stack.files.create(session, file_request(wheel))
    # As if the create failed after its summary was written: the record is gone.
    await stack.uploads.forget(session.id, created.id)
    session = await stack.sessions.get(session.id)
    assert list(await stack.session_files.listed(session)) == [wheel.name]
    with pytest.raises(Exception, match="file upload session"):
        await stack.files.delete(session, created.id)
    assert await stack.session_files.listed(await stack.sessions.get(session.id)) == {}


async def test_publish_refuses_when_a_file_changed_after_it_read_them(
    stack: Stack, project: str, wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    other = build_wheel(tmp_path, project, "1.0", tag="py3-none-manylinux_2_1_x86_64")
    read = stack.session_files.records

    async def read_then_add(sid: str) -> list[Any]:
        found = await read(sid)
        await upload(stack, await stack.sessions.get(sid), other)  # lands after the read
        return found

    monkeypatch.setattr(stack.session_files, "records", read_then_add)
    with pytest.raises(Exception, match="changed while the publish started"):
        await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    monkeypatch.undo()
    published = await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    assert published.status == SessionState.PUBLISHED
    assert sorted(stack.index.files[project]) == sorted([wheel.name, other.name])
