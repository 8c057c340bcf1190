"""The preview page of a stage: the release as the index's project page will show it.

Pure rendering of a ``Preview`` into HTML. All metadata is attacker-controlled: every value
is escaped here, links are made only from http(s) URLs, and the description is the
sanitized HTML of ``readme_renderer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from packaging.metadata import Metadata

from gateway.distribution.checks import Finding, valid_url
from gateway.distribution.readme import RenderedDescription
from gateway.stage.compare import Change, Comparison
from gateway.stage.page import PAGE

__all__ = ["Preview", "PreviewFile", "render_page"]

_NONE = '<span class="muted">none</span>'


@dataclass(frozen=True)
class PreviewFile:
    filename: str
    url: str
    size: int
    sha256: str
    tags: list[str]  # the wheel's tags, or ["source"] for the sdist
    attestations: bool
    refusals: list[Finding] = field(default_factory=list)
    publisher: str | None = None  # whom its attestations verifiably name (R-W11)


@dataclass(frozen=True)
class Preview:
    project: str
    version: str
    stage_url: str
    expires_at: str
    files: list[PreviewFile]
    metadata: Metadata | None  # of the first file the publish sends (the index keeps it)
    metadata_from: str | None
    description: RenderedDescription | None
    comparison: Comparison | None
    comparison_note: str | None  # why there is no comparison, or what went wrong
    refused_at_completion: bool  # the index checks run at completion (backend.index_checks)
    differing_fields: list[str] = field(default_factory=list)  # between the files' metadata


def render_page(preview: Preview) -> str:
    metadata = preview.metadata
    requirement = f"{preview.project}=={preview.version}"
    return PAGE.substitute(
        project=escape(preview.project),
        version=escape(preview.version),
        expires=escape(preview.expires_at),
        summary=escape(metadata.summary or "") if metadata else "",
        warnings=_warnings(preview),
        pip=escape(f"pip install --extra-index-url {preview.stage_url} {requirement}"),
        uv=escape(f"uv pip install --extra-index-url {preview.stage_url} {requirement}"),
        simple_url=escape(preview.stage_url + preview.project + "/"),
        description=_description(preview.description),
        metadata=_metadata(metadata) if metadata else "",
        files=_files(preview.files),
        comparison=_comparison(preview.comparison, preview.comparison_note),
    )


def _warnings(preview: Preview) -> str:
    parts: list[str] = []
    description = preview.description
    if description is not None and description.html is None:
        parts.append(
            '<div class="warning" id="description-warning" role="alert">'
            "<h2>The description does not render</h2>"
            f"<p>{escape(description.failure())}</p>"
            "<p>PyPI refuses such a file; fix the description before publishing there.</p></div>"
        )
    if preview.differing_fields:
        parts.append(
            '<div class="warning" id="metadata-differs" role="note">'
            "<h2>The files' metadata differ</h2>"
            f"<p>On: {escape(', '.join(preview.differing_fields))}. The index keeps the "
            f"metadata of the first file published, <code>{escape(preview.metadata_from or '')}"
            "</code>, shown here.</p></div>"
        )
    refused = [(f.filename, r) for f in preview.files for r in f.refusals]
    if refused and not preview.refused_at_completion:
        items = "".join(
            f"<li><code>{escape(name)}</code> ({escape(r.source)}): {escape(r.message)}</li>"
            for name, r in refused
        )
        parts.append(
            '<div class="warning" id="index-checks" role="alert">'
            "<h2>PyPI would refuse these files</h2>"
            f"<ul>{items}</ul></div>"
        )
    return "\n".join(parts)


def _description(description: RenderedDescription | None) -> str:
    if description is None:
        return '<p class="muted">The project has no description.</p>'
    if description.html is None:
        return '<p class="muted">Not rendered: see the warning above.</p>'
    return description.html  # sanitized by readme_renderer


def _metadata(metadata: Metadata) -> str:
    rows = [
        ("Author", _person(metadata.author, metadata.author_email)),
        ("Maintainer", _person(metadata.maintainer, metadata.maintainer_email)),
        ("License", escape(metadata.license_expression or metadata.license or "")),
        ("Requires-Python", _code(str(metadata.requires_python or ""))),
        ("Dependencies", _list([_code(str(r)) for r in metadata.requires_dist or []])),
        ("Extras", _list([_code(str(e)) for e in metadata.provides_extra or []])),
        ("Project links", _links(metadata)),
        ("Classifiers", _list([escape(c) for c in metadata.classifiers or []])),
    ]
    return "\n".join(
        f'<dt>{label}</dt><dd id="{_slug(label)}">{value or _NONE}</dd>' for label, value in rows
    )


def _person(name: str | None, address: str | None) -> str:
    return escape(", ".join(part for part in (name, address) if part))


def _links(metadata: Metadata) -> str:
    urls = dict(metadata.project_urls or {})
    if metadata.home_page:
        urls.setdefault("Homepage", metadata.home_page)
    if metadata.download_url:
        urls.setdefault("Download", metadata.download_url)
    items = []
    for label, url in urls.items():
        # Anything but http(s) (javascript:, data:) stays text.
        target = (
            f'<a href="{escape(url)}" rel="nofollow noopener noreferrer">{escape(url)}</a>'
            if valid_url(url)
            else escape(url)
        )
        items.append(f"{escape(label)}: {target}")
    return _list(items)


def _files(files: list[PreviewFile]) -> str:
    if not files:
        return '<p class="muted">No completed file yet.</p>'
    rows = "\n".join(
        "<tr>"
        f'<td data-label="File"><a href="{escape(f.url)}">{escape(f.filename)}</a></td>'
        f'<td data-label="Size">{_size(f.size)}</td>'
        f'<td data-label="Tags">{", ".join(_code(tag) for tag in f.tags)}</td>'
        f'<td data-label="SHA256" class="hash">{escape(f.sha256)}</td>'
        f'<td data-label="Attestations">{_attested(f)}</td>'
        "</tr>"
        for f in files
    )
    head = "<th>File</th><th>Size</th><th>Tags</th><th>SHA256</th><th>Attestations</th>"
    return (
        f'<div class="table-wrap"><table class="files"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )


def _comparison(comparison: Comparison | None, note: str | None) -> str:
    if comparison is None:
        return f'<h2>Compared with the index</h2><p class="muted">{escape(note or "")}</p>'
    parts = [
        f"<h2>Compared with {escape(comparison.previous_version)}, the latest release on "
        "the index</h2>",
        f'<p class="muted">Its metadata read from <code>{escape(comparison.metadata_from)}'
        "</code>.</p>",
    ]
    if comparison.unchanged:
        parts.append("<p>Same dependencies, Requires-Python, extras and files.</p>")
    changes = comparison.dependencies + comparison.extras
    if comparison.requires_python:
        changes = [comparison.requires_python, *changes]
    if changes:
        parts.append(f'<ul id="changes">{"".join(_change(c) for c in changes)}</ul>')
    if comparison.missing_files:
        files = "".join(
            f"<li><code>{escape(name)}</code></li>" for name in comparison.missing_files
        )
        parts.append(
            f'<h3>Files with no counterpart in this release</h3><ul id="missing-files">{files}</ul>'
        )
    if comparison.missing_platforms:
        names = ", ".join(_code(p) for p in comparison.missing_platforms)
        parts.append(f'<p id="missing-platforms">Platforms no longer covered: {names}</p>')
    return "\n".join(parts)


def _change(change: Change) -> str:
    what = _code(change.what)
    if change.kind == "added":
        return f'<li class="added">added {what}: {_code(change.after or "")}</li>'
    if change.kind == "removed":
        return f'<li class="removed">removed {what}: {_code(change.before or "")}</li>'
    return (
        f'<li class="changed">changed {what}: {_code(change.before or "")} → '
        f"{_code(change.after or '')}</li>"
    )


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>" if text else ""


def _list(items: list[str]) -> str:
    return f"<ul>{''.join(f'<li>{item}</li>' for item in items)}</ul>" if items else ""


def _slug(label: str) -> str:
    return "meta-" + label.lower().replace(" ", "-")


def _attested(file: PreviewFile) -> str:
    if file.publisher:
        return f"verified: {escape(file.publisher)}"
    return "yes" if file.attestations else "no"


def _size(size: int) -> str:
    value, unit = float(size), "bytes"
    for next_unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size} bytes)"
