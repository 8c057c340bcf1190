"""Bytes into an S3 multipart upload through a few reused part buffers, hashed on the way.

Shared by ``http-post-bytes`` and resumable appends. Each full part is hashed on a worker
thread (hashlib releases the GIL on large buffers) while it uploads, so receiving, hashing and
uploading overlap on two cores. Three buffers of one part each — one filling, two
hashing/uploading — are all the memory a request ever takes, whatever the file's size:
they go to the socket straight from the buffer, a slice at a time (``PartBuffer``), so no
copy of a part waits in a transport buffer. Reusing them also spares the kernel from
faulting in fresh pages per part.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gateway.mechanisms.digests import Digests
from gateway.store.blobs import MultipartWrite, PartBuffer

IN_FLIGHT = 2  # parts hashing/uploading while the next one fills: three part buffers in all

Landed = Callable[[int, int], Awaitable[None]]
"""Called with a part's number and size once it is hashed and uploaded, in part order."""


@dataclass
class _Part:
    number: int
    buffer: PartBuffer
    hashing: asyncio.Future[None] | None
    uploading: asyncio.Task[None]


class PartPipeline:
    """Fills a buffer; each full one goes out as the next part, hashed on one worker thread
    and uploaded by the writer. ``close()`` it when done: after a failure that drops the
    hashing not yet done, and it always ends the thread."""

    def __init__(
        self,
        writer: MultipartWrite,
        digests: Digests | None,
        *,
        part_size: int,
        capacity: int,
        first_number: int = 1,
        landed: Landed | None = None,
    ):
        """``capacity``: the most bytes this request may bring (the caller enforces it);
        ``first_number``: the number the writer gives the first part sent from here."""
        self._writer, self._digests, self._landed = writer, digests, landed
        self._part_size = part_size
        self._next_number = first_number
        # A small file never needs a whole part's buffer.
        self._buffer = PartBuffer(min(part_size, capacity))
        self._filled = self._unhashed_from = 0
        self._in_flight: deque[_Part] = deque()
        self._spare: list[PartBuffer] = []
        # Started with the first full part: a small file is hashed inline, with no thread.
        self._executor: ThreadPoolExecutor | None = None

    @property
    def filled(self) -> int:
        """Bytes in the buffer, short of a part."""
        return self._filled

    def preload(self, data: bytes) -> None:
        """Start the buffer with bytes already hashed (what an earlier request left short of a
        part)."""
        assert self._filled == 0
        assert len(data) <= len(self._buffer)
        self._buffer[: len(data)] = data
        self._filled = self._unhashed_from = len(data)

    async def write(self, data: memoryview) -> None:
        while data:
            room = len(self._buffer) - self._filled
            if not room:
                raise ValueError("more bytes than the capacity declared")
            taken = min(len(data), room)
            # Through a memoryview: a bytearray's own slice assignment first copies anything
            # that is not a bytearray into a temporary one.
            memoryview(self._buffer)[self._filled : self._filled + taken] = data[:taken]
            self._filled += taken
            data = data[taken:]
            if self._filled == self._part_size:
                await self._send(self._buffer)
                self._buffer = self._spare.pop() if self._spare else PartBuffer(self._part_size)
                self._filled = 0

    async def drain(self) -> None:
        """Land every part still uploading and hash the bytes short of a part."""
        while self._in_flight:
            await self._land(self._in_flight.popleft())
        rest = memoryview(self._buffer)[self._unhashed_from : self._filled]
        self._unhashed_from = self._filled
        if self._digests is None or not rest:
            return
        if self._executor is None:
            self._digests.update(rest)  # a body smaller than a part: no thread for it
        else:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self._digests.update, rest
            )

    async def send_rest(self) -> None:
        """Send the bytes short of a part as the last part, and land every part."""
        if self._filled:
            await self._send(PartBuffer(memoryview(self._buffer)[: self._filled]))
            self._filled = self._unhashed_from = 0
        await self.drain()

    def rest(self) -> bytes | bytearray:
        """The bytes short of a part: the buffer itself when they fill it (a small file's
        buffer is sized to fit it exactly: no copy then)."""
        if self._filled == len(self._buffer):
            return self._buffer
        return bytes(memoryview(self._buffer)[: self._filled])

    def close(self) -> None:
        for part in self._in_flight:
            if part.hashing is not None:
                part.hashing.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _send(self, buffer: PartBuffer) -> None:
        """Hash and upload ``buffer`` as the next part; land the oldest once too many are out."""
        hashing = self._hash(memoryview(buffer)[self._unhashed_from :])
        self._unhashed_from = 0
        uploading = await self._writer.add_part(buffer)
        self._in_flight.append(_Part(self._next_number, buffer, hashing, uploading))
        self._next_number += 1
        if len(self._in_flight) >= IN_FLIGHT:
            await self._land(self._in_flight.popleft())

    def _hash(self, region: memoryview) -> asyncio.Future[None] | None:
        if self._digests is None or not region:
            return None
        if self._executor is None:
            # One thread: the digests must see the parts in order.
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._digests.update, region)

    async def _land(self, part: _Part) -> None:
        if part.hashing is not None:
            await part.hashing
        await part.uploading
        if self._landed is not None:
            await self._landed(part.number, len(part.buffer))
        if len(part.buffer) == self._part_size:
            self._spare.append(part.buffer)
