"""What PyPI's upload (Warehouse's legacy API) refuses that the gateway can know from the file.

Run at completion under the ``warehouse`` backend profile (``backend.index_checks``), so that
a release PyPI would refuse fails while it is still staged, never half-way through a publish.
``packaging.metadata`` already validates the core metadata (archive.py); these are the rules
Warehouse adds on top. Each finding names its source ('metadata.description', 'filename', ...).
docs/preview.md lists them, and the ones that would need more of the archive than its
metadata. Pure, no I/O.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import email_validator
import rfc3986  # type: ignore[import-untyped]  # rfc3986 ships no type hints
from packaging.metadata import Metadata
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from trove_classifiers import all_classifiers, deprecated_classifiers

from gateway.distribution.readme import render_description

__all__ = ["Finding", "index_refusals", "supported_platform"]

# Metadata versions Warehouse has implemented (packaging knows some more).
SUPPORTED_METADATA_VERSIONS = frozenset({"1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5"})
_CLASSIFIERS = frozenset(all_classifiers)
MAX_SUMMARY = 512
MAX_URL_LABEL = 32
# Fields Warehouse lets a sdist mark Dynamic (PEP 643, PEP 794), lowercase.
DYNAMIC_FIELDS = frozenset(
    [
        "platform",
        "supported-platform",
        "summary",
        "description",
        "description-content-type",
        "keywords",
        "home-page",
        "download-url",
        "author",
        "author-email",
        "maintainer",
        "maintainer-email",
        "license",
        "license-expression",
        "license-file",
        "classifier",
        "requires-dist",
        "requires-python",
        "requires-external",
        "project-url",
        "provides-extra",
        "provides-dist",
        "obsoletes-dist",
        "requires",
        "provides",
        "obsoletes",
        "import-name",
        "import-namespace",
    ]
)


@dataclass(frozen=True)
class Finding:
    source: str
    message: str


def index_refusals(metadata: Metadata, filename: str) -> list[Finding]:
    """Everything Warehouse would refuse about this file, in the order it would say it."""
    return [finding for check in _CHECKS for finding in check(metadata, filename)]


# -- metadata ------------------------------------------------------------------------------


def _metadata_version(metadata: Metadata, _: str) -> Iterator[Finding]:
    if metadata.metadata_version not in SUPPORTED_METADATA_VERSIONS:
        yield Finding(
            "metadata.metadata_version",
            f"PyPI does not accept Metadata-Version {metadata.metadata_version}.",
        )


def _local_version(metadata: Metadata, _: str) -> Iterator[Finding]:
    if metadata.version.local:
        yield Finding(
            "metadata.version", f"PyPI does not accept local versions ({metadata.version})."
        )


def _summary(metadata: Metadata, _: str) -> Iterator[Finding]:
    if metadata.summary and len(metadata.summary) > MAX_SUMMARY:
        yield Finding("metadata.summary", f"The summary is longer than {MAX_SUMMARY} characters.")


def _emails(metadata: Metadata, _: str) -> Iterator[Finding]:
    for field in ("author_email", "maintainer_email"):
        value = getattr(metadata, field)
        # Like Warehouse: the field's first address is the one checked.
        address = email.utils.parseaddr(value)[1] if value else ""
        if not address:
            continue
        try:
            email_validator.validate_email(address, check_deliverability=False)
        except email_validator.EmailNotValidError as exc:
            yield Finding(f"metadata.{field}", f"{address!r} is not a valid email address: {exc}")


def _classifiers(metadata: Metadata, _: str) -> Iterator[Finding]:
    used = set(metadata.classifiers or [])
    for classifier in sorted(used - _CLASSIFIERS):
        yield Finding("metadata.classifiers", f"{classifier!r} is not a valid classifier.")
    for classifier in sorted(used & deprecated_classifiers.keys()):
        instead = deprecated_classifiers[classifier]
        hint = f"; use one of {instead} instead" if instead else ""
        yield Finding("metadata.classifiers", f"The classifier {classifier!r} is deprecated{hint}.")


def _urls(metadata: Metadata, _: str) -> Iterator[Finding]:
    for field in ("home_page", "download_url"):
        url = getattr(metadata, field)
        if url is not None and not valid_url(url):
            yield Finding(f"metadata.{field}", f"{url!r} is not a valid http(s) URL.")
    for label, url in (metadata.project_urls or {}).items():
        if not label:
            yield Finding("metadata.project_urls", "A Project-URL has no label.")
        elif len(label) > MAX_URL_LABEL:
            yield Finding(
                "metadata.project_urls",
                f"The Project-URL label {label!r} is longer than {MAX_URL_LABEL} characters.",
            )
        elif not url or not valid_url(url):
            yield Finding(
                "metadata.project_urls", f"The Project-URL {label!r} is not a valid http(s) URL."
            )


def valid_url(url: str) -> bool:
    """Warehouse's test: an RFC 3986 URI with an http or https scheme (a host may be absent)."""
    validator = (
        rfc3986.validators.Validator().allow_schemes("http", "https").require_presence_of("scheme")
    )
    try:
        validator.validate(rfc3986.uri_reference(url).normalize())
    except rfc3986.exceptions.ValidationError:
        return False
    return True


def _dependencies(metadata: Metadata, _: str) -> Iterator[Finding]:
    for requirement in metadata.requires_dist or []:
        if requirement.url is not None:
            yield Finding(
                "metadata.requires_dist", f"PyPI refuses direct dependencies: {requirement}."
            )
    for field in ("provides_dist", "obsoletes_dist"):
        for value in getattr(metadata, field) or []:
            try:
                parsed = Requirement(value)
            except InvalidRequirement as exc:
                yield Finding(f"metadata.{field}", f"{value!r} is invalid: {exc}")
                continue
            if parsed.url is not None:
                yield Finding(f"metadata.{field}", f"PyPI refuses direct references: {value!r}.")


def _dynamic(metadata: Metadata, _: str) -> Iterator[Finding]:
    for field in metadata.dynamic or []:
        if field.lower() not in DYNAMIC_FIELDS:
            yield Finding("metadata.dynamic", f"PyPI does not accept {field!r} as Dynamic.")


def _license(metadata: Metadata, _: str) -> Iterator[Finding]:
    if metadata.license and metadata.license_expression:
        yield Finding(
            "metadata.license",
            "License and License-Expression are both present; PyPI accepts only "
            "License-Expression then.",
        )


def _description(metadata: Metadata, _: str) -> Iterator[Finding]:
    if not metadata.description:
        return
    rendered = render_description(metadata.description, metadata.description_content_type)
    if rendered.html is None:
        yield Finding("metadata.description", rendered.failure())


# -- filename ------------------------------------------------------------------------------


def _filename(metadata: Metadata, filename: str) -> Iterator[Finding]:
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        yield Finding("filename", "PyPI refuses filenames with control characters.")
    stem = canonicalize_name(metadata.name).replace("-", "_")
    if filename.endswith(".tar.gz"):
        expected = f"{stem}-{metadata.version}.tar.gz"
        if filename != expected:
            # PEP 625: exactly the normalized name and version.
            yield Finding("filename", f"PyPI expects this sdist to be named {expected!r}.")
        return
    if filename.split("-", 1)[0] != stem:
        yield Finding(
            "filename", f"PyPI expects the wheel's filename to start with {stem + '-'!r}."
        )
    for tag in sorted(parse_wheel_filename(filename)[3], key=str):
        if not supported_platform(tag.platform):
            yield Finding("filename", f"PyPI does not accept the platform tag {tag.platform!r}.")


# Platform tags PyPI accepts, by family (manylinux and the like need a published ABI spec).
_PLAIN_PLATFORMS = frozenset(
    [
        "any",
        "win32",
        "win_arm64",
        "win_amd64",
        "win_ia64",
        "manylinux1_x86_64",
        "manylinux1_i686",
        "manylinux2010_x86_64",
        "manylinux2010_i686",
        "manylinux2014_x86_64",
        "manylinux2014_i686",
        "manylinux2014_aarch64",
        "manylinux2014_armv7l",
        "manylinux2014_ppc64",
        "manylinux2014_ppc64le",
        "manylinux2014_s390x",
        "linux_armv6l",
        "linux_armv7l",
    ]
)
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_(.+)")
_MACOS_ARCHES = frozenset(
    [
        "ppc",
        "ppc64",
        "i386",
        "x86_64",
        "arm64",
        "intel",
        "fat",
        "fat3",
        "fat64",
        "universal",
        "universal2",
    ]
)
_MACOS_MAJORS = frozenset({"11", "12", "13", "14", "15", "26"})
_LINUX = re.compile(r"(many|musl)linux_\d+_\d+_(.+)")
_LINUX_ARCHES = frozenset(["x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"])
_IOS = re.compile(r"ios_\d+_\d+_(.+)_(?:iphoneos|iphonesimulator)")
_ANDROID = re.compile(r"android_\d+_(.+)")
_ANDROID_ARCHES = frozenset({"armeabi_v7a", "arm64_v8a", "x86", "x86_64"})
_EMSCRIPTEN = re.compile(r"pyemscripten_\d+_\d+_wasm32")


def supported_platform(platform: str) -> bool:
    if platform in _PLAIN_PLATFORMS or _EMSCRIPTEN.match(platform):
        return True
    if match := _MACOS.match(platform):
        major, minor, arch = match.groups()
        # macOS 10.x counts minors; from 11 on, only x.0 names a release.
        return arch in _MACOS_ARCHES and (
            major == "10" or (major in _MACOS_MAJORS and minor == "0")
        )
    if match := _LINUX.match(platform):
        libc, arch = match.groups()
        return arch in _LINUX_ARCHES or (libc == "many" and arch == "ppc64")
    if match := _IOS.match(platform):
        return match.group(1) in {"arm64", "x86_64"}
    if match := _ANDROID.match(platform):
        return match.group(1) in _ANDROID_ARCHES
    return False


_CHECKS: tuple[Callable[[Metadata, str], Iterator[Finding]], ...] = (
    _metadata_version,
    _local_version,
    _summary,
    _emails,
    _classifiers,
    _urls,
    _dependencies,
    _dynamic,
    _license,
    _description,
    _filename,
)
