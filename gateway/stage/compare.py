"""A staged release against the latest release of the project already on the index.

What a reviewer wants to know before publishing: which dependencies and which Requires-Python
change for users, and which files (Python versions, platforms) the new release would no
longer offer. Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

__all__ = [
    "Change",
    "Comparison",
    "compare",
    "differing_fields",
    "file_key",
    "latest_release",
    "platforms",
]

SDIST = "sdist"


@dataclass(frozen=True)
class Change:
    kind: Literal["added", "removed", "changed"]
    what: str  # a dependency's name (with its marker), "Requires-Python", an extra
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Comparison:
    previous_version: str
    metadata_from: str  # the previous release's file whose metadata was read
    dependencies: list[Change]
    requires_python: Change | None
    extras: list[Change]
    missing_files: list[str]  # previous files with no file of the same tags now
    missing_platforms: list[str]

    @property
    def unchanged(self) -> bool:
        return not (
            self.dependencies
            or self.requires_python
            or self.extras
            or self.missing_files
            or self.missing_platforms
        )


def release_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        if filename.endswith(".tar.gz"):
            return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        pass
    return None  # eggs, zips, anything else an old index may hold


def latest_release(filenames: list[str], staged: Version) -> tuple[Version, list[str]] | None:
    """The highest version other than the staged one, with its files."""
    by_version: dict[Version, list[str]] = {}
    for filename in filenames:
        version = release_version(filename)
        if version is not None and version != staged:
            by_version.setdefault(version, []).append(filename)
    if not by_version:
        return None
    latest = max(by_version)
    return latest, sorted(by_version[latest])


def file_key(filename: str) -> str:
    """What makes two releases' files counterparts: the wheel's tags, or being the sdist."""
    if filename.endswith(".whl"):
        tags = parse_wheel_filename(filename)[3]
        return ".".join(sorted(str(tag) for tag in tags))
    return SDIST


def platforms(filenames: list[str]) -> set[str]:
    found: set[str] = set()
    for filename in filenames:
        if filename.endswith(".whl"):
            found.update(tag.platform for tag in parse_wheel_filename(filename)[3])
    return found


def compare(
    current: Metadata,
    current_files: list[str],
    previous: Metadata,
    previous_files: list[str],
    metadata_from: str,
) -> Comparison:
    present = {file_key(name) for name in current_files}
    return Comparison(
        previous_version=str(previous.version),
        metadata_from=metadata_from,
        dependencies=_changes(_dependencies(previous), _dependencies(current)),
        requires_python=_requires_python(previous, current),
        extras=_changes(_extras(previous), _extras(current)),
        missing_files=[name for name in previous_files if file_key(name) not in present],
        missing_platforms=sorted(platforms(previous_files) - platforms(current_files)),
    )


# What a reviewer reads on the project page, by the header names the page shows.
_SHOWN_FIELDS = {
    "Summary": "summary",
    "Description": "description",
    "Description-Content-Type": "description_content_type",
    "Author": "author",
    "Author-email": "author_email",
    "Maintainer": "maintainer",
    "Maintainer-email": "maintainer_email",
    "License": "license",
    "License-Expression": "license_expression",
    "Requires-Python": "requires_python",
    "Requires-Dist": "requires_dist",
    "Provides-Extra": "provides_extra",
    "Classifier": "classifiers",
    "Project-URL": "project_urls",
}


def differing_fields(metadata: list[Metadata]) -> list[str]:
    """The shown fields on which a release's files disagree (the index keeps one file's)."""

    def value(item: Metadata, attribute: str) -> str:
        found = getattr(item, attribute)
        if isinstance(found, list):
            return repr(sorted(str(entry) for entry in found))
        return repr(found if isinstance(found, dict) else str(found or ""))

    return [
        name
        for name, attribute in _SHOWN_FIELDS.items()
        if len({value(item, attribute) for item in metadata}) > 1
    ]


def _dependencies(metadata: Metadata) -> dict[str, str]:
    """'name; marker' -> the requirement without its marker, one entry per name and marker."""
    found: dict[str, str] = {}
    for requirement in metadata.requires_dist or []:
        key = str(canonicalize_name(requirement.name))
        if requirement.marker is not None:
            key += f"; {requirement.marker}"
        found[key] = _without_marker(requirement)
    return found


def _without_marker(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    target = f" @ {requirement.url}" if requirement.url else str(requirement.specifier)
    return f"{requirement.name}{extras}{target}"


def _extras(metadata: Metadata) -> dict[str, str]:
    return {str(extra): str(extra) for extra in metadata.provides_extra or []}


def _changes(before: dict[str, str], after: dict[str, str]) -> list[Change]:
    changes: list[Change] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None:
            changes.append(Change("added", key, None, new))
        elif new is None:
            changes.append(Change("removed", key, old, None))
        elif old != new:
            changes.append(Change("changed", key, old, new))
    return changes


def _requires_python(previous: Metadata, current: Metadata) -> Change | None:
    old = str(previous.requires_python) if previous.requires_python else None
    new = str(current.requires_python) if current.requires_python else None
    if old == new:
        return None
    kind: Literal["added", "removed", "changed"] = (
        "added" if old is None else "removed" if new is None else "changed"
    )
    return Change(kind, "Requires-Python", old, new)
