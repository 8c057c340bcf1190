"""Distribution filenames (R-F2) and declared hashes (R-F3): validated before any byte moves."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from gateway.distribution.errors import RuleBroken
from gateway.protocol.models import WEAK_HASHES

_HEX = re.compile(r"[0-9a-f]+")


class FilenameError(RuleBroken):
    """A filename or declared hash the packaging rules refuse."""


@dataclass(frozen=True)
class DistributionFilename:
    filename: str
    name: str  # normalized
    version: Version


def parse_filename(filename: str) -> DistributionFilename:
    if "/" in filename or "\\" in filename or filename != filename.strip():
        raise FilenameError("invalid-filename", f"{filename!r} is not a bare filename", "filename")
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            return DistributionFilename(filename, name, version)
        if filename.endswith(".tar.gz"):
            name, version = parse_sdist_filename(filename)
            return DistributionFilename(filename, name, version)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise FilenameError("invalid-filename", str(exc), "filename") from None
    raise FilenameError(
        "invalid-filename",
        f"{filename!r} is neither a wheel (.whl) nor an sdist (.tar.gz)",
        "filename",
    )


def check_release(parsed: DistributionFilename, name: str, version: str) -> None:
    """The filename must name the session's release (after normalization)."""
    if parsed.name != canonicalize_name(name):
        raise FilenameError(
            "filename-mismatch",
            f"{parsed.filename} is for project {parsed.name}, this session is for {name}",
            "filename",
        )
    if parsed.version != Version(version):
        raise FilenameError(
            "filename-mismatch",
            f"{parsed.filename} is for version {parsed.version}, this session is for {version}",
            "filename",
        )


def normalize_hashes(hashes: dict[str, str]) -> dict[str, str]:
    """Canonical algorithm name → lowercase hex digest; 400 for anything unusable."""
    normalized: dict[str, str] = {}
    for algorithm, digest in hashes.items():
        source = f"hashes.{algorithm}"
        try:
            hasher = hashlib.new(algorithm.lower())
        except (ValueError, TypeError):
            raise FilenameError(
                "invalid-hash", f"unknown hash algorithm {algorithm!r}", source
            ) from None
        if hasher.digest_size == 0:  # shake_*: no fixed length to compare against
            raise FilenameError("invalid-hash", f"{algorithm} has no fixed digest size", source)
        digest = digest.lower()
        if len(digest) != 2 * hasher.digest_size or not _HEX.fullmatch(digest):
            raise FilenameError(
                "invalid-hash",
                f"{algorithm} digest must be {2 * hasher.digest_size} hex characters",
                source,
            )
        if normalized.setdefault(hasher.name, digest) != digest:
            # "SHA256" and "sha256" are one algorithm: two different digests cannot both be valid.
            raise FilenameError(
                "invalid-hash", f"two different {hasher.name} digests are declared", source
            )
    if not any(
        name in hashlib.algorithms_guaranteed and name not in WEAK_HASHES for name in normalized
    ):
        raise FilenameError(
            "invalid-hash",
            "at least one secure hash from hashlib.algorithms_guaranteed is required "
            "(sha256 recommended)",
            "hashes",
        )
    return normalized


def version_of(filename: str) -> str | None:
    """The version a distribution's filename names, or None for a name that is not one (an
    index may list anything: the read path lists it without a version)."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def project_of(filename: str) -> str | None:
    """The normalized project a distribution's filename names, or None."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
