"""Local checks before any network: the files, their names, their own metadata; grouping.

Every file must exist, have a valid wheel or sdist (``.tar.gz``) filename, and contain a
readable ``METADATA``/``PKG-INFO`` whose name and version match the filename. The metadata is
read with the same ranged reader the gateway uses at completion, over a small local-file
:class:`~gateway.distribution.archive.RangeReader`, so an archive the gateway would refuse is
refused here first, naming the file. Hashes are computed in one streaming pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.version import Version

from gateway.distribution.archive import DistributionError, check_identity, extract_metadata
from gateway.distribution.filenames import FilenameError, parse_filename

__all__ = [
    "Distribution",
    "LocalCheckError",
    "LocalFile",
    "Release",
    "expand_inputs",
    "group_releases",
    "inspect_distribution",
    "inspect_distributions",
]

_HASH_CHUNK = 1 << 20
# Companions twine also skips when given ``dist/*``: signatures and PEP 740 attestations.
_COMPANION_SUFFIXES = (".asc", ".attestation")


class LocalCheckError(Exception):
    """A file given on the command line cannot be uploaded; the message names it."""


class LocalFile:
    """A :class:`~gateway.distribution.archive.RangeReader` over a file on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._size = path.stat().st_size

    @property
    def size(self) -> int:
        return self._size

    async def read_range(self, start: int, length: int) -> bytes:
        return await asyncio.to_thread(self._read, start, length)

    def _read(self, start: int, length: int) -> bytes:
        length = max(0, min(length, self._size - start))
        with self.path.open("rb") as handle:
            return os.pread(handle.fileno(), length, start) if length else b""


@dataclass(frozen=True)
class Distribution:
    path: Path
    filename: str
    name: str  # as the metadata spells it
    normalized_name: str
    version: Version
    version_text: str  # as the metadata spells it
    size: int
    sha256: str
    blake2_256: str
    metadata: bytes = field(repr=False)  # the METADATA / PKG-INFO bytes
    attestations: tuple[dict[str, Any], ...] = ()

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def hashes(self) -> dict[str, str]:
        return {"sha256": self.sha256}


@dataclass
class Release:
    """The files of one (normalized name, version): one publishing session."""

    name: str
    version: str
    files: list[Distribution]

    @property
    def key(self) -> tuple[str, Version]:
        return self.files[0].normalized_name, self.files[0].version


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """The distributions among ``paths``; signatures and attestation files are skipped."""
    result: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.name.endswith(_COMPANION_SUFFIXES):
            continue
        if not path.exists():
            raise LocalCheckError(f"{path}: no such file")
        if not path.is_file():
            raise LocalCheckError(f"{path}: not a regular file")
        result.append(path)
    if not result:
        raise LocalCheckError("no distribution files given")
    names: dict[str, Path] = {}
    for path in result:
        if path.name in names and names[path.name].resolve() != path.resolve():
            raise LocalCheckError(f"{path}: the filename is given twice ({names[path.name]})")
        names[path.name] = path
    # The same file named twice is uploaded once.
    return list({path.resolve(): path for path in result}.values())


def _hash_file(path: Path) -> tuple[int, str, str]:
    sha256 = hashlib.sha256()
    blake2 = hashlib.blake2b(digest_size=32)
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            size += len(chunk)
            sha256.update(chunk)
            blake2.update(chunk)
    return size, sha256.hexdigest(), blake2.hexdigest()


def find_attestations(path: Path, required: bool = True) -> tuple[dict[str, Any], ...]:
    """PEP 740 attestations next to a file, named like twine's: ``{file}.*.attestation``."""
    found = sorted(path.parent.glob(f"{_glob_escape(path.name)}.*.attestation"))
    if not found and required:
        raise LocalCheckError(f"{path}: no attestation found ({path.name}.*.attestation)")
    attestations = []
    for candidate in found:
        try:
            document = json.loads(candidate.read_text())
        except (OSError, ValueError) as exc:
            raise LocalCheckError(f"{candidate}: not a readable JSON attestation: {exc}") from None
        if not isinstance(document, dict):
            raise LocalCheckError(f"{candidate}: an attestation must be a JSON object")
        attestations.append(document)
    return tuple(attestations)


def _glob_escape(text: str) -> str:
    return "".join(f"[{char}]" if char in "*?[]" else char for char in text)


async def inspect_distribution(
    path: Path, *, attestations: bool | Literal["found"] = False
) -> Distribution:
    """Check one file and describe it; :class:`LocalCheckError` names what is wrong.
    ``attestations``: True requires them beside the file (twine's ``--attestations``),
    "found" takes those there are (as ``uv publish`` does), False none."""
    try:
        parsed = parse_filename(path.name)
    except FilenameError as exc:
        raise LocalCheckError(f"{path}: {exc.detail}") from None
    try:
        reader = LocalFile(path)
        extracted = await extract_metadata(reader, path.name)
        check_identity(extracted, parsed.name, str(parsed.version))
    except DistributionError as exc:
        raise LocalCheckError(f"{path}: {exc.message}") from None
    except OSError as exc:
        raise LocalCheckError(f"{path}: {exc.strerror or exc}") from None
    size, sha256, blake2 = await asyncio.to_thread(_hash_file, path)
    metadata = extracted.metadata
    raw_version = _raw_field(extracted.raw, "Version") or str(metadata.version)
    return Distribution(
        path=path,
        filename=path.name,
        name=metadata.name,
        normalized_name=parsed.name,
        version=parsed.version,
        version_text=raw_version,
        size=size,
        sha256=sha256,
        blake2_256=blake2,
        metadata=extracted.raw,
        attestations=find_attestations(path, attestations is True) if attestations else (),
    )


def _raw_field(raw: bytes, name: str) -> str | None:
    from packaging.metadata import parse_email

    parsed, _ = parse_email(raw)
    value = parsed.get(name.lower())
    return value if isinstance(value, str) else None


async def inspect_distributions(
    paths: Sequence[Path], *, attestations: bool | Literal["found"] = False
) -> list[Distribution]:
    """Every file checked (a few at a time); the first failure in command-line order wins."""
    limit = asyncio.Semaphore(4)

    async def one(path: Path) -> Distribution | LocalCheckError:
        async with limit:
            try:
                return await inspect_distribution(path, attestations=attestations)
            except LocalCheckError as exc:
                return exc

    results = await asyncio.gather(*(one(path) for path in paths))
    for result in results:
        if isinstance(result, LocalCheckError):
            raise result
    return [result for result in results if isinstance(result, Distribution)]


def group_releases(distributions: Iterable[Distribution]) -> list[Release]:
    """One release per (normalized name, version), in order of first appearance.

    PEP 694 ties a publishing session to one name and version, so ``foo-1.0.tar.gz
    foo-2.0.tar.gz bar-1.0.tar.gz`` is three sessions. ``1.0`` and ``1.0.0`` are the same
    version. Within a release, wheels come before the sdist (the order the legacy fallback
    uploads them in, so an installer never sees an sdist-only release).
    """
    releases: dict[tuple[str, Version], Release] = {}
    for dist in distributions:
        key = (dist.normalized_name, dist.version)
        if key not in releases:
            releases[key] = Release(dist.name, dist.version_text, [])
        releases[key].files.append(dist)
    for release in releases.values():
        release.files.sort(key=lambda dist: not dist.is_wheel)
    return list(releases.values())
