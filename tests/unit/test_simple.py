"""The stage's simple-API rendering and negotiation (PEP 503, 658, 691, 700, 714)."""

from __future__ import annotations

import json

import pytest

from gateway.stage.simple import (
    HTML_LEGACY,
    HTML_V1,
    JSON_V1,
    StagedFile,
    negotiate,
    project_page,
)

FILE = StagedFile(
    filename="demo-1.0-py3-none-any.whl",
    url="https://h/stage/t/+files/demo-1.0-py3-none-any.whl",
    sha256="a" * 64,
    size=42,
    requires_python=">=3.8",
    metadata_sha256="b" * 64,
    upload_time="2030-01-01T00:00:00Z",
)


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, HTML_LEGACY),
        ("", HTML_LEGACY),
        ("*/*", HTML_LEGACY),
        (JSON_V1, JSON_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        (HTML_V1, HTML_V1),
        # pip's own header
        (
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
            "text/html; q=0.01",
            JSON_V1,
        ),
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4", HTML_LEGACY),
        ("text/plain", None),
        ("application/vnd.pypi.simple.v2+json", None),
        (f"{JSON_V1};q=0", None),
    ],
)
def test_negotiate(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept) == chosen


def test_json_project_page() -> None:
    page = json.loads(project_page("demo", ["1.0"], [FILE], JSON_V1))
    assert page["meta"] == {"api-version": "1.1"}
    assert page["versions"] == ["1.0"]
    [entry] = page["files"]
    assert entry["hashes"] == {"sha256": "a" * 64}
    assert entry["core-metadata"] == entry["dist-info-metadata"] == {"sha256": "b" * 64}
    assert entry["requires-python"] == ">=3.8"
    assert entry["size"] == 42


def test_html_project_page_escapes_everything() -> None:
    hostile = StagedFile(
        **{**FILE.__dict__, "requires_python": '">&<script>', "filename": "<b>.whl"}
    )
    html = project_page("demo", ["1.0"], [hostile], HTML_LEGACY)
    assert "<script>" not in html
    assert "<b>" not in html
    assert 'data-requires-python="&quot;&gt;&amp;&lt;script&gt;"' in html
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    assert f'data-core-metadata="sha256={"b" * 64}"' in html
