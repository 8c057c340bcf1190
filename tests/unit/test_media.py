from __future__ import annotations

import pytest

from gateway.protocol.media import accepts_upload_json, api_major


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "application/vnd.pypi.upload.v2+json",
        "application/vnd.pypi.upload.latest+json",
        "text/html, application/vnd.pypi.upload.v2+json;q=0.5",
        "application/*",
    ],
)
def test_accepted(accept: str | None) -> None:  # R-G4
    assert accepts_upload_json(accept)


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "application/vnd.pypi.upload.v3+json",
        "application/vnd.pypi.upload.v2+json;q=0",
        "application/json",
    ],
)
def test_refused(accept: str) -> None:
    assert not accepts_upload_json(accept)


@pytest.mark.parametrize(("version", "major"), [("2.0", "2"), ("2.1", "2"), ("3.0", "3")])
def test_api_major(version: str, major: str) -> None:
    assert api_major(version) == major


@pytest.mark.parametrize("version", ["2", "v2.0", "2.0.1", "", "two"])
def test_malformed_api_version(version: str) -> None:
    assert api_major(version) is None
