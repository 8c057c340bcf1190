"""The index's own simple pages, read with every fact they carry (R-W10): PEP 691 JSON or
PEP 503 HTML, files with their hashes, Requires-Python, yank and metadata hints, so that the
gateway's page agrees with an index that already serves some of them (devpi)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

from gateway.publish.backends.warehouse import filename_from_href, normalize_sha256

JSON_TYPES = frozenset({"application/vnd.pypi.simple.v1+json", "application/json"})
HTML_TYPES = frozenset({"text/html", "application/vnd.pypi.simple.v1+html"})
# What the read path asks the index for: JSON carries more, HTML is what every index has.
INDEX_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.1"
)


@dataclass(frozen=True)
class ListedFile:
    """A file as the index lists it; ``url`` absolute (the index's own address)."""

    filename: str
    url: str
    sha256: str | None
    requires_python: str | None = None
    yanked: bool | str = False
    metadata_sha256: str | None = None
    size: int | None = None
    upload_time: str | None = None


def parse_project(
    body: bytes, charset: str | None, content_type: str, url: str
) -> list[ListedFile]:
    """The files of a project page; ValueError for a page that is neither JSON nor HTML."""
    if content_type in JSON_TYPES:
        page = json.loads(body)
        entries = page.get("files") if isinstance(page, dict) else None
        if not isinstance(entries, list):
            raise ValueError("the project page has no 'files' list")
        return [f for f in (_json_file(e, url) for e in entries) if f is not None]
    if content_type in HTML_TYPES:
        anchors = _anchors(body.decode(charset or "utf-8", errors="replace"))
        return [f for f in (_html_file(a, url) for a, _ in anchors) if f is not None]
    raise ValueError(f"the index answered {content_type or 'no media type'}, not a simple page")


def parse_root(body: bytes, charset: str | None, content_type: str) -> list[str]:
    """The project names of a root page, as the index spells them."""
    if content_type in JSON_TYPES:
        page = json.loads(body)
        projects = page.get("projects") if isinstance(page, dict) else None
        if not isinstance(projects, list):
            raise ValueError("the root page has no 'projects' list")
        return [
            p["name"] for p in projects if isinstance(p, dict) and isinstance(p.get("name"), str)
        ]
    if content_type in HTML_TYPES:
        anchors = _anchors(body.decode(charset or "utf-8", errors="replace"))
        return [text.strip() for _, text in anchors if text.strip()]
    raise ValueError(f"the index answered {content_type or 'no media type'}, not a simple page")


def _json_file(entry: object, page_url: str) -> ListedFile | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        return None
    url, fragment = urldefrag(urljoin(page_url, entry["url"]))
    filename = entry.get("filename") or filename_from_href(url)
    hashes = entry.get("hashes")
    sha256 = normalize_sha256(hashes.get("sha256")) if isinstance(hashes, dict) else None
    metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
    yanked = entry.get("yanked", False)
    size = entry.get("size")
    upload_time = entry.get("upload-time")
    return ListedFile(
        filename=str(filename),
        url=url,
        sha256=sha256 or _fragment_sha256(fragment),
        requires_python=_text(entry.get("requires-python")),
        yanked=yanked if isinstance(yanked, str | bool) else False,
        metadata_sha256=normalize_sha256(metadata.get("sha256"))
        if isinstance(metadata, dict)
        else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        upload_time=_text(upload_time),
    )


def _html_file(attributes: dict[str, str | None], page_url: str) -> ListedFile | None:
    href = attributes.get("href")
    if not href or not filename_from_href(href):
        return None
    url, fragment = urldefrag(urljoin(page_url, href))
    yanked: bool | str = False
    if "data-yanked" in attributes:
        yanked = attributes["data-yanked"] or True
    metadata = attributes.get("data-core-metadata", attributes.get("data-dist-info-metadata"))
    algorithm, _, digest = (metadata or "").partition("=")
    return ListedFile(
        filename=filename_from_href(href),
        url=url,
        sha256=_fragment_sha256(fragment),
        requires_python=_text(attributes.get("data-requires-python")),
        yanked=yanked,
        metadata_sha256=normalize_sha256(digest) if algorithm == "sha256" else None,
    )


def _fragment_sha256(fragment: str) -> str | None:
    algorithm, _, digest = fragment.partition("=")
    return normalize_sha256(digest) if algorithm.lower() == "sha256" else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _anchors(text: str) -> list[tuple[dict[str, str | None], str]]:
    collector = _Anchors()
    collector.feed(text)
    collector.close()
    return collector.anchors


class _Anchors(HTMLParser):
    """Every anchor's attributes (names lowercased, values unescaped) and text; an anchor
    never closed still counts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._found: list[tuple[dict[str, str | None], list[str]]] = []
        self._open: list[str] | None = None

    @property
    def anchors(self) -> list[tuple[dict[str, str | None], str]]:
        return [(attributes, "".join(text)) for attributes, text in self._found]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = []
            self._found.append((dict(attrs), self._open))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open = None
