"""Streaming a body into S3 while hashing it, in a fixed set of reused part buffers.

Each part is hashed on a worker thread (hashlib releases the GIL on large buffers) while it
uploads, so receiving, hashing and uploading overlap on two cores. Three buffers of one part
each — one filling, two hashing/uploading — are all the memory an upload ever takes, whatever
the file's size; reusing them also spares the kernel from faulting in fresh pages per part.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gateway.store.blobs import BlobStore, MultipartWrite

# Always computed, whatever the client declared: sha256 for the simple index and the legacy
# `sha256_digest`, blake2b-256 for `blake2_256_digest`.
ALWAYS = ("sha256", "blake2b_256")
BUFFERS = 3


class BodyTooLarge(Exception):
    """The body grew past the declared size; the partial upload has been aborted."""


@dataclass(frozen=True)
class Received:
    size: int
    digests: dict[str, str]


def _hasher(algorithm: str) -> Any:
    if algorithm == "blake2b_256":
        return hashlib.blake2b(digest_size=32)
    return hashlib.new(algorithm)


class Digests:
    """The digests every upload gets: the always-computed ones plus those declared."""

    def __init__(self, algorithms: Iterable[str], always: Iterable[str] = ALWAYS):
        self._hashers = {name: _hasher(name) for name in {*always, *algorithms}}

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for hasher in self._hashers.values():
            hasher.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}


class _PartPipeline:
    """Full parts go out in order: hashed on one worker thread, uploaded by the writer."""

    def __init__(self, writer: MultipartWrite, digests: Digests):
        self._writer = writer
        self._digests = digests
        # Started with the first full part: a small file is hashed inline, with no thread.
        self._executor: ThreadPoolExecutor | None = None
        self._busy: deque[tuple[bytearray, asyncio.Future[None], asyncio.Task[None]]] = deque()

    async def send(self, part: bytearray) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")
        # One worker thread: hashes run in part order, as the digests require.
        hashing = loop.run_in_executor(self._executor, self._digests.update, part)
        uploading = await self._writer.add_part(part)
        self._busy.append((part, hashing, uploading))

    async def reusable(self) -> bytearray | None:
        """A buffer whose part is hashed and uploaded, once too many are busy."""
        if len(self._busy) < BUFFERS - 1:
            return None
        part, hashing, uploading = self._busy.popleft()
        await hashing
        await uploading
        return part

    async def finish(self) -> None:
        for _, hashing, _ in self._busy:
            await hashing

    def cancel(self) -> None:
        for _, hashing, _ in self._busy:
            hashing.cancel()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


async def ingest(
    chunks: AsyncIterator[bytes | memoryview],
    blobs: BlobStore,
    key: str,
    *,
    algorithms: Iterable[str],
    limit: int,
    part_size: int,
) -> Received:
    """Write ``chunks`` to ``key``, refusing (and aborting) as soon as more than ``limit``
    bytes arrive. Any failure, a client disconnect included, leaves no object behind."""
    digests = Digests(algorithms)
    writer = blobs.multipart(key, max_in_flight=BUFFERS - 1)
    # A small file never needs a whole part's buffer.
    buffer = bytearray(min(part_size, limit))
    filled = received = 0
    parts = _PartPipeline(writer, digests)
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge
            view = memoryview(chunk)
            while view:
                taken = min(len(view), len(buffer) - filled)
                buffer[filled : filled + taken] = view[:taken]
                filled += taken
                view = view[taken:]
                if filled == len(buffer) == part_size:
                    await parts.send(buffer)
                    buffer = await parts.reusable() or bytearray(part_size)
                    filled = 0
        await parts.finish()
        # A small file fills its buffer exactly (sized to the declared size): no copy then.
        tail = buffer if filled == len(buffer) else bytes(memoryview(buffer)[:filled])
        digests.update(tail)
        if writer.started:
            if tail:
                await writer.add_part(tail)
            await writer.complete()
        else:
            # Small bodies: one PutObject instead of a three-call multipart upload.
            await blobs.put(key, tail)
    except BaseException:
        parts.cancel()
        await asyncio.shield(writer.abort())
        raise
    finally:
        parts.close()
    return Received(received, digests.hexdigests())
