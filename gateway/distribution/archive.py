"""Core metadata of an uploaded wheel or sdist, read with ranged reads only.

Uploads sit in object storage and can be hundreds of megabytes, so an archive is
never fetched whole: a wheel is a zip whose central directory, at the tail, says
exactly where METADATA lives, and an sdist is streamed from the start only until
its PKG-INFO has been read. Every size an uploader controls is checked against a
limit before memory is committed to it.

This module is the face: which reader a filename takes, and what makes the metadata it
finds valid. The readers live beside it: ``wheel_metadata`` (zip) and ``sdist_metadata``
(tar.gz), both over the ranged reads of ``ranged``.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.metadata import InvalidMetadata, Metadata
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from gateway.distribution.errors import DistributionError
from gateway.distribution.ranged import InMemory, RangeReader
from gateway.distribution.sdist_metadata import read_sdist_metadata
from gateway.distribution.wheel_metadata import MAX_CENTRAL_DIRECTORY_BYTES, read_wheel_metadata

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
        member, raw = await read_wheel_metadata(reader, filename, max_metadata_bytes)
        source = "METADATA"
    elif filename.endswith(".tar.gz"):
        member, raw = await read_sdist_metadata(
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
