"""Streaming a body into S3 while hashing it, with memory bounded by a few parts.

Hashing runs on a worker thread (hashlib releases the GIL on large buffers), so receiving the
next part, hashing this one and uploading the previous ones overlap on two cores.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gateway.store.blobs import BlobStore

# Always computed, whatever the client declared: sha256 for the simple index and the legacy
# `sha256_digest`, blake2b-256 for `blake2_256_digest`.
ALWAYS = ("sha256", "blake2b_256")


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


class _Digests:
    def __init__(self, algorithms: Iterable[str]):
        self._hashers = {name: _hasher(name) for name in {*ALWAYS, *algorithms}}

    def update(self, data: bytes | memoryview) -> None:
        for hasher in self._hashers.values():
            hasher.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}


async def ingest(
    chunks: AsyncIterator[bytes],
    blobs: BlobStore,
    key: str,
    *,
    algorithms: Iterable[str],
    limit: int,
    part_size: int,
) -> Received:
    """Write ``chunks`` to ``key``, refusing (and aborting) as soon as more than ``limit``
    bytes arrive. Any failure, a client disconnect included, leaves no object behind."""
    digests = _Digests(algorithms)
    writer = blobs.multipart(key)
    loop = asyncio.get_running_loop()
    pending: list[bytes] = []  # chunks of the part being filled; joined once, at full size
    pending_size = 0
    received = 0
    hashing: asyncio.Future[None] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest") as executor:
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size < part_size:
                    continue
                part = b"".join(pending)
                pending.clear()
                pending_size = 0
                # At most one part waits for the hasher and two upload, and no more is read
                # from the client meanwhile: memory stays a few parts whatever the file size.
                if hashing is not None:
                    await hashing
                hashing = loop.run_in_executor(executor, digests.update, part)
                await writer.add_part(part)
                del part
            if hashing is not None:
                await hashing
            tail = b"".join(pending)
            digests.update(tail)
            if writer.started:
                if tail:
                    await writer.add_part(tail)
                await writer.complete()
            else:
                # Small bodies: one PutObject instead of a three-call multipart upload.
                await blobs.put(key, tail)
        except BaseException:
            if hashing is not None:
                hashing.cancel()
            await asyncio.shield(writer.abort())
            raise
    return Received(received, digests.hexdigests())
