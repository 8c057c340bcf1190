"""The index's simple pages as the read path reads them (R-W10): every fact kept."""

from __future__ import annotations

import json

import pytest

from gateway.proxy.listing import ListedFile, parse_project, parse_root

PAGE = "http://index/simple/demo/"
SHA = "ab" * 32


def test_html_keeps_every_fact_the_index_gives() -> None:
    html = (
        f'<a href="../../packages/demo-1.0.tar.gz#sha256={SHA}" '
        'data-requires-python="&gt;=3.8" data-yanked="bad build" '
        f'data-dist-info-metadata="sha256={SHA}">demo-1.0.tar.gz</a>'
        '<a href="demo-2.0-py3-none-any.whl">demo-2.0-py3-none-any.whl</a>'
        '<a href="../">up</a>'
    )
    assert parse_project(html.encode(), None, "text/html", PAGE) == [
        ListedFile(
            "demo-1.0.tar.gz",
            "http://index/packages/demo-1.0.tar.gz",
            SHA,
            requires_python=">=3.8",
            yanked="bad build",
            metadata_sha256=SHA,
        ),
        ListedFile("demo-2.0-py3-none-any.whl", PAGE + "demo-2.0-py3-none-any.whl", None),
    ]


def test_json_keeps_every_fact_the_index_gives() -> None:
    page = {
        "meta": {"api-version": "1.1"},
        "files": [
            {
                "filename": "demo-1.0-py3-none-any.whl",
                "url": "/f/demo-1.0-py3-none-any.whl",
                "hashes": {"sha256": SHA.upper()},
                "requires-python": ">=3.9",
                "yanked": True,
                "core-metadata": {"sha256": SHA},
                "size": 12,
                "upload-time": "2030-01-01T00:00:00Z",
            },
            "not a file",
        ],
    }
    [listed] = parse_project(
        json.dumps(page).encode(), None, "application/vnd.pypi.simple.v1+json", PAGE
    )
    assert listed == ListedFile(
        "demo-1.0-py3-none-any.whl",
        "http://index/f/demo-1.0-py3-none-any.whl",
        SHA,
        ">=3.9",
        True,
        SHA,
        12,
        "2030-01-01T00:00:00Z",
    )


def test_an_answer_that_is_no_simple_page_is_refused() -> None:
    with pytest.raises(ValueError, match="not a simple page"):
        parse_project(b"boom", None, "text/plain", PAGE)
    with pytest.raises(ValueError, match="'files'"):
        parse_project(b"{}", None, "application/vnd.pypi.simple.v1+json", PAGE)
    with pytest.raises(json.JSONDecodeError):
        parse_project(b"{not json", None, "application/json", PAGE)


def test_root_names_from_html_and_json() -> None:
    html = b'<a href="/simple/a/">A_b</a>\n<a href="/simple/c/"> c </a>'
    assert parse_root(html, None, "text/html") == ["A_b", "c"]
    page = {"meta": {}, "projects": [{"name": "x"}, {"nope": 1}]}
    assert parse_root(json.dumps(page).encode(), None, "application/json") == ["x"]
