"""Ranged reads of a stored archive: the one way the archive readers do I/O, and the
refusals every reader shares (an offset past the end, a member path that could escape).

Uploads sit in object storage and can be hundreds of megabytes, so a reader asks for the
ranges it needs and never for the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from gateway.distribution.errors import DistributionError

__all__ = ["READ_CHUNK_BYTES", "InMemory", "RangeReader", "check_member_name", "read_exact"]

READ_CHUNK_BYTES = 1 << 20


class RangeReader(Protocol):
    """Random access to a stored file; the only way the archive readers do I/O."""

    @property
    def size(self) -> int: ...

    async def read_range(self, start: int, length: int) -> bytes:
        """Return exactly ``min(length, size - start)`` bytes starting at ``start``."""
        ...


class InMemory:
    """A :class:`RangeReader` over bytes already in memory (a small body as it arrived)."""

    def __init__(self, data: bytes | bytearray) -> None:
        self._data = memoryview(data)

    @property
    def size(self) -> int:
        return len(self._data)

    async def read_range(self, start: int, length: int) -> bytes:
        return bytes(self._data[start : start + length])


_DRIVE_LETTER = re.compile(r"[A-Za-z]:")


def check_member_name(name: str) -> None:
    # Nothing here extracts files, but installers and mirrors downstream do:
    # refuse any archive that could make them write outside their target.
    if (
        name.startswith("/")
        or "\\" in name
        or "\0" in name
        or _DRIVE_LETTER.match(name)
        or ".." in name.split("/")
    ):
        raise DistributionError(
            "content",
            f"The archive member {name!r} has an unsafe path "
            "(absolute, drive letter, backslash or '..' component).",
        )


async def read_exact(reader: RangeReader, start: int, length: int) -> bytes:
    # Offsets come from the archive itself, so a lying header must not turn
    # into a read past the end that the reader would silently shorten.
    if start < 0 or length < 0 or start + length > reader.size:
        raise DistributionError(
            "content", "The archive is corrupt: it points past the end of the file."
        )
    if length == 0:
        return b""
    data = await reader.read_range(start, length)
    if len(data) != length:
        raise OSError(f"reader returned {len(data)} bytes for {length} bytes at offset {start}")
    return data


def from_blocks(blocks: Mapping[int, bytes], start: int, length: int) -> bytes | None:
    """The ``length`` bytes at ``start`` when one of ``blocks`` (offset -> bytes already
    held) holds them all; None when none does."""
    for offset, block in blocks.items():
        if offset <= start and start + length <= offset + len(block):
            return block[start - offset : start - offset + length]
    return None
