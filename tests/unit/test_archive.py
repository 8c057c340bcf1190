"""Metadata extraction from wheels and sdists through ranged reads."""

from __future__ import annotations

import contextlib
import gzip
import io
import random
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from packaging.metadata import Metadata

from gateway.distribution.archive import (
    DistributionError,
    ExtractedMetadata,
    check_identity,
    extract_metadata,
)
from tests.distributions import sdist_bytes, tar_bytes, zip_bytes

MiB = 1 << 20


class BytesReader:
    """An in-memory RangeReader that records how much was asked of it."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.calls = 0
        self.bytes_read = 0

    @property
    def size(self) -> int:
        return len(self._data)

    async def read_range(self, start: int, length: int) -> bytes:
        assert 0 <= start <= len(self._data)
        assert length >= 0
        self.calls += 1
        chunk = self._data[start : start + length]
        self.bytes_read += len(chunk)
        return chunk


def core_metadata(name: str = "foo-bar", version: str = "1.0", body: bytes = b"") -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode() + body


# --- Archive builders ----------------------------------------------------------


@dataclass
class Entry:
    name: str
    data: bytes
    method: int = zipfile.ZIP_DEFLATED
    declared_size: int | None = None  # uncompressed size written to the headers
    crc: int | None = None


def hand_zip(entries: list[Entry], *, zip64: bool = False) -> bytes:
    """A zip written field by field, so it can lie about sizes and CRCs or use ZIP64
    structures for small data (zipfile only does that for files over 4 GiB)."""
    body = bytearray()
    directory = bytearray()
    for entry in entries:
        if entry.method == zipfile.ZIP_DEFLATED:
            deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
            payload = deflater.compress(entry.data) + deflater.flush()
        else:
            payload = entry.data
        size = len(entry.data) if entry.declared_size is None else entry.declared_size
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        name = entry.name.encode()
        offset = len(body)
        body += struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04", 45, 0x800, entry.method, 0, 0x21, crc, len(payload), size, len(name), 0,
        )  # fmt: skip
        body += name + payload
        if zip64:
            extra = struct.pack("<HHQQQ", 1, 24, size, len(payload), offset)
            compressed_field = size_field = offset_field = 0xFFFFFFFF
        else:
            extra = b""
            compressed_field, size_field, offset_field = len(payload), size, offset
        directory += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02", 45, 45, 0x800, entry.method, 0, 0x21, crc,
            compressed_field, size_field, len(name), len(extra), 0, 0, 0, 0, offset_field,
        )  # fmt: skip
        directory += name + extra
    count = len(entries)
    directory_offset = len(body)
    out = body + directory
    if zip64:
        record_offset = len(out)
        out += struct.pack(
            "<4sQHHIIQQQQ",
            b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), directory_offset,
        )  # fmt: skip
        out += struct.pack("<4sIQI", b"PK\x06\x07", 0, record_offset, 1)
        out += struct.pack(
            "<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
        )
    else:
        out += struct.pack(
            "<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(directory), directory_offset, 0
        )
    return bytes(out)


WHEEL = "foo_bar-1.0-py3-none-any.whl"
SDIST = "foo_bar-1.0.tar.gz"
DIST_INFO = "foo_bar-1.0.dist-info"


def wheel_files(metadata: bytes | None = None) -> dict[str, bytes]:
    return {
        "foo_bar/__init__.py": b"",
        f"{DIST_INFO}/METADATA": core_metadata() if metadata is None else metadata,
        f"{DIST_INFO}/WHEEL": b"Wheel-Version: 1.0\n",
        f"{DIST_INFO}/RECORD": b"",
    }


def sdist_members(metadata: bytes | None = None) -> list[tuple[str, bytes]]:
    return [
        ("foo_bar-1.0/", b""),
        ("foo_bar-1.0/pyproject.toml", b"[project]\n"),
        ("foo_bar-1.0/PKG-INFO", core_metadata() if metadata is None else metadata),
    ]


async def extraction_error(data: bytes, filename: str, **limits: int) -> DistributionError:
    with pytest.raises(DistributionError) as caught:
        await extract_metadata(BytesReader(data), filename, **limits)
    return caught.value


# --- Wheels -------------------------------------------------------------------


async def test_valid_wheel() -> None:
    raw = core_metadata(body=b"A description.\n")
    extracted = await extract_metadata(BytesReader(zip_bytes(wheel_files(raw))), WHEEL)
    assert extracted.raw == raw
    assert extracted.member == f"{DIST_INFO}/METADATA"
    assert extracted.metadata.name == "foo-bar"
    assert str(extracted.metadata.version) == "1.0"


async def test_stored_wheel_with_comment() -> None:
    data = zip_bytes(wheel_files(), compression=zipfile.ZIP_STORED, comment=b"built by a test")
    extracted = await extract_metadata(BytesReader(data), WHEEL)
    assert extracted.raw == core_metadata()


async def test_large_wheel_is_not_fully_read() -> None:
    big = random.Random(0).randbytes(20 * MiB)
    files = {"foo_bar/blob.bin": big, **wheel_files()}
    reader = BytesReader(zip_bytes(files, compression=zipfile.ZIP_STORED))
    extracted = await extract_metadata(reader, WHEEL)
    assert extracted.metadata.name == "foo-bar"
    assert reader.bytes_read < MiB
    assert reader.calls <= 4


async def test_zip64_wheel() -> None:
    raw = core_metadata()
    data = hand_zip(
        [
            Entry("foo_bar/__init__.py", b"x = 1\n"),
            Entry(f"{DIST_INFO}/METADATA", raw),
            Entry(f"{DIST_INFO}/RECORD", b"", method=zipfile.ZIP_STORED),
        ],
        zip64=True,
    )
    # The hand-made archive must be one a reference reader accepts as ZIP64.
    assert zipfile.ZipFile(io.BytesIO(data)).read(f"{DIST_INFO}/METADATA") == raw
    assert data[-22:-20] == b"PK"
    assert data[-12:-6] == b"\xff" * 6
    extracted = await extract_metadata(BytesReader(data), WHEEL)
    assert extracted.raw == raw


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 but not really a zip" * 100])
async def test_wheel_that_is_not_a_zip(data: bytes) -> None:
    error = await extraction_error(data, WHEEL)
    assert error.source == "content"
    assert "is not a zip archive" in str(error)


async def test_wheel_without_metadata() -> None:
    files = wheel_files()
    del files[f"{DIST_INFO}/METADATA"]
    files["nested/foo.dist-info/METADATA"] = core_metadata()  # not top-level: ignored
    error = await extraction_error(zip_bytes(files), WHEEL)
    assert error.source == "content"
    assert "METADATA" in str(error)


async def test_wheel_with_two_dist_info_directories() -> None:
    files = {**wheel_files(), "other-2.0.dist-info/METADATA": core_metadata("other", "2.0")}
    error = await extraction_error(zip_bytes(files), WHEEL)
    assert error.source == "content"
    assert "more than one" in str(error)
    assert "other-2.0.dist-info/METADATA" in str(error)


async def test_wheel_metadata_over_the_limit() -> None:
    raw = core_metadata(body=b"x" * 2000)
    error = await extraction_error(zip_bytes(wheel_files(raw)), WHEEL, max_metadata_bytes=1000)
    assert error.source == "METADATA"
    assert "limit of 1000 bytes" in str(error)


async def test_zip_bomb_is_refused_from_its_declared_size() -> None:
    raw = core_metadata(body=b"a" * (8 * MiB))
    reader = BytesReader(hand_zip([Entry(f"{DIST_INFO}/METADATA", raw)]))
    with pytest.raises(DistributionError, match="more than the limit"):
        await extract_metadata(reader, WHEEL)
    assert reader.bytes_read < 128 * 1024  # only the tail and the directory


def _lying_size(raw: bytes) -> Entry:
    return Entry(f"{DIST_INFO}/METADATA", raw, declared_size=100, crc=zlib.crc32(raw))


def _bad_crc(raw: bytes) -> Entry:
    return Entry(f"{DIST_INFO}/METADATA", raw, crc=zlib.crc32(raw) ^ 1)


@pytest.mark.parametrize(
    ("raw", "entry", "message"),
    [
        # A zip bomb lying about its size is stopped while inflating.
        (core_metadata(body=b"a" * (8 * MiB)), _lying_size, "decompresses to more than the limit"),
        # A member longer than declared, within the limit.
        (
            core_metadata(),
            lambda raw: Entry(f"{DIST_INFO}/METADATA", raw, declared_size=10),
            "central directory says 10",
        ),
        (core_metadata(), _bad_crc, "CRC-32"),
        (core_metadata(), lambda raw: Entry(f"{DIST_INFO}/METADATA", raw, method=12), "method 12"),
    ],
    ids=["bomb-lying-about-its-size", "longer-than-declared", "bad-crc", "unsupported-compression"],
)
async def test_a_metadata_member_that_does_not_read_back_as_declared(
    raw: bytes, entry: Callable[[bytes], Entry], message: str
) -> None:
    error = await extraction_error(hand_zip([entry(raw)]), WHEEL)
    assert error.source == "METADATA"
    assert message in str(error)


async def test_wheel_whose_local_header_disagrees_with_the_directory() -> None:
    data = bytearray(hand_zip([Entry(f"{DIST_INFO}/METADATA", core_metadata())]))
    data[30] = ord("X")  # first byte of the local header's member name
    error = await extraction_error(bytes(data), WHEEL)
    assert error.source == "content"
    assert "local header" in str(error)


async def test_wheel_whose_directory_miscounts_its_entries() -> None:
    data = bytearray(zip_bytes(wheel_files()))
    data[-12:-10] = struct.pack("<H", 99)  # total entries in the end record
    data[-14:-12] = struct.pack("<H", 99)  # entries on this disk
    error = await extraction_error(bytes(data), WHEEL)
    assert "lists 4 entries, not 99" in str(error)


@pytest.mark.parametrize("name", ["../evil", "/abs", "foo/../../evil", "C:/evil", "dir\\evil"])
async def test_wheel_with_unsafe_member_name(name: str) -> None:
    data = hand_zip([Entry(name, b"boom"), Entry(f"{DIST_INFO}/METADATA", core_metadata())])
    error = await extraction_error(data, WHEEL)
    assert error.source == "content"
    assert repr(name) in str(error)


async def test_wheel_with_invalid_metadata() -> None:
    raw = b"Metadata-Version: 9.9\nName: foo-bar\nVersion: 1.0\n"
    error = await extraction_error(zip_bytes(wheel_files(raw)), WHEEL)
    assert error.source == "METADATA"
    assert "'9.9' is not a valid metadata version" in str(error)


# --- Sdists -------------------------------------------------------------------


async def test_valid_sdist() -> None:
    raw = core_metadata(body=b"A description.\n")
    extracted = await extract_metadata(BytesReader(sdist_bytes(sdist_members(raw))), SDIST)
    assert extracted.raw == raw
    assert extracted.member == "foo_bar-1.0/PKG-INFO"
    assert extracted.metadata.name == "foo-bar"


async def test_sdist_stops_reading_after_pkg_info() -> None:
    noise = random.Random(1).randbytes(4 * MiB)  # incompressible, after PKG-INFO
    data = sdist_bytes([*sdist_members(), ("foo_bar-1.0/data.bin", noise)])
    reader = BytesReader(data)
    await extract_metadata(reader, SDIST)
    assert reader.bytes_read <= 2 * MiB < len(data)


async def test_sdist_with_pax_long_names_and_global_header() -> None:
    top = "foo_bar-1.0-" + "x" * 150
    tar = tar_bytes(
        [(f"{top}/", b""), (f"{top}/PKG-INFO", core_metadata())],
        tar_format=tarfile.PAX_FORMAT,
        pax_headers={"comment": "global header"},
    )
    assert tar[156:157] == b"g"
    assert tar[1024 + 156 : 1024 + 157] == b"x"
    extracted = await extract_metadata(BytesReader(gzip.compress(tar)), SDIST)
    assert extracted.member == f"{top}/PKG-INFO"


async def test_sdist_with_gnu_long_names() -> None:
    top = "foo_bar-1.0-" + "y" * 150
    tar = tar_bytes(
        [(f"{top}/", b""), (f"{top}/PKG-INFO", core_metadata())], tar_format=tarfile.GNU_FORMAT
    )
    assert tar[156:157] == b"L"
    extracted = await extract_metadata(BytesReader(gzip.compress(tar)), SDIST)
    assert extracted.member == f"{top}/PKG-INFO"


async def test_sdist_with_ustar_prefix() -> None:
    top = "foo_bar-1.0-" + "z" * 110  # too long for the name field alone
    tar = tar_bytes([(f"{top}/PKG-INFO", core_metadata())], tar_format=tarfile.USTAR_FORMAT)
    extracted = await extract_metadata(BytesReader(gzip.compress(tar)), SDIST)
    assert extracted.member == f"{top}/PKG-INFO"


def set_tar_size_base256(tar: bytes, member: str) -> bytes:
    """Rewrite one header's size in GNU base-256 form, as used above 8 GiB."""
    data = bytearray(tar)
    at = data.index(member.encode())
    size = int(data[at + 124 : at + 136].rstrip(b"\0 "), 8)
    data[at + 124 : at + 136] = b"\x80" + size.to_bytes(11, "big")
    data[at + 148 : at + 156] = b" " * 8
    data[at + 148 : at + 156] = b"%06o\0 " % sum(data[at : at + 512])
    return bytes(data)


async def test_sdist_with_base256_sizes() -> None:
    tar = tar_bytes(sdist_members(), tar_format=tarfile.GNU_FORMAT)
    tar = set_tar_size_base256(tar, "foo_bar-1.0/pyproject.toml")
    tar = set_tar_size_base256(tar, "foo_bar-1.0/PKG-INFO")
    with tarfile.open(fileobj=io.BytesIO(tar)) as reference:
        member = reference.extractfile("foo_bar-1.0/PKG-INFO")
        assert member is not None
        assert member.read() == core_metadata()
    extracted = await extract_metadata(BytesReader(gzip.compress(tar)), SDIST)
    assert extracted.raw == core_metadata()


async def test_sdist_with_malformed_pax_header() -> None:
    tar = bytearray(tar_bytes([(f"{'x' * 150}/PKG-INFO", core_metadata())]))
    assert tar[156:157] == b"x"
    tar[512:514] = b"zz"  # the record length that starts the PAX data
    error = await extraction_error(gzip.compress(bytes(tar)), SDIST)
    assert "PAX header is malformed" in str(error)


async def test_sdist_whose_pkg_info_is_a_symlink() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        link = tarfile.TarInfo("foo_bar-1.0/PKG-INFO")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    error = await extraction_error(gzip.compress(buffer.getvalue()), SDIST)
    assert error.source == "PKG-INFO"
    assert "not a regular file" in str(error)


async def test_sdist_made_of_several_gzip_members() -> None:
    tar = tar_bytes(sdist_members())
    data = gzip.compress(tar[:700]) + gzip.compress(tar[700:])
    extracted = await extract_metadata(BytesReader(data), SDIST)
    assert extracted.raw == core_metadata()


async def test_sdist_gzip_bomb() -> None:
    members = [("foo_bar-1.0/zeros", bytes(4 * MiB)), *sdist_members()]
    data = sdist_bytes(members)
    error = await extraction_error(data, SDIST, max_scan_bytes=MiB)
    assert error.source == "content"
    assert f"more than {MiB} bytes" in str(error)
    # The same archive is fine when the budget allows it.
    assert (await extract_metadata(BytesReader(data), SDIST)).raw == core_metadata()


async def test_sdist_pkg_info_over_the_limit() -> None:
    raw = core_metadata(body=b"x" * 2000)
    error = await extraction_error(sdist_bytes(sdist_members(raw)), SDIST, max_metadata_bytes=1000)
    assert error.source == "PKG-INFO"
    assert "limit of 1000 bytes" in str(error)


@pytest.mark.parametrize("name", ["../evil", "/abs", "foo_bar-1.0/../../evil"])
async def test_sdist_with_unsafe_member_name(name: str) -> None:
    data = sdist_bytes([(name, b"boom"), *sdist_members()])
    error = await extraction_error(data, SDIST)
    assert error.source == "content"
    assert repr(name) in str(error)


async def test_sdist_that_is_not_gzip() -> None:
    error = await extraction_error(tar_bytes(sdist_members()), SDIST)
    assert error.source == "content"
    assert "is not a gzip-compressed file" in str(error)


async def test_sdist_with_corrupt_gzip_data() -> None:
    data = bytearray(sdist_bytes(sdist_members()))
    data[20:40] = b"\xff" * 20
    error = await extraction_error(bytes(data), SDIST)
    assert error.source == "content"
    assert "gzip" in str(error)


async def test_gzip_that_is_not_a_tar() -> None:
    error = await extraction_error(gzip.compress(b"just some text\n" * 100), SDIST)
    assert error.source == "content"
    assert "does not contain a tar archive" in str(error)


async def test_tar_with_corrupt_later_header() -> None:
    tar = bytearray(tar_bytes(sdist_members(), tar_format=tarfile.USTAR_FORMAT))
    tar[512 + 5] ^= 0xFF  # second header: the pyproject.toml entry's name
    error = await extraction_error(gzip.compress(bytes(tar)), SDIST)
    assert "bad checksum" in str(error)


async def test_truncated_sdist() -> None:
    tar = tar_bytes(sdist_members())
    error = await extraction_error(gzip.compress(tar)[:-30], SDIST)
    assert error.source == "content"
    assert "truncated" in str(error)


async def test_tar_without_pkg_info() -> None:
    data = sdist_bytes([("foo_bar-1.0/", b""), ("foo_bar-1.0/setup.py", b"")])
    error = await extraction_error(data, SDIST)
    assert error.source == "content"
    assert "no PKG-INFO" in str(error)


async def test_tar_with_only_nested_or_root_pkg_info() -> None:
    members = [
        ("PKG-INFO", core_metadata()),
        ("foo_bar-1.0/src/foo_bar.egg-info/PKG-INFO", core_metadata()),
    ]
    error = await extraction_error(sdist_bytes(members), SDIST)
    assert "no PKG-INFO" in str(error)


async def test_first_top_level_pkg_info_wins_over_nested_one() -> None:
    members = [
        ("foo_bar-1.0/src/foo_bar.egg-info/PKG-INFO", core_metadata("nested")),
        ("foo_bar-1.0/PKG-INFO", core_metadata()),
    ]
    extracted = await extract_metadata(BytesReader(sdist_bytes(members)), SDIST)
    assert extracted.member == "foo_bar-1.0/PKG-INFO"


async def test_sdist_with_invalid_metadata() -> None:
    raw = b"Metadata-Version: 2.1\nVersion: 1.0\n"
    error = await extraction_error(sdist_bytes(sdist_members(raw)), SDIST)
    assert error.source == "PKG-INFO"
    assert "'name' is a required field" in str(error)


@pytest.mark.parametrize("filename", ["foo-1.0.zip", "foo-1.0.tar.bz2", "foo-1.0.egg"])
async def test_unsupported_filename(filename: str) -> None:
    error = await extraction_error(zip_bytes(wheel_files()), filename)
    assert error.source == "content"


# --- Identity -----------------------------------------------------------------


def extracted(name: str, version: str) -> ExtractedMetadata:
    raw = core_metadata(name, version)
    return ExtractedMetadata(raw=raw, metadata=Metadata.from_email(raw), member="x/PKG-INFO")


@pytest.mark.parametrize(
    ("name", "version"), [("Foo_Bar", "1.0"), ("foo-bar", "1.0.0"), ("FOO.bar", "1.0")]
)
def test_identity_matches_after_normalization(name: str, version: str) -> None:
    check_identity(extracted("foo-bar", "1.0"), name, version)


@pytest.mark.parametrize(
    ("name", "version", "source", "quoted"),
    [
        ("other", "1.0", "metadata.name", ("'foo-bar'", "'other'")),
        ("foo-bar", "1.1", "metadata.version", ("'1.0'", "'1.1'")),
    ],
    ids=["name-mismatch", "version-mismatch"],
)
def test_identity_mismatch(name: str, version: str, source: str, quoted: tuple[str, str]) -> None:
    with pytest.raises(DistributionError) as caught:
        check_identity(extracted("foo-bar", "1.0"), name, version)
    assert caught.value.source == source
    for value in quoted:
        assert value in str(caught.value)


def test_identity_with_invalid_version() -> None:
    with pytest.raises(DistributionError) as caught:
        check_identity(extracted("foo-bar", "1.0"), "foo-bar", "not a version")
    assert caught.value.source == "metadata.version"


# --- Robustness ---------------------------------------------------------------


@pytest.mark.parametrize("filename", [WHEEL, SDIST])
async def test_corrupted_archives_only_raise_distribution_errors(filename: str) -> None:
    """Whatever bytes were uploaded, the caller gets a problem document, not a crash."""
    rng = random.Random(filename)
    valid = zip_bytes(wheel_files()) if filename == WHEEL else sdist_bytes(sdist_members())
    for _ in range(300):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            if rng.random() < 0.8:
                data[at] = rng.randrange(256)
            else:
                del data[at + 1 :]
        with contextlib.suppress(DistributionError):
            await extract_metadata(BytesReader(bytes(data)), filename)
