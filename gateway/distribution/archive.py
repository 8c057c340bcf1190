"""Core metadata of an uploaded wheel or sdist, read with ranged reads only.

Uploads sit in object storage and can be hundreds of megabytes, so an archive is
never fetched whole: a wheel is a zip whose central directory, at the tail, says
exactly where METADATA lives, and an sdist is streamed from the start only until
its PKG-INFO has been read. Every size an uploader controls is checked against a
limit before memory is committed to it.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Protocol

from packaging.metadata import InvalidMetadata, Metadata
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = [
    "DEFAULT_MAX_METADATA_BYTES",
    "DEFAULT_MAX_SCAN_BYTES",
    "MAX_CENTRAL_DIRECTORY_BYTES",
    "DistributionError",
    "ExtractedMetadata",
    "InMemory",
    "RangeReader",
    "check_identity",
    "extract_metadata",
    "parsed",
    "seen",
]

DEFAULT_MAX_METADATA_BYTES = 1 << 20
DEFAULT_MAX_SCAN_BYTES = 256 << 20
# A wheel with 100k files has a central directory of roughly 10 MiB.
MAX_CENTRAL_DIRECTORY_BYTES = 64 << 20
# PAX and GNU long-name headers only carry paths and a few numbers.
MAX_TAR_EXTENDED_HEADER_BYTES = 1 << 20
READ_CHUNK_BYTES = 1 << 20


class RangeReader(Protocol):
    """Random access to a stored file; the only way this module does I/O."""

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


class DistributionError(Exception):
    """The archive is not a valid distribution.

    ``source`` names the part at fault ('content', 'METADATA', 'PKG-INFO',
    'metadata.name', ...); ``str(exc)`` is a sentence fit for a problem document.
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.message = message


@dataclass(frozen=True)
class ExtractedMetadata:
    raw: bytes  # the METADATA / PKG-INFO file exactly as stored in the archive
    metadata: Metadata
    member: str  # archive member path it came from


async def extract_metadata(
    reader: RangeReader,
    filename: str,
    *,
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
    max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES,
) -> ExtractedMetadata:
    """Find, read and validate the core metadata file of the distribution ``filename``.

    ``max_metadata_bytes`` bounds the metadata file itself; ``max_scan_bytes``
    bounds how much of an sdist is decompressed while looking for it.
    """
    if filename.endswith(".whl"):
        member, raw = await _read_wheel_metadata(reader, filename, max_metadata_bytes)
        source = "METADATA"
    elif filename.endswith(".tar.gz"):
        member, raw = await _read_sdist_metadata(
            reader, filename, max_metadata_bytes, max_scan_bytes
        )
        source = "PKG-INFO"
    else:
        raise DistributionError(
            "content", f"{filename!r} is neither a wheel (.whl) nor an sdist (.tar.gz)."
        )
    return ExtractedMetadata(raw=raw, metadata=_parse_metadata(raw, source, member), member=member)


async def seen(data: bytes | bytearray, filename: str, limit: int) -> ExtractedMetadata | None:
    """The metadata of a distribution held in memory, None when it has none this module
    can read within ``limit`` (whoever validates it reads it again and says why)."""
    try:
        return await extract_metadata(InMemory(data), filename, max_metadata_bytes=limit)
    except DistributionError:
        return None


def parsed(raw: bytes, filename: str, member: str) -> ExtractedMetadata:
    """The metadata ``raw`` that :func:`extract_metadata` read earlier from ``member`` of
    the distribution ``filename``, parsed and validated again."""
    source = "METADATA" if filename.endswith(".whl") else "PKG-INFO"
    return ExtractedMetadata(raw=raw, metadata=_parse_metadata(raw, source, member), member=member)


def check_identity(extracted: ExtractedMetadata, name: str, version: str) -> None:
    """Require the metadata to describe the project and version being uploaded."""
    metadata = extracted.metadata
    if canonicalize_name(metadata.name) != canonicalize_name(name):
        raise DistributionError(
            "metadata.name",
            f"The distribution's metadata names the project {metadata.name!r}, "
            f"but it is being uploaded as {name!r}.",
        )
    try:
        expected = Version(version)
    except InvalidVersion:
        raise DistributionError(
            "metadata.version", f"{version!r} is not a valid version."
        ) from None
    if metadata.version != expected:
        raise DistributionError(
            "metadata.version",
            f"The distribution's metadata gives version {str(metadata.version)!r}, "
            f"but it is being uploaded as version {version!r}.",
        )


def _parse_metadata(raw: bytes, source: str, member: str) -> Metadata:
    try:
        return Metadata.from_email(raw, validate=True)
    except (ExceptionGroup, InvalidMetadata) as exc:
        problems = "; ".join(m for m in _exception_messages(exc) if _TOO_NEW not in m)
        if not problems:
            # Only fields newer than the declared Metadata-Version (License-File in 2.1, as
            # hatchling wrote it before 1.26): PyPI accepted such files, so the index may too.
            return Metadata.from_email(raw, validate=False)
        raise DistributionError(
            source, f"{member} is not valid core metadata: {problems}."
        ) from exc


_TOO_NEW = "introduced in metadata version"


def _exception_messages(exc: BaseException) -> list[str]:
    if isinstance(exc, BaseExceptionGroup):
        return [message for sub in exc.exceptions for message in _exception_messages(sub)]
    return [str(exc)]


_DRIVE_LETTER = re.compile(r"[A-Za-z]:")


def _check_member_name(name: str) -> None:
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


async def _read_exact(reader: RangeReader, start: int, length: int) -> bytes:
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


# --- Wheels (zip) -------------------------------------------------------------

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_CENTRAL_HEADER = struct.Struct("<4sHHHHHHIIIHHHHHII")
_CENTRAL_HEADER_SIGNATURE = b"PK\x01\x02"
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_ZIP64_EXTRA_TAG = 0x0001
_ZIP64_OVERFLOW = 0xFFFFFFFF
_MAX_ZIP_COMMENT = 0xFFFF
_FLAG_ENCRYPTED = 0x0001
_FLAG_UTF8 = 0x0800
_STORED = 0
_DEFLATED = 8
_WHEEL_METADATA = re.compile(r"[^/]+\.dist-info/METADATA")


@dataclass(frozen=True)
class _CentralDirectory:
    offset: int
    size: int
    entries: int


@dataclass(frozen=True)
class _ZipEntry:
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    uncompressed_size: int
    header_offset: int


def _corrupt_zip(filename: str, detail: str) -> DistributionError:
    return DistributionError("content", f"{filename} is a corrupt zip archive: {detail}.")


async def _read_wheel_metadata(reader: RangeReader, filename: str, limit: int) -> tuple[str, bytes]:
    directory = await _locate_central_directory(reader, filename)
    listing = await _read_exact(reader, directory.offset, directory.size)
    entry = _select_wheel_metadata(listing, directory.entries, filename)
    # Refuse up front what is declared too big; _inflate catches sizes that lie.
    if entry.uncompressed_size > limit:
        raise DistributionError(
            "METADATA",
            f"{entry.name} is {entry.uncompressed_size} bytes, "
            f"more than the limit of {limit} bytes.",
        )
    return entry.name, await _read_zip_member(reader, entry, filename, limit)


async def _locate_central_directory(reader: RangeReader, filename: str) -> _CentralDirectory:
    # The end of central directory record may be followed by a comment of up to
    # 64 KiB; fetching 20 more bytes also brings a ZIP64 locator in the same read.
    tail_length = min(reader.size, _ZIP64_LOCATOR.size + _EOCD.size + _MAX_ZIP_COMMENT)
    tail_start = reader.size - tail_length
    tail = await _read_exact(reader, tail_start, tail_length)
    eocd_at = _find_eocd(tail)
    if eocd_at is None:
        raise DistributionError(
            "content", f"{filename} is not a zip archive (no end of central directory record)."
        )
    _, disk, directory_disk, disk_entries, entries, size, offset, _ = _EOCD.unpack_from(
        tail, eocd_at
    )
    directory_end = tail_start + eocd_at
    locator_at = eocd_at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail.startswith(_ZIP64_LOCATOR_SIGNATURE, locator_at):
        _, record_disk, record_offset, disks = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
        if record_disk != 0 or disks > 1:
            raise _corrupt_zip(filename, "archives spanning several disks are not supported")
        if record_offset + _ZIP64_EOCD.size > tail_start + locator_at:
            raise _corrupt_zip(filename, "the ZIP64 locator points to the wrong place")
        record = await _read_exact(reader, record_offset, _ZIP64_EOCD.size)
        (signature, _, _, _, disk, directory_disk, disk_entries, entries, size, offset) = (
            _ZIP64_EOCD.unpack(record)
        )
        if signature != _ZIP64_EOCD_SIGNATURE:
            raise _corrupt_zip(filename, "the ZIP64 end of central directory record is missing")
        directory_end = record_offset
    if disk != 0 or directory_disk != 0 or disk_entries != entries:
        raise _corrupt_zip(filename, "archives spanning several disks are not supported")
    if offset + size > directory_end:
        raise _corrupt_zip(filename, "the central directory lies outside the file")
    if size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise DistributionError(
            "content",
            f"{filename} has a central directory of {size} bytes, "
            f"more than the limit of {MAX_CENTRAL_DIRECTORY_BYTES} bytes.",
        )
    return _CentralDirectory(offset=offset, size=size, entries=entries)


def _find_eocd(tail: bytes) -> int | None:
    # Like zipfile (and so pip), take the last signature with room for a whole
    # record after it. Also requiring its comment to end exactly at the end of
    # the file means we either agree with installers or reject the archive.
    if len(tail) < _EOCD.size:
        return None
    at = tail.rfind(_EOCD_SIGNATURE, 0, len(tail) - _EOCD.size + len(_EOCD_SIGNATURE))
    if at < 0:
        return None
    comment_length = _EOCD.unpack_from(tail, at)[-1]
    return at if at + _EOCD.size + comment_length == len(tail) else None


def _select_wheel_metadata(listing: bytes, expected_entries: int, filename: str) -> _ZipEntry:
    entries = _parse_central_directory(listing, filename)
    if len(entries) != expected_entries:
        raise _corrupt_zip(
            filename,
            f"the central directory lists {len(entries)} entries, not {expected_entries}",
        )
    for entry in entries:
        _check_member_name(entry.name)
    found = [entry for entry in entries if _WHEEL_METADATA.fullmatch(entry.name)]
    if not found:
        raise DistributionError(
            "content", f"{filename} has no top-level .dist-info directory with a METADATA file."
        )
    if len(found) > 1:
        names = ", ".join(entry.name for entry in found)
        raise DistributionError(
            "content", f"{filename} has more than one .dist-info/METADATA file: {names}."
        )
    return found[0]


def _parse_central_directory(listing: bytes, filename: str) -> list[_ZipEntry]:
    entries: list[_ZipEntry] = []
    at = 0
    while at < len(listing):
        if at + _CENTRAL_HEADER.size > len(listing):
            raise _corrupt_zip(filename, "the central directory is cut short")
        (signature, _, _, flags, method, _, _, crc, compressed, uncompressed, name_length,
         extra_length, comment_length, _, _, _, header_offset) = _CENTRAL_HEADER.unpack_from(
            listing, at
        )  # fmt: skip
        if signature != _CENTRAL_HEADER_SIGNATURE:
            raise _corrupt_zip(filename, f"bad central directory header at offset {at}")
        name_start = at + _CENTRAL_HEADER.size
        extra_start = name_start + name_length
        at = extra_start + extra_length + comment_length
        if at > len(listing):
            raise _corrupt_zip(filename, "a central directory entry is cut short")
        raw_name = listing[name_start:extra_start]
        try:
            # Without the UTF-8 flag the zip format says cp437, as zipfile assumes.
            name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
        except UnicodeDecodeError:
            raise _corrupt_zip(filename, f"member name {raw_name!r} is not UTF-8") from None
        compressed, uncompressed, header_offset = _apply_zip64_extra(
            listing[extra_start : extra_start + extra_length],
            compressed,
            uncompressed,
            header_offset,
            filename,
        )
        entries.append(
            _ZipEntry(name, raw_name, flags, method, crc, compressed, uncompressed, header_offset)
        )
    return entries


def _apply_zip64_extra(
    extra: bytes, compressed: int, uncompressed: int, header_offset: int, filename: str
) -> tuple[int, int, int]:
    # Fields that overflowed 32 bits hold 0xFFFFFFFF and their real values sit,
    # in this fixed order, in the ZIP64 extra field.
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        if tag == _ZIP64_EXTRA_TAG:
            body = extra[at + 4 : at + 4 + length]
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            try:
                if uncompressed == _ZIP64_OVERFLOW:
                    uncompressed = values.pop(0)
                if compressed == _ZIP64_OVERFLOW:
                    compressed = values.pop(0)
                if header_offset == _ZIP64_OVERFLOW:
                    header_offset = values.pop(0)
            except IndexError:
                raise _corrupt_zip(filename, "a ZIP64 extra field is too short") from None
            break
        at += 4 + length
    return compressed, uncompressed, header_offset


async def _read_zip_member(
    reader: RangeReader, entry: _ZipEntry, filename: str, limit: int
) -> bytes:
    if entry.flags & _FLAG_ENCRYPTED:
        raise DistributionError("METADATA", f"{entry.name} is encrypted.")
    if entry.method not in (_STORED, _DEFLATED):
        raise DistributionError(
            "METADATA",
            f"{entry.name} uses zip compression method {entry.method}; "
            "only stored (0) and deflate (8) are supported.",
        )
    data_start = await _locate_member_data(reader, entry, filename)
    if entry.method == _STORED:
        if entry.compressed_size != entry.uncompressed_size:
            raise _corrupt_zip(filename, f"stored member {entry.name} has inconsistent sizes")
        data = await _read_exact(reader, data_start, entry.compressed_size)
    else:
        data = await _inflate(reader, data_start, entry, limit)
    if len(data) != entry.uncompressed_size:
        raise DistributionError(
            "METADATA",
            f"{entry.name} decompresses to {len(data)} bytes, "
            f"but the central directory says {entry.uncompressed_size}.",
        )
    if zlib.crc32(data) != entry.crc:
        raise DistributionError("METADATA", f"{entry.name} fails its CRC-32 check.")
    return data


async def _locate_member_data(reader: RangeReader, entry: _ZipEntry, filename: str) -> int:
    header_end = entry.header_offset + _LOCAL_HEADER.size
    header = await _read_exact(
        reader, entry.header_offset, _LOCAL_HEADER.size + len(entry.raw_name)
    )
    signature, *_, name_length, extra_length = _LOCAL_HEADER.unpack_from(header)
    # A local name differing from the central directory's is how archives are
    # made to show different content to different zip readers.
    if (
        signature != _LOCAL_HEADER_SIGNATURE
        or name_length != len(entry.raw_name)
        or header[_LOCAL_HEADER.size :] != entry.raw_name
    ):
        raise _corrupt_zip(filename, f"the local header of {entry.name} does not match")
    data_start: int = header_end + name_length + extra_length
    return data_start


def _max_deflated_size(limit: int) -> int:
    # Deflate grows incompressible data by only a few bytes per block (see
    # zlib's deflateBound); a bigger stream cannot inflate to an acceptable
    # METADATA and would just make us read for nothing.
    return limit + (limit >> 10) + 1024


async def _inflate(reader: RangeReader, start: int, entry: _ZipEntry, limit: int) -> bytes:
    if entry.compressed_size > _max_deflated_size(limit):
        raise DistributionError(
            "METADATA",
            f"{entry.name} is {entry.compressed_size} bytes compressed, "
            f"too big to decompress within the limit of {limit} bytes.",
        )
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # zip holds raw deflate, no zlib header
    output = bytearray()
    end = start + entry.compressed_size
    while start < end and not inflater.eof:
        chunk = await _read_exact(reader, start, min(READ_CHUNK_BYTES, end - start))
        start += len(chunk)
        try:
            # One byte more than allowed reveals an overflow without ever
            # holding more than limit + 1 bytes, whatever the declared size.
            output += inflater.decompress(chunk, limit + 1 - len(output))
        except zlib.error as exc:
            raise DistributionError(
                "METADATA", f"{entry.name} is not valid deflate data ({exc})."
            ) from exc
        if len(output) > limit:
            raise DistributionError(
                "METADATA", f"{entry.name} decompresses to more than the limit of {limit} bytes."
            )
    if not inflater.eof:
        raise DistributionError("METADATA", f"{entry.name} has a truncated deflate stream.")
    return bytes(output)


# --- Sdists (tar.gz) -------------------------------------------------------------

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


async def _read_sdist_metadata(
    reader: RangeReader, filename: str, limit: int, max_scan_bytes: int
) -> tuple[str, bytes]:
    if reader.size < len(_GZIP_MAGIC) or await _read_exact(reader, 0, 2) != _GZIP_MAGIC:
        raise DistributionError("content", f"{filename} is not a gzip-compressed file.")
    tar = _TarReader(_GzipStream(reader, filename, max_scan_bytes), filename)
    while (member := await tar.next_member()) is not None:
        _check_member_name(member.name)
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
            self._pending = await _read_exact(
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
