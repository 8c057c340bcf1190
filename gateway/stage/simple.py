"""The simple repository API: PEP 503 HTML and PEP 691 JSON, with the PEP 658/714 metadata
hints, PEP 592 yank and PEP 700 fields. Rendered for a stage (one project, one version) and for
the read path in front of the index (R-W10). Pure rendering, no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from gateway.protocol.media import parse_accept

SIMPLE_API_VERSION = "1.1"
# What a page says when a file's size is not known: PEP 700's fields are then not all there.
_API_VERSION_WITHOUT_SIZES = "1.0"
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML_LEGACY = "text/html"
_JSON_LATEST = "application/vnd.pypi.simple.latest+json"
_HTML_LATEST = "application/vnd.pypi.simple.latest+html"

# What an Accept media range may name, and the representation it gets. Listed in our order of
# preference for ties: JSON is the richer one.
_REPRESENTATIONS = {
    JSON_V1: JSON_V1,
    _JSON_LATEST: JSON_V1,
    HTML_V1: HTML_V1,
    _HTML_LATEST: HTML_V1,
    HTML_LEGACY: HTML_LEGACY,
}


# Warehouse's ``?format=`` values, which win over Accept (links can carry them, headers not).
_FORMATS = {"json": JSON_V1, "html": HTML_V1}


@dataclass(frozen=True)
class StagedFile:
    """One file as a page lists it; None where nobody knows (an index file never read)."""

    filename: str
    url: str
    sha256: str | None
    size: int | None
    requires_python: str | None
    metadata_sha256: str | None
    upload_time: str | None
    yanked: bool | str = False  # PEP 592: a reason, or True without one
    provenance: str | None = None  # PEP 740: where the file's provenance object is


def negotiate(accept: str | None) -> str | None:
    """The content type to answer with (PEP 691 server-driven negotiation), or None (406)."""
    if not accept or not accept.strip():
        return HTML_LEGACY
    best: tuple[float, int, str] | None = None
    for position, (media, quality) in enumerate(parse_accept(accept)):
        if quality <= 0:
            continue
        chosen: str | None
        if media in ("*/*", "application/*"):
            chosen = HTML_LEGACY if media == "*/*" else JSON_V1
        elif media == "text/*":
            chosen = HTML_LEGACY
        else:
            chosen = _REPRESENTATIONS.get(media)
        if chosen is None:
            continue
        candidate = (quality, -position, chosen)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None


def negotiate_request(format_query: str | None, accept: str | None) -> str | None:
    """``?format=json|html`` as Warehouse takes it, else the Accept header; None is 406."""
    if format_query is not None:
        return _FORMATS.get(format_query.lower())
    return negotiate(accept)


def root_page(
    project: str, project_url: str, content_type: str, preview_url: str | None = None
) -> str:
    if content_type == JSON_V1:
        return json.dumps(
            {"meta": {"api-version": SIMPLE_API_VERSION}, "projects": [{"name": project}]}
        )
    body = f'<a href="{escape(project_url)}">{escape(project)}</a><br/>'
    if preview_url is None:
        return _html("Simple index", body)
    # A button, not an anchor: tools read every anchor of a PEP 503 root as a project.
    body += (
        f'\n<form action="{escape(preview_url)}" method="get">'
        '<button type="submit">Preview this release</button></form>'
    )
    head = f'<link rel="alternate" type="text/html" title="Preview" href="{escape(preview_url)}">\n'
    return _html("Simple index", body, head)


def index_root_page(projects: Sequence[tuple[str, str]], content_type: str) -> str:
    """The root of an index: (name, project page URL) of every project."""
    if content_type == JSON_V1:
        return json.dumps(
            {
                "meta": {"api-version": SIMPLE_API_VERSION},
                "projects": [{"name": name} for name, _ in projects],
            }
        )
    links = "\n".join(f'<a href="{escape(url)}">{escape(name)}</a><br/>' for name, url in projects)
    return _html("Simple index", links)


def project_page(
    project: str, versions: Sequence[str], files: Sequence[StagedFile], content_type: str
) -> str:
    known_sizes = all(f.size is not None for f in files)
    api_version = SIMPLE_API_VERSION if known_sizes else _API_VERSION_WITHOUT_SIZES
    if content_type == JSON_V1:
        page: dict[str, object] = {"meta": {"api-version": api_version}, "name": project}
        if known_sizes:
            page["versions"] = list(versions)
        page["files"] = [_json_file(f) for f in files]
        return json.dumps(page)
    links = "\n".join(_html_link(f) for f in files)
    return _html(f"Links for {escape(project)}", links, api_version=api_version)


def _json_file(file: StagedFile) -> dict[str, object]:
    entry: dict[str, object] = {
        "filename": file.filename,
        "url": file.url,
        "hashes": {"sha256": file.sha256} if file.sha256 else {},
    }
    if file.size is not None:
        entry["size"] = file.size
    if file.upload_time:
        entry["upload-time"] = file.upload_time
    if file.yanked:
        entry["yanked"] = file.yanked
    if file.provenance:
        entry["provenance"] = file.provenance
    if file.requires_python:
        entry["requires-python"] = file.requires_python
    if file.metadata_sha256:
        # PEP 714 renamed the key; the old one stays for installers that predate it.
        entry["core-metadata"] = {"sha256": file.metadata_sha256}
        entry["dist-info-metadata"] = {"sha256": file.metadata_sha256}
    return entry


def _html_link(file: StagedFile) -> str:
    fragment = f"#sha256={file.sha256}" if file.sha256 else ""
    attributes = [f'href="{escape(file.url)}{fragment}"']
    if file.requires_python:
        attributes.append(f'data-requires-python="{escape(file.requires_python)}"')
    if file.metadata_sha256:
        value = f"sha256={file.metadata_sha256}"
        attributes.append(f'data-core-metadata="{value}"')
        attributes.append(f'data-dist-info-metadata="{value}"')
    if file.yanked:
        reason = file.yanked if isinstance(file.yanked, str) else ""
        attributes.append(f'data-yanked="{escape(reason)}"')
    if file.provenance:
        attributes.append(f'data-provenance="{escape(file.provenance)}"')
    return f"<a {' '.join(attributes)}>{escape(file.filename)}</a><br/>"


def _html(title: str, body: str, head: str = "", api_version: str = SIMPLE_API_VERSION) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{api_version}">\n'
        f"{head}<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    )
