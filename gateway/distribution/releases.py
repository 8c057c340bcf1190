"""A release's project name and version, normalized as they are kept."""

from __future__ import annotations

from packaging.utils import InvalidName, canonicalize_name, is_normalized_name
from packaging.version import InvalidVersion, Version

from gateway.distribution.errors import RuleBroken

MAX_NAME_LENGTH = 200
MAX_VERSION_LENGTH = 100


def normalize_release(name: str, version: str) -> tuple[str, str]:
    """PEP 503-normalized name and PEP 440-normalized version, or the field that is not."""
    # Both end up in S3 keys (at most 1024 bytes); no real project comes near these bounds.
    if len(name) > MAX_NAME_LENGTH:
        raise RuleBroken(
            "invalid-name",
            f"a project name has at most {MAX_NAME_LENGTH} characters",
            source="name",
        )
    if len(version) > MAX_VERSION_LENGTH:
        raise RuleBroken(
            "invalid-version",
            f"a version has at most {MAX_VERSION_LENGTH} characters",
            source="version",
        )
    try:
        normalized = canonicalize_name(name, validate=True)
    except InvalidName:
        raise RuleBroken(
            "invalid-name", f"{name!r} is not a valid project name", source="name"
        ) from None
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise RuleBroken(
            "invalid-version", f"{version!r} is not a valid PEP 440 version", source="version"
        ) from None
    assert is_normalized_name(normalized)
    return normalized, str(parsed)
