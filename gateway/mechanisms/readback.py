"""Hashing a stored object by reading it back once: for bytes the gateway never saw (the S3
presigned mechanism) or saw in another process (a resumable upload continued elsewhere)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from gateway.mechanisms.ingest import ALWAYS, Digests
from gateway.store.blobs import BlobStore

CHUNK = 8 * 1024 * 1024


async def digest_object(
    blobs: BlobStore, key: str, algorithms: Iterable[str], always: Iterable[str] = ALWAYS
) -> tuple[int, dict[str, str]]:
    """The object's size and its digests in ``always`` and ``algorithms``."""
    digests = Digests(algorithms, always)
    size = 0
    hashing: asyncio.Future[None] | None = None
    # Hash chunk n on a thread while chunk n+1 downloads.
    async for chunk in blobs.stream(key, chunk_size=CHUNK):
        if hashing is not None:
            await hashing
        size += len(chunk)
        hashing = asyncio.get_running_loop().run_in_executor(None, digests.update, chunk)
    if hashing is not None:
        await hashing
    return size, digests.hexdigests()
