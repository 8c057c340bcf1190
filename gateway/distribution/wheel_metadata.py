"""A wheel's METADATA, read through its zip central directory.

The central directory at the tail of the zip says exactly where METADATA lives, so a wheel
is read at its tail and at that one member; every size the archive declares is checked
against a limit before memory is committed to it.
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

__all__ = ["MAX_CENTRAL_DIRECTORY_BYTES", "read_wheel_metadata"]

# A wheel with 100k files has a central directory of roughly 10 MiB.
MAX_CENTRAL_DIRECTORY_BYTES = 64 << 20

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


async def read_wheel_metadata(reader: RangeReader, filename: str, limit: int) -> tuple[str, bytes]:
    directory = await _locate_central_directory(reader, filename)
    listing = await read_exact(reader, directory.offset, directory.size)
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
    tail = await read_exact(reader, tail_start, tail_length)
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
        record = await read_exact(reader, record_offset, _ZIP64_EOCD.size)
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
        check_member_name(entry.name)
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
        data = await read_exact(reader, data_start, entry.compressed_size)
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
    header = await read_exact(reader, entry.header_offset, _LOCAL_HEADER.size + len(entry.raw_name))
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
        chunk = await read_exact(reader, start, min(READ_CHUNK_BYTES, end - start))
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
