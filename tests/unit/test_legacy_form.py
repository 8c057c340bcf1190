"""The legacy upload form fields (R-W2), field by field.

The ground truth — a real `twine upload` — is in tests/integration/test_legacy_form_vs_twine.py;
these pin the rules one at a time, plus our own choices twine does not dictate (order, md5,
errors).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from packaging.metadata import RawMetadata

from gateway.protocol.legacy_upload_form import (
    LegacyFileInfo,
    LegacyFormError,
    encode_attestations,
    filetype_and_pyversion,
    legacy_form_fields,
    legacy_name,
)

WHEEL_INFO = LegacyFileInfo(
    filename="demo-1.0-py3-none-any.whl",
    filetype="bdist_wheel",
    pyversion="py3",
    sha256="a" * 64,
    blake2_256="b" * 64,
)

HEAD = [
    (":action", "file_upload"),
    ("protocol_version", "1"),
    ("filetype", "bdist_wheel"),
    ("pyversion", "py3"),
    ("metadata_version", "2.4"),
    ("name", "demo"),
    ("version", "1.0"),
    ("sha256_digest", "a" * 64),
    ("blake2_256_digest", "b" * 64),
]


def metadata(*lines: str, body: str = "", version: str = "2.4") -> bytes:
    headers = [f"Metadata-Version: {version}", "Name: demo", "Version: 1.0", *lines]
    return ("\n".join(headers) + "\n\n" + body).encode()


def fields(
    *lines: str, body: str = "", version: str = "2.4", **kwargs: str
) -> list[tuple[str, str]]:
    return legacy_form_fields(metadata(*lines, body=body, version=version), WHEEL_INFO, **kwargs)


def values(form: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in form if key == name]


def test_minimal_metadata_is_only_the_leading_fields() -> None:
    assert fields() == HEAD


def test_leading_fields_come_first_in_a_fixed_order() -> None:
    # Metadata headers in the file before Name/Version do not move them.
    raw = b"Summary: s\nVersion: 1.0\nClassifier: c\nName: demo\nMetadata-Version: 2.4\n\n"
    form = legacy_form_fields(raw, WHEEL_INFO)
    assert form[: len(HEAD)] == HEAD
    assert form[len(HEAD) :] == [("summary", "s"), ("classifiers", "c")]


def test_name_version_and_metadata_version_are_sent_as_written() -> None:
    raw = b"Metadata-Version: 2.1\nName: Demo.Pkg\nVersion: 01.0.0-rc1\n\n"
    form = dict(legacy_form_fields(raw, WHEEL_INFO))
    assert (form["metadata_version"], form["name"], form["version"]) == (
        "2.1",
        "Demo.Pkg",
        "01.0.0-rc1",
    )


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("demo", "demo"),
        ("my_pkg", "my-pkg"),
        ("My__Odd--name", "My-Odd-name"),
        ("zope.interface", "zope.interface"),
        ("a_.-b", "a-.-b"),
    ],
)
def test_name_is_twines_safe_name(name: str, sent: str) -> None:
    assert legacy_name(name) == sent
    raw = f"Metadata-Version: 2.4\nName: {name}\nVersion: 1.0\n\n".encode()
    assert values(legacy_form_fields(raw, WHEEL_INFO), "name") == [sent]


def test_md5_only_when_given_right_after_the_other_digests() -> None:
    assert "md5_digest" not in dict(fields())
    with_md5 = dataclasses.replace(WHEEL_INFO, md5="c" * 32)
    form = legacy_form_fields(metadata("Summary: s"), with_md5)
    assert form[: len(HEAD) + 1] == [*HEAD, ("md5_digest", "c" * 32)]
    assert form[-1] == ("summary", "s")


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Classifier", "classifiers"),
        ("Requires-Dist", "requires_dist"),
        ("Provides-Dist", "provides_dist"),
        ("Obsoletes-Dist", "obsoletes_dist"),
        ("Requires-External", "requires_external"),
        ("Provides-Extra", "provides_extra"),
        ("Dynamic", "dynamic"),
        ("Requires", "requires"),
        ("Provides", "provides"),
        ("Obsoletes", "obsoletes"),
        # The exceptions to pluralization.
        ("Platform", "platform"),
        ("Supported-Platform", "supported_platform"),
        ("License-File", "license_file"),
        ("Import-Name", "import_name"),
        ("Import-Namespace", "import_namespace"),
    ],
)
def test_multiple_use_fields_are_repeated_in_file_order(header: str, name: str) -> None:
    form = fields(f"{header}: first", f"{header}: second", f"{header}: third", version="2.5")
    assert form[len(HEAD) :] == [(name, "first"), (name, "second"), (name, "third")]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Summary", "summary"),
        ("Home-page", "home_page"),
        ("Download-URL", "download_url"),
        ("Author", "author"),
        ("Author-email", "author_email"),
        ("Maintainer", "maintainer"),
        ("Maintainer-email", "maintainer_email"),
        ("License", "license"),
        ("License-Expression", "license_expression"),
        ("Requires-Python", "requires_python"),
        ("Description-Content-Type", "description_content_type"),
    ],
)
def test_single_use_fields_are_lowercased_and_underscored(header: str, name: str) -> None:
    assert fields(f"{header}: value")[len(HEAD) :] == [(name, "value")]


@pytest.mark.parametrize(
    ("keywords", "sent"),
    [
        ("alpha,beta , gamma", "alpha, beta, gamma"),
        ("space separated words", "space separated words"),
        ("single", "single"),
    ],
)
def test_keywords_are_one_field_joined_with_comma_space(keywords: str, sent: str) -> None:
    assert values(fields(f"Keywords: {keywords}"), "keywords") == [sent]


def test_project_urls_are_label_comma_url() -> None:
    form = fields(
        "Project-URL: Homepage, https://example.org",
        "Project-URL: Source Code ,https://example.org/src?a=1,2",
    )
    assert values(form, "project_urls") == [
        "Homepage, https://example.org",
        "Source Code, https://example.org/src?a=1,2",
    ]


def test_description_body_is_sent_as_description() -> None:
    body = "# Title\n\nLine one\nLine two: ünïcode ☕\n"
    form = fields("Description-Content-Type: text/markdown", body=body)
    assert values(form, "description") == [body]
    assert values(form, "description_content_type") == ["text/markdown"]


def test_description_header_is_sent_as_written() -> None:
    # twine does not unfold the legacy "        |" continuation lines; neither do we.
    form = fields("Description: first\n        |second")
    assert values(form, "description") == ["first\n        |second"]


def test_an_empty_field_is_sent_empty_like_twine() -> None:
    assert values(fields("Maintainer:"), "maintainer") == [""]


def test_metadata_fields_follow_the_specification_order() -> None:
    form = fields(
        "Provides-Extra: x",
        "Classifier: c",
        "Summary: s",
        "Platform: p",
        "Requires-Dist: r",
    )
    assert [name for name, _ in form[len(HEAD) :]] == [
        "platform",
        "summary",
        "classifiers",
        "requires_dist",
        "provides_extra",
    ]


@pytest.mark.parametrize("version", ["1.0", "1.2", "2.1", "2.3"])
def test_license_file_is_dropped_before_metadata_2_4(version: str) -> None:
    assert "license_file" not in dict(fields("License-File: LICENSE", version=version))


@pytest.mark.parametrize("version", ["2.4", "2.5"])
def test_license_file_is_kept_from_metadata_2_4(version: str) -> None:
    assert values(fields("License-File: LICENSE", version=version), "license_file") == ["LICENSE"]


def test_attestations_come_last_and_only_when_given() -> None:
    assert "attestations" not in dict(fields("Summary: s"))
    form = fields("Summary: s", attestations='[{"version": 1}]')
    assert form[-1] == ("attestations", '[{"version": 1}]')
    assert values(form, "attestations") == ['[{"version": 1}]']


def test_encode_attestations_is_a_json_array() -> None:
    objects = [{"version": 1, "envelope": {"statement": "x"}}]
    encoded = encode_attestations(objects)
    assert json.loads(encoded) == objects
    assert encoded == '[{"version": 1, "envelope": {"statement": "x"}}]'


def test_raw_metadata_input_is_accepted() -> None:
    raw: RawMetadata = {
        "metadata_version": "2.4",
        "name": "demo",
        "version": "1.0",
        "keywords": ["a", "b"],
        "project_urls": {"Home": "https://example.org"},
        "classifiers": ["c1", "c2"],
    }
    assert legacy_form_fields(raw, WHEEL_INFO)[len(HEAD) :] == [
        ("keywords", "a, b"),
        ("classifiers", "c1"),
        ("classifiers", "c2"),
        ("project_urls", "Home, https://example.org"),
    ]


def test_a_field_unknown_to_this_table_still_goes_out_under_its_raw_name() -> None:
    raw = {"metadata_version": "2.9", "name": "demo", "version": "1.0", "future_things": ["x"]}
    assert legacy_form_fields(raw, WHEEL_INFO)[-1] == ("future_things", "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lines", "body", "culprit"),
    [
        (["X-Custom: 1"], "", "x-custom"),
        (["Project-URL: Home, https://a", "Project-URL: Home, https://b"], "", "project-url"),
        (["Summary: one", "Summary: two"], "", "summary"),
        (["Description: in the header"], "and in the body", "description"),
    ],
)
def test_unparsable_metadata_is_refused(lines: list[str], body: str, culprit: str) -> None:
    with pytest.raises(LegacyFormError, match=culprit):
        fields(*lines, body=body)


@pytest.mark.parametrize(
    ("raw", "missing"),
    [
        (b"Name: demo\nVersion: 1.0\n\n", "metadata_version"),
        (b"Metadata-Version: 2.4\nVersion: 1.0\n\n", "name"),
        (b"Metadata-Version: 2.4\nName: demo\n\n", "version"),
    ],
)
def test_missing_identity_is_refused(raw: bytes, missing: str) -> None:
    with pytest.raises(LegacyFormError, match=missing):
        legacy_form_fields(raw, WHEEL_INFO)


def test_invalid_metadata_version_is_refused() -> None:
    with pytest.raises(LegacyFormError, match="Metadata-Version"):
        legacy_form_fields(b"Metadata-Version: two\nName: demo\nVersion: 1.0\n\n", WHEEL_INFO)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("demo-1.0-py3-none-any.whl", ("bdist_wheel", "py3")),
        ("demo-1.0-py2.py3-none-any.whl", ("bdist_wheel", "py2.py3")),
        # As written, not re-sorted.
        ("demo-1.0-py3.py2-none-any.whl", ("bdist_wheel", "py3.py2")),
        ("demo-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl", ("bdist_wheel", "cp311")),
        ("my_pkg-2.0.post1-cp312-abi3-win_amd64.whl", ("bdist_wheel", "cp312")),
        ("demo-1.0.tar.gz", ("sdist", "source")),
        ("demo-1.0.zip", ("sdist", "source")),
    ],
)
def test_filetype_and_pyversion(filename: str, expected: tuple[str, str]) -> None:
    assert filetype_and_pyversion(filename) == expected


@pytest.mark.parametrize(
    "filename", ["demo-1.0.whl", "demo-1.0-py3-none.whl", "demo.tar.gz", "demo-1.0.exe", "x"]
)
def test_filetype_and_pyversion_refuses_other_files(filename: str) -> None:
    with pytest.raises(LegacyFormError):
        filetype_and_pyversion(filename)
