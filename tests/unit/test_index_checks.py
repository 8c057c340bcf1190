"""PyPI's own upload checks, run on a file's metadata and filename (docs/preview.md)."""

from __future__ import annotations

import pytest
from packaging.metadata import Metadata

from gateway.distribution.checks import index_refusals, supported_platform
from gateway.distribution.readme import render_description

WHEEL = "demo_pkg-1.0-py3-none-any.whl"


def metadata(*lines: str, version: str = "2.4", body: str = "") -> Metadata:
    head = [f"Metadata-Version: {version}", "Name: demo-pkg", "Version: 1.0", *lines]
    return Metadata.from_email("\n".join(head) + "\n\n" + body, validate=True)


def sources(meta: Metadata, filename: str = WHEEL) -> list[str]:
    return [finding.source for finding in index_refusals(meta, filename)]


def test_a_clean_file_passes() -> None:
    meta = metadata(
        "Summary: fine",
        "Author-email: Ann <ann@example.org>",
        "Classifier: Programming Language :: Python :: 3",
        "Project-URL: Source, https://example.org/src",
        "License-Expression: MIT",
        "Description-Content-Type: text/markdown",
        body="# Title\n\nText.\n",
    )
    assert index_refusals(meta, WHEEL) == []
    assert index_refusals(meta, "demo_pkg-1.0.tar.gz") == []


@pytest.mark.parametrize(
    ("lines", "source"),
    [
        (("Classifier: Not :: A :: Classifier",), "metadata.classifiers"),
        (("Classifier: Natural Language :: Ukranian",), "metadata.classifiers"),  # deprecated
        (("Author-email: Ann <ann@localhost>",), "metadata.author_email"),
        (("Home-page: ftp://example.org/",), "metadata.home_page"),
        (("Project-URL: " + "L" * 33 + ", https://example.org",), "metadata.project_urls"),
        (("Project-URL: Docs, javascript:alert(1)",), "metadata.project_urls"),
        (("Requires-Dist: thing @ https://example.org/thing.whl",), "metadata.requires_dist"),
        (("License: MIT", "License-Expression: MIT"), "metadata.license"),
        (("Summary: " + "s" * 513,), "metadata.summary"),
    ],
)
def test_metadata_pypi_refuses(lines: tuple[str, ...], source: str) -> None:
    assert sources(metadata(*lines)) == [source]


def test_metadata_version_and_local_version() -> None:
    assert sources(metadata(version="2.6")) == ["metadata.metadata_version"]
    local = Metadata.from_email(
        "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0+local\n\n", validate=True
    )
    assert "metadata.version" in sources(local, "demo_pkg-1.0+local-py3-none-any.whl")


def test_filenames() -> None:
    meta = metadata()
    assert sources(meta, "Demo_Pkg-1.0-py3-none-any.whl") == ["filename"]
    assert sources(meta, "demo-pkg-1.0.tar.gz") == ["filename"]  # PEP 625
    assert sources(meta, "demo_pkg-1.0-cp312-cp312-linux_x86_64.whl") == ["filename"]
    assert sources(meta, "demo_pkg-1.0-cp312-cp312-manylinux_2_28_x86_64.whl") == []


@pytest.mark.parametrize(
    ("platform", "accepted"),
    [
        ("any", True),
        ("win_amd64", True),
        ("manylinux_2_17_aarch64", True),
        ("musllinux_1_2_ppc64", False),
        ("macosx_10_9_x86_64", True),
        ("macosx_11_0_arm64", True),
        ("macosx_11_3_arm64", False),
        ("ios_13_0_arm64_iphoneos", True),
        ("android_21_arm64_v8a", True),
        ("pyemscripten_2024_0_wasm32", True),
        ("linux_x86_64", False),
    ],
)
def test_platform_tags(platform: str, accepted: bool) -> None:
    assert supported_platform(platform) is accepted


def test_a_description_that_does_not_render_is_refused_with_the_renderers_message() -> None:
    broken = "Title\n=====\n\n.. not-a-directive:: x\n"
    [finding] = index_refusals(metadata(body=broken), WHEEL)
    assert finding.source == "metadata.description"
    assert "default format of reStructuredText" in finding.message
    assert 'Unknown directive type "not-a-directive"' in finding.message
    declared = metadata("Description-Content-Type: text/x-rst", body=broken)
    assert "for 'text/x-rst'" in index_refusals(declared, WHEEL)[0].message


def test_rendering_follows_warehouse() -> None:
    markdown = render_description("# Hi <script>x()</script>", "text/markdown; variant=CommonMark")
    assert markdown.content_type == "text/markdown"
    assert markdown.html is not None
    assert "<h1" in markdown.html
    assert "<script>" not in markdown.html
    plain = render_description("a < b\n  indented", "text/plain")
    assert plain.html is not None
    assert plain.html.startswith("<pre>a &lt; b")
    rst = render_description("Head\n====\n\n*x*", None)
    assert rst.content_type == "text/x-rst"
    assert not rst.declared
    assert rst.html is not None
    assert "<em>x</em>" in rst.html
    unknown = render_description("*x*", "text/whatever")
    assert unknown.content_type == "text/whatever"
    assert unknown.html is not None
