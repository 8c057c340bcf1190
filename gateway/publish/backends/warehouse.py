"""Any PyPI-compatible index: the standard simple API, PEP 691 JSON or PEP 503 HTML.

The parsers here are shared with the other profiles; they raise ValueError on a document
they cannot read, which the backend turns into BackendInvalidResponse naming the URL.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import ClassVar
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from gateway.publish.backends.base import Backend, Document, IndexFile, Listing, project_path

__all__ = [
    "SIMPLE_ACCEPT",
    "WarehouseBackend",
    "filename_from_href",
    "normalize_sha256",
    "parse_release_files",
    "parse_simple_html",
    "parse_simple_json",
    "parse_simple_listing",
]

# JSON preferred; HTML is what an older index (or pypiserver) will answer anyway.
SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"

_JSON_TYPES = frozenset(
    {
        "application/vnd.pypi.simple.v1+json",
        "application/vnd.pypi.simple.latest+json",
        "application/json",
    }
)
_HTML_TYPES = frozenset(
    {
        "text/html",
        "application/vnd.pypi.simple.v1+html",
        "application/vnd.pypi.simple.latest+html",
    }
)
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class WarehouseBackend(Backend):
    kind: ClassVar[str] = "warehouse"

    def listing_url(self, project: str) -> str:
        return f"{self.simple_url}{project_path(project)}/"

    async def published_files(self, project: str) -> Listing:
        document = await self.fetch(self.listing_url(project), accept=SIMPLE_ACCEPT)
        if document is None:
            return {}
        return self.parse(document, parse_simple_listing)

    async def release_files(self, project: str) -> list[IndexFile]:
        document = await self.fetch(self.listing_url(project), accept=SIMPLE_ACCEPT)
        return [] if document is None else self.parse(document, parse_release_files)


def parse_simple_listing(document: Document) -> Listing:
    """Pick the parser by the media type the index chose to answer with."""
    if document.content_type in _JSON_TYPES:
        return parse_simple_json(json.loads(document.body))
    if document.content_type in _HTML_TYPES:
        return parse_simple_html(document.text())
    raise ValueError(f"unexpected media type {document.content_type!r}")


def parse_release_files(document: Document) -> list[IndexFile]:
    """Every file of a PEP 691 or PEP 503 project page, with absolute URLs and PEP 658 hints."""
    if document.content_type in _JSON_TYPES:
        page = json.loads(document.body)
        entries = page.get("files") if isinstance(page, dict) else None
        if not isinstance(entries, list):
            raise ValueError("'files' is not a list")
        links = [(e.get("url"), e) for e in entries if isinstance(e, dict)]
        hinted = {"core-metadata", "dist-info-metadata"}
    elif document.content_type in _HTML_TYPES:
        collector = _AnchorCollector()
        collector.feed(document.text())
        collector.close()
        links = [(attrs.get("href"), attrs) for attrs in collector.anchors]
        hinted = {"data-core-metadata", "data-dist-info-metadata"}
    else:
        raise ValueError(f"unexpected media type {document.content_type!r}")
    files: list[IndexFile] = []
    for href, attributes in links:
        if not isinstance(href, str) or not filename_from_href(href):
            continue
        url, fragment = urldefrag(urljoin(document.url, href))
        sha256 = _fragment_sha256("#" + fragment)
        hashes = attributes.get("hashes")
        if isinstance(hashes, dict):
            sha256 = normalize_sha256(hashes.get("sha256")) or sha256
        # PEP 658/714: a hint that is present and not false means url + ".metadata" exists.
        advertised = any(attributes.get(key) not in (None, False, "false") for key in hinted)
        files.append(
            IndexFile(
                filename_from_href(href), url, sha256, url + ".metadata" if advertised else None
            )
        )
    return files


def parse_simple_json(document: object) -> Listing:
    """The files of a PEP 691 project page."""
    if not isinstance(document, dict):
        raise ValueError("the project page is not a JSON object")
    _check_api_version(document.get("meta"))
    files = document.get("files")
    if not isinstance(files, list):
        raise ValueError("'files' is not a list")
    listing: Listing = {}
    for entry in files:
        filename, sha256 = _json_file(entry)
        listing.setdefault(filename, sha256)
    return listing


def parse_simple_html(text: str) -> Listing:
    """The files of a PEP 503 project page: every anchor's last path segment and sha256."""
    collector = _AnchorCollector()
    collector.feed(text)
    collector.close()
    listing: Listing = {}
    for href in collector.hrefs:
        filename = filename_from_href(href)
        if filename:
            # The first link wins, as it does for pip.
            listing.setdefault(filename, _fragment_sha256(href))
    return listing


def filename_from_href(href: str) -> str:
    """The last path segment, URL-unquoted; '' when the link names a folder."""
    path = urlsplit(href).path
    return unquote(path.rsplit("/", 1)[-1])


def normalize_sha256(value: object) -> str | None:
    """Lowercase hex, or None for anything that is not a sha256 digest."""
    if isinstance(value, str) and _SHA256_HEX.fullmatch(value):
        return value.lower()
    return None


class _AnchorCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        # HTMLParser lowercases names and unescapes values (&amp; -> &) already.
        self.anchors.append(dict(attrs))
        href = dict(attrs).get("href")
        if href:
            self.hrefs.append(href)


def _fragment_sha256(href: str) -> str | None:
    algorithm, _, digest = urlsplit(href).fragment.partition("=")
    return normalize_sha256(digest) if algorithm.lower() == "sha256" else None


def _check_api_version(meta: object) -> None:
    version = meta.get("api-version") if isinstance(meta, dict) else None
    # PEP 691: a client must refuse a major version it does not know.
    if isinstance(version, str) and version.split(".", 1)[0] != "1":
        raise ValueError(f"unsupported simple API version {version!r}")


def _json_file(entry: object) -> tuple[str, str | None]:
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
        raise ValueError("a file entry has no 'filename'")
    hashes = entry.get("hashes")
    sha256 = normalize_sha256(hashes.get("sha256")) if isinstance(hashes, dict) else None
    return entry["filename"], sha256
