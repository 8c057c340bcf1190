"""The simple repository API of a stage: PEP 503 HTML and PEP 691 JSON, with the PEP 658/714
metadata hints and PEP 700 sizes, for exactly one project. Pure rendering, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from gateway.protocol.media import parse_accept

SIMPLE_API_VERSION = "1.1"
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


@dataclass(frozen=True)
class StagedFile:
    filename: str
    url: str
    sha256: str
    size: int
    requires_python: str | None
    metadata_sha256: str | None
    upload_time: str
    provenance_url: str | None = None  # PEP 740, for a file with attestations


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


def project_page(project: str, version: str, files: list[StagedFile], content_type: str) -> str:
    if content_type == JSON_V1:
        return json.dumps(
            {
                "meta": {"api-version": SIMPLE_API_VERSION},
                "name": project,
                "versions": [version],
                "files": [_json_file(f) for f in files],
            }
        )
    links = "\n".join(_html_link(f) for f in files)
    return _html(f"Links for {escape(project)}", links)


def _json_file(file: StagedFile) -> dict[str, object]:
    entry: dict[str, object] = {
        "filename": file.filename,
        "url": file.url,
        "hashes": {"sha256": file.sha256},
        "size": file.size,
        "upload-time": file.upload_time,
    }
    if file.requires_python:
        entry["requires-python"] = file.requires_python
    if file.metadata_sha256:
        # PEP 714 renamed the key; the old one stays for installers that predate it.
        entry["core-metadata"] = {"sha256": file.metadata_sha256}
        entry["dist-info-metadata"] = {"sha256": file.metadata_sha256}
    if file.provenance_url:
        entry["provenance"] = file.provenance_url
    return entry


def _html_link(file: StagedFile) -> str:
    attributes = [f'href="{escape(file.url)}#sha256={file.sha256}"']
    if file.requires_python:
        attributes.append(f'data-requires-python="{escape(file.requires_python)}"')
    if file.metadata_sha256:
        value = f"sha256={file.metadata_sha256}"
        attributes.append(f'data-core-metadata="{value}"')
        attributes.append(f'data-dist-info-metadata="{value}"')
    if file.provenance_url:
        attributes.append(f'data-provenance="{escape(file.provenance_url)}"')
    return f"<a {' '.join(attributes)}>{escape(file.filename)}</a><br/>"


def _html(title: str, body: str, head: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{SIMPLE_API_VERSION}">\n'
        f"{head}<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    )
