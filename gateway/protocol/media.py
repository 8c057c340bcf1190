"""Media types of the Upload 2.0 API and server-driven content negotiation (PEP 694, R-G2..G4)."""

from __future__ import annotations

import re

UPLOAD_V2_JSON = "application/vnd.pypi.upload.v2+json"
UPLOAD_LATEST_JSON = "application/vnd.pypi.upload.latest+json"
PROBLEM_JSON = "application/problem+json"
OCTET_STREAM = "application/octet-stream"
# What an append request of the resumable-uploads draft carries.
PARTIAL_UPLOAD = "application/partial-upload"

API_VERSION = "2.0"
API_MAJOR = "2"

_SERVED = {UPLOAD_V2_JSON, UPLOAD_LATEST_JSON}
# ASCII digits only, and the whole string: ``$`` alone would also accept "2.0\n".
_API_VERSION = re.compile(r"([0-9]+)\.([0-9]+)")


def parse_accept(header: str) -> list[tuple[str, float]]:
    """(media range, quality) pairs of an ``Accept`` header, in the order given."""
    ranges = []
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    return ranges


def accepts_upload_json(accept: str | None) -> bool:
    """Whether an ``Accept`` header admits the one representation this server produces."""
    if accept is None or not accept.strip():
        return True
    for media, quality in parse_accept(accept):
        if quality <= 0:
            continue
        if media in _SERVED or media in ("*/*", "application/*"):
            return True
    return False


def api_major(version: str) -> str | None:
    """The major part of a ``meta.api-version`` string, or None when it is malformed."""
    match = _API_VERSION.fullmatch(version)
    return match.group(1) if match else None


def media_type(content_type_header: str | None) -> str:
    return (content_type_header or "").split(";")[0].strip().lower()
