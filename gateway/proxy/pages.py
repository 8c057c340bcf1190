"""The read path's simple pages (R-W10): the index's listing joined with what the gateway
knows about each file, rendered by the same code as a stage's pages.

Pages are cached in memory, per replica, and revalidated against the index on every request
(a conditional GET with the index's ``ETag``/``Last-Modified``, or the body's hash when it gives
neither). Memory, not S3: the index has to be asked on every request anyway (it is the source
of truth for which files exist), an S3 read would cost as much as that question, and all a
restart loses is a re-render from facts that are themselves in S3. A publish through the gateway
changes the index's listing, so the next request sees it at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from packaging.utils import (
    canonicalize_name,
)

from gateway.distribution.filenames import version_of
from gateway.proxy.index_reader import IndexReader, Page
from gateway.proxy.learn import Learner
from gateway.proxy.listing import INDEX_ACCEPT, ListedFile, parse_project, parse_root
from gateway.services.file_facts import FileFacts, FileFactsService
from gateway.services.publish_windows import PublishWindows
from gateway.services.yanks import ProjectYanks
from gateway.stage import simple

# Pages kept per replica; a page is a few KiB to a few hundred.
MAX_PAGES = 2048
# A file that could not be read is tried again after this long (it may have been a blip).
RETRY_UNREADABLE_SECONDS = 300.0
# Files of one page read at once from the index on a first visit.
LEARN_CONCURRENCY = 8


class ProvenanceLinks(Protocol):
    """PEP 740: where each file's provenance object is served, for the files of ``project``
    the gateway holds one for (filename -> URL)."""

    async def links(self, project: str) -> dict[str, str]: ...


class YankLookup(Protocol):
    async def yanks(self, project: str) -> ProjectYanks: ...


@dataclass
class _Cached:
    page: Page
    body_hash: str
    files: list[ListedFile]
    checked_at: float  # when the index last confirmed it (time.monotonic)
    complete: bool = False  # every file with a hash had its facts when last rendered
    rendered: dict[str, str] = field(default_factory=dict)
    staged: list[simple.StagedFile] | None = None  # the files as last rendered, when complete
    yanks: str | None = None  # the yank state they were rendered with


@dataclass(frozen=True)
class Served:
    """What the handler sends: a rendered page, and the files it lists."""

    body: str
    files: list[simple.StagedFile]


class SimplePages:
    def __init__(
        self,
        reader: IndexReader,
        facts: FileFactsService,
        upstream: str,
        yanks: YankLookup,
        provenance: ProvenanceLinks,
        windows: PublishWindows,
        max_age: float = 0.0,
    ) -> None:
        """``max_age``: seconds a page the index confirmed is served without asking it again
        (0: every request revalidates, so the index's changes show at once); never while a
        publish through this replica has the project's window open (``windows``)."""
        self._reader = reader
        self._learner = Learner(reader, facts)
        self._facts = facts
        self._upstream = upstream.rstrip("/")
        self._yanks = yanks
        self._max_age = max_age
        self._provenance = provenance
        self._windows = windows
        self._pages: OrderedDict[tuple[str, str | None], _Cached] = OrderedDict()
        self._unreadable: dict[str, float] = {}
        self._learning = asyncio.Semaphore(LEARN_CONCURRENCY)

    async def project(
        self,
        path: str,
        project: str,
        content_type: str,
        authorization: str | None,
        max_age: float = 0.0,
    ) -> Served:
        """The project page at the read path ``path`` (e.g. /simple/name/); ``max_age``:
        serve a listing this old without asking the index, if ``proxy.page_max_age`` is less."""
        cached = await self._revalidate(path, authorization, project=project, max_age=max_age)
        yanks = await self._yanks.yanks(project)
        # A yank or unyank changes the page without the index's listing changing.
        snapshot = str(sorted(yanks.reasons.items()))
        if cached.yanks != snapshot:
            cached.rendered, cached.staged, cached.yanks = {}, None, snapshot
        files = cached.staged or await self._files(project, cached, yanks, authorization)
        rendered = cached.rendered.get(content_type)
        if rendered is None:
            rendered = simple.project_page(project, _versions(files), files, content_type)
        if cached.complete:  # final until the listing or the yanks change
            cached.staged = files
            cached.rendered[content_type] = rendered
        return Served(rendered, files)

    async def root(self, path: str, content_type: str, authorization: str | None) -> str:
        cached = await self._revalidate(path, authorization, root=True)
        rendered = cached.rendered.get(content_type)
        if rendered is None:
            names = parse_root(cached.page.body, cached.page.charset, cached.page.content_type)
            rendered = simple.index_root_page(
                [(n, f"{path}{_canonical(n)}/") for n in names], content_type
            )
            cached.rendered[content_type] = rendered
        return rendered

    async def _revalidate(
        self,
        path: str,
        authorization: str | None,
        root: bool = False,
        project: str = "",
        max_age: float = 0.0,
    ) -> _Cached:
        key = (path, _credential_key(authorization))
        cached = self._pages.get(key)
        now = time.monotonic()
        publishing = self._windows.is_open(project)
        fresh_enough = max(max_age, self._max_age)
        if cached is not None and now - cached.checked_at < fresh_enough and not publishing:
            return cached
        page = await self._reader.page(
            self._upstream + path, INDEX_ACCEPT, authorization, cached.page if cached else None
        )
        body_hash = hashlib.sha256(page.body).hexdigest()
        if cached is not None and (page.status == 304 or cached.body_hash == body_hash):
            cached.checked_at = now
            return cached
        if root:
            parse_root(page.body, page.charset, page.content_type)  # refuse garbage now
            files: list[ListedFile] = []
        else:
            files = parse_project(page.body, page.charset, page.content_type, self._upstream + path)
        fresh = _Cached(page, body_hash, files, now)
        self._pages[key] = fresh
        self._pages.move_to_end(key)
        while len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)
        return fresh

    async def _files(
        self, project: str, cached: _Cached, yanks: ProjectYanks, authorization: str | None
    ) -> list[simple.StagedFile]:
        known = await asyncio.gather(*(self._facts_of(f, authorization) for f in cached.files))
        cached.complete = all(
            k is not None or f.sha256 is None for f, k in zip(cached.files, known, strict=True)
        )
        provenance = await self._provenance.links(project)
        return [
            self._staged(listed, facts, yanks, provenance.get(listed.filename))
            for listed, facts in zip(cached.files, known, strict=True)
        ]

    async def _facts_of(self, listed: ListedFile, authorization: str | None) -> FileFacts | None:
        if listed.sha256 is None:
            return None
        known = await self._facts.get(listed.sha256)
        if known is not None:
            return known
        if time.monotonic() - self._unreadable.get(listed.sha256, -1e9) < RETRY_UNREADABLE_SECONDS:
            return None
        async with self._learning:
            return await self._learn(listed, listed.sha256, authorization)

    async def _learn(
        self, listed: ListedFile, sha256: str, authorization: str | None
    ) -> FileFacts | None:
        learned = await self._learner.learn(listed, sha256, authorization)
        if learned.facts is None:  # listed as the index lists it; tried again later
            if len(self._unreadable) >= MAX_PAGES:
                self._unreadable.clear()
            self._unreadable[sha256] = time.monotonic()
        return learned.facts

    def _staged(
        self,
        listed: ListedFile,
        facts: FileFacts | None,
        yanks: ProjectYanks,
        provenance: str | None,
    ) -> simple.StagedFile:
        """The index's facts win where it has them (devpi), except a yank made through the
        gateway; ours fill the gaps."""
        url = self._public(listed.url)
        version = version_of(listed.filename)
        reason = yanks.reason_for(version) if version else None
        return simple.StagedFile(
            filename=listed.filename,
            url=url,
            sha256=listed.sha256,
            size=listed.size if listed.size is not None else (facts.size if facts else None),
            requires_python=listed.requires_python or (facts.requires_python if facts else None),
            metadata_sha256=(facts.metadata_sha256 if facts else None) or listed.metadata_sha256,
            upload_time=listed.upload_time or (facts.upload_time if facts else None),
            yanked=(reason or True) if reason is not None else listed.yanked,
            provenance=provenance,
        )

    def _public(self, url: str) -> str:
        """The index's own address becomes a path on the gateway (which serves it)."""
        if url.startswith(self._upstream + "/"):
            parts = urlsplit(url)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return url


def _versions(files: list[simple.StagedFile]) -> list[str]:
    """PEP 700: every version with a file, as the filenames say (unparsable names add none)."""
    versions: dict[str, None] = {}
    for file in files:
        version = version_of(file.filename)
        if version is not None:
            versions[version] = None
    return list(versions)


def _canonical(name: str) -> str:
    return canonicalize_name(name)


def _credential_key(authorization: str | None) -> str | None:
    # Pages read with different credentials may differ; the header itself is not kept.
    return hashlib.sha256(authorization.encode()).hexdigest() if authorization else None
