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
    batch: list[bytes] = []
    batched = 0
    hashing: asyncio.Future[None] | None = None
    loop = asyncio.get_running_loop()
    # The body arrives in pieces of tens of KiB; hashing each on a thread would cost a thread
    # hop per piece, so pieces are gathered into CHUNK-sized batches, each hashed on a thread
    # while the next one downloads.
    async for piece in blobs.stream(key, chunk_size=CHUNK):
        size += len(piece)
        batch.append(piece)
        batched += len(piece)
        if batched >= CHUNK:
            if hashing is not None:
                await hashing
            hashing = loop.run_in_executor(None, _update, digests, batch)
            batch, batched = [], 0
    if hashing is not None:
        await hashing
    _update(digests, batch)
    return size, digests.hexdigests()


def _update(digests: Digests, pieces: list[bytes]) -> None:
    for piece in pieces:
        digests.update(piece)
