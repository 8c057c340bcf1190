"""``http-post-bytes``: one request body streamed into S3 while it is hashed, in bounded
memory (see ``parts``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from gateway.mechanisms.digests import Digests
from gateway.mechanisms.parts import IN_FLIGHT, PartPipeline
from gateway.store.blobs import BlobStore


class BodyTooLarge(Exception):
    """The body grew past the declared size; the partial upload has been aborted."""


@dataclass(frozen=True)
class Received:
    size: int
    digests: dict[str, str]
    body: bytes | bytearray | None = None  # a body short of one part, as it was stored


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
    writer = blobs.multipart(key, max_in_flight=IN_FLIGHT)
    parts = PartPipeline(writer, digests, part_size=part_size, capacity=limit)
    received = 0
    body: bytes | bytearray | None = None
    try:
        with contextlib.closing(parts):
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge
                await parts.write(memoryview(chunk))
            if writer.started:
                await parts.send_rest()
                await writer.complete()
            else:
                # Small bodies: one PutObject instead of a three-call multipart upload.
                await parts.drain()
                body = parts.rest()
                await blobs.put(key, body)
    except BaseException:
        await asyncio.shield(writer.abort())
        raise
    return Received(received, digests.hexdigests(), body)
