"""An sdist's PKG-INFO, streamed from the start of its tar.gz.

An sdist is inflated and walked member by member only until its top-level PKG-INFO has
been read, within a budget of decompressed bytes; nothing is seeked, nothing extracted.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from gateway.distribution.errors import DistributionError
from gateway.distribution.ranged import (
    READ_CHUNK_BYTES,
    RangeReader,
    check_member_name,
    read_exact,
)

__all__ = ["MAX_TAR_EXTENDED_HEADER_BYTES", "read_sdist_metadata"]

# PAX and GNU long-name headers only carry paths and a few numbers.
MAX_TAR_EXTENDED_HEADER_BYTES = 1 << 20

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_TAR_BLOCK = 512
_TAR_ZERO_BLOCK = bytes(_TAR_BLOCK)
_POSIX_MAGIC = b"ustar\x00"  # GNU writes "ustar  \0" and reuses the prefix field
_TAR_REGULAR_TYPES = frozenset({b"0", b"\0", b"7"})
_TAR_TYPES_WITHOUT_DATA = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
_PAX_LOCAL, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK = b"x", b"g", b"L", b"K"
_TAR_OCTAL = re.compile(rb"[0-7]+")
# Seven digits cover any record of a header bounded by MAX_TAR_EXTENDED_HEADER_BYTES.
_PAX_LENGTH = re.compile(rb"([0-9]{1,7}) ")
_PAX_DECIMAL = re.compile(r"[0-9]{1,20}")


async def read_sdist_metadata(
    reader: RangeReader, filename: str, limit: int, max_scan_bytes: int
) -> tuple[str, bytes]:
    if reader.size < len(_GZIP_MAGIC) or await read_exact(reader, 0, 2) != _GZIP_MAGIC:
        raise DistributionError("content", f"{filename} is not a gzip-compressed file.")
    tar = _TarReader(_GzipStream(reader, filename, max_scan_bytes), filename)
    while (member := await tar.next_member()) is not None:
        check_member_name(member.name)
        if not _is_sdist_metadata(member.name):
            continue
        if member.type not in _TAR_REGULAR_TYPES:
            raise DistributionError("PKG-INFO", f"{member.name} is not a regular file.")
        if member.size > limit:
            raise DistributionError(
                "PKG-INFO",
                f"{member.name} is {member.size} bytes, more than the limit of {limit} bytes.",
            )
        return member.name, await tar.read_data(member)
    raise DistributionError(
        "content", f"{filename} has no PKG-INFO file in its top-level directory."
    )


def _is_sdist_metadata(name: str) -> bool:
    # Only {name}-{version}/PKG-INFO counts: nested copies such as
    # src/foo.egg-info/PKG-INFO are build leftovers, not the sdist's metadata.
    top, _, rest = name.partition("/")
    return top not in ("", ".") and rest == "PKG-INFO"


class _GzipStream:
    """The decompressed bytes of a gzip file, fetched and inflated chunk by chunk."""

    def __init__(self, reader: RangeReader, filename: str, max_bytes: int) -> None:
        self._reader = reader
        self._filename = filename
        self._max_bytes = max_bytes
        self._position = 0  # next compressed byte to fetch
        self._pending = b""  # fetched but not yet inflated
        self._inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        self._buffer = bytearray()  # inflated but not yet consumed
        self._produced = 0

    async def read(self, length: int) -> bytes:
        """Return ``length`` bytes, or fewer only at the end of the data."""
        while len(self._buffer) < length and await self._fill():
            pass
        data = bytes(self._buffer[:length])
        del self._buffer[:length]
        return data

    async def skip(self, length: int) -> None:
        while length > 0:
            if not self._buffer and not await self._fill():
                raise DistributionError("content", f"{self._filename} is truncated.")
            step = min(length, len(self._buffer))
            del self._buffer[:step]
            length -= step

    async def _fill(self) -> bool:
        """Inflate some more into the buffer; False once the file is exhausted."""
        if not self._pending:
            remaining = self._reader.size - self._position
            if remaining <= 0:
                if not self._inflater.eof:
                    raise DistributionError("content", f"{self._filename} is truncated.")
                return False
            self._pending = await read_exact(
                self._reader, self._position, min(READ_CHUNK_BYTES, remaining)
            )
            self._position += len(self._pending)
        if self._inflater.eof:
            # gzip allows several members back to back, each with its own header.
            self._inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        # Inflating at most up to the budget (plus one byte to detect overflow)
        # keeps a gzip bomb from ever being expanded in memory.
        budget = min(READ_CHUNK_BYTES, self._max_bytes + 1 - self._produced)
        try:
            output = self._inflater.decompress(self._pending, budget)
        except zlib.error as exc:
            raise DistributionError(
                "content", f"{self._filename} is not a valid gzip file ({exc})."
            ) from exc
        self._pending = (
            self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail
        )
        self._produced += len(output)
        if self._produced > self._max_bytes:
            raise DistributionError(
                "content",
                f"{self._filename} holds more than {self._max_bytes} bytes "
                "of uncompressed data before its PKG-INFO.",
            )
        self._buffer += output
        return True


@dataclass(frozen=True)
class _TarMember:
    name: str
    type: bytes
    size: int


class _TarReader:
    """Walks tar members (ustar, GNU and PAX) without seeking, skipping their data."""

    def __init__(self, stream: _GzipStream, filename: str) -> None:
        self._stream = stream
        self._filename = filename
        self._unread = 0  # data and padding of the current member not yet consumed
        self._global_pax: dict[str, str] = {}
        self._first = True

    async def next_member(self) -> _TarMember | None:
        """The next real member, with long names applied; None at the end of the archive."""
        await self._stream.skip(self._unread)
        self._unread = 0
        local_pax: dict[str, str] = {}
        long_name: str | None = None
        while (header := await self._next_header()) is not None:
            if header.type == _PAX_LOCAL:
                local_pax.update(self._parse_pax(await self._read_extended(header)))
            elif header.type == _PAX_GLOBAL:
                self._global_pax.update(self._parse_pax(await self._read_extended(header)))
            elif header.type == _GNU_LONG_NAME:
                long_name = _tar_string(await self._read_extended(header))
            elif header.type == _GNU_LONG_LINK:
                await self._read_extended(header)  # link targets are never followed
            else:
                member = self._resolve(header, {**self._global_pax, **local_pax}, long_name)
                self._unread = 0 if member.type in _TAR_TYPES_WITHOUT_DATA else _padded(member.size)
                return member
        return None

    async def read_data(self, member: _TarMember) -> bytes:
        data = await self._stream.read(member.size)
        if len(data) != member.size:
            raise DistributionError("content", f"{self._filename} is truncated.")
        self._unread -= len(data)
        return data

    def _resolve(
        self, header: _TarMember, pax: dict[str, str], long_name: str | None
    ) -> _TarMember:
        """The header as amended by the PAX records or GNU long name before it."""
        name = pax.get("path") or long_name or header.name
        size = header.size
        if "size" in pax:
            # PAX carries sizes that do not fit the 12-byte octal field.
            if not _PAX_DECIMAL.fullmatch(pax["size"]):
                raise self._corrupt("a PAX header has an invalid size")
            size = int(pax["size"])
        return _TarMember(name=name, type=header.type, size=size)

    async def _next_header(self) -> _TarMember | None:
        block = await self._stream.read(_TAR_BLOCK)
        first, self._first = self._first, False
        if block == _TAR_ZERO_BLOCK:
            return None
        if len(block) < _TAR_BLOCK or not _tar_checksum_ok(block):
            # A bad first header means the payload was never a tar at all.
            if first:
                raise DistributionError(
                    "content", f"{self._filename} does not contain a tar archive."
                )
            if len(block) < _TAR_BLOCK:
                raise DistributionError("content", f"{self._filename} is truncated.")
            raise self._corrupt("a header has a bad checksum")
        name = _tar_string(block[0:100])
        prefix = _tar_string(block[345:500])
        if prefix and block[257:263] == _POSIX_MAGIC:
            name = f"{prefix}/{name}"
        try:
            size = _tar_number(block[124:136])
        except ValueError:
            raise self._corrupt(f"the header of {name!r} has an invalid size") from None
        return _TarMember(name=name, type=block[156:157], size=size)

    async def _read_extended(self, header: _TarMember) -> bytes:
        if header.size > MAX_TAR_EXTENDED_HEADER_BYTES:
            raise self._corrupt(f"an extended header of {header.size} bytes is too big")
        data = await self._stream.read(header.size)
        if len(data) != header.size:
            raise DistributionError("content", f"{self._filename} is truncated.")
        await self._stream.skip(-header.size % _TAR_BLOCK)
        return data

    def _parse_pax(self, data: bytes) -> dict[str, str]:
        # Each record is "<length> <key>=<value>\n", the length counting itself.
        records: dict[str, str] = {}
        at = 0
        while at < len(data):
            match = _PAX_LENGTH.match(data, at)
            if match is None:
                raise self._corrupt("a PAX header is malformed")
            end = at + int(match.group(1))
            if end <= match.end() or end > len(data) or data[end - 1 : end] != b"\n":
                raise self._corrupt("a PAX header is malformed")
            key, equals, value = data[match.end() : end - 1].partition(b"=")
            if not equals:
                raise self._corrupt("a PAX header is malformed")
            records[key.decode("utf-8", "surrogateescape")] = value.decode(
                "utf-8", "surrogateescape"
            )
            at = end
        return records

    def _corrupt(self, detail: str) -> DistributionError:
        return DistributionError("content", f"{self._filename} is a corrupt tar archive: {detail}.")


def _padded(size: int) -> int:
    return size + (-size % _TAR_BLOCK)


def _tar_string(field: bytes) -> str:
    # surrogateescape keeps undecodable names checkable instead of failing.
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _tar_number(field: bytes) -> int:
    if field[0] == 0x80:  # GNU base-256, for values too big for octal
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if not digits:
        return 0
    if not _TAR_OCTAL.fullmatch(digits):
        raise ValueError(f"invalid tar number {field!r}")
    return int(digits, 8)


def _tar_checksum_ok(block: bytes) -> bool:
    try:
        stored = _tar_number(block[148:156])
    except ValueError:
        return False
    # The checksum field itself counts as eight spaces; some old tars summed
    # signed chars, which tarfile also accepts.
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 0x20
    signed = sum(struct.unpack(f"{len(rest)}b", rest)) + 8 * 0x20
    return stored in (unsigned, signed)
