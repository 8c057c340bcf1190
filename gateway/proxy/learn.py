"""Learning a file the index holds: its core metadata read with ranged GETs against the index's
copy, kept as its facts record (R-W10). Shared by the read path's pages (on first request) and
by ``upload-gateway index backfill`` (ahead of a cut-over)."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp

from gateway.distribution.archive import DistributionError
from gateway.logs import log
from gateway.proxy.index_reader import IndexAnswer, IndexReader, TooLarge
from gateway.proxy.listing import ListedFile
from gateway.services.file_facts import FileFacts, FileFactsService


@dataclass(frozen=True)
class Learned:
    facts: FileFacts | None
    fetched: int  # bytes that crossed from the index
    error: str | None = None  # why the file could not be read


class Learner:
    def __init__(self, reader: IndexReader, facts: FileFactsService) -> None:
        self._reader = reader
        self._facts = facts

    async def learn(self, listed: ListedFile, sha256: str, authorization: str | None) -> Learned:
        """Read and keep ``listed``'s facts; a file that cannot be read (gone, corrupt, not a
        distribution, too large for an index that ignores Range) is logged and reported."""
        fetched = 0
        try:
            remote = await self._reader.open_file(listed.url, listed.filename, authorization)
            fetched = remote.fetched
            facts = await self._facts.learn(
                remote,
                sha256=sha256,
                filename=listed.filename,
                upload_time=_rfc3339(remote.last_modified),
            )
            fetched = remote.fetched
        except (DistributionError, TooLarge, IndexAnswer, aiohttp.ClientError, OSError) as exc:
            error = str(exc) or type(exc).__name__
            log.warning("reads.file_unreadable", filename=listed.filename, error=error)
            return Learned(None, fetched, error)
        log.info("reads.file_learned", filename=listed.filename, bytes_fetched=fetched)
        return Learned(facts, fetched)


def _rfc3339(http_date: str | None) -> str | None:
    if not http_date:
        return None
    try:
        return parsedate_to_datetime(http_date).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None
