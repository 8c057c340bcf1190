"""devpi: the index's own files, read from its JSON project view with ``?ignore_bases``.

devpi's simple page (``/<user>/<index>/+simple/<project>/``) also lists files inherited from
base indexes, which this index never received and cannot conflict with; the project view
``/<user>/<index>/<project>?ignore_bases`` lists only the index's own releases:

    {"type": "projectconfig",
     "result": {"1.0": {"name": ..., "version": "1.0", ...,
                        "+links": [{"rel": "releasefile",
                                    "href": "http://host/user/index/+f/aa7/72963f5127384/x.whl",
                                    "hash_spec": "sha256=<hex>",
                                    "hashes": {"sha256": "<hex>"},
                                    "log": [...]}]}}}
"""

from __future__ import annotations

import json
from typing import ClassVar

import aiohttp

from gateway.outbound import Hop
from gateway.publish.backends.base import (
    MAX_LISTING_BYTES,
    Backend,
    Document,
    IndexFile,
    Listing,
    project_path,
)
from gateway.publish.backends.warehouse import filename_from_href, normalize_sha256
from gateway.settings import BackendSettings

__all__ = ["DevpiBackend", "devpi_index_url", "parse_devpi_project"]

_SIMPLE_SUFFIX = "+simple/"


class DevpiBackend(Backend):
    kind: ClassVar[str] = "devpi"

    def __init__(
        self,
        settings: BackendSettings,
        http: aiohttp.ClientSession,
        hop: Hop | None = None,
        *,
        max_listing_bytes: int = MAX_LISTING_BYTES,
    ) -> None:
        super().__init__(settings, http, hop, max_listing_bytes=max_listing_bytes)
        self.index_url = devpi_index_url(self.simple_url)

    def listing_url(self, project: str) -> str:
        return f"{self.index_url}{project_path(project)}"

    async def published_files(self, project: str) -> Listing:
        # devpi's redirect to the normalized name drops the query; fetch puts it back.
        document = await self.fetch(
            self.listing_url(project), accept="application/json", query="ignore_bases"
        )
        if document is None:
            return {}
        return self.parse(document, _parse_json)

    async def release_files(self, project: str) -> list[IndexFile]:
        document = await self.fetch(
            self.listing_url(project), accept="application/json", query="ignore_bases"
        )
        return [] if document is None else self.parse(document, _release_files)


def devpi_index_url(simple_url: str) -> str:
    """``http://host/user/index/+simple/`` -> ``http://host/user/index/``."""
    if not simple_url.endswith(_SIMPLE_SUFFIX):
        raise ValueError(
            f"a devpi simple_url ends with /<user>/<index>/{_SIMPLE_SUFFIX}, not {simple_url!r}"
        )
    return simple_url.removesuffix(_SIMPLE_SUFFIX)


def parse_devpi_project(document: object) -> Listing:
    """The release files of every version in a devpi project view."""
    versions = document.get("result") if isinstance(document, dict) else None
    if not isinstance(versions, dict):
        raise ValueError("the project view has no 'result' object")
    listing: Listing = {}
    for version_data in versions.values():
        links = version_data.get("+links") if isinstance(version_data, dict) else None
        for link in links if isinstance(links, list) else []:
            release = _release_file(link)
            if release is not None:
                listing.setdefault(*release)
    return listing


def _parse_json(document: Document) -> Listing:
    return parse_devpi_project(json.loads(document.body))


def _release_files(document: Document) -> list[IndexFile]:
    """The release files of every version, with their download URLs (absolute in devpi)."""
    parsed = json.loads(document.body)
    versions = parsed.get("result") if isinstance(parsed, dict) else None
    if not isinstance(versions, dict):
        raise ValueError("the project view has no 'result' object")
    files: list[IndexFile] = []
    for version_data in versions.values():
        links = version_data.get("+links") if isinstance(version_data, dict) else None
        for link in links if isinstance(links, list) else []:
            release = _release_file(link)
            if release is not None:
                files.append(IndexFile(release[0], link["href"], release[1]))
    return files


def _release_file(link: object) -> tuple[str, str | None] | None:
    # Other rels (doczip, toxresult) are not distributions.
    if not isinstance(link, dict) or link.get("rel") != "releasefile":
        return None
    href = link.get("href")
    filename = filename_from_href(href) if isinstance(href, str) else ""
    if not filename:
        raise ValueError("a release file link has no usable 'href'")
    return filename, _link_sha256(link)


def _link_sha256(link: dict[str, object]) -> str | None:
    hashes = link.get("hashes")
    if isinstance(hashes, dict) and "sha256" in hashes:
        return normalize_sha256(hashes["sha256"])
    # Older devpi releases only give "hash_spec" (earlier still "hashspec"), "<algo>=<hex>".
    spec = link.get("hash_spec", link.get("hashspec"))
    if isinstance(spec, str):
        algorithm, _, digest = spec.partition("=")
        if algorithm == "sha256":
            return normalize_sha256(digest)
    return None
