"""The listing parsers of the backend profiles, on small literal documents."""

from __future__ import annotations

import json

import pytest

from gateway.publish.backends.base import Document, project_path
from gateway.publish.backends.devpi import devpi_index_url, parse_devpi_project
from gateway.publish.backends.warehouse import (
    filename_from_href,
    parse_simple_html,
    parse_simple_json,
    parse_simple_listing,
)

A = "a" * 64
B = "b" * 64


# --- PEP 503 HTML -----------------------------------------------------------------


def test_html_pypiserver_page() -> None:
    page = f"""<!DOCTYPE html><html><body><h1>Links for demo</h1>
        <a href="/packages/demo-1.0-py3-none-any.whl#sha256={A}">demo-1.0-py3-none-any.whl</a><br>
        <a href="/packages/demo-1.0.tar.gz#sha256={B}">demo-1.0.tar.gz</a><br>
    </body></html>"""
    assert parse_simple_html(page) == {"demo-1.0-py3-none-any.whl": A, "demo-1.0.tar.gz": B}


def test_html_filename_comes_from_the_href_not_the_link_text() -> None:
    page = f'<a href="../../+f/aa7/729/demo-1.0.tar.gz#sha256={A}">something else</a>'
    assert parse_simple_html(page) == {"demo-1.0.tar.gz": A}


def test_html_quoted_filename_is_unquoted() -> None:
    page = f'<a href="/packages/demo-1.0%2Blocal-py3-none-any.whl#sha256={A}">x</a>'
    assert parse_simple_html(page) == {"demo-1.0+local-py3-none-any.whl": A}


@pytest.mark.parametrize(
    "href",
    [
        "demo-1.0.tar.gz",
        "./demo-1.0.tar.gz",
        "../../packages/demo-1.0.tar.gz",
        "/packages/demo-1.0.tar.gz",
        "https://files.example.test/packages/ab/cd/demo-1.0.tar.gz",
        "https://files.example.test/packages/demo-1.0.tar.gz?token=x",
    ],
)
def test_html_relative_and_absolute_hrefs(href: str) -> None:
    assert parse_simple_html(f'<a href="{href}#sha256={A}">x</a>') == {"demo-1.0.tar.gz": A}


def test_html_missing_or_other_hash_is_none() -> None:
    page = (
        '<a href="/p/demo-1.0.tar.gz">x</a>'
        f'<a href="/p/demo-1.0-py3-none-any.whl#md5={"c" * 32}">x</a>'
        '<a href="/p/demo-0.9.tar.gz#sha256=not-hex">x</a>'
    )
    assert parse_simple_html(page) == {
        "demo-1.0.tar.gz": None,
        "demo-1.0-py3-none-any.whl": None,
        "demo-0.9.tar.gz": None,
    }


def test_html_data_attributes_entities_and_case_are_handled() -> None:
    page = (
        f'<A HREF="/p/demo-1.0.tar.gz?a=1&amp;b=2#SHA256={A.upper()}" '
        'data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=00" '
        'data-yanked="">x</A>'
    )
    assert parse_simple_html(page) == {"demo-1.0.tar.gz": A}


def test_html_ignores_anchors_without_a_file() -> None:
    page = '<a name="top">x</a><a href="">x</a><a href="/simple/">back</a><link href="/x.css">'
    assert parse_simple_html(page) == {}


def test_html_first_link_for_a_filename_wins() -> None:
    page = f'<a href="/a/demo-1.0.tar.gz#sha256={A}">x</a><a href="/b/demo-1.0.tar.gz#sha256={B}">'
    assert parse_simple_html(page) == {"demo-1.0.tar.gz": A}


def test_filename_from_href_of_a_folder_is_empty() -> None:
    assert filename_from_href("/simple/demo/") == ""


# --- PEP 691 JSON -----------------------------------------------------------------


def test_json_devpi_page() -> None:
    page = {
        "meta": {"api-version": "1.0"},
        "name": "demo",
        "files": [
            {
                "filename": "demo-1.0-py3-none-any.whl",
                "url": "../../+f/aa7/72963f5127384/demo-1.0-py3-none-any.whl",
                "hashes": {"sha256": A},
                "requires-python": ">=3.8",
            },
            {"filename": "demo-1.0.tar.gz", "url": "x", "hashes": {"sha256": B.upper()}},
        ],
    }
    assert parse_simple_json(page) == {"demo-1.0-py3-none-any.whl": A, "demo-1.0.tar.gz": B}


def test_json_missing_sha256_is_none() -> None:
    page = {
        "meta": {"api-version": "1.1"},
        "files": [
            {"filename": "demo-1.0.tar.gz", "url": "x", "hashes": {"md5": "c" * 32}},
            {"filename": "demo-0.9.tar.gz", "url": "x"},
        ],
    }
    assert parse_simple_json(page) == {"demo-1.0.tar.gz": None, "demo-0.9.tar.gz": None}


@pytest.mark.parametrize(
    "page",
    [
        [],
        {"meta": {"api-version": "1.0"}},
        {"files": {}},
        {"files": [{"url": "x"}]},
        {"meta": {"api-version": "2.0"}, "files": []},
    ],
    ids=["not-an-object", "no-files", "files-not-a-list", "no-filename", "major-version-2"],
)
def test_json_unreadable_pages_are_refused(page: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        parse_simple_json(page)


def document(content_type: str, body: str) -> Document:
    return Document("http://index.test/simple/demo/", content_type, "utf-8", body.encode())


def test_listing_follows_the_media_type_the_index_chose() -> None:
    json_page = json.dumps({"meta": {"api-version": "1.0"}, "files": [{"filename": "d.tar.gz"}]})
    html_page = f'<a href="d.tar.gz#sha256={A}">d</a>'
    assert parse_simple_listing(document("application/vnd.pypi.simple.v1+json", json_page)) == {
        "d.tar.gz": None
    }
    assert parse_simple_listing(document("text/html", html_page)) == {"d.tar.gz": A}
    with pytest.raises(ValueError, match="media type"):
        parse_simple_listing(document("text/plain", html_page))


# --- devpi project view -----------------------------------------------------------


def link(href: str, **fields: object) -> dict[str, object]:
    return {"rel": "releasefile", "href": href, "log": [], **fields}


def test_devpi_project_view() -> None:
    # Trimmed from devpi-server 6.20.3's answer to GET /user/index/demo?ignore_bases.
    view = {
        "type": "projectconfig",
        "result": {
            "1.0": {
                "name": "demo",
                "version": "1.0",
                "+links": [
                    link(
                        "http://h/user/index/+f/aa7/72963f5127384/demo-1.0-py3-none-any.whl",
                        hash_spec=f"sha256={A}",
                        hashes={"sha256": A},
                    ),
                    link("http://h/user/index/+f/8c2/5c0ae9ff0181d/demo-1.0.tar.gz", hashes={}),
                    {"rel": "doczip", "href": "http://h/user/index/+f/d/demo-1.0.doc.zip"},
                ],
            },
            "0.9": {"name": "demo", "version": "0.9"},  # registered, no files
            "0.8": {"+links": [link("/user/index/+f/x/demo-0.8.tar.gz", hashspec=f"sha256={B}")]},
        },
    }
    assert parse_devpi_project(view) == {
        "demo-1.0-py3-none-any.whl": A,
        "demo-1.0.tar.gz": None,
        "demo-0.8.tar.gz": B,
    }


def test_devpi_older_hash_spec_and_other_algorithms() -> None:
    view = {
        "result": {
            "1.0": {
                "+links": [
                    link("/u/i/+f/x/demo-1.0.tar.gz", hash_spec=f"sha256={A}"),
                    link("/u/i/+f/x/demo-1.0.zip", hash_spec=f"md5={'c' * 32}"),
                ]
            }
        }
    }
    assert parse_devpi_project(view) == {"demo-1.0.tar.gz": A, "demo-1.0.zip": None}


@pytest.mark.parametrize(
    "view",
    [{"message": "no project 'demo'"}, {"result": []}],
    ids=["no-result", "result-not-an-object"],
)
def test_devpi_unreadable_views_are_refused(view: object) -> None:
    with pytest.raises(ValueError, match="result"):
        parse_devpi_project(view)


def test_devpi_links_of_unknown_rel_are_not_files() -> None:
    assert parse_devpi_project({"result": {"1.0": {"+links": [{}, {"rel": "toxresult"}]}}}) == {}


def test_devpi_release_link_without_href_is_refused() -> None:
    with pytest.raises(ValueError, match="href"):
        parse_devpi_project({"result": {"1.0": {"+links": [{"rel": "releasefile"}]}}})


# --- URLs -------------------------------------------------------------------------


def test_devpi_index_url_comes_from_the_simple_url() -> None:
    assert devpi_index_url("http://h:3141/user/dev/+simple/") == "http://h:3141/user/dev/"
    with pytest.raises(ValueError, match=r"\+simple"):
        devpi_index_url("http://h:3141/user/dev/")


def test_project_path_is_normalized_and_validated() -> None:
    assert project_path("Foo_Bar.baz") == "foo-bar-baz"
    for bad in ("../admin", "a/b", "", "demo?x=1"):
        with pytest.raises(ValueError, match="not a valid project name"):
            project_path(bad)
