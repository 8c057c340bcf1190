"""``vnd-uploadgateway-resumable-v1``: one file sent over as many requests as it takes.

Modeled on the IETF "Resumable Uploads for HTTP" draft: ``HEAD`` on the upload URL reports
``Upload-Offset``; ``PATCH`` with ``Upload-Offset`` (which must equal it) appends, and
``Upload-Complete: ?1`` on the request carrying the last byte finishes the transfer.

What makes it survive a cut connection, a gateway restart or a switch of replica: bytes become
S3 multipart parts as soon as a part is full, and whatever is left when a request ends (cut
short or not) is written to a small *tail* object, so the recorded offset only ever counts
durable bytes and any process can continue from it. The progress is checkpointed in the file
record every couple of seconds while parts land, and whenever a request ends. The digests
continue in memory while one process keeps receiving the upload (``DigestCache``); when the
upload moved between processes they are computed again from the finished object instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gateway.mechanisms.ingest import Digests
from gateway.protocol.problems import Problem
from gateway.sessions.records import ResumableProgress, StoredPart
from gateway.store import keys
from gateway.store.blobs import BlobStore, MultipartWrite

Checkpoint = Callable[[ResumableProgress], Awaitable[None]]
IN_FLIGHT = 2  # parts uploading while the next one fills: three part buffers in all
CHECKPOINT_EVERY = 2.0  # seconds between progress records while parts keep landing


class TailLost(Exception):
    """The tail object the record points at is missing or of the wrong size."""


@dataclass
class Appended:
    progress: ResumableProgress
    finished: bool  # the object is whole in S3 (Upload-Complete was honoured)
    digests: Digests | None  # over ``progress.offset`` bytes; None when unknown here
    cut_short: BaseException | None  # what ended the request early, to raise once recorded


@dataclass
class _Part:
    number: int
    buffer: bytearray
    hashing: asyncio.Future[None] | None
    uploading: asyncio.Task[None]


class DigestCache:
    """Digests of the resumable uploads this process is receiving, each valid at one offset.

    Bounded: an abandoned upload's entry is pushed out by newer ones, and only costs a
    read-back at completion.
    """

    def __init__(self, capacity: int = 256):
        self._entries: OrderedDict[str, tuple[int, Digests]] = OrderedDict()
        self._capacity = capacity

    def take(self, fid: str, offset: int, algorithms: Iterable[str]) -> Digests | None:
        entry = self._entries.pop(fid, None)
        if offset == 0:
            return Digests(algorithms)
        if entry is not None and entry[0] == offset:
            return entry[1]
        return None

    def keep(self, fid: str, offset: int, digests: Digests) -> None:
        self._entries[fid] = (offset, digests)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


async def append(
    chunks: AsyncIterator[bytes],
    blobs: BlobStore,
    *,
    sid: str,
    fid: str,
    progress: ResumableProgress,
    size: int,
    part_size: int,
    digests: Digests | None,
    checkpoint: Checkpoint,
    finish: bool,
) -> Appended:
    """Append ``chunks`` at ``progress.offset``. A request cut short (disconnect, stall, bytes
    beyond ``size``) keeps every byte that arrived: the error comes back in ``cut_short``
    once they are durable and checkpointed, for the caller to raise."""
    progress = progress.model_copy(deep=True)
    key = keys.file_bytes(sid, fid, progress.attempt)
    writer = blobs.multipart(
        key,
        max_in_flight=IN_FLIGHT,
        upload_id=progress.upload_id,
        parts=[{"PartNumber": p.number, "ETag": p.etag} for p in progress.parts],
    )
    old_tail = progress.tail
    buffer = bytearray(part_size)
    filled = await _load_tail(blobs, sid, fid, progress, buffer)
    unhashed_from = filled  # the tail's bytes were hashed when they first arrived
    in_flight: deque[_Part] = deque()
    spare: list[bytearray] = []
    remaining = size - progress.offset
    loop = asyncio.get_running_loop()
    cut_short: BaseException | None = None
    saved_at, unsaved = loop.time(), False
    # One thread: the digests must see the parts in order.
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")

    async def land(part: _Part) -> None:
        if part.hashing is not None:
            await part.hashing
        await part.uploading
        progress.upload_id = writer.upload_id
        stored = StoredPart(
            number=part.number, etag=writer.etag(part.number), size=len(part.buffer)
        )
        progress.parts.append(stored)
        progress.tail, progress.tail_size = None, 0  # the old tail's bytes are in this part
        nonlocal saved_at, unsaved
        unsaved = True
        # A record update per part would cost more CPU than the part's own upload: a crash
        # loses at most CHECKPOINT_EVERY seconds of parts, which are then simply sent again.
        if loop.time() - saved_at >= CHECKPOINT_EVERY:
            await checkpoint(progress)
            saved_at, unsaved = loop.time(), False
        spare.append(part.buffer)

    try:
        try:
            async for chunk in chunks:
                if len(chunk) > remaining:
                    chunk = chunk[:remaining]
                    cut_short = _too_large(size)
                remaining -= len(chunk)
                view = memoryview(chunk)
                while view:
                    taken = min(len(view), part_size - filled)
                    buffer[filled : filled + taken] = view[:taken]
                    filled += taken
                    view = view[taken:]
                    if filled == part_size:
                        hashing = None
                        if digests is not None:
                            region = memoryview(buffer)[unhashed_from:]
                            hashing = loop.run_in_executor(hasher, digests.update, region)
                        unhashed_from = 0
                        uploading = await writer.add_part(buffer)
                        number = len(progress.parts) + len(in_flight) + 1
                        in_flight.append(_Part(number, buffer, hashing, uploading))
                        if len(in_flight) >= IN_FLIGHT:
                            await land(in_flight.popleft())
                        buffer = spare.pop() if spare else bytearray(part_size)
                        filled = 0
                if cut_short is not None:
                    break
        except (OSError, Problem, asyncio.CancelledError) as exc:
            # The client went away (a server cancelling handlers on disconnect says so with
            # CancelledError) or stalled: keep what arrived, then let the error go on.
            cut_short = exc
        while in_flight:
            await land(in_flight.popleft())
        remainder = memoryview(buffer)[:filled]
        if digests is not None and filled > unhashed_from:
            await loop.run_in_executor(hasher, digests.update, remainder[unhashed_from:])
    except BaseException:
        await writer.settle()
        raise
    finally:
        hasher.shutdown(wait=True)

    finished = finish and cut_short is None and progress.offset + filled == size
    if finished:
        await _finish(blobs, writer, key, progress, bytes(remainder), size)
        progress.tail, progress.tail_size = None, 0
        await checkpoint(progress)
    elif unsaved or filled != progress.tail_size or progress.tail != old_tail:
        progress.tail, progress.tail_size = None, 0
        if filled:
            token = secrets.token_hex(8)
            await blobs.put(keys.resumable_tail(sid, fid, token), bytes(remainder))
            progress.tail, progress.tail_size = token, filled
        await checkpoint(progress)
    if old_tail is not None and old_tail != progress.tail:
        with contextlib.suppress(Exception):  # garbage at worst, purged with the session
            await blobs.delete(keys.resumable_tail(sid, fid, old_tail))
    return Appended(progress, finished, digests, cut_short)


async def _load_tail(
    blobs: BlobStore, sid: str, fid: str, progress: ResumableProgress, buffer: bytearray
) -> int:
    if not progress.tail_size:
        return 0
    assert progress.tail is not None
    tail = await blobs.get(keys.resumable_tail(sid, fid, progress.tail))
    if tail is None or len(tail) != progress.tail_size:
        raise TailLost(progress.tail)
    buffer[: len(tail)] = tail
    return len(tail)


async def _finish(
    blobs: BlobStore,
    writer: MultipartWrite,
    key: str,
    progress: ResumableProgress,
    last: bytes,
    size: int,
) -> None:
    if await blobs.size(key) == size:
        return  # a request completed it, then failed before recording that
    if not writer.started:
        await blobs.put(key, last)  # the whole file fitted in less than a part
        return
    if last:
        number = len(progress.parts) + 1
        await (await writer.add_part(last))
        progress.parts.append(StoredPart(number=number, etag=writer.etag(number), size=len(last)))
    await writer.complete()


def _too_large(size: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        f"The upload would exceed the declared size of {size} bytes.",
    )
