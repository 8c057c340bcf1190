"""Facts of a pass-through legacy upload, taken from the file's bytes as they go by (R-W10).

The record is keyed by the content's sha256 and says what the content says, so it is built
from the bytes only: the form's ``requires_python``, ``metadata_version`` and ``sha256_digest``
are the uploader's claims, and a content-addressed record made from claims could describe
someone else's identical bytes wrongly, forever. So the stream is hashed, and its first and
last ``FIRST_RANGE_BYTES`` are kept: the same bytes the read path would ask the index for
(a wheel's central directory and, nearly always, its METADATA at the end; an sdist's PKG-INFO
at the start). When the archive needs any other range the upload writes no record, and the
read path learns the file on its first page request with ranged GETs, as for any file that
reached the index around the gateway. A record is never written without its METADATA.
"""

from __future__ import annotations

import hashlib

from botocore.exceptions import ClientError

from gateway.distribution.archive import DistributionError
from gateway.distribution.ranged import from_blocks
from gateway.logs import log
from gateway.proxy.index_reader import FIRST_RANGE_BYTES
from gateway.services.file_facts import FileFactsService


class NotHeld(Exception):
    """The archive needs bytes from the middle of the file, which went by unkept."""


class FileTap:
    """The file part of a form passing through: its sha256, its size, and its first and last
    ``edge`` bytes. Fed what goes on to the index from the file's first byte; the last bytes
    fed may be the start of the delimiter after the file, so ``keep`` of them wait until
    ``end`` says where the file stopped."""

    def __init__(self, boundary: bytes, edge: int = FIRST_RANGE_BYTES) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._keep = len(self._delimiter) - 1
        self._edge = edge
        self._hash = hashlib.sha256()
        self.size = 0
        self._head = bytearray()
        self._tail = bytearray()
        self._held = b""
        self.complete = False

    def feed(self, data: bytes) -> None:
        if len(data) >= self._keep:
            self._take(self._held)
            self._take(memoryview(data)[: len(data) - self._keep])
            self._held = data[len(data) - self._keep :]
        else:
            joined = self._held + data
            self._take(joined[: max(0, len(joined) - self._keep)])
            self._held = joined[max(0, len(joined) - self._keep) :]

    def end(self, trailer: bytes) -> None:
        """``trailer``: the rest of the form after what was fed, from the delimiter on."""
        joined = self._held + trailer
        at = joined.find(self._delimiter)
        if at != -1:
            self._take(joined[:at])
            self.complete = True

    def _take(self, data: bytes | memoryview) -> None:
        if not data:
            return
        self._hash.update(data)
        self.size += len(data)
        if len(self._head) < self._edge:
            self._head += data[: self._edge - len(self._head)]
        self._tail += data
        if len(self._tail) > 2 * self._edge:  # trimmed now and then, not on every chunk
            del self._tail[: len(self._tail) - self._edge]

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def reader(self) -> HeldBytes:
        tail = bytes(self._tail[-self._edge :])
        return HeldBytes(self.size, bytes(self._head), tail)


class HeldBytes:
    """``RangeReader`` over the kept start and end of a file; any other range is NotHeld."""

    def __init__(self, size: int, head: bytes, tail: bytes) -> None:
        self._size = size
        self._blocks = {0: head, size - len(tail): tail}

    @property
    def size(self) -> int:
        return self._size

    async def read_range(self, start: int, length: int) -> bytes:
        length = max(0, min(length, self._size - start))
        held = from_blocks(self._blocks, start, length)
        if held is not None:
            return held
        raise NotHeld(f"bytes {start}-{start + length - 1} went by unkept")


async def record_facts(
    facts: FileFactsService, tap: FileTap, filename: str, upload_time: str
) -> None:
    """Keep the facts of a file the index has just accepted, when its bytes that went by
    hold them; otherwise leave it to the read path. Never fails the upload, which the index
    has taken already."""
    if not tap.complete:
        return
    try:
        await facts.learn(
            tap.reader(),
            sha256=tap.sha256,
            filename=filename,
            upload_time=upload_time,
            learned_from="legacy-upload",
        )
    except NotHeld as exc:
        log.info("legacy.facts_left_to_reads", filename=filename, reason=str(exc))
    except DistributionError as exc:
        log.info("legacy.facts_unreadable", filename=filename, error=str(exc))
    except (OSError, ClientError) as exc:  # S3 trouble: the read path learns the file itself
        log.warning("legacy.facts_not_recorded", filename=filename, error=repr(exc))
    else:
        log.info("legacy.facts_recorded", filename=filename, size=tap.size)
