"""The preview page's rendering: everything escaped, and a stage with nothing completed yet."""

from __future__ import annotations

from packaging.metadata import Metadata

from gateway.distribution.checks import index_refusals
from gateway.distribution.readme import render_description
from gateway.stage.compare import Change, Comparison
from gateway.stage.preview import Preview, PreviewFile, render_page

HOSTILE = "<script>alert(1)</script>"


def preview(**changes: object) -> Preview:
    values: dict[str, object] = {
        "project": "demo",
        "version": "1.0",
        "stage_url": "https://up.example/stage/token/",
        "expires_at": "2030-01-01T00:00:00Z",
        "files": [],
        "metadata": None,
        "metadata_from": None,
        "description": None,
        "comparison": None,
        "comparison_note": "Nothing to compare until a file is completed.",
        "refused_at_completion": False,
    }
    values.update(changes)
    return Preview(**values)  # type: ignore[arg-type]


def test_a_stage_without_completed_files() -> None:
    html = render_page(preview())
    assert "No completed file yet." in html
    assert "The project has no description." in html
    assert "Nothing to compare until a file is completed." in html


def test_every_metadata_value_is_escaped() -> None:
    metadata = Metadata.from_email(
        "\n".join(
            [
                "Metadata-Version: 2.4",
                "Name: demo",
                "Version: 1.0",
                f"Summary: {HOSTILE}",
                f"Author: {HOSTILE}",
                f"Maintainer: {HOSTILE}",
                f"License: {HOSTILE}",
                f'Project-URL: {HOSTILE}, https://example.org/"onmouseover="x',
                f"Classifier: {HOSTILE}",
                f"Provides-Extra: {'x' * 3}",
                "Description-Content-Type: text/markdown",
            ]
        )
        + f"\n\n# Heading\n\n{HOSTILE}\n",
        validate=True,
    )
    filename = "demo-1.0-py3-none-any.whl"
    file = PreviewFile(
        filename=filename,
        url="https://up.example/stage/token/+files/" + filename,
        size=2048,
        sha256="ab" * 32,
        tags=["py3-none-any"],
        attestations=True,
        refusals=index_refusals(metadata, filename),
    )
    comparison = Comparison(
        previous_version="0.9",
        metadata_from=f"{HOSTILE}.whl",
        dependencies=[Change("added", HOSTILE, None, HOSTILE)],
        requires_python=None,
        extras=[],
        missing_files=[HOSTILE],
        missing_platforms=[HOSTILE],
    )
    html = render_page(
        preview(
            files=[file],
            metadata=metadata,
            metadata_from=filename,
            description=render_description(metadata.description or "", "text/markdown"),
            comparison=comparison,
        )
    )
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'onmouseover="x' not in html
    assert "2.0 KiB (2048 bytes)" in html
    assert "PyPI would refuse these files" in html  # the classifier and the URL
