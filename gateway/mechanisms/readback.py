"""Hashing a stored object by reading it back once: for bytes the gateway never saw (the S3
presigned mechanism) or saw in another process (a resumable upload continued elsewhere)."""

from __future__ import annotations

from collections.abc import Iterable

from gateway import metrics
from gateway.mechanisms.digests import ALWAYS, Digests
from gateway.store.blobs import BlobStore


async def digest_object(
    blobs: BlobStore, key: str, algorithms: Iterable[str], always: Iterable[str] = ALWAYS
) -> tuple[int, dict[str, str]]:
    """The object's size and its digests in ``always`` and ``algorithms``."""
    digests = Digests(algorithms, always)
    with metrics.s3_call("GetObjectReadThrough"):
        size = await blobs.read_through(key, digests.update)
    return size, digests.hexdigests()
