"""The legacy upload form (R-W2): a distribution's core metadata as `twine upload` sends it.

Publishing replays each staged file as one legacy ``multipart/form-data`` POST. This module
only decides the *fields* of that form — an ordered list of ``(name, value)`` pairs, a
multiple-use field repeated once per value — and does no I/O; the caller streams the
``content`` file part after them.

Input choice: the raw ``METADATA``/``PKG-INFO`` bytes, parsed here with
``packaging.metadata.parse_email``. That is exactly what twine does, so every value reaches
the backend as written in the file (no normalization by ``packaging.metadata.Metadata``),
and metadata never comes from the client's request. A ``RawMetadata`` dict that a caller
already parsed is accepted too.

Where the form differs from a naive renaming of the core-metadata field names (lowercase,
``-`` → ``_``), it follows twine 7.0 and Warehouse's ``parse_form_metadata``, checked
against a real ``twine upload`` in ``tests/integration/test_legacy_form_vs_twine.py``:

- multiple-use fields are plural (``classifiers``, ``requires_dist``, ``project_urls`` ...)
  except ``platform``, ``supported_platform`` and ``license_file``, and the Metadata 2.5
  ``import_name``/``import_namespace`` (Warehouse's names; twine 7.0 does not send them);
- ``keywords`` is one field, the keywords joined with ``", "``;
- each ``project_urls`` value is ``"Label, url"``;
- ``name`` is twine's "safe name": runs of characters other than ``[A-Za-z0-9.]`` become
  ``-`` (``my_pkg`` is sent as ``my-pkg``);
- ``License-File`` is dropped when ``Metadata-Version`` is below 2.4: setuptools wrote it
  into 2.1 metadata with another meaning, and twine does not forward it.

Validation of the metadata itself (required fields, valid requirements ...) is R-F10's job
at completion time; this module only refuses what it cannot translate faithfully.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.metadata import RawMetadata, parse_email
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

__all__ = [
    "LegacyFileInfo",
    "LegacyFormError",
    "encode_attestations",
    "filetype_and_pyversion",
    "legacy_form_fields",
    "legacy_name",
]

WHEEL = "bdist_wheel"
SDIST = "sdist"
SDIST_PYVERSION = "source"

# Leading fields every legacy upload carries, whatever the metadata says.
_ACTION = (":action", "file_upload")
_PROTOCOL_VERSION = ("protocol_version", "1")

# The fields sent before the rest of the metadata, so a reader of the form knows early
# which release it is about.
_IDENTITY_FIELDS = ("metadata_version", "name", "version")

# packaging's RawMetadata key -> legacy form field name, in core-metadata specification
# order (which is the order the remaining metadata is emitted in). Only the entries whose
# form name differs from the RawMetadata key need to be here for correctness; listing
# every field fixes the output order.
_FORM_NAMES: dict[str, str] = {
    # Metadata 1.0
    "platforms": "platform",
    "summary": "summary",
    "description": "description",
    "keywords": "keywords",
    "home_page": "home_page",
    "author": "author",
    "author_email": "author_email",
    "license": "license",
    # Metadata 1.1
    "supported_platforms": "supported_platform",
    "download_url": "download_url",
    "classifiers": "classifiers",
    "requires": "requires",
    "provides": "provides",
    "obsoletes": "obsoletes",
    # Metadata 1.2
    "maintainer": "maintainer",
    "maintainer_email": "maintainer_email",
    "requires_dist": "requires_dist",
    "provides_dist": "provides_dist",
    "obsoletes_dist": "obsoletes_dist",
    "requires_python": "requires_python",
    "requires_external": "requires_external",
    "project_urls": "project_urls",
    # Metadata 2.1
    "description_content_type": "description_content_type",
    "provides_extra": "provides_extra",
    # Metadata 2.2
    "dynamic": "dynamic",
    # Metadata 2.4
    "license_expression": "license_expression",
    "license_files": "license_file",
    # Metadata 2.5: twine 7.0 drops these; Warehouse reads them under the singular names.
    "import_names": "import_name",
    "import_namespaces": "import_namespace",
}

# License-File only means PEP 639 license files from Metadata 2.4 on.
_LICENSE_FILES_SINCE = Version("2.4")

_UNSAFE_NAME_RUN = re.compile(r"[^A-Za-z0-9.]+")


class LegacyFormError(ValueError):
    """The metadata cannot be sent faithfully as a legacy upload form."""


@dataclass(frozen=True)
class LegacyFileInfo:
    """What the form says about the file itself, apart from its metadata."""

    filename: str  # not a form field: the caller names the `content` part with it
    filetype: str  # "bdist_wheel" | "sdist"
    pyversion: str  # a wheel's python tag as in its filename ("py2.py3"), "source" for an sdist
    sha256: str
    blake2_256: str | None  # unknown for bytes the gateway did not receive itself (presigned)
    # twine 7 no longer sends md5_digest; some legacy indexes still want it.
    md5: str | None = None


def filetype_and_pyversion(filename: str) -> tuple[str, str]:
    """The legacy ``filetype`` and ``pyversion`` of a wheel or sdist filename.

    A wheel's ``pyversion`` is its python tag exactly as written in the filename (twine
    sends ``py2.py3`` for ``x-1.0-py2.py3-none-any.whl``, not a re-sorted tag set).
    """
    if filename.endswith(".whl"):
        try:
            parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise LegacyFormError(str(exc)) from None
        # A valid wheel name has exactly 5 or 6 dash-separated parts and the python tag is
        # always third from the end, with or without a build tag.
        return WHEEL, filename.removesuffix(".whl").split("-")[-3]
    try:
        parse_sdist_filename(filename)
    except InvalidSdistFilename as exc:
        raise LegacyFormError(str(exc)) from None
    return SDIST, SDIST_PYVERSION


def legacy_name(name: str) -> str:
    """The ``name`` field as twine sends it (pkg_resources' ``safe_name``).

    Backends have always received this spelling from twine; it is kept rather than the
    PEP 503 normalized name so that an index that stores the display name sees no change.
    """
    return _UNSAFE_NAME_RUN.sub("-", name)


def encode_attestations(attestations: Sequence[Mapping[str, Any]]) -> str:
    """The ``attestations`` field value for a list of PEP 740 attestation objects.

    Same serialization as twine (``json.dumps`` defaults), so the bytes a backend receives
    do not depend on which client path the file took.
    """
    return json.dumps(list(attestations))


def legacy_form_fields(
    metadata: bytes | RawMetadata,
    file: LegacyFileInfo,
    *,
    attestations: str | None = None,
) -> list[tuple[str, str]]:
    """Every non-file field of the legacy upload of ``file``, in sending order.

    ``metadata`` is the distribution's own ``METADATA``/``PKG-INFO`` bytes (or an already
    parsed ``RawMetadata``). ``attestations`` is the JSON array to forward (see
    :func:`encode_attestations`). Raises :class:`LegacyFormError` for metadata that twine
    would refuse to upload: unparsable or unknown fields, or a missing name, version or
    metadata version.
    """
    raw = _parse(metadata) if isinstance(metadata, bytes) else dict(metadata)
    _drop_pre_pep639_license_files(raw)
    identity = _identity(raw)

    fields: list[tuple[str, str]] = [
        _ACTION,
        _PROTOCOL_VERSION,
        ("filetype", file.filetype),
        ("pyversion", file.pyversion),
        ("metadata_version", identity["metadata_version"]),
        ("name", legacy_name(identity["name"])),
        ("version", identity["version"]),
        ("sha256_digest", file.sha256),
    ]
    if file.blake2_256 is not None:
        fields.append(("blake2_256_digest", file.blake2_256))
    if file.md5 is not None:
        fields.append(("md5_digest", file.md5))
    fields.extend(_metadata_fields(raw))
    if attestations is not None:
        fields.append(("attestations", attestations))
    return fields


def _parse(data: bytes) -> dict[str, Any]:
    raw, unparsed = parse_email(data)
    parsed = dict(raw)
    if unparsed and _license_files_ignored(parsed):
        # An older packaging leaves pre-2.4 License-File unparsed; twine ignores it then.
        unparsed.pop("license-file", None)
    if unparsed:
        # The form has no faithful place for these, and twine refuses such a file.
        names = ", ".join(sorted(unparsed))
        raise LegacyFormError(f"unrecognized or malformed metadata field(s): {names}")
    return parsed


def _license_files_ignored(raw: Mapping[str, Any]) -> bool:
    version = raw.get("metadata_version")
    if not isinstance(version, str):
        return False
    try:
        return Version(version) < _LICENSE_FILES_SINCE
    except InvalidVersion:
        raise LegacyFormError(f"invalid Metadata-Version {version!r}") from None


def _drop_pre_pep639_license_files(raw: dict[str, Any]) -> None:
    if _license_files_ignored(raw):
        raw.pop("license_files", None)


def _identity(raw: Mapping[str, Any]) -> dict[str, str]:
    identity: dict[str, str] = {}
    for key in _IDENTITY_FIELDS:
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            # devpi answers 500 to a form without a name; never send an incomplete one.
            raise LegacyFormError(f"metadata has no {key}")
        identity[key] = value
    return identity


def _metadata_fields(raw: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    known = [key for key in _FORM_NAMES if key in raw]
    # A field a newer packaging knows and this table does not still goes out, under the
    # generic rule (its RawMetadata key is already lowercase, underscored and pluralized),
    # rather than being silently lost.
    newer = [key for key in raw if key not in _FORM_NAMES and key not in _IDENTITY_FIELDS]
    for key in known + newer:
        name = _FORM_NAMES.get(key, key)
        for value in _form_values(key, raw[key]):
            yield name, value


def _form_values(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if key == "keywords":
        # One field, as in the core metadata; Warehouse splits it again on ",".
        return [", ".join(value)]
    if isinstance(value, Mapping):
        return [f"{label}, {url}" for label, url in value.items()]
    return list(value)
