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
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from gateway.domain.errors import DomainError, Kind
from gateway.domain.records import ResumableProgress, StoredPart
from gateway.mechanisms.digests import Digests
from gateway.mechanisms.parts import IN_FLIGHT, PartPipeline
from gateway.protocol.problems import Problem
from gateway.store import keys
from gateway.store.blobs import BlobStore

Checkpoint = Callable[[ResumableProgress], Awaitable[None]]
CHECKPOINT_EVERY = 2.0  # seconds between progress records while parts keep landing


class TailLost(Exception):
    """The tail object the record points at is missing or of the wrong size."""


@dataclass
class Appended:
    progress: ResumableProgress
    finished: bool  # the object is whole in S3 (Upload-Complete was honoured)
    digests: Digests | None  # over ``progress.offset`` bytes; None when unknown here
    cut_short: BaseException | None  # what ended the request early, to raise once recorded


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


class Appending:
    """One append request at ``progress.offset``: the part pipeline it feeds, and how much
    of the progress is not yet checkpointed. A request cut short (disconnect, stall, bytes
    beyond ``size``) keeps every byte that arrived: the error comes back in ``cut_short``
    once they are durable and checkpointed, for the caller to raise."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        sid: str,
        fid: str,
        progress: ResumableProgress,
        size: int,
        part_size: int,
        digests: Digests | None,
        checkpoint: Checkpoint,
    ):
        progress = progress.model_copy(deep=True)  # the caller's copy stays as it was
        self.blobs, self.sid, self.fid = blobs, sid, fid
        self.progress, self.size = progress, size
        self.digests, self.checkpoint = digests, checkpoint
        self.key = keys.file_bytes(sid, fid, progress.attempt)
        self.writer = blobs.multipart(
            self.key,
            max_in_flight=IN_FLIGHT,
            upload_id=progress.upload_id,
            parts=[{"PartNumber": p.number, "ETag": p.etag} for p in progress.parts],
        )
        self.parts = PartPipeline(
            self.writer,
            digests,
            part_size=part_size,
            capacity=size - self.landed,
            first_number=len(progress.parts) + 1,
            landed=self._landed,
        )
        self.loop = asyncio.get_running_loop()
        self.saved_at, self.unsaved = self.loop.time(), False

    async def run(self, chunks: AsyncIterator[bytes], finish: bool) -> Appended:
        progress = self.progress
        old_tail = progress.tail
        with contextlib.closing(self.parts):
            cut_short = await self._take_all(chunks)
            finished = finish and cut_short is None and self.received == self.size
            if finished:
                await self._complete()
            elif (
                self.unsaved or self.parts.filled != progress.tail_size or progress.tail != old_tail
            ):
                await self._save_tail()
        if old_tail is not None and old_tail != progress.tail:
            with contextlib.suppress(Exception):  # garbage at worst, purged with the session
                await self.blobs.delete(keys.resumable_tail(self.sid, self.fid, old_tail))
        return Appended(progress, finished, self.digests, cut_short)

    @property
    def landed(self) -> int:
        return sum(part.size for part in self.progress.parts)

    @property
    def received(self) -> int:
        """Bytes in landed parts plus those in the buffer (which holds the old tail's too)."""
        return self.landed + self.parts.filled

    async def _take_all(self, chunks: AsyncIterator[bytes]) -> BaseException | None:
        """Everything this request brings, landed and hashed; what cut it short, if anything.
        A failure leaves the multipart upload open for the next request."""
        try:
            await self._load_tail()
            cut_short = await self._receive(chunks)
            await self.parts.drain()
        except BaseException:
            await self.writer.settle()
            raise
        return cut_short

    async def _load_tail(self) -> None:
        """Put the bytes an earlier request left short of a part back in the buffer."""
        progress = self.progress
        if not progress.tail_size:
            return
        assert progress.tail is not None
        tail = await self.blobs.get(keys.resumable_tail(self.sid, self.fid, progress.tail))
        if tail is None or len(tail) != progress.tail_size:
            raise TailLost(progress.tail)
        self.parts.preload(tail)  # its bytes were hashed when they first arrived

    async def _receive(self, chunks: AsyncIterator[bytes]) -> BaseException | None:
        """Take chunks until the body ends; what cut it short, if anything."""
        remaining = self.size - self.received
        try:
            async for chunk in chunks:
                if len(chunk) > remaining:
                    await self.parts.write(memoryview(chunk)[:remaining])
                    return _too_large(self.size)
                remaining -= len(chunk)
                await self.parts.write(memoryview(chunk))
        except (OSError, Problem, DomainError, asyncio.CancelledError) as exc:
            # The client went away (a server cancelling handlers on disconnect says so with
            # CancelledError) or stalled: keep what arrived, then let the error go on.
            return exc
        return None

    async def _landed(self, number: int, size: int) -> None:
        progress = self.progress
        progress.upload_id = self.writer.upload_id
        progress.parts.append(StoredPart(number=number, etag=self.writer.etag(number), size=size))
        progress.tail, progress.tail_size = None, 0  # the old tail's bytes are in this part
        self.unsaved = True
        # A record update per part would cost more CPU than the part's own upload: a crash
        # loses at most CHECKPOINT_EVERY seconds of parts, which are then simply sent again.
        if self.loop.time() - self.saved_at >= CHECKPOINT_EVERY:
            await self.checkpoint(progress)
            self.saved_at, self.unsaved = self.loop.time(), False

    async def _complete(self) -> None:
        """Make the object whole in S3 from the parts and what is left in the buffer."""
        if await self.blobs.size(self.key) == self.size:
            pass  # a request completed it, then failed before recording that
        elif not self.writer.started:
            await self.blobs.put(self.key, self.parts.rest())  # the file fitted in one part
        else:
            await self.parts.send_rest()
            await self.writer.complete()
        self.progress.tail, self.progress.tail_size = None, 0
        await self.checkpoint(self.progress)

    async def _save_tail(self) -> None:
        """Make the bytes short of a part durable in a tail object, and checkpoint."""
        progress = self.progress
        progress.tail, progress.tail_size = None, 0
        if self.parts.filled:
            token = secrets.token_hex(8)
            tail = self.parts.rest()
            await self.blobs.put(keys.resumable_tail(self.sid, self.fid, token), tail)
            progress.tail, progress.tail_size = token, len(tail)
        await self.checkpoint(progress)


def _too_large(size: int) -> DomainError:
    return DomainError(
        Kind.TOO_LARGE,
        "body-too-large",
        f"The upload would exceed the declared size of {size} bytes.",
    )
