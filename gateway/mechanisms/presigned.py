"""``vnd-uploadgateway-s3-presigned-v1``: the client PUTs parts straight to S3.

Creating the file upload session starts an S3 multipart upload and hands out one presigned
``upload_part`` URL per part (renewable through ``parts_url``), so the file's bytes never pass
through the gateway. Completing finishes the multipart upload from S3's own part list, then
reads the object back once to verify size and hashes: the gateway trusts nothing the client
says about what it sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.domain.errors import DomainError, Kind, Pointer
from gateway.domain.records import PresignedUpload
from gateway.store.blobs import BlobStore

MAX_PARTS = 10_000  # S3's limit


@dataclass(frozen=True)
class PartUrl:
    number: int
    url: str


def part_size_for(size: int, preferred: int) -> int:
    """``preferred``, or larger when the file would otherwise need more than S3's part limit."""
    return max(preferred, math.ceil(size / MAX_PARTS))


async def start(
    blobs: BlobStore, key: str, attempt: str, size: int, part_size: int
) -> PresignedUpload:
    part_size = part_size_for(size, part_size)
    return PresignedUpload(
        attempt=attempt,
        upload_id=await blobs.start_multipart(key),
        part_size=part_size,
        part_count=math.ceil(size / part_size),
    )


async def part_urls(
    blobs: BlobStore, key: str, upload: PresignedUpload, lifetime: int
) -> list[PartUrl]:
    return [
        PartUrl(number, await blobs.presign_part(key, upload.upload_id, number, lifetime))
        for number in range(1, upload.part_count + 1)
    ]


async def finish(blobs: BlobStore, key: str, upload: PresignedUpload, size: int) -> None:
    """Complete the multipart upload once every part is there with its expected size; a part
    missing or of the wrong size is a 409 that leaves the upload open for the client to fix."""
    if await blobs.size(key) is not None:
        return  # completed by an earlier request that failed afterwards
    parts = {part.number: part for part in await blobs.list_parts(key, upload.upload_id)}
    problems = []
    for number in range(1, upload.part_count + 1):
        expected = min(upload.part_size, size - (number - 1) * upload.part_size)
        part = parts.get(number)
        if part is None:
            problems.append(Pointer(f"parts.{number}", "not uploaded"))
        elif part.size != expected:
            problems.append(Pointer(f"parts.{number}", f"{part.size} bytes, {expected} expected"))
    problems += [
        Pointer(f"parts.{number}", "beyond the declared size")
        for number in parts
        if number > upload.part_count
    ]
    if problems:
        raise DomainError(
            Kind.CONFLICT,
            "upload-incomplete",
            "Not every part is in S3 with its expected size; upload the parts named in errors, "
            "then complete again.",
            problems,
        )
    await blobs.complete_multipart(
        key, upload.upload_id, [parts[n] for n in range(1, upload.part_count + 1)]
    )
