"""``upload-gateway index backfill [--project NAME]...``: learn every file the index holds
ahead of a cut-over to the read path (R-W10), so that no installer waits for a first read.

Run by an operator with the gateway's configuration (it needs S3 and the index, as the gateway
does); reads the index with the backend's credentials. Files whose facts are already known are
skipped without a request; each other file costs a few ranged GETs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from packaging.utils import canonicalize_name

from gateway.auth.config import basic_authorization
from gateway.outbound import Hop
from gateway.proxy.index_reader import IndexAnswer, IndexReader
from gateway.proxy.learn import Learner
from gateway.proxy.listing import INDEX_ACCEPT, ListedFile, parse_project, parse_root
from gateway.proxy.upstream import upstream_url
from gateway.services.file_facts import FileFactsService
from gateway.services.publish_windows import PublishWindows
from gateway.settings import Settings
from gateway.store.record_store import RecordStore
from gateway.store.s3 import ensure_bucket, open_client, open_small_objects

CONCURRENCY = 8


@dataclass
class Summary:
    projects: int = 0
    files_read: int = 0
    already_known: int = 0
    bytes_fetched: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # why -> how many

    def lines(self) -> list[str]:
        lines = [
            f"{self.projects} projects, {self.files_read} files read "
            f"({self.bytes_fetched} bytes fetched), {self.already_known} already known",
        ]
        lines += [f"skipped {count}: {why}" for why, count in self.skipped.most_common()]
        return lines


# Called with (files done, files in all, filename) as the walk goes.
Progress = Callable[[int, int, str], None]


async def backfill(settings: Settings, projects: list[str], progress: Progress) -> Summary:
    config = settings.s3.store_config()
    async with (
        open_client(config) as client,
        open_small_objects(config, client) as objects,
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        await ensure_bucket(client, settings.s3.bucket, settings.s3.create_bucket)
        records = RecordStore(objects, settings.s3.bucket, settings.s3.prefix)
        # A backfill publishes nothing: no publish window opens.
        facts = FileFactsService(records, PublishWindows())
        hop = Hop("backend", settings.backend.tls(), settings.backend.outbound_proxy)
        reader = IndexReader(http, hop, settings.backend.timeout, upstream_url(settings))
        walk = _Walk(settings, reader, facts)
        return await walk.run(projects, progress)


class _Walk:
    def __init__(self, settings: Settings, reader: IndexReader, facts: FileFactsService) -> None:
        self._reader = reader
        self._facts = facts
        self._learner = Learner(reader, facts)
        self._upstream = upstream_url(settings)
        self._simple = self._upstream + urlsplit(settings.backend.simple_url).path
        backend = settings.backend
        password = backend.password.get_secret_value() if backend.password else ""
        self._authorization = (
            basic_authorization(backend.username, password) if backend.username else None
        )
        self.summary = Summary()

    async def run(self, projects: list[str], progress: Progress) -> Summary:
        names = projects or await self._all_projects()
        self.summary.projects = len(names)
        files: list[ListedFile] = []
        for name in names:
            files += await self._listing(canonicalize_name(name))
        done = 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(listed: ListedFile) -> None:
            nonlocal done
            async with gate:
                await self._file(listed)
            done += 1
            progress(done, len(files), listed.filename)

        await asyncio.gather(*(one(f) for f in files))
        return self.summary

    async def _all_projects(self) -> list[str]:
        page = await self._reader.page(self._simple, INDEX_ACCEPT, self._authorization, None)
        return parse_root(page.body, page.charset, page.content_type)

    async def _listing(self, project: str) -> list[ListedFile]:
        url = f"{self._simple}{project}/"
        try:
            page = await self._reader.page(url, INDEX_ACCEPT, self._authorization, None)
            return parse_project(page.body, page.charset, page.content_type, url)
        except (IndexAnswer, ValueError) as exc:
            self.summary.skipped[f"project {project}: the index answered {exc}"] += 1
            return []

    async def _file(self, listed: ListedFile) -> None:
        if listed.sha256 is None:
            self.summary.skipped["the index gives no sha256"] += 1
            return
        if await self._facts.get(listed.sha256) is not None:
            self.summary.already_known += 1
            return
        learned = await self._learner.learn(listed, listed.sha256, self._authorization)
        self.summary.bytes_fetched += learned.fetched
        if learned.facts is None:
            self.summary.skipped[f"unreadable: {learned.error}"] += 1
        else:
            self.summary.files_read += 1


def run_backfill(settings: Settings, projects: list[str]) -> int:
    """The command: a progress bar on stderr, the summary on stdout."""
    from rich.console import Console
    from rich.progress import Progress as Bar

    with Bar(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("reading files", total=None)

        def advance(done: int, total: int, filename: str) -> None:
            bar.update(task, completed=done, total=total, description=filename[:40])

        summary = asyncio.run(backfill(settings, projects, advance))
    for line in summary.lines():
        print(line)
    return 0
