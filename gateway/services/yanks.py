"""PEP 592 yank for any index (R-W10): which releases of a project are yanked, kept by the
gateway in S3 (``yanks/{project}.json``, this service its only writer); the index never learns
of it, the read path's pages say it.

The pages read a project's yanks on every request; a replica keeps what it read for
``max_age`` seconds, so a yank made through another replica shows within that time, and one
made through this replica at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

from gateway.distribution.filenames import version_of
from gateway.domain import clock
from gateway.protocol import audit
from gateway.protocol.yanks import YankState
from gateway.services.audit import AuditTrail
from gateway.services.listings import PublishedFiles
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordExists

YANK_MAX_AGE = 5.0
RELEASE_YANKED = "release.yanked"
RELEASE_UNYANKED = "release.unyanked"


class UnknownRelease(Exception):
    """The index holds no file of that version."""


@dataclass(frozen=True)
class ProjectYanks:
    """canonical version -> reason ("" when none was given)."""

    reasons: dict[str, str]

    def reason_for(self, version: str) -> str | None:
        return self.reasons.get(_canonical_version(version))


class YankService:
    def __init__(
        self,
        records: JsonRecords,
        published_files: PublishedFiles,
        audit_trail: AuditTrail,
        max_age: float = YANK_MAX_AGE,
    ) -> None:
        self._records = records
        self._published_files = published_files
        self._audit = audit_trail
        self._max_age = max_age
        self._recent: dict[str, tuple[float, ProjectYanks]] = {}

    async def yanks(self, project: str) -> ProjectYanks:
        name = canonicalize_name(project)
        held = self._recent.get(name)
        if held is not None and time.monotonic() - held[0] <= self._max_age:
            return held[1]
        stored = await self._records.get(keys.yanks(name))
        versions = stored.data.get("versions", {}) if stored is not None else {}
        found = ProjectYanks({v: entry.get("reason") or "" for v, entry in versions.items()})
        self._recent[name] = (time.monotonic(), found)
        return found

    async def set(
        self, project: str, version: str, by: str, yanked: bool, reason: str | None = None
    ) -> YankState:
        """Yank (or unyank) a release the index holds; UnknownRelease when it holds none of
        its files. Recorded in the audit journal."""
        name, canonical = canonicalize_name(project), _canonical_version(version)
        files = [f for f in await self._published_files(name) if _version_matches(f, canonical)]
        if not files:
            raise UnknownRelease(f"The index holds no file of {name} {version}.")
        await self._write(name, canonical, by, reason if yanked else None, yanked)
        self._recent.pop(name, None)
        await self._audit.record(
            RELEASE_YANKED if yanked else RELEASE_UNYANKED,
            project=name,
            version=version,
            files=[audit.AuditFile(filename=f) for f in sorted(files)],
            detail=reason if yanked else None,
        )
        return YankState(
            project=name, version=version, yanked=yanked, reason=reason, files=sorted(files)
        )

    async def _write(
        self, name: str, version: str, by: str, reason: str | None, yanked: bool
    ) -> None:
        def change(data: dict[str, object]) -> dict[str, object]:
            versions = dict(data.get("versions") or {})  # type: ignore[call-overload]  # JSON
            if yanked:
                versions[version] = {"reason": reason, "by": by, "at": clock.rfc3339(clock.now())}
            else:
                versions.pop(version, None)
            return {**data, "versions": versions}

        key = keys.yanks(name)
        if await self._records.get(key) is None:
            try:
                await self._records.create(key, change({}))
                return
            except RecordExists:
                pass  # someone else's first yank of this project: change theirs
        await self._records.update(key, change)


def _canonical_version(version: str) -> str:
    try:
        return canonicalize_version(Version(version))
    except InvalidVersion:
        return version


def _version_matches(filename: str, canonical: str) -> bool:
    found = version_of(filename)
    return found is not None and _canonical_version(found) == canonical
