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
from gateway.sessions.errors import DomainError, Kind
from gateway.sessions.records import ResumableProgress, StoredPart
from gateway.store import keys
from gateway.store.blobs import BlobStore

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
    appending = _Appending(
        blobs, sid, fid, progress.model_copy(deep=True), size, part_size, digests, checkpoint
    )
    return await appending.run(chunks, finish)


class _Appending:
    """One append request's state: the part being filled, the parts uploading behind it, and
    how much of the progress is not yet checkpointed."""

    def __init__(
        self,
        blobs: BlobStore,
        sid: str,
        fid: str,
        progress: ResumableProgress,
        size: int,
        part_size: int,
        digests: Digests | None,
        checkpoint: Checkpoint,
    ):
        self.blobs, self.sid, self.fid = blobs, sid, fid
        self.progress, self.size, self.part_size = progress, size, part_size
        self.digests, self.checkpoint = digests, checkpoint
        self.key = keys.file_bytes(sid, fid, progress.attempt)
        self.writer = blobs.multipart(
            self.key,
            max_in_flight=IN_FLIGHT,
            upload_id=progress.upload_id,
            parts=[{"PartNumber": p.number, "ETag": p.etag} for p in progress.parts],
        )
        self.buffer = bytearray(part_size)
        self.filled = 0
        self.unhashed_from = 0
        self.in_flight: deque[_Part] = deque()
        self.spare: list[bytearray] = []
        self.loop = asyncio.get_running_loop()
        self.saved_at, self.unsaved = self.loop.time(), False
        # One thread: the digests must see the parts in order.
        self.hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")

    async def run(self, chunks: AsyncIterator[bytes], finish: bool) -> Appended:
        progress = self.progress
        old_tail = progress.tail
        try:
            await self._load_tail()
            cut_short = await self._receive(chunks)
            await self._drain()
        except BaseException:
            await self.writer.settle()
            raise
        finally:
            self.hasher.shutdown(wait=True)
        finished = finish and cut_short is None and self.received == self.size
        if finished:
            await self._complete()
        elif self.unsaved or self.filled != progress.tail_size or progress.tail != old_tail:
            await self._save_tail()
        if old_tail is not None and old_tail != progress.tail:
            with contextlib.suppress(Exception):  # garbage at worst, purged with the session
                await self.blobs.delete(keys.resumable_tail(self.sid, self.fid, old_tail))
        return Appended(progress, finished, self.digests, cut_short)

    @property
    def received(self) -> int:
        """Bytes in landed parts plus those in the buffer (which holds the old tail's too)."""
        return sum(part.size for part in self.progress.parts) + self.filled

    async def _load_tail(self) -> None:
        """Put the bytes an earlier request left short of a part back in the buffer."""
        progress = self.progress
        if not progress.tail_size:
            return
        assert progress.tail is not None
        tail = await self.blobs.get(keys.resumable_tail(self.sid, self.fid, progress.tail))
        if tail is None or len(tail) != progress.tail_size:
            raise TailLost(progress.tail)
        self.buffer[: len(tail)] = tail
        # Its bytes were hashed when they first arrived.
        self.filled = self.unhashed_from = len(tail)

    async def _receive(self, chunks: AsyncIterator[bytes]) -> BaseException | None:
        """Take chunks until the body ends; what cut it short, if anything."""
        remaining = self.size - self.received
        try:
            async for chunk in chunks:
                if len(chunk) > remaining:
                    await self._take(memoryview(chunk)[:remaining])
                    return _too_large(self.size)
                remaining -= len(chunk)
                await self._take(memoryview(chunk))
        except (OSError, Problem, DomainError, asyncio.CancelledError) as exc:
            # The client went away (a server cancelling handlers on disconnect says so with
            # CancelledError) or stalled: keep what arrived, then let the error go on.
            return exc
        return None

    async def _take(self, view: memoryview) -> None:
        while view:
            taken = min(len(view), self.part_size - self.filled)
            self.buffer[self.filled : self.filled + taken] = view[:taken]
            self.filled += taken
            view = view[taken:]
            if self.filled == self.part_size:
                await self._seal_part()

    async def _seal_part(self) -> None:
        """Hash and upload the full buffer, and go on filling a spare one."""
        hashing = None
        if self.digests is not None:
            region = memoryview(self.buffer)[self.unhashed_from :]
            hashing = self.loop.run_in_executor(self.hasher, self.digests.update, region)
        self.unhashed_from = 0
        uploading = await self.writer.add_part(self.buffer)
        number = len(self.progress.parts) + len(self.in_flight) + 1
        self.in_flight.append(_Part(number, self.buffer, hashing, uploading))
        if len(self.in_flight) >= IN_FLIGHT:
            await self._land(self.in_flight.popleft())
        self.buffer = self.spare.pop() if self.spare else bytearray(self.part_size)
        self.filled = 0

    async def _land(self, part: _Part) -> None:
        if part.hashing is not None:
            await part.hashing
        await part.uploading
        progress = self.progress
        progress.upload_id = self.writer.upload_id
        progress.parts.append(
            StoredPart(
                number=part.number, etag=self.writer.etag(part.number), size=len(part.buffer)
            )
        )
        progress.tail, progress.tail_size = None, 0  # the old tail's bytes are in this part
        self.unsaved = True
        # A record update per part would cost more CPU than the part's own upload: a crash
        # loses at most CHECKPOINT_EVERY seconds of parts, which are then simply sent again.
        if self.loop.time() - self.saved_at >= CHECKPOINT_EVERY:
            await self.checkpoint(progress)
            self.saved_at, self.unsaved = self.loop.time(), False
        self.spare.append(part.buffer)

    async def _drain(self) -> None:
        """Land every part still uploading and hash what is left in the buffer."""
        while self.in_flight:
            await self._land(self.in_flight.popleft())
        if self.digests is not None and self.filled > self.unhashed_from:
            rest = memoryview(self.buffer)[self.unhashed_from : self.filled]
            await self.loop.run_in_executor(self.hasher, self.digests.update, rest)

    async def _complete(self) -> None:
        """Make the object whole in S3 from the parts and what is left in the buffer."""
        progress, writer, last = self.progress, self.writer, bytes(self.buffer[: self.filled])
        if await self.blobs.size(self.key) == self.size:
            pass  # a request completed it, then failed before recording that
        elif not writer.started:
            await self.blobs.put(self.key, last)  # the whole file fitted in less than a part
        else:
            if last:
                number = len(progress.parts) + 1
                await (await writer.add_part(last))
                progress.parts.append(
                    StoredPart(number=number, etag=writer.etag(number), size=len(last))
                )
            await writer.complete()
        progress.tail, progress.tail_size = None, 0
        await self.checkpoint(progress)

    async def _save_tail(self) -> None:
        """Make the bytes short of a part durable in a tail object, and checkpoint."""
        progress = self.progress
        progress.tail, progress.tail_size = None, 0
        if self.filled:
            token = secrets.token_hex(8)
            tail = bytes(self.buffer[: self.filled])
            await self.blobs.put(keys.resumable_tail(self.sid, self.fid, token), tail)
            progress.tail, progress.tail_size = token, self.filled
        await self.checkpoint(progress)


def _too_large(size: int) -> DomainError:
    return DomainError(
        Kind.TOO_LARGE,
        "body-too-large",
        f"The upload would exceed the declared size of {size} bytes.",
    )
